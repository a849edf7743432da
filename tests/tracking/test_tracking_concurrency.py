"""Parallel and killed `tracking push` runs: never a second ship confirmation, never an order left behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import psycopg
import pytest

from fulfil.sandbox import Faults
from tests.conftest import run_fulfil
from tests.tracking.helpers import (
    api_calls,
    json_lines,
    log_entries,
    order_requests,
    order_statuses,
    seed_labelled,
    shipments,
)


def start_push(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fulfil", "tracking", "push", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_processes_at_once_confirm_each_order_exactly_once(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = seed_labelled(db, sandbox, 100, seed=21)
    order_ids = {o["order_id"] for o in orders}

    processes = [start_push(fulfil_env) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]
    handled = [[r["order_id"] for r in json_lines(out) if r["outcome"] == "shipped"] for out, _ in outputs]
    assert sorted(handled[0] + handled[1]) == sorted(order_ids)  # each order reported once, by one run
    ships = Counter(e["path"].split("/")[3] for e in log_entries(sandbox, "OR24"))
    assert ships == dict.fromkeys(order_ids, 1)
    assert {e["status"] for e in log_entries(sandbox, "OR24")} == {204}
    assert {r["status"] for r in shipments(db).values()} == {"tracking_updated"}
    assert set(order_statuses(db).values()) == {"shipped"}
    assert all(state["shipped"] for state in sandbox.state()["bestbuy"]["orders"].values())


def _wait_for_call(db: psycopg.Connection, endpoint: str, order_id: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api_calls(db, endpoint=endpoint, related_id=order_id):
            return
        time.sleep(0.01)
    pytest.fail(f"no {endpoint} call for {order_id} within {timeout} s")


def _wait_for_sandbox(sandbox: Any, order_id: str, endpoint: str, timeout: float = 20.0) -> None:
    """Until the sandbox has carried out (and logged) this endpoint's call for the order."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e == endpoint for e, _ in order_requests(sandbox, order_id)):
            return
        time.sleep(0.01)
    pytest.fail(f"the sandbox never finished {endpoint} for {order_id}")


@pytest.mark.slow
@pytest.mark.parametrize("killed_during", ["OR23", "OR24"])
def test_a_run_killed_mid_call_is_finished_by_the_next_with_one_ship(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, killed_during: str
) -> None:
    [order] = seed_labelled(db, sandbox, 1, seed=23)
    order_id = order["order_id"]
    # Slow answers: the process is killed while its request is at Best Buy, which goes on to
    # carry it out (the answer is what is lost).
    # (Shorter than the 2 s read timeout: every call is answered in time, none is retried.)
    sandbox.set_faults("bestbuy", Faults(latency_ms=1500))
    process = start_push(fulfil_env)
    _wait_for_call(db, killed_during, order_id)  # the api_calls row is written just before sending
    # The row exists a moment before the bytes leave: give the request time to reach the sandbox
    # (it then waits out its latency there) so the kill lands mid-call, not just before it.
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)
    _wait_for_sandbox(sandbox, order_id, killed_during)
    sandbox.set_faults("bestbuy", Faults())

    row = shipments(db)[order_id]
    assert row["status"] == ("label_created" if killed_during == "OR23" else "tracking_sent")
    assert row["lease_owner"] is not None  # the dead run's claim, not expired yet
    [unanswered] = api_calls(db, endpoint=killed_during)
    assert unanswered["finished_at"] is None
    calls_before = len(api_calls(db))

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    assert record["outcome"] == ("shipped" if killed_during == "OR23" else "already_shipped")
    after = [c["endpoint"] for c in api_calls(db)[calls_before:]]
    assert after.count("OR24") == 1  # the next run finishes with one ship confirmation
    assert after == (["OR23", "OR24"] if killed_during == "OR23" else ["OR24", "OR11"])
    # Best Buy shipped the order once (the killed run's OR24 was carried out and answered to
    # nobody; the next run's was refused as a repeat and settled by reading the order).
    assert [s for e, s in order_requests(sandbox, order_id) if e == "OR24"] == (
        [204] if killed_during == "OR23" else [204, 400]
    )
    assert shipments(db)[order_id]["status"] == "tracking_updated"
    assert order_statuses(db)[order_id] == "shipped"
