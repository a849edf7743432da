"""The counts `fulfil status` shows come from a summary the database keeps itself (sql/0006): they
must equal a count of the rows after every kind of change — inserts one by one and in bulk,
upserts, moves through the store, order updates, deletes, rolled-back transactions, REPEATABLE
READ transactions, TRUNCATE, concurrent workers — and whatever was there before the summary."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from fulfil.db import sql_dir
from fulfil.migrations import migrate
from fulfil.runs import Run
from fulfil.sandbox.orders import generate_orders
from fulfil.shipments.store import ShipmentStore
from fulfil.status_report import build_report


def real_counts(db: psycopg.Connection[Any], table: str) -> dict[str, int]:
    rows = db.execute(f"SELECT status, count(*) FROM {table} GROUP BY status ORDER BY status").fetchall()
    return {status: count for status, count in rows}


def summary(db: psycopg.Connection[Any], table: str) -> dict[str, int]:
    rows = db.execute(
        "SELECT status, count FROM current_status_counts WHERE table_name = %s ORDER BY status", (table,)
    ).fetchall()
    return {status: count for status, count in rows}


def assert_exact(db: psycopg.Connection[Any], step: str) -> None:
    for table in ("orders", "shipments"):
        assert summary(db, table) == real_counts(db, table), f"{table} after {step}"


def add_orders(db: psycopg.Connection[Any], orders: list[dict[str, Any]], status: str = "accepted") -> None:
    for order in orders:
        db.execute(
            "INSERT INTO orders (order_id, status, raw_order_data, created_at) VALUES (%s, %s, %s, %s)",
            (order["order_id"], status, Jsonb(order), order["created_date"]),
        )


def label_for(shipment_id: int) -> dict[str, str]:
    return {
        "tracking_pin": f"7{shipment_id:015d}",
        "cp_shipment_id": f"6{shipment_id:017d}",
        "cp_self_url": f"https://ct.soa-gw.canadapost.ca/rs/0/0/shipment/6{shipment_id:017d}",
        "cp_label_url": f"https://ct.soa-gw.canadapost.ca/rs/artifact/0/6{shipment_id:017d}/0",
        "cp_label_media_type": "application/pdf",
    }


def buy_and_ship(store: ShipmentStore, *, ship: bool) -> str | None:
    """One order the way a run takes it: claim, label bought, file recorded, then (ship) pushed."""
    claim = store.claim_next_purchase(None, contract=True, lease_seconds=60)
    if claim is None:
        return None
    sid = claim["shipment_id"]
    assert store.record_purchase(sid, label_for(sid), warnings=[], download_lease_seconds=60)
    store.record_label_file(sid, path=f"/labels/{claim['order_id']}.pdf", sha256="0" * 64, size=1)
    if ship:
        pushed = store.claim_next_shipment(
            lease_seconds=60,
            dead_owners=[],
            order_ids=[claim["order_id"]],
            skip=[],
            download_grace_seconds=600,
        )
        assert pushed is not None
        assert store.record_tracking_sent(sid)
        assert store.record_shipped(sid)
    return str(claim["order_id"])


def moves_then_rollback(store: ShipmentStore, *, orders: int) -> None:
    with store.transaction():
        for _ in range(orders):
            assert buy_and_ship(store, ship=True) is not None
        raise RuntimeError("rolled back")


def test_the_counts_stay_exact_through_every_kind_of_change(
    db: psycopg.Connection[Any], database_url: str
) -> None:
    orders = generate_orders(150, seed=41)
    add_orders(db, orders[:100])
    db.execute(  # a bulk insert, with a row that is already there
        "INSERT INTO orders (order_id, status, raw_order_data) "
        "SELECT 'B-' || g, CASE WHEN g %% 3 = 0 THEN 'canceled' ELSE 'accepted' END, '{}'::jsonb "
        "FROM generate_series(1, 40) g UNION ALL SELECT %s, 'accepted', '{}'::jsonb "
        "ON CONFLICT (order_id) DO NOTHING",
        (orders[0]["order_id"],),
    )
    db.execute(  # an upsert that changes a status, the way a pull updates an order
        "INSERT INTO orders (order_id, status) VALUES ('B-1', 'shipped') "
        "ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status"
    )
    assert_exact(db, "inserts")

    run = Run("labels create")
    run.start(database_url)
    with ShipmentStore.open(database_url, owner=run.lease_owner, run_id=run.run_id, purpose="test") as store:
        store.create_pending_shipments(None, None)
        assert_exact(db, "a bulk insert of shipments")
        for index in range(60):  # far more changes than one fold takes (64)
            assert buy_and_ship(store, ship=index % 2 == 0) is not None
        assert_exact(db, "moves through the store")

        claim = store.claim_next_purchase(None, contract=True, lease_seconds=60)
        assert claim is not None
        assert store.refuse_purchase(claim["shipment_id"], code="x", error="refused", order_data_hash=None)
        claim = store.claim_next_purchase(None, contract=True, lease_seconds=60)
        assert claim is not None
        assert store.release_purchase(claim["shipment_id"], code="x", error="not sent")
        assert_exact(db, "a refusal and a release")

        # Moves whose transaction rolls back leave no trace in the counts, folds included.
        with pytest.raises(RuntimeError, match="rolled back"):
            moves_then_rollback(store, orders=40)  # 160 moves: folds in the transaction too
        assert_exact(db, "a rolled-back transaction")

    # A failed order whose data changes goes back to label_pending by a trigger (0004): a move too.
    failed = db.execute("SELECT order_id FROM shipments WHERE status = 'label_failed' LIMIT 1").fetchone()
    assert failed is not None
    db.execute(
        "UPDATE orders SET raw_order_data = raw_order_data || '{\"note\": 1}' WHERE order_id = %s", failed
    )
    db.execute("UPDATE orders SET status = 'canceled' WHERE order_id LIKE 'B-%%' AND status = 'accepted'")
    db.execute("UPDATE orders SET updated_at = now()")  # no status changed: nothing to count
    assert_exact(db, "order updates")

    with psycopg.connect(database_url) as other:  # REPEATABLE READ: counted, never folded there
        other.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        for _ in range(70):
            other.execute(
                "UPDATE orders SET status = 'waiting' WHERE order_id LIKE 'B-%%' AND status = 'canceled'"
            )
            other.execute(
                "UPDATE orders SET status = 'canceled' WHERE order_id LIKE 'B-%%' AND status = 'waiting'"
            )
        other.commit()
    assert_exact(db, "a REPEATABLE READ transaction")
    for _ in range(35):  # the next READ COMMITTED changes fold everything left
        db.execute("UPDATE orders SET status = 'waiting' WHERE order_id = 'B-3'")
        db.execute("UPDATE orders SET status = 'canceled' WHERE order_id = 'B-3'")

    db.execute("DELETE FROM shipments WHERE order_id LIKE 'B-%%' AND status = 'label_pending'")
    db.execute(
        "DELETE FROM orders o WHERE order_id LIKE 'B-%%' AND status = 'canceled' "
        "AND NOT EXISTS (SELECT 1 FROM shipments s WHERE s.order_id = o.order_id)"
    )
    assert_exact(db, "deletes")

    report = build_report(database_url)
    assert report.orders == real_counts(db, "orders")
    assert report.shipments == real_counts(db, "shipments")
    # The changes not folded yet stay few: status reads a handful of rows, whatever the history.
    pending = db.execute("SELECT count(*) FROM status_count_changes").fetchone()
    assert pending is not None
    assert pending[0] < 64 + 8

    db.execute("TRUNCATE orders CASCADE")
    assert_exact(db, "TRUNCATE")
    assert summary(db, "shipments") == {}


@pytest.mark.slow
def test_concurrent_workers_keep_the_counts_exact(db: psycopg.Connection[Any], database_url: str) -> None:
    add_orders(db, generate_orders(240, seed=43))
    run = Run("labels create")
    run.start(database_url)
    with ShipmentStore.open(database_url, owner=run.lease_owner, run_id=run.run_id, purpose="test") as store:
        store.create_pending_shipments(None, None)
    done: list[str] = []
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            with ShipmentStore.open(
                database_url, owner=run.lease_owner, run_id=run.run_id, purpose=f"worker-{index}"
            ) as store:
                while (order_id := buy_and_ship(store, ship=index % 2 == 0)) is not None:
                    done.append(order_id)
        except BaseException as exc:  # reported below, with the thread's own traceback
            failures.append(exc)

    def importer() -> None:  # orders changing status beside the workers, as a pull does
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                for g in range(200):
                    conn.execute(
                        "INSERT INTO orders (order_id, status) VALUES (%s, 'accepted') "
                        "ON CONFLICT (order_id) DO UPDATE SET status = 'canceled'",
                        (f"P-{g % 50}",),
                    )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)] + [
        threading.Thread(target=importer)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert len(done) == len(set(done)) == 240
    assert_exact(db, "four workers and an importer at once")


def test_the_summary_starts_from_the_rows_already_there(empty_database_url: str, tmp_path: Path) -> None:
    before = tmp_path / "sql"
    before.mkdir()
    for path in sql_dir().glob("*.sql"):
        if path.name < "0006":
            shutil.copy(path, before / path.name)
    migrate(empty_database_url, before)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        add_orders(conn, generate_orders(30, seed=47))
        conn.execute(
            "UPDATE orders SET status = 'shipped' WHERE order_id IN (SELECT order_id FROM orders LIMIT 7)"
        )
        conn.execute(
            "INSERT INTO shipments (order_id, status) SELECT order_id, 'label_pending' FROM orders LIMIT 12"
        )
    migrate(empty_database_url)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        assert_exact(conn, "the migration")
        assert summary(conn, "orders") == {"accepted": 23, "shipped": 7}
        # Applied again (its bookkeeping lost, as the adoption test does): counted afresh, not twice.
        conn.execute("DELETE FROM fulfil_schema_migrations WHERE version = 6")
    migrate(empty_database_url)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        assert_exact(conn, "the migration, again")
