"""The claims and `fulfil status` walk small indexes whatever the size of the tables (issue 11,
items 4 and 5): on a large generated history, the plans of the queries the store and the status
report actually run never scan orders, shipments, api_calls or shipment_events sequentially, and
no claim hashes or sorts the waiting work. The status report's and the claims' statements are
recorded on their own connection as the code runs them (tests/statement_plans.py), then planned."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from fulfil.db import queries, query
from fulfil.shipments.store import ShipmentStore, _claim_sql
from fulfil.status_report import report_from
from tests.conftest import REPOSITORY
from tests.statement_plans import Statement, big_tables_scanned, generic_plan_of, plan_of, recording_cursor

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
            conn.execute("ALTER TABLE shipments DISABLE TRIGGER shipments_track_inserted_label")
            conn.execute(
                "INSERT INTO label_prints (path, layout, sort, labels, pages) "
                "VALUES ('/labels/prints/history.pdf', '4x6', 'order', %s, %s)",
                (HISTORY, HISTORY),
            )
            # Each one printed (labels print marks what it puts in a file).
            conn.execute(
                "INSERT INTO shipments (order_id, status, tracking_pin, cp_shipment_id, cp_mode, "
                "label_pdf_path, label_pdf_sha256, label_created_at, shipped_at, label_print_id) "
                "SELECT 'H-' || g, 'tracking_updated', '1' || lpad(g::text, 15, '0'), g::text, 'contract', "
                "'/labels/H-' || g || '.pdf', 'ab', now(), now(), "
                "(SELECT print_id FROM label_prints) FROM generate_series(1, %s) g",
                (HISTORY,),
            )
            conn.execute("ALTER TABLE shipments ENABLE TRIGGER shipments_record_creation")
            conn.execute("ALTER TABLE shipments ENABLE TRIGGER shipments_track_inserted_label")
            # A year of parcels, delivered (what the trigger would have made, then the refresher).
            conn.execute(
                "INSERT INTO carrier_tracking (shipment_id, tracking_pin, carrier_status, delivered_at, "
                "label_created_at, refreshed_at, refresh_count) "
                "SELECT shipment_id, tracking_pin, 'delivered', now(), now() - interval '3 days', now(), 4 "
                "FROM shipments WHERE order_id LIKE 'H-%%'"
            )
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
            _add_work_in_every_state(conn)
            _add_history_of_calls_and_moves(conn)
            # Statistics from every row, not a sample of 30,000: the same plans on every run.
            conn.execute("SET default_statistics_target = 1000")
            conn.execute("ANALYZE")
        yield url


def _add_work_in_every_state(conn: psycopg.Connection[Any]) -> None:
    """Labels waiting for their push, and a few orders in each state `fulfil status` lists."""
    label = (
        "'5' || lpad(g::text, 15, '0'), 'C' || g, 'contract', now() - make_interval(hours => (g %% 48)::int)"
    )
    for first, last, status, extra_columns, extra_values in [
        (501, 800, "label_created", "", ""),
        (801, 850, "tracking_sent", "", ""),
        (851, 860, "tracking_failed", ", last_error", ", 'refused'"),
        (861, 865, "order_canceled", ", last_error", ", 'canceled'"),
    ]:
        conn.execute(
            "INSERT INTO shipments (order_id, status, tracking_pin, cp_shipment_id, cp_mode, "
            f"label_created_at{extra_columns}) SELECT 'W-' || g, '{status}', {label}{extra_values} "
            "FROM generate_series(%s::int, %s::int) g",
            (first, last),
        )
    conn.execute(
        "INSERT INTO shipments (order_id, status, last_error) "
        "SELECT 'W-' || g, CASE WHEN g < 875 THEN 'label_failed' ELSE 'needs_review' END, 'refused' "
        "FROM generate_series(866, 880) g"
    )
    conn.execute(
        "INSERT INTO shipments (order_id, status, cp_mode, cp_request_id, purchase_started_at) "
        "SELECT 'W-' || g, 'label_creation_initiated', 'contract', 'R' || g, now() - interval '1 hour' "
        "FROM generate_series(881, 885) g"
    )
    conn.execute(
        'UPDATE orders SET raw_order_data = \'{"shipping_deadline": "2020-01-01T00:00:00Z"}\' '
        "WHERE order_id IN (SELECT 'W-' || g FROM generate_series(900, 910) g)"
    )
    conn.execute(
        "INSERT INTO surplus_labels (order_id, shipment_id, cp_shipment_id, tracking_pin, reason) "
        "SELECT order_id, shipment_id, 'S-1', 'P-1', 'bought twice' FROM shipments WHERE order_id = 'W-861'"
    )
    # Parcels on their way, and one of each kind `fulfil status` lists (labels bought up to 48 hours
    # ago with no scan are listed too: the trigger made their rows in pre_transit).
    conn.execute(
        "UPDATE carrier_tracking SET carrier_status = 'in_transit', refreshed_at = now() "
        "WHERE shipment_id IN (SELECT shipment_id FROM shipments WHERE order_id LIKE 'W-5%%')"
    )
    for order_id, sets in [
        ("W-601", "carrier_status = 'delivery_attempted'"),
        ("W-602", "carrier_status = 'exception'"),
        ("W-603", "carrier_status = 'returned'"),
        ("W-604", "carrier_status = 'in_transit', expected_delivery = current_date - 2"),
        ("W-605", "carrier_status = 'in_transit', auto_refresh = false, auto_refresh_stopped_reason = 'x'"),
    ]:
        conn.execute(
            f"UPDATE carrier_tracking SET {sets}, label_created_at = now() "
            "WHERE shipment_id = (SELECT shipment_id FROM shipments WHERE order_id = %s)",
            (order_id,),
        )


def _add_history_of_calls_and_moves(conn: psycopg.Connection[Any]) -> None:
    """What the shipped orders left behind: two moves and a call each, and the runs that made them."""
    conn.execute(
        "INSERT INTO runs (run_id, command, hostname, pid, started_at, finished_at, exit_code, summary) "
        "SELECT 'run-' || c || '-' || g, c, 'host', g, now() - make_interval(hours => g), "
        "now() - make_interval(hours => g) + interval '1 minute', 0, '{}' "
        "FROM generate_series(1, 1000) g, unnest(ARRAY['orders pull', 'labels create', 'tracking push']) c"
    )
    conn.execute(
        "INSERT INTO shipment_events (shipment_id, order_id, from_status, to_status, move, at) "
        "SELECT s.shipment_id, s.order_id, m.from_status, m.to_status, m.move, s.created_at "
        "FROM shipments s CROSS JOIN (VALUES (NULL, 'label_pending', NULL), "
        "('tracking_sent', 'tracking_updated', 'record_shipped')) AS m(from_status, to_status, move) "
        "WHERE s.status = 'tracking_updated'"
    )
    conn.execute(
        "INSERT INTO api_calls (service, endpoint, related_id, method, url, status_code, is_success, "
        "response_body, started_at, finished_at, run_id) "
        "SELECT 'BestBuy', 'OR24', 'H-' || g, 'PUT', 'https://bestbuy/api/orders/H-' || g || '/ship', "
        "204, true, '', now(), now(), 'run-tracking push-' || (g %% 1000 + 1) FROM generate_series(1, %s) g",
        (HISTORY,),
    )


CLAIMS = ("claim_next_purchase", "claim_next_download", "claim_next_shipment")


def _run_text(name: str) -> str:
    """The text the store runs for a run over every order (a claim loses its order filter)."""
    return _claim_sql(name, False) if name in CLAIMS else query("shipments", name)


def _plan(url: str, name: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("EXPLAIN " + _run_text(name), {**COMMON, **PER_ORDER[name]}).fetchall()
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
    assert "md5" not in query("shipments", "claim_next_purchase")


@pytest.mark.slow
@pytest.mark.parametrize("name", CLAIMS)
def test_a_claim_over_every_order_is_one_plan_for_every_call(big_history: str, name: str) -> None:
    # The order filter is gone from what the store runs without --order, so PostgreSQL can keep
    # the prepared statement's generic plan; that plan walks the claim's index too.
    text = _run_text(name)
    assert "order_ids" not in text
    assert "order_ids" in query("shipments", name)
    with psycopg.connect(big_history, autocommit=True) as conn:
        plan = generic_plan_of(conn, Statement(text, None))
    assert big_tables_scanned(plan) == [], plan
    assert "Sort" not in plan, plan
    assert "Hash" not in plan, plan


def _plans(url: str, statements: list[Statement]) -> list[tuple[Statement, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [(statement, plan_of(conn, statement)) for statement in statements]


@pytest.mark.slow
def test_status_runs_no_query_that_scans_a_big_table(big_history: str) -> None:
    statements: list[Statement] = []
    with psycopg.connect(
        big_history, row_factory=dict_row, cursor_factory=recording_cursor(statements)
    ) as conn:
        report = report_from(conn)
    # Every query of sql/queries/status.sql ran, and was recorded (more may: budgets, for one).
    ran = {" ".join(s.text.split()) for s in statements}
    assert {" ".join(text.split()) for text in queries("status").values()} <= ran
    for statement, plan in _plans(big_history, statements):
        assert big_tables_scanned(plan) == [], f"{statement.text}\n{plan}"
    # What it found is what is there: the counts from the summary, every kind of problem listed.
    assert report.orders == {"accepted": WAITING, "shipped": HISTORY}
    assert report.shipments["tracking_updated"] == HISTORY
    assert report.shipments["label_pending"] == WAITING // 2
    assert {a.problem for a in report.attention} >= {
        "label_failed",
        "needs_review",
        "tracking_failed",
        "order_canceled",
        "interrupted_purchase",
        "surplus_label",
        "label_without_pdf",
        "tracking_not_pushed",
        "past_shipping_deadline",
        "delivery_attempted",
        "delivery_exception",
        "parcel_returned",
        "past_expected_delivery",
        "tracking_refresh_stopped",
        "never_scanned",
    }
    assert {r["command"] for r in report.runs} >= {"orders pull", "labels create", "tracking push"}


def _claim_label(store: ShipmentStore) -> None:
    assert store.claim_next_purchase(None, contract=True, lease_seconds=60) is not None


def _claim_push(store: ShipmentStore) -> None:
    claim = store.claim_next_shipment(
        lease_seconds=60, dead_owners=[], order_ids=None, skip=[], download_grace_seconds=600
    )
    assert claim is not None


@pytest.mark.slow
@pytest.mark.parametrize("claim", [_claim_label, _claim_push], ids=["label claim", "tracking claim"])
def test_each_claim_walks_an_index_in_its_own_order(big_history: str, claim: Any) -> None:
    statements: list[Statement] = []
    with psycopg.connect(
        big_history, autocommit=True, row_factory=dict_row, cursor_factory=recording_cursor(statements)
    ) as conn:
        claim(ShipmentStore(conn, owner="planner/2/2.00/0/?", run_id=None))
    assert len(statements) == 1, statements  # one statement claims, and commits the claim
    [(statement, plan)] = _plans(big_history, statements)
    assert "order_ids" not in statement.text  # the claim without --order: one plan, reused
    assert big_tables_scanned(plan) == [], plan
    # 500 orders wait for a label and 350 labels for their push: a hash or a sort would read every
    # one of them on every claim, where the first free row of the right index is the answer.
    assert "Sort" not in plan, plan
    assert "Hash" not in plan, plan
