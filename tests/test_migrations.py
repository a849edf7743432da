"""`fulfil db migrate` and `db status`: from scratch, twice, changed files, concurrency, adoption."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from fulfil.db import sql_dir
from fulfil.errors import MigrationError
from fulfil.migrations import discover, migrate, status
from tests.conftest import run_fulfil

ALL_FILES = [m.filename for m in discover()]


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def test_migrations_apply_from_scratch_and_second_run_is_a_no_op(empty_database_url: str) -> None:
    first = migrate(empty_database_url)
    assert [m.filename for m in first] == ALL_FILES
    assert {"orders", "shipments", "api_calls", "runs", "fulfil_schema_migrations"} <= tables(
        empty_database_url
    )

    assert migrate(empty_database_url) == []
    assert {s.state for s in status(empty_database_url)} == {"applied"}


def test_cli_migrate_lists_what_it_applied_then_nothing(
    empty_database_url: str, cli_env: dict[str, str]
) -> None:
    cli_env["FULFIL_DATABASE_URL"] = empty_database_url
    first = run_fulfil("db", "migrate", "--format", "csv", env=cli_env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "applied,version",
        *(f"{name},{int(name[:4])}" for name in ALL_FILES),
    ]

    second = run_fulfil("db", "migrate", "--json", env=cli_env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""

    listed = run_fulfil("db", "status", "--json", env=cli_env)
    assert listed.returncode == 0
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["state"] for r in records] == ["applied"] * len(ALL_FILES)


def test_status_reports_pending_with_exit_3(empty_database_url: str, cli_env: dict[str, str]) -> None:
    cli_env["FULFIL_DATABASE_URL"] = empty_database_url
    result = run_fulfil("db", "status", env=cli_env)
    assert result.returncode == 3
    assert "pending" in result.stdout


def copy_migrations(tmp_path: Path) -> Path:
    directory = tmp_path / "sql"
    directory.mkdir()
    for path in sql_dir().glob("[0-9][0-9][0-9][0-9]_*.sql"):
        shutil.copy(path, directory / path.name)
    return directory


def test_a_changed_applied_migration_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    migrate(empty_database_url, directory)
    first = sorted(directory.glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")

    with pytest.raises(MigrationError, match=r"0001_.*has changed"):
        migrate(empty_database_url, directory)
    assert status(empty_database_url, directory)[0].state == "changed"


def test_a_failing_migration_rolls_back_and_is_not_recorded(empty_database_url: str, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    (directory / "0900_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    with pytest.raises(MigrationError, match=r"0900_broken\.sql failed"):
        migrate(empty_database_url, directory)
    assert "half_done" not in tables(empty_database_url)
    assert [s.state for s in status(empty_database_url, directory)][-1] == "pending"


def test_two_concurrent_migrations_apply_each_file_once(empty_database_url: str, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    # A slow last migration widens the window in which the second runner would step on the first.
    (directory / "0901_slow.sql").write_text("SELECT pg_sleep(0.5);\nCREATE TABLE slow_marker (id int);\n")
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            results.append([m.filename for m in migrate(empty_database_url, directory)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sorted(results, key=len) == [[], [*ALL_FILES, "0901_slow.sql"]]
    with psycopg.connect(empty_database_url) as conn:
        counts = conn.execute(
            "SELECT version, count(*) FROM fulfil_schema_migrations GROUP BY version"
        ).fetchall()
    assert all(count == 1 for _, count in counts)


def test_two_concurrent_cli_processes_leave_one_correct_schema(
    empty_database_url: str, cli_env: dict[str, str]
) -> None:
    cli_env["FULFIL_DATABASE_URL"] = empty_database_url
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "fulfil", "db", "migrate", "--json"],
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    applied_lines = sorted(out.count('"applied":') for out, _ in outputs)
    assert applied_lines == [0, len(ALL_FILES)]
    assert {s.state for s in status(empty_database_url)} == {"applied"}


# ------------------------------------------------------------------------------------------------
# Adopting a database made by the seller's older scripts (spec: phase2-shipping-and-tracking.md)
# ------------------------------------------------------------------------------------------------

PHASE_1_SCHEMA = """
CREATE TABLE orders (
    order_id text PRIMARY KEY,
    status varchar(50) NOT NULL,
    raw_order_data jsonb,
    last_synced timestamp
);
CREATE TABLE shipments (
    shipment_id serial PRIMARY KEY,
    order_id text UNIQUE REFERENCES orders (order_id),
    tracking_pin text UNIQUE,
    status varchar(50),
    label_pdf_path text,
    cp_api_label_url text,
    created_at timestamp DEFAULT now()
);
CREATE TABLE api_calls (
    call_id serial PRIMARY KEY,
    service varchar(50) NOT NULL,
    endpoint varchar(100) NOT NULL,
    related_id text,
    request_payload jsonb,
    response_body text,
    status_code integer NOT NULL,
    is_success boolean NOT NULL,
    "timestamp" timestamp DEFAULT now()
);
INSERT INTO orders VALUES
    ('1001-A', 'shipped', '{"order_id": "1001-A", "created_date": "2025-08-01T10:00:00Z"}', now()),
    ('1002-A', 'accepted', '{"order_id": "1002-A", "created_date": "2025-08-02T10:00:00Z"}', now()),
    ('1003-A', 'accepted', '{"order_id": "1003-A", "created_date": "not a date"}', now()),
    ('1004-A', 'pending_acceptance', NULL, NULL);
