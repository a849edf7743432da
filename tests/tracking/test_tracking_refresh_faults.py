"""A refresh under the faults of the wire, against the sandbox over real sockets: Canada Post's
throttle rejecting a call (its group paused for every process), an answer lost after the call was
made (asked again: a read is harmless to repeat), answers lost every time (the parcel backed off,
the others going on), and a refresher killed in the middle of a call (its call on record, its
parcel left to the lease, never asked by two at once)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import psycopg

from fulfil.sandbox.faults import Faults
from fulfil.sandbox.throttle import GroupLimits
from tests.conftest import run_fulfil
from tests.labels.helpers import json_lines
from tests.tracking.parcels import bought, detail_calls


def for_orders(order_ids: list[str]) -> list[str]:
    return [arg for order_id in order_ids for arg in ("--order", order_id)]


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def tracking_pause(db: psycopg.Connection) -> tuple[Any, Any, str] | None:
    row = db.execute(
        "SELECT paused_at, paused_until, pause_reason FROM rate_budgets WHERE name = 'canadapost:E'"
    ).fetchone()
    return row if row is not None and row[1] is not None else None


def test_a_throttle_rejection_pauses_tracking_for_every_process_and_nothing_is_lost(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    orders = bought(db, fulfil_env, 6)
    # The key's real limit is 2 tracking calls in 2 s, but fulfil was told far more (another tool on
    # the key, a limit set too high): the third call is rejected and group E blocked.
    sandbox.set_canadapost_limits(GroupLimits(limits={"E": 2}, window_s=2.0))
    env = {**fulfil_env, "FULFIL_CANADAPOST_RATE_E": "1000/2", "FULFIL_HTTP_READ_TIMEOUT": "5"}
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fulfil",
            "tracking",
            "refresh",
            "--json",
            *for_orders(orders[:3]),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: tracking_pause(db) is not None)
    first_pause = tracking_pause(db)
    assert first_pause is not None
    assert "Rejected by SLM Monitor" in first_pause[2]
    assert first_pause[1] - first_pause[0] == timedelta(seconds=2)  # the group's window
    # A second process starts inside the pause: it sends nothing until the pause is over.
    second = run_fulfil("tracking", "refresh", "--json", *for_orders(orders[3:]), env=env)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    records = json_lines(out) + json_lines(second.stdout)
    # Every parcel refreshed once: a rejected call is not performed and is asked again later.
    assert sorted(r["order_id"] for r in records if r["outcome"] == "refreshed") == sorted(orders)
    # fulfil, told a limit far above the key's, finds it again after each pause; but nothing was
    # ever sent into a pause (the sandbox would say "blocked").
    report = sandbox.throttle_report()
    assert report["rejections"]
    assert {(event["group"], event["reason"]) for event in report["rejections"]} == {("E", "limit")}
    started = [
        row[0]
        for row in db.execute(
            "SELECT started_at FROM api_calls WHERE endpoint = 'TrackingDetail' AND related_id = ANY(%s)",
            (orders[3:],),
        ).fetchall()
    ]
    assert started
    assert all(moment >= first_pause[1] for moment in started)


def test_an_answer_lost_after_the_call_was_made_is_asked_again(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    bought(db, fulfil_env, 1)
    sandbox.script_faults("canadapost", "TrackingDetail", ["commit_then_drop"])
    result = run_fulfil("tracking", "refresh", "--json", env=fulfil_env)
    assert result.returncode == 0, result.stderr
    assert [record["outcome"] for record in json_lines(result.stdout)] == ["refreshed"]
    calls = db.execute(
        "SELECT failure_class, is_success FROM api_calls WHERE endpoint = 'TrackingDetail' ORDER BY call_id"
    ).fetchall()
    assert calls == [("indeterminate", False), (None, True)]
    assert db.execute("SELECT count(*) FROM tracking_refreshes").fetchone() == (1,)


def test_answers_lost_every_time_back_the_parcel_off_and_the_others_go_on(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    lost, fine = bought(db, fulfil_env, 2)
    pin = db.execute("SELECT tracking_pin FROM shipments WHERE order_id = %s", (lost,)).fetchone()[0]  # type: ignore[index]
    # Every answer about the first parcel is lost on the way back (the connection closes).
    sandbox.script_faults("canadapost", "TrackingDetail", ["commit_then_drop"] * 3)
    result = run_fulfil("tracking", "refresh", "--json", "--order", lost, env=fulfil_env)
    assert result.returncode == 3
    [record] = json_lines(result.stdout)
    assert record["outcome"] == "failed"
    assert lost in record["error"]
    assert pin in record["error"]
    row = db.execute(
        "SELECT consecutive_failures, next_refresh_at > now() + interval '3 hours' FROM carrier_tracking "
        "WHERE tracking_pin = %s",
        (pin,),
    ).fetchone()
    assert row == (1, True)  # backed off: not asked again before its interval
    again = run_fulfil("tracking", "refresh", "--json", env=fulfil_env)
    assert [r["order_id"] for r in json_lines(again.stdout)] == [fine]


def test_a_refresher_killed_mid_call_leaves_its_call_on_record_and_its_parcel_to_the_lease(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    first, second = bought(db, fulfil_env, 2)
    sandbox.set_faults("canadapost", Faults(latency_ms=3000))
    env = {**fulfil_env, "FULFIL_HTTP_READ_TIMEOUT": "10"}
    process = subprocess.Popen(
        [sys.executable, "-m", "fulfil", "tracking", "refresh", "--order", first],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(
        lambda: (
            db.execute(
                "SELECT count(*) FROM api_calls WHERE endpoint = 'TrackingDetail' AND finished_at IS NULL"
            ).fetchone()
            == (1,)
        )
    )
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    sandbox.set_faults("canadapost", Faults())
    # The request is on record (asked, no answer), the parcel is held by the dead run's lease.
    assert db.execute(
        "SELECT related_id, finished_at IS NULL FROM api_calls WHERE endpoint = 'TrackingDetail'"
    ).fetchall() == [(first, True)]
    leased = db.execute(
        "SELECT next_refresh_at > now(), refreshed_at FROM carrier_tracking t "
        "JOIN shipments s USING (shipment_id) WHERE s.order_id = %s",
        (first,),
    ).fetchone()
    assert leased == (True, None)
    # Another run meanwhile takes the other parcel, not the one whose call may still be answered.
    other = run_fulfil("tracking", "refresh", "--json", env=fulfil_env)
    assert [r["order_id"] for r in json_lines(other.stdout)] == [second]
    # When the lease ends it is due again, and asked once.
    db.execute("UPDATE carrier_tracking SET next_refresh_at = now() WHERE refreshed_at IS NULL")
    calls = detail_calls(sandbox)
    after = run_fulfil("tracking", "refresh", "--json", env=fulfil_env)
    assert [r["order_id"] for r in json_lines(after.stdout)] == [first]
    assert detail_calls(sandbox) == calls + 1
