"""The claims walk small indexes whatever the size of the tables (issue 11, items 4 and 5): on a
large generated history, the plans of the queries the store actually runs never scan orders or
shipments sequentially, and none of them hashes or sorts the waiting work."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from fulfil.db import query
from tests.conftest import REPOSITORY

HISTORY = 120_000  # shipped orders, each with its shipment
WAITING = 1_000  # accepted orders whose label is not bought yet

STORE = (REPOSITORY / "fulfil" / "shipments" / "store.py").read_text(encoding="utf-8")

# The queries a run makes for every order, with parameters as the store passes them.
PER_ORDER = {
    "claim_next_purchase": {"order_ids": None, "cp_mode": "contract", "lease_seconds": 60},
    "claim_next_download": {"lease_seconds": 60, "dead_owners": [], "order_ids": None, "skip": []},
    "claim_next_shipment": {
        "lease_seconds": 60,
        "dead_owners": [],
        "order_ids": None,
        "skip": [],
        "download_grace_seconds": 600,
    },
    "create_pending_shipments": {"order_ids": None, "limit": None},
    "count_eligible": {"order_ids": None},
    "count_pushable": {"order_ids": None},
}
COMMON = {"owner": "planner/1/1.00/0/?", "run_id": None, "reason": None}


@pytest.fixture(scope="module")
def big_history(postgresql_migrated_server: Any) -> Iterator[str]:
    """One database per module: filling it is the expensive part."""
    from pytest_postgresql.janitor import DatabaseJanitor

    from tests.conftest import database_url_for

    server = postgresql_migrated_server
    janitor = DatabaseJanitor(
        user=server.user,
        host=server.host,
        port=server.port,
        dbname="fulfil_plans",
        template_dbname=server.template_dbname,
        password=server.password,
    )
    with janitor:
        url = database_url_for(server.host, server.port, server.user, "fulfil_plans")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO orders (order_id, status, raw_order_data, created_at) "
                "SELECT 'H-' || g, 'shipped', '{}'::jsonb, now() - make_interval(mins => g) "
                "FROM generate_series(1, %s) g",
                (HISTORY,),
            )
            conn.execute("ALTER TABLE shipments DISABLE TRIGGER shipments_record_creation")
            conn.execute(
                "INSERT INTO shipments (order_id, status, tracking_pin, cp_shipment_id, cp_mode, "
                "label_pdf_path, label_pdf_sha256, label_created_at, shipped_at) "
                "SELECT 'H-' || g, 'tracking_updated', '1' || lpad(g::text, 15, '0'), g::text, 'contract', "
                "'/labels/H-' || g || '.pdf', 'ab', now(), now() FROM generate_series(1, %s) g",
                (HISTORY,),
            )
            conn.execute("ALTER TABLE shipments ENABLE TRIGGER shipments_record_creation")
            conn.execute(
                "INSERT INTO orders (order_id, status, raw_order_data) "
                "SELECT 'W-' || g, 'accepted', '{}'::jsonb FROM generate_series(1, %s) g",
                (WAITING,),
            )
            conn.execute(
                "INSERT INTO shipments (order_id, status) SELECT 'W-' || g, 'label_pending' "
                "FROM generate_series(1, %s) g",
                (WAITING // 2,),
            )
            conn.execute("ANALYZE orders")
            conn.execute("ANALYZE shipments")
        yield url


def _plan(url: str, name: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("EXPLAIN " + query("shipments", name), {**COMMON, **PER_ORDER[name]}).fetchall()
    return "\n".join(row[0] for row in rows)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PER_ORDER))
def test_the_queries_a_run_makes_per_order_never_scan_the_tables(big_history: str, name: str) -> None:
    # Only queries the store really runs: a plan of a query nothing uses would prove nothing.
    assert f'"{name}"' in STORE, f"{name} is not a query the store runs"
    plan = _plan(big_history, name)
    assert not re.search(r"Seq Scan on (orders|shipments)\b", plan), plan


@pytest.mark.slow
def test_a_claim_neither_hashes_nor_sorts_the_waiting_orders(big_history: str) -> None:
    plan = _plan(big_history, "claim_next_purchase")
    assert "shipments_pending_idx" in plan, plan
    assert "Sort" not in plan, plan
    assert "md5" not in query("shipments", "claim_next_purchase").split("RETURNING")[0]
