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
from tests.conftest import run_fulfil
from tests.labels.helpers import assert_valid_label, bought_per_order, json_lines, seed_orders, shipments


def start_create(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fulfil", "labels", "create", "--json"],
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
def test_runs_killed_at_random_moments_then_completed_buy_each_label_once(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = seed_orders(db, 30, seed=41)
    # Slow answers widen the moments a kill can land in: mid-request, mid-record, mid-download.
    sandbox.set_faults("canadapost", Faults(latency_ms=40, jitter_ms=40))
    chance = random.Random(20261123)
    for _ in range(6):
        process = start_create(fulfil_env)
        time.sleep(chance.uniform(0.3, 1.5))
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)

    killed_state = {row["status"] for row in shipments(db).values()}
    # Then run until done, as cron would: a purchase whose outcome is unknown is only bought again
    # once it has had time to settle (connect + 2 x read timeout = 5 s here).
    for _ in range(6):
        result = run_fulfil("labels", "create", "--json", env=fulfil_env)
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
