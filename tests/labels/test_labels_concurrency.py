"""Parallel runs and killed runs: never a label bought twice, never an order skipped."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg
import pytest

from fulfil.sandbox import Faults
from fulfil.sandbox.orders import generate_orders
from tests.conftest import run_fulfil
from tests.labels.helpers import (
    assert_valid_label,
    bought_per_order,
    insert_orders,
    json_lines,
    seed_orders,
    shipments,
)


def start_create(env: dict[str, str], *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fulfil", "labels", "create", "--json", *options],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_processes_at_once_split_the_work_without_overlap(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = seed_orders(db, 200, seed=31)
    processes = [start_create(fulfil_env) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]
    handled = [{r["order_id"] for r in json_lines(out) if r["outcome"] == "bought"} for out, _ in outputs]
    assert handled[0].isdisjoint(handled[1])
    assert handled[0] | handled[1] == set(order_ids)
    assert all(handled), "both processes should have taken a share of the work"
    assert bought_per_order(sandbox) == dict.fromkeys(order_ids, 1)
    rows = shipments(db)
    assert {rows[o]["status"] for o in order_ids} == {"label_created"}


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 6])
def test_runs_killed_at_random_moments_then_completed_buy_each_label_once(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, workers: int
) -> None:
    """With one worker, and with several inside each process (every kill then lands on several
    orders in flight at once)."""
    order_ids = seed_orders(db, 30 if workers == 1 else 60, seed=41)
    # Slow answers widen the moments a kill can land in: mid-request, mid-record, mid-download.
    sandbox.set_faults("canadapost", Faults(latency_ms=40, jitter_ms=40))
    chance = random.Random(20261123)
    for _ in range(6):
        process = start_create(fulfil_env, "--concurrency", str(workers))
        time.sleep(chance.uniform(0.3, 1.5))
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)

    killed_state = {row["status"] for row in shipments(db).values()}
    # Then run until done, as cron would: a purchase whose outcome is unknown is only bought again
    # once it has had time to settle (connect + 2 x read timeout = 5 s here).
    for _ in range(6):
        result = run_fulfil("labels", "create", "--json", "--concurrency", str(workers), env=fulfil_env)
        if result.returncode == 0:
            break
        assert result.returncode == 3, result.stderr
        assert {r["outcome"] for r in json_lines(result.stdout)} <= {
            "bought",
            "adopted",
            "retryable",
            "downloaded",
            "unsettled",
        }, result.stdout
        time.sleep(2.5)
    else:
        pytest.fail(f"never completed; states after the kills: {killed_state}")

    assert bought_per_order(sandbox) == dict.fromkeys(order_ids, 1)
    rows = shipments(db)
    for order_id in order_ids:
        assert_valid_label(rows[order_id])


def most_at_once(db: psycopg.Connection, service: str, endpoint: str) -> int:
    """The most requests to one endpoint that were in flight at the same moment (api_calls)."""
    rows = db.execute(
        "SELECT started_at, finished_at FROM api_calls WHERE service = %s AND endpoint = %s",
        (service, endpoint),
    ).fetchall()
    moments = sorted([(r[0], 1) for r in rows] + [(r[1], -1) for r in rows], key=lambda m: (m[0], m[1]))
    level = peak = 0
    for _, step in moments:
        level += step
        peak = max(peak, level)
    return peak


@pytest.mark.slow
def test_one_process_with_workers_buys_each_label_once_with_its_calls_in_flight_together(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = generate_orders(48, seed=37)
    sandbox.add_orders(orders)  # on Best Buy too, to be pushed
    order_ids = insert_orders(db, orders)
    sandbox.set_faults("canadapost", Faults(latency_ms=120))
    sandbox.set_faults("bestbuy", Faults(latency_ms=120))

    created = run_fulfil("labels", "create", "--json", "--concurrency", "8", env=fulfil_env)
    pushed = run_fulfil("tracking", "push", "--json", "--concurrency", "8", env=fulfil_env)

    assert created.returncode == 0, created.stderr
    bought = [r for r in json_lines(created.stdout) if r["outcome"] == "bought"]
    assert sorted(r["order_id"] for r in bought) == sorted(order_ids)  # one line per order, none twice
    assert bought_per_order(sandbox) == dict.fromkeys(order_ids, 1)
    assert pushed.returncode == 0, pushed.stderr
    assert sorted(r["order_id"] for r in json_lines(pushed.stdout) if r["outcome"] == "shipped") == sorted(
        order_ids
    )
    # The workers really overlapped: several purchases, downloads and pushes on the wire at once.
    assert most_at_once(db, "CanadaPost", "CreateShipment") >= 4
    assert most_at_once(db, "CanadaPost", "GetArtifact") >= 4
    assert most_at_once(db, "BestBuy", "OR24") >= 4
    # Each worker has its own database connections; all of them are gone at the end.
    calls = db.execute("SELECT count(*), count(DISTINCT run_id) FROM api_calls").fetchone()
    assert calls == (48 * 4, 2)
    assert db.execute("SELECT count(*) FROM shipments WHERE lease_owner IS NOT NULL").fetchone() == (0,)
    rows = shipments(db)
    assert {rows[o]["status"] for o in order_ids} == {"tracking_updated"}


@pytest.mark.slow
def test_with_one_worker_nothing_is_in_flight_together(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    """The measure above can fail: one worker never has two calls in flight."""
    seed_orders(db, 6, seed=38)
    sandbox.set_faults("canadapost", Faults(latency_ms=50))
    created = run_fulfil("labels", "create", "--json", "--concurrency", "1", env=fulfil_env)
    assert created.returncode == 0, created.stderr
    assert most_at_once(db, "CanadaPost", "CreateShipment") == 1


def test_a_concurrency_out_of_range_is_a_usage_error_naming_the_setting(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    for args, env, name in (
        (["--concurrency", "0"], fulfil_env, "--concurrency"),
        (["--concurrency", "65"], fulfil_env, "--concurrency"),
        ([], {**fulfil_env, "FULFIL_CONCURRENCY": "many"}, "FULFIL_CONCURRENCY"),
    ):
        result = run_fulfil("labels", "create", *args, env=env)
        assert result.returncode == 2, result.stderr
        assert name in result.stderr
        assert "1 to 64" in result.stderr
    assert db.execute("SELECT count(*) FROM api_calls").fetchone() == (0,)