INSERT INTO shipments (order_id, tracking_pin, status, label_pdf_path, cp_api_label_url) VALUES
    ('1001-A', '4000000000000001', 'tracking_updated', 'shipping/shipping_labels/1001-A.pdf',
     'https://ct.soa-gw.canadapost.ca/rs/artifact/abc/1/0'),
    ('1002-A', '4000000000000002', 'label_created', 'shipping/shipping_labels/1002-A.pdf', NULL),
    ('1003-A', NULL, 'label_creation_initiated', NULL, NULL);
INSERT INTO api_calls (service, endpoint, related_id, request_payload, response_body, status_code, is_success)
VALUES
    ('CanadaPost', 'CreateShipment', '1001-A', '"<shipment/>"', '<shipment-info/>', 200, true),
    ('BestBuy', 'UpdateTracking', '1001-A', '{"carrier_code": "CPCL"}', '', 204, true),
    ('CanadaPost', 'CreateShipment', '1003-A', '"<shipment/>"', 'gateway timeout', 504, false);
"""


def snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        return {
            "orders": conn.execute(
                "SELECT order_id, status, raw_order_data FROM orders ORDER BY 1"
            ).fetchall(),
            "shipments": conn.execute(
                "SELECT shipment_id, order_id, tracking_pin, status, label_pdf_path, cp_api_label_url "
                "FROM shipments ORDER BY 1"
            ).fetchall(),
            "api_calls": conn.execute(
                "SELECT call_id, service, endpoint, related_id, request_payload, response_body, status_code, "
                "is_success FROM api_calls ORDER BY 1"
            ).fetchall(),
        }


def test_a_phase_1_database_is_adopted_without_losing_a_row(empty_database_url: str) -> None:
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(PHASE_1_SCHEMA)
    before = snapshot(empty_database_url)

    migrate(empty_database_url)

    assert snapshot(empty_database_url) == before
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        created = dict(conn.execute("SELECT order_id, created_at::date::text FROM orders").fetchall())
        assert created["1002-A"] == "2025-08-02"  # taken from the order's own JSON
        assert created["1003-A"] is not None  # unparsable date: the adoption time, not a failure
        # New rows get the new invariants …
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO shipments (order_id, status) VALUES ('1004-A', 'label_created')")
        # … while the older rows that predate them stay readable and updatable where they can be.
        conn.execute(
            "UPDATE shipments SET status = 'needs_review', last_error = 'x' WHERE order_id = '1003-A' "
            "AND fulfil_shipment_move(shipment_id, 'park_unkeyed_purchase', NULL, NULL, 'by hand')"
        )
        assert conn.execute("SELECT status FROM shipments WHERE order_id = '1003-A'").fetchone() == (
            "needs_review",
        )
        # The older api_calls columns were NOT NULL; a request written ahead of its answer needs NULLs.
        conn.execute(
            "INSERT INTO api_calls (service, endpoint, method, url) VALUES ('BestBuy', 'OR11', 'GET', 'u')"
        )
        call = conn.execute(
            "SELECT started_at IS NOT NULL, status_code, is_success FROM api_calls "
            "ORDER BY call_id DESC LIMIT 1"
        ).fetchone()
        assert call == (True, None, None)
        old_call_times = conn.execute("SELECT count(*) FROM api_calls WHERE started_at IS NULL").fetchone()
        assert old_call_times == (3,)  # unknown for adopted rows: not invented

    assert migrate(empty_database_url) == []


def test_adoption_of_tables_already_in_the_new_shape_changes_nothing(database_url: str) -> None:
    # A database migrated by fulfil, with its bookkeeping table lost, is adopted again cleanly.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO orders (order_id, status) VALUES ('X-1', 'accepted')")
        conn.execute("DROP TABLE fulfil_schema_migrations")
    assert [m.filename for m in migrate(database_url)] == ALL_FILES
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)


# ------------------------------------------------------------------------------------------------
# The invariants the schema itself holds
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def order(db: psycopg.Connection) -> str:
    db.execute("INSERT INTO orders (order_id, status, raw_order_data) VALUES ('O-1', 'accepted', '{}')")
    db.execute("INSERT INTO orders (order_id, status, raw_order_data) VALUES ('O-2', 'accepted', '{}')")
    return "O-1"


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        # A status is one of shipment_states' rows (the state machine's table).
        (
            "INSERT INTO shipments (order_id, status) VALUES ('O-1', 'made_up')",
            psycopg.errors.ForeignKeyViolation,
        ),
        (
            # A label fulfil bought has its Canada Post shipment id too.
            "INSERT INTO shipments (order_id, status, tracking_pin, cp_mode) "
            "VALUES ('O-1', 'tracking_failed', '1234567890123', 'contract')",
            psycopg.errors.CheckViolation,
        ),
        (
            # Only a shipment something is in flight for holds a lease.
            "INSERT INTO shipments (order_id, status, last_error, lease_owner, lease_expires_at) "
            "VALUES ('O-1', 'label_failed', 'x', 'me', now())",
            psycopg.errors.CheckViolation,
        ),
        (
            "INSERT INTO shipments (order_id, status) VALUES ('O-1', 'label_created')",
            psycopg.errors.CheckViolation,
        ),
        (
            "INSERT INTO shipments (order_id, status, cp_mode) "
            "VALUES ('O-1', 'label_creation_initiated', 'contract')",
            psycopg.errors.CheckViolation,
        ),
        (
            "INSERT INTO shipments (order_id, status) VALUES ('O-1', 'label_failed')",
            psycopg.errors.CheckViolation,
        ),
        (
            "INSERT INTO shipments (order_id, status, lease_owner) VALUES ('O-1', 'label_pending', 'me')",
            psycopg.errors.CheckViolation,
        ),
        (
            "INSERT INTO shipments (order_id, status) VALUES ('nope', 'label_pending')",
            psycopg.errors.ForeignKeyViolation,
        ),
        (
            "INSERT INTO api_calls (service, endpoint, failure_class) VALUES ('BestBuy', 'OR24', 'maybe')",
            psycopg.errors.CheckViolation,
        ),
        (
            "INSERT INTO api_calls (service, endpoint, status_code) VALUES ('BestBuy', 'OR24', 204)",
            psycopg.errors.CheckViolation,
        ),
    ],
)
def test_schema_refuses_rows_that_break_an_invariant(
    db: psycopg.Connection, order: str, statement: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        db.execute(statement)


def test_one_shipment_per_order_and_one_order_per_pin(db: psycopg.Connection, order: str) -> None:
    db.execute(
        "INSERT INTO shipments (order_id, status, tracking_pin) VALUES ('O-1', 'label_created', '111')"
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO shipments (order_id, status) VALUES ('O-1', 'label_pending')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(
            "INSERT INTO shipments (order_id, status, tracking_pin) VALUES ('O-2', 'label_created', '111')"
        )


def test_status_json_is_machine_readable(database_url: str, cli_env: dict[str, str]) -> None:
    cli_env["FULFIL_DATABASE_URL"] = database_url
    result = run_fulfil("--json", "db", "status", env=cli_env)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        record = json.loads(line)
        assert set(record) == {"version", "name", "state", "applied_at"}
