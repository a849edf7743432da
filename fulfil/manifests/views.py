"""What `fulfil manifest list` and `fulfil manifest show` read back: from the database only."""

from __future__ import annotations

from datetime import date
from typing import Any

from fulfil.manifests.store import ManifestStore

LIST_COLUMNS = [
    "date",
    "group_id",
    "transmit_id",
    "status",
    "manifest_id",
    "po_number",
    "shipments",
    "pdf_path",
    "error",
]


def transmit_lines(store: ManifestStore, since: date) -> list[dict[str, Any]]:
    """One line per manifest of every transmit of the days since (a transmit with none: one line),
    newest day first."""
    return [
        {
            "date": row["manifest_date"],
            "group_id": row["group_id"],
            "transmit_id": row["transmit_id"],
            "status": row["status"],
            "found_by": row["found_by"],
            "manifest_id": row["cp_manifest_id"],
            "po_number": row["po_number"],
            "shipments": row["shipment_count"],
            "pdf_path": row["pdf_path"],
            "included": row["included"],
            "excluded": row["excluded"],
            "started_at": row["started_at"],
            "settled_at": row["settled_at"],
            "error": row["manifest_error"] or row["error"],
        }
        for row in store.list_transmits(since)
    ]


def manifest_story(store: ManifestStore, key: str) -> list[dict[str, Any]]:
    """Each manifest whose Canada Post id or PO number is ``key``: the manifest, its transmit (the
    group and day, what it left out and why) and the shipments on it."""
    stories = []
    for row in store.find_manifest(key):
        stories.append(
            {
                "manifest_id": row["cp_manifest_id"],
                "po_number": row["po_number"],
                "date": row["manifest_date"],
                "group_id": row["group_id"],
                "transmit_id": row["transmit_id"],
                "found_by": row["found_by"],
                "transmitted_at": row["settled_at"],
                "pdf_path": row["pdf_path"],
                "pdf_sha256": row["pdf_sha256"],
                "pdf_bytes": row["pdf_bytes"],
                "links": {
                    "manifest": row["manifest_url"],
                    "details": row["details_url"],
                    "manifestShipments": row["shipments_url"],
                    "artifact": row["artifact_url"],
                },
                "shipment_count": row["shipment_count"],
                "shipments": [
                    {
                        "cp_shipment_id": shipment["cp_shipment_id"],
                        "order_id": shipment["order_id"],
                        "tracking_pin": shipment["tracking_pin"],
                        "status": shipment["status"],
                    }
                    for shipment in store.shipments_on_manifest(row["manifest_id"])
                ],
                "excluded": row["excluded"],
                "error": row["last_error"],
            }
        )
    return stories
