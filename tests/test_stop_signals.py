"""SIGTERM and SIGINT stop a run cleanly (issue 9, item 15): the order in flight is finished, nothing
new is started, the run's leases are released at once, stderr says what happened, and the exit
code is 143 or 130. A second signal stops at once, still leaving no lease behind."""

from __future__ import annotations

import signal
import time
from typing import Any

import psycopg
import pytest

from fulfil.sandbox import Faults
from tests.conftest import run_fulfil, start_fulfil
from tests.labels.helpers import bought_per_order, json_lines, seed_orders, shipments
from tests.tracking.helpers import seed_labelled


def wait_for_call_in_flight(
    db: psycopg.Connection, endpoint: str, *, after: int = 0, timeout: float = 30
) -> None:
    """Until a request to ``endpoint`` has its api_calls row and no answer yet (sent, waiting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = db.execute(
            "SELECT count(*) FROM api_calls WHERE endpoint = %s AND finished_at IS NULL AND call_id > %s",
            (endpoint, after),
        ).fetchone()
        if row and row[0]:
            return
        time.sleep(0.02)
    raise AssertionError(f"no {endpoint} call was ever in flight")


def leases_held(db: psycopg.Connection) -> int:
    row = db.execute("SELECT count(*) FROM shipments WHERE lease_owner IS NOT NULL").fetchone()
    assert row is not None
    return int(row[0])


def last_run_exit(db: psycopg.Connection, command: str) -> int | None:
    row = db.execute(
        "SELECT exit_code FROM runs WHERE command = %s ORDER BY started_at DESC LIMIT 1", (command,)
    ).fetchone()
    return row[0] if row else None


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finishes_the_order_in_flight_then_stops_and_releases_every_lease(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, signum: int, exit_code: int
) -> None:
    order_ids = seed_orders(db, 6)
    sandbox.set_faults("canadapost", Faults(latency_ms=600))  # each call is slow enough to land in

    run = start_fulfil("labels", "create", "--json", env=fulfil_env)
    try:
        wait_for_call_in_flight(db, "CreateShipment")
        run.send_signal(signum)
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
        run.wait()

    name = signal.Signals(signum).name
    assert run.returncode == exit_code, err
    assert f"{name} received" in err
    assert f"stopped by {name}" in err
    assert "Traceback" not in err
    bought = bought_per_order(sandbox)
    assert 1 <= len(bought) < len(order_ids)  # the one in flight was finished, the rest not started
    rows = shipments(db)
    for order_id in bought:
        assert rows[order_id]["status"] == "label_created"  # every purchase made is recorded
    assert not any(row["status"] == "label_creation_initiated" for row in rows.values())
    assert leases_held(db) == 0
    assert last_run_exit(db, "labels create") == exit_code
    assert {r["outcome"] for r in json_lines(out)} <= {"bought", "downloaded"}

    sandbox.set_faults("canadapost", Faults())
    rest = run_fulfil("labels", "create", "--json", env=fulfil_env)
    assert rest.returncode == 0, rest.stderr
    assert bought_per_order(sandbox) == dict.fromkeys(order_ids, 1)


def test_a_second_signal_stops_at_once_and_still_leaves_no_lease(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = seed_orders(db, 4)
    sandbox.set_faults("canadapost", Faults(latency_ms=1500))

    run = start_fulfil("labels", "create", env=fulfil_env)
    try:
        wait_for_call_in_flight(db, "CreateShipment")
        run.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=30)
    finally:
        run.kill()
        run.wait()

    assert run.returncode == 143, err
    assert "stopped at once" in err
    assert "Traceback" not in err
    assert leases_held(db) == 0

    # What was in flight is settled by the next runs, never bought twice.
    sandbox.set_faults("canadapost", Faults())
    deadline = time.monotonic() + 40
    while True:
        again = run_fulfil("labels", "create", "--json", env=fulfil_env)
        if again.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert again.returncode == 0, again.stdout + again.stderr
    assert bought_per_order(sandbox) == dict.fromkeys(order_ids, 1)


def test_tracking_push_stops_on_sigterm_with_its_leases_released(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    seed_labelled(db, sandbox, 5)
    sandbox.set_faults("bestbuy", Faults(latency_ms=500))

    run = start_fulfil("tracking", "push", env=fulfil_env)
    try:
        wait_for_call_in_flight(db, "OR23")
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
        run.wait()

    assert run.returncode == 143, err
    assert "stopped by SIGTERM" in err
    assert leases_held(db) == 0
    statuses = {row["status"] for row in shipments(db).values()}
    assert "label_created" in statuses  # not every shipment was started


def test_orders_pull_ends_on_sigterm_with_one_line(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    sandbox.generate_orders(150, state="SHIPPING")
    sandbox.set_faults("bestbuy", Faults(latency_ms=1500))

    run = start_fulfil("orders", "pull", "--force", env=fulfil_env)
    try:
        wait_for_call_in_flight(db, "OR11")
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=30)
    finally:
        run.kill()
        run.wait()

    assert run.returncode == 143, err
    assert "SIGTERM" in err
    assert "Traceback" not in err
