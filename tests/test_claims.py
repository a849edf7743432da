"""The label claim as the store runs it: the order's data and its hash come back exactly as the
database has them, and a run given --order claims only those orders."""

from __future__ import annotations

import hashlib
import json

import psycopg
from psycopg.rows import dict_row

from fulfil.shipments.store import ShipmentStore

# Text PostgreSQL keeps differently from json.dumps: key order, spacing, a trailing zero, non-ASCII.
ORDER = {"zeta": 1, "a": "Montréal — 12.50 $", "price": 12.50, "nested": {"b": [1, 2.0, None], "aa": True}}


def _pending(db: psycopg.Connection, order_id: str, data: str) -> None:
    db.execute(
        "INSERT INTO orders (order_id, status, raw_order_data) VALUES (%s, 'accepted', %s::jsonb)",
        (order_id, data),
    )
    db.execute("INSERT INTO shipments (order_id, status) VALUES (%s, 'label_pending')", (order_id,))


def test_the_claim_returns_the_data_and_the_hash_postgresql_has(
    db: psycopg.Connection, database_url: str
) -> None:
    _pending(
        db,
        "C-1",
        '{"zeta": 1, "a": "Montréal — 12.50 $", "price": 12.50, "nested": {"b": [1, 2.0, null], "aa": true}}',
    )
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        row = ShipmentStore(conn, owner="test/1", run_id=None).claim_next_purchase(
            None, contract=True, lease_seconds=60
        )
    assert row is not None
    assert row["order_id"] == "C-1"
    assert row["raw_order_data"] == ORDER
    [(expected,)] = db.execute(
        "SELECT md5(raw_order_data::text) FROM orders WHERE order_id = 'C-1'"
    ).fetchall()
    assert row["order_data_hash"] == expected
    assert (
        row["order_data_hash"] != hashlib.md5(json.dumps(ORDER).encode(), usedforsecurity=False).hexdigest()
    )  # not Python's text


def test_a_claim_given_orders_takes_only_those(db: psycopg.Connection, database_url: str) -> None:
    for order_id in ("C-1", "C-2", "C-3"):
        _pending(db, order_id, "{}")
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        store = ShipmentStore(conn, owner="test/1", run_id=None)
        given = store.claim_next_purchase(["C-3"], contract=True, lease_seconds=60)
        again = store.claim_next_purchase(["C-3"], contract=True, lease_seconds=60)
        oldest = store.claim_next_purchase(None, contract=True, lease_seconds=60)
    assert given is not None
    assert given["order_id"] == "C-3"
    assert again is None
    assert oldest is not None
    assert oldest["order_id"] == "C-1"


def _status(db: psycopg.Connection, order_id: str) -> str:
    [(status,)] = db.execute("SELECT status FROM shipments WHERE order_id = %s", (order_id,)).fetchall()
    return str(status)


def test_an_order_whose_data_changed_during_its_purchase_is_tried_again(
    db: psycopg.Connection, database_url: str
) -> None:
    # The change lands while the shipment is label_creation_initiated, so the trigger that requeues
    # a failed order on a change finds nothing to requeue; the refusal must not bury the new data.
    _pending(db, "C-1", '{"customer": {"shipping_address": {"zip_code": "bad"}}}')
    _pending(db, "C-2", '{"customer": {"shipping_address": {"zip_code": "bad"}}}')
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        store = ShipmentStore(conn, owner="test/1", run_id=None)
        changed = store.claim_next_purchase(["C-1"], contract=True, lease_seconds=60)
        unchanged = store.claim_next_purchase(["C-2"], contract=True, lease_seconds=60)
        assert changed is not None
        assert unchanged is not None
        fixed = '{"customer": {"shipping_address": {"zip_code": "K1A0A9"}}}'
        db.execute("UPDATE orders SET raw_order_data = %s::jsonb WHERE order_id = 'C-1'", (fixed,))
        for claim in (changed, unchanged):
            assert store.refuse_purchase(
                claim["shipment_id"],
                code="order-data",
                error="zip_code",
                order_data_hash=claim["order_data_hash"],
            )
    assert _status(db, "C-1") == "label_pending"
    assert _status(db, "C-2") == "label_failed"
    moves = db.execute(
        "SELECT move, reason FROM shipment_events WHERE order_id = 'C-1' ORDER BY event_id"
    ).fetchall()
    assert [m for m, _ in moves][-2:] == ["refuse_purchase", "retry_label"]
    assert "changed while its label was being bought" in moves[-1][1]
