"""Parcels for the carrier tracking tests: labels bought through the real command line (so the
sandbox knows them and tracks them on its clock), and the sandbox's tracking calls counted."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.conftest import run_fulfil
from tests.labels.helpers import seed_orders


def bought(db: psycopg.Connection, fulfil_env: dict[str, str], n: int) -> list[str]:
    orders = seed_orders(db, n)
    result = run_fulfil("labels", "create", env=fulfil_env)
    assert result.returncode == 0, result.stderr
    return orders


def detail_calls(sandbox: Any) -> int:
    return sum(1 for entry in sandbox.request_log() if entry.get("endpoint") == "TrackingDetail")


def age_parcel(sandbox: Any, db: psycopg.Connection, order_id: str, simulated_hours: float) -> None:
    """The sandbox's parcel as if bought ``simulated_hours`` ago, and due here now."""
    row = db.execute("SELECT tracking_pin FROM shipments WHERE order_id = %s", (order_id,)).fetchone()
    assert row is not None
    shipment = sandbox.sandbox_state.shipment_by_pin(row[0])
    shipment.created_at -= simulated_hours * 3600 / sandbox.config.time_scale
    db.execute(
        "UPDATE carrier_tracking SET next_refresh_at = now() "
        "WHERE shipment_id = (SELECT shipment_id FROM shipments WHERE order_id = %s)",
        (order_id,),
    )
