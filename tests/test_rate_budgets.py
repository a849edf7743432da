"""Rate budgets shared through PostgreSQL (issue 11, item 2): every process sharing the database
together keeps to Canada Post's per-group limits and Best Buy's per-endpoint ones, and a throttle
answer seen by one stops all of them for its window.

Real PostgreSQL, the sandbox over real sockets (throttling as Canada Post and Mirakl do, with
scaled limits), real processes where it matters. No assertion is about elapsed time: what is
checked is what the sandbox recorded (refusals, arrivals inside a Retry-After window, the peak
in a window) and the times the database gave (a call's start against a pause's end).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fulfil.audit.budget import (
    RESERVATION_HORIZON_SECONDS,
    Budget,
    Pause,
    ServiceBudgets,
    budget_states,
    endpoint_budgets,
)
from fulfil.audit.log import ApiCallLog, LeaseLost, SendGuard
from fulfil.audit.outcome import FailureClass, HttpOutcome
from fulfil.audit.retry import LEASE_MARGIN_SECONDS, lease_seconds
from fulfil.audit.sender import AuditedHttp
from fulfil.audit.transport import BasicAuth, RawKeyAuth
from fulfil.bestbuy import client as bestbuy_client
from fulfil.bestbuy.client import BestBuyClient
from fulfil.canadapost.client import RETRY_LABEL_FETCH, RETRY_NOT_SENT, RETRY_READS, CanadaPostClient
from fulfil.canadapost.throttle_groups import (
    CANADA_POST_ENDPOINT_GROUPS,
    CANADA_POST_GROUP_LIMITS,
    canadapost_budgets,
)
from fulfil.config import Rate, Settings, load_settings
from fulfil.errors import ConfigError

REPOSITORY = Path(__file__).resolve().parent.parent
BOUNDED = 60  # seconds any wait of these tests may take before it is a failure, not a slow run


# ------------------------------------------------------------------------------------------------
# The client side of a process: what fulfil.services builds, metered
# ------------------------------------------------------------------------------------------------


def metered_http(settings: Settings, service: str, audit: ApiCallLog) -> AuditedHttp:
    """An AuditedHttp for one service, with its shared budgets (as fulfil.services builds it)."""
    http = settings.http()
    rates = settings.rate_budgets()
    if service == "canadapost":
        cp = settings.canadapost()
        base_url, auth, budgets = (
            cp.base_url,
            BasicAuth(cp.username, cp.password),
            canadapost_budgets(rates),
        )
        name = "CanadaPost"
    else:
        bb = settings.bestbuy()
        base_url, auth, budgets = (
            bb.base_url,
            RawKeyAuth(bb.api_key),
            endpoint_budgets(
                "bestbuy",
                rates.bestbuy,
                headroom=rates.headroom,
                default_retry_after=rates.bestbuy_default_retry_after,
            ),
        )
        name = "BestBuy"
    return AuditedHttp(
        audit,
        service=name,
        origin=base_url,
        auth=auth,
        connect_timeout=http.connect_timeout,
        read_timeout=http.read_timeout,
        deadline=http.deadline,
        budgets=budgets,
    )


def make_calls(settings: Settings, service: str, endpoint: str, ids: list[str]) -> dict[str, int]:
    """One process's work: a call per id, flat out, through fulfil's own clients."""
    audit = ApiCallLog(settings.database_url or "")
    http = metered_http(settings, service, audit)
    done = {"ok": 0, "failed": 0}
    try:
        for item in ids:
            try:
                if endpoint == "GetShipments":
                    CanadaPostClient(settings.canadapost(), http).find_contract_shipments(item, f"req-{item}")
                elif endpoint == "OR23":
                    outcome = BestBuyClient(settings.bestbuy(), http).update_tracking(
                        item, "1234567890123456", "CPCL"
                    )
                    if not outcome.ok:
                        raise RuntimeError(outcome.describe())
                elif endpoint == "OR11":
                    BestBuyClient(settings.bestbuy(), http).orders_by_id([item])
                else:
                    raise ValueError(endpoint)
                done["ok"] += 1
            except Exception as exc:
                print(f"{item}: {exc}", file=sys.stderr)
                done["failed"] += 1
    finally:
        http.close()
        audit.close()
    return done


def worker_main(argv: list[str]) -> None:
    """``python -m tests.test_rate_budgets SERVICE ENDPOINT ID…``: says ready, waits for a line on
    stdin (so that processes start together), makes the calls, prints what came of them."""
    service, endpoint, *ids = argv
    settings = load_settings(os.environ)
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(make_calls(settings, service, endpoint, ids)), flush=True)


class Worker:
    """Another fulfil process sharing the database (and nothing else) with the test."""

    def __init__(self, env: dict[str, str], service: str, endpoint: str, ids: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.test_rate_budgets", service, endpoint, *ids],
            env=env,
            cwd=REPOSITORY,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.strip() == "ready", line + (self.process.stderr.read() if self.process.stderr else "")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def result(self) -> dict[str, int]:
        stdout, stderr = self.process.communicate(timeout=BOUNDED)
        assert self.process.returncode == 0, stderr
        return dict(json.loads(stdout.strip().splitlines()[-1]))


def wait_for(predicate: Any, what: str) -> None:
    """Poll until ``predicate()`` holds (bounded: a failure, never a hang)."""
    give_up = time.monotonic() + BOUNDED
    while not predicate():
        assert time.monotonic() < give_up, f"gave up waiting for {what}"
        time.sleep(0.02)


def paused_until(db: psycopg.Connection, budget: str) -> Any:
    row = db.execute(
        "SELECT paused_until FROM rate_budgets WHERE name = %s AND paused_until > clock_timestamp()",
        (budget,),
    ).fetchone()
    return row[0] if row else None


def calls_of(db: psycopg.Connection, endpoint: str) -> list[dict[str, Any]]:
    return [
        row[0]
        for row in db.execute(
            "SELECT row_to_json(a) FROM api_calls a WHERE endpoint = %s ORDER BY started_at, call_id",
            (endpoint,),
        ).fetchall()
    ]


@pytest.fixture
def env(fulfil_env: dict[str, str]) -> dict[str, str]:
    return {**fulfil_env, "FULFIL_HTTP_READ_TIMEOUT": "5"}


def settings_of(env: dict[str, str]) -> Settings:
    return load_settings(env, Path("/"))


# ------------------------------------------------------------------------------------------------
# Two processes share a budget and never exceed it together
# ------------------------------------------------------------------------------------------------


def test_two_processes_flat_out_never_exceed_a_group_limit_together(
    sandbox: Any, env: dict[str, str], db: psycopg.Connection
) -> None:
    from fulfil.sandbox.throttle import GroupLimits

    # Canada Post's group C, scaled: 6 calls in any 1 s. Each process makes 7, as fast as it may:
    # together more than two windows' worth, so only sharing the budget keeps them under it.
    sandbox.set_canadapost_limits(GroupLimits(limits={"C": 6}, window_s=1.0))
    # Half the limit spent: a call may arrive up to a whole second late without a window ever
    # holding more than 6, whatever the load on the machine running the test.
    env = {**env, "FULFIL_CANADAPOST_RATE_C": "6/1", "FULFIL_RATE_HEADROOM": "0.5"}
    workers = [
        Worker(env, "canadapost", "GetShipments", [f"P{process}-{n}" for n in range(7)]) for process in (1, 2)
    ]
    for worker in workers:
        worker.go()
    results = [worker.result() for worker in workers]

    assert results == [{"ok": 7, "failed": 0}] * 2
    report = sandbox.throttle_report()
    assert report["rejection_count"] == 0, report["rejections"]
    assert report["canadapost"]["groups"]["C"]["peak_in_window"] <= 6
    calls = calls_of(db, "GetShipments")
    assert len(calls) == 14
    assert {call["rate_budget"] for call in calls} == {"canadapost:C"}
    # Both processes were at it together: their calls interleave in the budget's schedule.
    owners = [call["related_id"].split("-")[0] for call in calls]
    assert owners.count("P1") == owners.count("P2") == 7
    assert owners != sorted(owners)
    assert owners != sorted(owners, reverse=True)


def _timestamp(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)


# ------------------------------------------------------------------------------------------------
# A throttle answer seen by one process stops the others
# ------------------------------------------------------------------------------------------------


def test_a_rejection_by_the_slm_monitor_stops_every_process_for_the_window(
    sandbox: Any, env: dict[str, str], db: psycopg.Connection
) -> None:
    from fulfil.sandbox.throttle import GroupLimits

    # The key's real limit for group C is 3 calls in 2 s, but fulfil was told more (another program
    # using the key, a limit configured too high): the 4th call is rejected and the group blocked.
    sandbox.set_canadapost_limits(GroupLimits(limits={"C": 3}, window_s=2.0))
    env = {**env, "FULFIL_CANADAPOST_RATE_C": "1000/2"}
    first = Worker(env, "canadapost", "GetShipments", [f"P1-{n}" for n in range(4)])
    first.go()
    wait_for(lambda: paused_until(db, "canadapost:C") is not None, "the first process to pause group C")
    # The second process starts inside the block: it must not send until the pause is over.
    second = Worker(env, "canadapost", "GetShipments", ["P2-0", "P2-1"])
    second.go()
    assert first.result() == {"ok": 4, "failed": 0}  # the rejected call is sent again after the pause
    assert second.result() == {"ok": 2, "failed": 0}

    report = sandbox.throttle_report()
    # One rejection, the one that revealed the limit: nothing reached the group while it was blocked.
    assert [(event["group"], event["reason"]) for event in report["rejections"]] == [("C", "limit")]
    calls = calls_of(db, "GetShipments")
    rejected = [call for call in calls if call["status_code"] == 503]
    assert len(rejected) == 1
    # Rejected at the gate, provably not performed: rate_limited, not indeterminate.
    assert rejected[0]["failure_class"] == FailureClass.RATE_LIMITED.value
    [pause] = db.execute(
        "SELECT paused_at, paused_until, pause_reason FROM rate_budgets WHERE name = 'canadapost:C'"
    ).fetchall()
    assert "Rejected by SLM Monitor" in pause[2]
    assert pause[1] - pause[0] == timedelta(seconds=2)  # the group's window
    after = [call for call in calls if call["related_id"].startswith("P2")]
    assert all(_timestamp(call["started_at"]) >= pause[1] for call in after)


def test_a_429_seen_by_one_process_stops_the_others_for_its_retry_after(
    sandbox: Any, env: dict[str, str], db: psycopg.Connection
) -> None:
    from fulfil.sandbox.faults import Faults

    orders = [order["order_id"] for order in sandbox.generate_orders(7, seed=3, state="SHIPPING")]
    sandbox.set_faults("bestbuy", Faults(retry_after_s=2))
    sandbox.script_faults("bestbuy", "OR23", ["none", "none", "rate_limit"])
    first = Worker(env, "bestbuy", "OR23", orders[:4])
    first.go()
    wait_for(lambda: paused_until(db, "bestbuy:OR23") is not None, "the first process to pause OR23")
    second = Worker(env, "bestbuy", "OR23", orders[4:])
    second.go()
    assert first.result() == {"ok": 4, "failed": 0}
    assert second.result() == {"ok": 3, "failed": 0}

    report = sandbox.throttle_report()
    assert report["inside_retry_after_count"] == 0, report["inside_retry_after"]
    [(reason,)] = db.execute("SELECT pause_reason FROM rate_budgets WHERE name = 'bestbuy:OR23'").fetchall()
    assert reason == "HTTP 429 to OR23, Retry-After 2 s"


def test_a_call_reserved_before_a_pause_arrives_is_held_back_until_it_ends(
    sandbox: Any, env: dict[str, str], db: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    from fulfil.sandbox.faults import Faults

    # OR11 at one call every 1.5 s. A's call is in flight for 0.6 s and answered 429 (Retry-After
    # 2); B, starting meanwhile, reserves the next slot (1.5 s after A's) and sleeps towards it.
    # The pause arrives while B sleeps: B must not go out at its slot, inside the Retry-After.
    env = {**env, "FULFIL_BESTBUY_RATE_OR11": "1/1.5", "FULFIL_RATE_HEADROOM": "1"}
    sandbox.set_faults("bestbuy", Faults(latency_ms=600, retry_after_s=2))
    sandbox.script_faults("bestbuy", "OR11", ["rate_limit"])
    settings = settings_of(env)
    results: dict[str, dict[str, int]] = {}

    def run(name: str) -> None:
        results[name] = make_calls(settings, "bestbuy", "OR11", [name])

    caplog.set_level("DEBUG", logger="fulfil.http")
    a = threading.Thread(target=run, args=("A",), name="A")
    b = threading.Thread(target=run, args=("B",), name="B")
    a.start()
    wait_for(lambda: len(calls_of(db, "OR11")) == 1, "A's call to be admitted")
    b.start()
    a.join(BOUNDED)
    b.join(BOUNDED)

    assert results == {"A": {"ok": 1, "failed": 0}, "B": {"ok": 1, "failed": 0}}
    assert sandbox.throttle_report()["inside_retry_after_count"] == 0
    waits = [r.getMessage() for r in caplog.records if r.threadName == "B" and "waiting" in r.getMessage()]
    # B reserved a slot, then was held back by the pause that arrived while it slept.
    assert ["has no slot" in waits[0], "is paused" in waits[1]] == [True, True], waits
    [(until,)] = db.execute("SELECT paused_until FROM rate_budgets WHERE name = 'bestbuy:OR11'").fetchall()
    [b_call] = [call for call in calls_of(db, "OR11") if call["related_id"] == "B"]
    assert _timestamp(b_call["started_at"]) >= until


# ------------------------------------------------------------------------------------------------
# One statement per request while a budget has room; waiting bounded
# ------------------------------------------------------------------------------------------------


class CountingCursor(psycopg.Cursor[Any]):
    statements = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.statements += 1
        return super().execute(*args, **kwargs)


def test_admission_costs_no_statement_while_the_budget_has_room(sandbox: Any, env: dict[str, str]) -> None:
    # Room: a slot every 0.6 ms, so the second call finds the budget's next slot already past.
    settings = settings_of({**env, "FULFIL_CANADAPOST_RATE_C": "100000/60"})
    audit = ApiCallLog(settings.database_url or "")
    metered = metered_http(settings, "canadapost", audit)
    plain = replace_budgets(metered_http(settings, "canadapost", audit), None)
    counted = []
    try:
        for http in (plain, metered):
            client = CanadaPostClient(settings.canadapost(), http)
            client.find_contract_shipments("O-1", "req-1")  # the budget's row is made on first use
            audit._connection().cursor_factory = CountingCursor
            CountingCursor.statements = 0
            client.find_contract_shipments("O-2", "req-2")
            counted.append(CountingCursor.statements)
            audit._connection().cursor_factory = psycopg.Cursor
    finally:
        metered.close()
        plain.close()
        audit.close()
    # The row written with the admission in it, then its answer: as many as without a budget.
    assert counted == [2, 2]


def replace_budgets(http: AuditedHttp, budgets: ServiceBudgets | None) -> AuditedHttp:
    http.budgets = budgets
    return http


def test_a_pause_longer_than_a_call_may_wait_holds_the_request_back(
    sandbox: Any, env: dict[str, str], db: psycopg.Connection
) -> None:
    settings = settings_of(env)
    audit = ApiCallLog(settings.database_url or "")
    http = metered_http(settings, "bestbuy", audit)
    assert http.budgets is not None
    budget = http.budgets.budget_for("OR23")
    assert budget is not None
    assert budget.name == "bestbuy:OR23"
    assert budget.rate is None
    audit.pause_budget(budget, Pause(3600, "HTTP 429 to OR23, Retry-After 3600 s"))
    try:
        outcome = BestBuyClient(settings.bestbuy(), http, sleep=lambda _: None).update_tracking(
            "O-1", "1234567890123456", "CPCL"
        )
    finally:
        http.close()
        audit.close()
    # Not an hour's sleep: held back at once, recorded, never sent.
    assert outcome.failure is FailureClass.NOT_SENT
    assert outcome.error is not None
    assert outcome.error.startswith("held back: bestbuy:OR23 is paused")
    assert [row["endpoint"] for row in sandbox.request_log()] == []
    calls = calls_of(db, "OR23")
    assert {(c["failure_class"], c["status_code"]) for c in calls} == {("not_sent", None)}
    # Recorded once and not tried again: every attempt's waits share one bound, so another
    # attempt would be held back as well.
    assert len(calls) == 1
    assert bestbuy_client.RETRY.max_attempts > 1


def test_a_stopping_run_does_not_wait_for_a_budget(sandbox: Any, env: dict[str, str]) -> None:
    settings = settings_of(env)
    audit = ApiCallLog(settings.database_url or "")
    http = replace_stop(metered_http(settings, "bestbuy", audit), lambda: True)
    assert http.budgets is not None
    budget = http.budgets.budget_for("OR24")
    assert budget is not None
    audit.pause_budget(budget, Pause(30, "HTTP 429 to OR24, Retry-After 30 s"))
    try:
        outcome = http.send("PUT", f"{settings.bestbuy().base_url}/api/orders/O-1/ship", endpoint="OR24")
    finally:
        http.close()
        audit.close()
    assert outcome.failure is FailureClass.NOT_SENT
    assert outcome.error is not None
    assert outcome.error.startswith("held back: the run is stopping")
    assert sandbox.request_log() == []


def replace_stop(http: AuditedHttp, should_stop: Any) -> AuditedHttp:
    http.should_stop = should_stop
    return http


def test_a_guard_that_refuses_takes_no_slot(env: dict[str, str], db: psycopg.Connection) -> None:
    settings = settings_of(env)
    audit = ApiCallLog(settings.database_url or "")
    budget = Budget("canadapost:A", Rate(646, 60.0), 0.95)
    request = {
        "service": "CanadaPost",
        "endpoint": "CreateShipment",
        "related_id": "O-1",
        "method": "POST",
        "url": "https://ct.soa-gw.canadapost.ca/rs/1/1/shipment",
        "headers": {},
        "body": "<shipment/>",
        "content_type": "application/xml",
        "deadline_seconds": 70.0,
    }
    metering = {"budget": budget, "horizon": 0.05, "longest_wait": 60.0, "reserved": False}
    try:
        first = audit.begin_metered(**request, **metering)
        assert first.call_id is not None
        [(tat,)] = db.execute("SELECT tat FROM rate_budgets WHERE name = 'canadapost:A'").fetchall()
        refused = SendGuard("shipments", "hold_purchase_lease", {"shipment_id": -1, "owner": "x"})
        with pytest.raises(LeaseLost):
            audit.begin_metered(**request, **metering, guard=refused)
    finally:
        audit.close()
    assert db.execute("SELECT tat FROM rate_budgets WHERE name = 'canadapost:A'").fetchall() == [(tat,)]
    assert db.execute("SELECT count(*) FROM api_calls").fetchone() == (1,)
    # started_at is the slot, deadline_at the slot plus the deadline.
    [(seconds,)] = db.execute("SELECT extract(epoch FROM deadline_at - started_at) FROM api_calls").fetchall()
    assert float(seconds) == 70.0


def test_a_changed_limit_takes_effect_at_the_next_call(env: dict[str, str], db: psycopg.Connection) -> None:
    audit = ApiCallLog(settings_of(env).database_url or "")
    request = {
        "service": "CanadaPost",
        "endpoint": "TrackingSummary",
        "related_id": None,
        "method": "GET",
        "url": "https://ct.soa-gw.canadapost.ca/vis/track/pin/1/summary",
        "headers": {},
        "body": None,
        "content_type": None,
    }
    metering = {"horizon": 0.05, "longest_wait": 60.0, "reserved": False}
    try:
        audit.begin_metered(**request, **metering, budget=Budget("canadapost:E", Rate(20, 60.0), 0.95))
        # The key was upgraded (500 a minute): the next call still waits the interval the last
        # one was given (3.2 s), and every one after it only 60 / (500 × 0.95) s.
        upgraded = Budget("canadapost:E", Rate(500, 60.0), 0.95)
        second = audit.begin_metered(**request, **metering, budget=upgraded)
        assert second.reserved
        assert second.wait_seconds > 3
    finally:
        audit.close()
    [(calls, interval, after)] = db.execute(
        "SELECT limit_per_window, interval_seconds, extract(epoch FROM tat - %s) FROM rate_budgets "
        "WHERE name = 'canadapost:E'",
        (second.slot,),
    ).fetchall()
    assert (calls, interval) == (500, pytest.approx(60 / (500 * 0.95)))
    assert float(after) == pytest.approx(60 / (500 * 0.95), abs=1e-5)  # timestamps keep microseconds


# ------------------------------------------------------------------------------------------------
# Canada Post's throttle answer, and what `fulfil status` reads
# ------------------------------------------------------------------------------------------------


def test_rejected_by_slm_monitor_is_rate_limited_and_pauses_its_group_for_the_window(
    sandbox: Any, env: dict[str, str], db: psycopg.Connection
) -> None:
    sandbox.script_faults("canadapost", "GetArtifact", ["rate_limit"])
    settings = settings_of({**env, "FULFIL_CANADAPOST_RATE_A": "646"})  # the published default
    audit = ApiCallLog(settings.database_url or "")
    http = metered_http(settings, "canadapost", audit)
    try:
        outcome = http.send(
            "GET", f"{settings.canadapost().base_url}/rs/artifact/2004381/1/0", endpoint="GetArtifact"
        )
        states = {state.name: state for state in budget_states(db)}
    finally:
        http.close()
        audit.close()
    assert outcome.status_code == 503
    assert outcome.failure is FailureClass.RATE_LIMITED
    group_a = states["canadapost:A"]
    assert group_a.paused_until is not None
    assert group_a.pause_reason is not None
    assert "GetArtifact with HTTP 503 Rejected by SLM Monitor" in group_a.pause_reason
    assert (group_a.limit, group_a.window_seconds, group_a.calls_in_window) == (646, 60.0, 1)
    record = group_a.as_record()
    assert record["type"] == "budget"
    assert record["name"] == "canadapost:A"


def test_status_shows_each_budget_its_use_and_its_reservations(
    env: dict[str, str], db: psycopg.Connection
) -> None:
    audit = ApiCallLog(settings_of(env).database_url or "")
    slow = Budget("bestbuy:OR11", Rate(1, 60.0), 1.0)
    request = {
        "service": "BestBuy",
        "endpoint": "OR11",
        "related_id": None,
        "method": "GET",
        "url": "https://marketplace.bestbuy.ca/api/orders",
        "headers": {},
        "body": None,
        "content_type": None,
    }
    try:
        assert audit.begin_metered(
            **request, budget=slow, horizon=0.05, longest_wait=0, reserved=False
        ).call_id
        later = audit.begin_metered(**request, budget=slow, horizon=0.05, longest_wait=120, reserved=False)
        assert later.reserved
        assert 59 < later.wait_seconds <= 60
        [state] = budget_states(db)
    finally:
        audit.close()
    assert (state.name, state.limit, state.calls_in_window, state.reserved_ahead) == ("bestbuy:OR11", 1, 1, 1)
    assert state.paused_until is None
    assert state.last_pause_at is None


# ------------------------------------------------------------------------------------------------
# Budgets, leases and settings
# ------------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_every_canada_post_endpoint_fulfil_calls_is_in_a_throttle_group() -> None:
    source = (REPOSITORY / "fulfil" / "canadapost" / "client.py").read_text(encoding="utf-8")
    called = {
        name
        for line in source.splitlines()
        if "endpoint=" in line
        for name in re.findall(r'"([A-Za-z]+)"', line)
    }
    assert called
    assert called <= set(CANADA_POST_ENDPOINT_GROUPS)
    budgets = canadapost_budgets(settings_of({}).rate_budgets())
    assert {budgets.budget_for(endpoint).name for endpoint in called} <= {  # type: ignore[union-attr]
        f"canadapost:{group}"
        for group in "ABCDE"  # labels and look-ups; voids and refunds; rates; tracking
    }


@pytest.mark.unit
def test_the_defaults_are_the_published_limits_spent_at_95_percent() -> None:
    rates = settings_of({}).rate_budgets()
    assert {group: (rate.calls, rate.seconds) for group, rate in rates.canadapost.items()} == {
        group: (limit, 60.0) for group, limit in CANADA_POST_GROUP_LIMITS.items()
    }
    # A poll is once a minute at most (`orders pull`); its pages and the reads by id, one a second.
    assert rates.bestbuy == {"OR11": Rate(60, 60.0)}
    assert rates.headroom == 0.95
    budgets = canadapost_budgets(rates)
    assert budgets.budget_for("TrackingSummary") == Budget("canadapost:E", Rate(20, 60.0), 0.95)
    assert budgets.budget_for("Unknown") is None
    mirakl = endpoint_budgets("bestbuy", rates.bestbuy, headroom=0.95, default_retry_after=30)
    assert mirakl.budget_for("OR24") == Budget("bestbuy:OR24")  # pauses only
    assert mirakl.budget_for("OR11") == Budget("bestbuy:OR11", Rate(60, 60.0), 0.95)


@pytest.mark.unit
def test_a_budget_wait_never_exceeds_the_lease() -> None:
    upgraded = settings_of({"FULFIL_CANADAPOST_RATE_F": "2/90", "FULFIL_BESTBUY_RATE_OR11": "1/300"})
    for settings in (settings_of({}), upgraded):
        rates = settings.rate_budgets()
        for budgets in (
            canadapost_budgets(rates),
            endpoint_budgets("bestbuy", rates.bestbuy, headroom=rates.headroom, default_retry_after=30),
        ):
            # The longest any one call waits: the longest pause it waits out, or the longest
            # spacing, and the horizon.
            spacing = [b.interval_seconds or 0 for b in budgets.by_endpoint.values()]
            assert budgets.max_wait == max([budgets.longest_pause, *spacing]) + RESERVATION_HORIZON_SECONDS
            for policy in (RETRY_NOT_SENT, RETRY_READS, RETRY_LABEL_FETCH, bestbuy_client.RETRY):
                plain = lease_seconds(70, policy)
                metered = lease_seconds(70, policy, admission_wait=budgets.max_wait)
                assert metered == plain + budgets.max_wait
                assert metered - LEASE_MARGIN_SECONDS >= policy.longest_call(70) + budgets.max_wait
            two = lease_seconds(
                70, bestbuy_client.RETRY, bestbuy_client.RETRY, admission_wait=budgets.max_wait
            )
            assert two == lease_seconds(70, bestbuy_client.RETRY, bestbuy_client.RETRY) + 2 * budgets.max_wait
    # Canada Post: an SLM pause lasts a window; a call waits it out, and the lease counts it.
    assert canadapost_budgets(upgraded.rate_budgets()).max_wait >= 90
    with pytest.raises(ValueError, match="negative"):
        lease_seconds(70, RETRY_NOT_SENT, admission_wait=-1)


@pytest.mark.unit
def test_a_call_waits_no_longer_than_its_budget_allows() -> None:
    from fulfil.audit.sender import _BudgetWaits

    waits = _BudgetWaits(0.2)
    assert waits.sleep(0.05, None)
    assert waits.left() < 0.2
    assert not waits.sleep(10, lambda: True)  # stopping: no wait at all
    assert waits.left() <= 0.2 - 0.05


@pytest.mark.unit
def test_slm_answers_and_429s_are_told_apart_from_other_failures() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><messages xmlns="http://www.canadapost.ca/ws/messages">'
        b"<message><code>Server</code><description>Rejected by SLM Monitor</description></message>"
        b"</messages>"
    )
    schema_error = body.replace(b"Rejected by SLM Monitor", b"cvc-pattern-valid: bad postal code")
    cp = canadapost_budgets(settings_of({}).rate_budgets())
    group_c = cp.budget_for("GetShipments")
    assert group_c is not None

    def outcome(status: int, payload: bytes, headers: dict[str, str] | None = None) -> HttpOutcome:
        return HttpOutcome(1, "GET", "https://x/", status, headers or {}, payload, None, None, 1)

    pause = cp.pause_after(group_c, "GetShipments", outcome(503, body))
    assert pause is not None
    assert pause.seconds == 60.0
    assert cp.pause_after(group_c, "GetShipments", outcome(503, schema_error)) is None
    assert cp.pause_after(group_c, "GetShipments", outcome(500, b"<html/>")) is None
    assert cp.pause_after(group_c, "GetShipments", outcome(200, body)) is None
    bb = endpoint_budgets("bestbuy", {}, headroom=0.95, default_retry_after=30)
    or23 = bb.budget_for("OR23")
    assert or23 is not None
    assert bb.pause_after(or23, "OR23", outcome(429, b"", {"Retry-After": "7"})) == Pause(
        7.0, "HTTP 429 to OR23, Retry-After 7 s"
    )
    assert bb.pause_after(or23, "OR23", outcome(429, b"")) == Pause(30, "HTTP 429 to OR23, no Retry-After")
    assert bb.pause_after(or23, "OR23", outcome(503, body)) is None


@pytest.mark.unit
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FULFIL_CANADAPOST_RATE_E", "0"),
        ("FULFIL_CANADAPOST_RATE_E", "lots"),
        ("FULFIL_CANADAPOST_RATE_A", "646/0"),
        ("FULFIL_CANADAPOST_RATE_A", "646/-60"),
        ("FULFIL_CANADAPOST_RATE_A", "646/a minute"),
        ("FULFIL_CANADAPOST_RATE_A", "6.5/60"),
        ("FULFIL_BESTBUY_RATE_OR11", "1/"),
        ("FULFIL_BESTBUY_RATE_OR11", "1/inf"),
        ("FULFIL_BESTBUY_DEFAULT_RETRY_AFTER", "-1"),
        ("FULFIL_RATE_HEADROOM", "0"),
        ("FULFIL_RATE_HEADROOM", "1.5"),
        ("FULFIL_RATE_HEADROOM", "most"),
    ],
)
def test_bad_budget_settings_are_refused_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        settings_of({variable: value}).rate_budgets()


@pytest.mark.unit
def test_budget_settings_come_from_the_file_too(tmp_path: Path) -> None:
    (tmp_path / "fulfil.toml").write_text(
        '[canadapost]\nrate_e = 500\n[bestbuy]\nrate_or11 = "4/60"\n[rates]\nheadroom = 0.9\n',
        encoding="utf-8",
    )
    rates = load_settings({}, tmp_path).rate_budgets()
    assert (rates.canadapost["E"], rates.bestbuy["OR11"], rates.headroom) == (
        Rate(500, 60.0),
        Rate(4, 60.0),
        0.9,
    )


if __name__ == "__main__":
    worker_main(sys.argv[1:])


def test_labels_create_sends_nothing_to_a_group_paused_longer_than_it_may_wait(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    """Another tool on the key tripped Canada Post's throttle an hour ago for an hour: the run
    buys nothing, says why in one line naming the budget, and the orders wait, recorded."""
    from tests.conftest import run_fulfil
    from tests.labels.helpers import bought_per_order, seed_orders, shipments

    order_ids = seed_orders(db, 3, seed=61)
    db.execute(
        "INSERT INTO rate_budgets (name, paused_until, pause_reason, paused_at) "
        "VALUES ('canadapost:A', now() + interval '1 hour', 'another tool was throttled', now())"
    )
    result = run_fulfil("labels", "create", env=fulfil_env)

    assert result.returncode == 3, result.stderr
    assert "nothing was sent to Canada Post" in result.stderr
    assert "canadapost:A is paused for every process" in result.stderr
    assert "could not be reached" not in result.stderr
    assert bought_per_order(sandbox) == {}
    assert {row["status"] for row in shipments(db).values()} == {"label_pending"}
    assert set(shipments(db)) == set(order_ids)
    calls = db.execute(
        "SELECT endpoint, failure_class, status_code FROM api_calls ORDER BY call_id"
    ).fetchall()
    assert calls == [("CreateShipment", "not_sent", None)]
