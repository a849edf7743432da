"""Seeding labelled shipments, and reading back what fulfil and the sandbox saw, for tracking tests."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import requests
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from fulfil.label_files import write_label
from fulfil.runs import HOSTNAME, NODE
from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from fulfil.sandbox.orders import generate_orders

BB_KEY = DEFAULT_CREDENTIALS["FULFIL_BESTBUY_API_KEY"]


def pin_for(seed: int, index: int) -> str:
    """A 16-digit Canada Post-like tracking number, unique per (seed, index)."""
    return f"7{seed:03d}{index:012d}"


def seed_labelled(
    db: psycopg.Connection,
    sandbox: Any,
    n: int,
    *,
    seed: int = 3,
    status: str = "label_created",
    lease_owner: str | None = None,
    lease_left_s: float = 600.0,
    tracking_at_best_buy: bool = True,
    label_files: bool = True,
) -> list[dict[str, Any]]:
    """n SHIPPING orders at Best Buy (the sandbox) with a bought label here, in ``status``.

    A shipment seeded in tracking_sent has its tracking number at Best Buy too (OR23 went out),
    unless ``tracking_at_best_buy`` is false. Each label's PDF is on disk with its checksum
    recorded (tracking push refuses labels whose PDF is missing), unless ``label_files`` is false.
    """
    orders = generate_orders(n, seed=seed)
    sandbox.add_orders(orders)
    directory = Path(tempfile.mkdtemp(prefix="fulfil-test-labels-"))
    for index, order in enumerate(orders):
        pin = pin_for(seed, index)
        db.execute(
            "INSERT INTO orders (order_id, status, raw_order_data, created_at) "
            "VALUES (%s, 'accepted', %s, %s)",
            (order["order_id"], Jsonb(order), order.get("created_date") or datetime.now(UTC)),
        )
        db.execute(
            """
            INSERT INTO shipments (order_id, status, tracking_pin, cp_shipment_id, cp_mode, label_created_at,
                                   tracking_sent_at, lease_owner, lease_expires_at)
            VALUES (%(order_id)s, %(status)s, %(pin)s, '9' || %(pin)s, 'contract', now(),
                    CASE WHEN %(status)s = 'tracking_sent' THEN now() END,
                    %(owner)s::text,
                    CASE WHEN %(owner)s::text IS NULL THEN NULL
                         ELSE now() + make_interval(secs => %(left)s) END)
            """,
            {
                "order_id": order["order_id"],
                "status": status,
                "pin": pin,
                "owner": lease_owner,
                "left": lease_left_s,
            },
        )
        if label_files:
            saved = write_label(directory, order["order_id"], label_pdf(pin))
            db.execute(
                "UPDATE shipments SET label_pdf_path = %s, label_pdf_sha256 = %s, label_pdf_bytes = %s "
                "WHERE order_id = %s",
                (str(saved.path), saved.sha256, saved.size, order["order_id"]),
            )
        if status == "tracking_sent" and tracking_at_best_buy:
            send_tracking_directly(sandbox, order["order_id"], pin)
    return orders


def label_pdf(pin: str) -> bytes:
    """A small complete PDF standing in for a downloaded label."""
    return f"%PDF-1.4\n% label {pin}\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n".encode()


def move_as_a_run_would(db: psycopg.Connection, order_id: str, move: str, sets: str = "") -> None:
    """Make a move that needs the lease the way a run does: claim, move through
    fulfil_shipment_move(), release (a plain UPDATE of the status is refused by the database)."""
    owner = "an-earlier-run/1/1.00/0/?"
    with db.transaction():
        db.execute(
            "UPDATE shipments SET lease_owner = %s, lease_expires_at = now() + interval '1 minute' "
            "WHERE order_id = %s",
            (owner, order_id),
        )
        target = db.execute(
            "SELECT to_status FROM shipment_moves WHERE move = %s LIMIT 1", (move,)
        ).fetchone()
        assert target is not None, move
        db.execute(
            f"UPDATE shipments SET status = %s{', ' + sets if sets else ''} "
            "WHERE order_id = %s AND fulfil_shipment_move(shipment_id, %s, %s, NULL, 'seeded by the test')",
            (target[0], order_id, move, owner),
        )
        db.execute(
            "UPDATE shipments SET lease_owner = NULL, lease_expires_at = NULL WHERE order_id = %s",
            (order_id,),
        )


def send_tracking_directly(sandbox: Any, order_id: str, pin: str) -> None:
    """OR23 straight to the sandbox, as an earlier run would have sent it."""
    answer = requests.put(
        f"{sandbox.base_url}/api/orders/{order_id}/tracking",
        json={"carrier_code": "CPCL", "tracking_number": pin},
        headers={"Authorization": BB_KEY},
        timeout=5,
    )
    assert answer.status_code == 204, answer.text


def ship_directly(sandbox: Any, order_id: str) -> None:
    """OR24 straight to the sandbox: the order is shipped on Best Buy without fulfil knowing."""
    answer = requests.put(
        f"{sandbox.base_url}/api/orders/{order_id}/ship", headers={"Authorization": BB_KEY}, timeout=5
    )
    assert answer.status_code == 204, answer.text


def dead_owner() -> str:
    """A lease owner naming a process of this host that has exited (as a SIGKILLed run leaves)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return f"{HOSTNAME}/{int(child.stdout)}/?/deadbeef0000/{NODE}"


def shipments(db: psycopg.Connection) -> dict[str, dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM shipments ORDER BY shipment_id").fetchall()
    return {row["order_id"]: row for row in rows}


def order_statuses(db: psycopg.Connection) -> dict[str, str]:
    return dict(db.execute("SELECT order_id, status FROM orders").fetchall())  # type: ignore[arg-type]


def api_calls(
    db: psycopg.Connection, *, endpoint: str | None = None, related_id: str | None = None
) -> list[dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT * FROM api_calls
            WHERE (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s)
              AND (%(related)s::text IS NULL OR related_id = %(related)s)
            ORDER BY call_id
            """,
            {"endpoint": endpoint, "related": related_id},
        ).fetchall()


def order_requests(sandbox: Any, order_id: str) -> list[tuple[str, int | None]]:
    """(endpoint, status) of every OR23/OR24 the sandbox received for one order, in order."""
    prefix = f"/api/orders/{order_id}/"
    return [
        (entry["endpoint"], entry["status"])
        for entry in sandbox.request_log()
        if entry["service"] == "bestbuy" and entry["path"].startswith(prefix)
    ]


def log_entries(sandbox: Any, endpoint: str) -> list[dict[str, Any]]:
    return [e for e in sandbox.request_log() if e["service"] == "bestbuy" and e["endpoint"] == endpoint]


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
