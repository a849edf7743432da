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
