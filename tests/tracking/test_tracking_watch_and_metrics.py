"""`fulfil tracking watch` as systemd runs it (cycles on a ticker, a clean exit 0 on SIGTERM in the
middle of a call, a pause read at every cycle) and `--metrics-file` (Prometheus text that
prometheus_client parses, counters that add up across commands, gauges of the shared state)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fulfil.carrier_tracking.refresh import RefreshCycle
from fulfil.carrier_tracking.watch import watch
from fulfil.metrics import METRICS
from fulfil.sandbox.faults import Faults
from tests.conftest import run_fulfil, run_fulfil_together
from tests.labels.helpers import json_lines
from tests.tracking.parcels import bought, detail_calls

REPOSITORY = Path(__file__).resolve().parents[2]


def start_watch(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fulfil", "tracking", "watch", "--json", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_watch_runs_a_cycle_per_tick_each_a_run_of_its_own(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    orders = bought(db, fulfil_env, 2)
    result = run_fulfil("tracking", "watch", "--json", "--interval", "1", "--cycles", "3", env=fulfil_env)
    assert result.returncode == 0, result.stderr
    assert sorted(record["order_id"] for record in json_lines(result.stdout)) == sorted(orders)
    runs = db.execute(
        "SELECT exit_code FROM runs WHERE command = 'tracking watch' ORDER BY started_at"
    ).fetchall()
    assert runs == [(0,), (0,), (0,)]
    # Asked once each: the later cycles found nothing due.
    assert detail_calls(sandbox) == 2


def test_watch_finishes_the_call_in_flight_on_sigterm_and_exits_0(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    bought(db, fulfil_env, 3)
    # Each tracking answer takes 1.5 s: the signal comes while the first is on its way.
    sandbox.set_faults("canadapost", Faults(latency_ms=1500))
    env = {**fulfil_env, "FULFIL_HTTP_READ_TIMEOUT": "10"}
    process = start_watch(env, "--interval", "60")

    def in_flight() -> bool:
        row = db.execute(
            "SELECT count(*) FROM api_calls WHERE endpoint = 'TrackingDetail' AND finished_at IS NULL"
        ).fetchone()
        return row is not None and row[0] == 1

    wait_for(in_flight)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "SIGTERM: tracking watch stopped cleanly after 1 cycles" in err
    # The call in flight was answered and recorded; nothing else was asked.
    calls = db.execute(
        "SELECT finished_at IS NOT NULL, is_success FROM api_calls WHERE endpoint = 'TrackingDetail'"
    ).fetchall()
    assert calls == [(True, True)]
    assert [record["outcome"] for record in json_lines(out)] == ["refreshed"]
    # The other two are due now (no lease left behind), and the run is recorded as finished.
    due = db.execute("SELECT count(*) FROM carrier_tracking WHERE next_refresh_at <= now()").fetchone()
    assert due == (2,)
    run = db.execute("SELECT exit_code FROM runs WHERE command = 'tracking watch'").fetchone()
    assert run == (0,)


def watch_runs(db: psycopg.Connection) -> int:
    row = db.execute("SELECT count(*) FROM runs WHERE command = 'tracking watch'").fetchone()
    return int(row[0]) if row else 0


def test_a_paused_watch_keeps_running_and_asks_again_after_resume(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    [order_id] = bought(db, fulfil_env, 1)
    assert run_fulfil("tracking", "pause", "--reason", "night", env=fulfil_env).returncode == 0
    process = start_watch(fulfil_env, "--interval", "1")
    try:
        wait_for(lambda: watch_runs(db) >= 2)
        assert detail_calls(sandbox) == 0
        assert run_fulfil("tracking", "resume", env=fulfil_env).returncode == 0
        wait_for(lambda: detail_calls(sandbox) == 1)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert err.count("refreshes are paused") == 1  # said once, not every tick
    assert "tracking refreshes resumed" in err
    assert [record["order_id"] for record in json_lines(out)] == [order_id]


def test_a_refused_key_ends_the_watch_with_exit_2(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    bought(db, fulfil_env, 1)
    env = {**fulfil_env, "FULFIL_CANADAPOST_PASSWORD": "wrong"}
    result = run_fulfil("tracking", "watch", "--interval", "1", env=env)
    assert result.returncode == 2
    assert "wrong" not in result.stderr


def test_the_ticker_keeps_its_schedule_and_skips_ticks_a_long_cycle_covered() -> None:
    now = [0.0]
    starts: list[float] = []
    durations = iter([0.2, 2.5, 0.1, 0.1])

    def run_cycle() -> RefreshCycle:
        starts.append(now[0])
        now[0] += next(durations)
        return RefreshCycle(due=0, results=[])

    def sleep(seconds: float) -> None:
        now[0] += seconds

    end = watch(
        run_cycle,
        lambda cycle: None,
        interval=1.0,
        should_stop=lambda: False,
        max_cycles=4,
        clock=lambda: now[0],
        sleep=sleep,
    )
    assert end.cycles == 4
    # 0; 1; the second ran to 3.5, so ticks 2 and 3 are skipped: 4; 5.
    assert [round(start, 6) for start in starts] == [0.0, 1.0, 4.0, 5.0]


# ------------------------------------------------------------------------------------------------
# --metrics-file
# ------------------------------------------------------------------------------------------------


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_the_metrics_file_parses_and_counts_add_up_across_commands(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any, tmp_path: Path
) -> None:
    path = tmp_path / "fulfil.prom"
    env = {**fulfil_env, "FULFIL_METRICS_FILE": str(path)}
    bought(db, env, 3)
    first = samples(path)
    assert first[("fulfil_labels_bought_total", ())] == 3
    assert first[("fulfil_command_runs_total", (("command", "labels create"), ("exit_code", "0")))] == 1
    created = (("endpoint", "CreateShipment"), ("outcome", "ok"), ("service", "CanadaPost"))
    assert first[("fulfil_api_calls_total", created)] == 3
    assert run_fulfil("--metrics-file", str(path), "tracking", "refresh", env=fulfil_env).returncode == 0
    second = samples(path)
    detail = (("endpoint", "TrackingDetail"), ("outcome", "ok"), ("service", "CanadaPost"))
    assert second[("fulfil_api_calls_total", detail)] == 3
    assert second[("fulfil_api_call_duration_seconds_count", detail[:1] + detail[2:])] == 3
    assert second[("fulfil_tracking_refresh_attempts_total", ())] == 3
    assert second[("fulfil_tracking_refresh_successes_total", ())] == 3
    # The first command's counts are still there, added to.
    assert second[("fulfil_labels_bought_total", ())] == 3
    assert second[("fulfil_api_calls_total", created)] == 3
    assert second[("fulfil_carrier_tracking_parcels", (("carrier_status", "pre_transit"),))] == 3
    assert second[("fulfil_carrier_tracking_parcels", (("carrier_status", "delivered"),))] == 0
    assert second[("fulfil_tracking_refreshes_paused", ())] == 0
    # tracking show: a fresh parcel is a hit.
    order_id = db.execute("SELECT order_id FROM shipments LIMIT 1").fetchone()[0]  # type: ignore[index]
    assert run_fulfil("tracking", "show", order_id, env=env).returncode == 0
    assert run_fulfil("tracking", "show", order_id, env=env).returncode == 0
    third = samples(path)
    assert third[("fulfil_tracking_show_cache_hits_total", ())] == 2
    assert third[("fulfil_tracking_show_cache_misses_total", ())] == 0
    assert third[("fulfil_command_runs_total", (("command", "tracking show"), ("exit_code", "0")))] == 2


def test_commands_ending_together_lose_none_of_each_others_counts(
    db: psycopg.Connection, fulfil_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "fulfil.prom"
    env = {**fulfil_env, "FULFIL_METRICS_FILE": str(path)}
    run_fulfil_together(6, "status", env=env)
    total = sum(
        value
        for (name, labels), value in samples(path).items()
        if name == "fulfil_command_runs_total" and dict(labels)["command"] == "status"
    )
    assert total == 6


def test_a_metrics_file_that_cannot_be_written_is_said_and_the_exit_code_stands(
    db: psycopg.Connection, fulfil_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "no-such-directory" / "fulfil.prom"
    result = run_fulfil("--metrics-file", str(path), "status", env=fulfil_env)
    assert result.returncode == 0
    assert f"could not write the metrics file {path}" in result.stderr


@pytest.mark.parametrize("garbage", ["not prometheus text {{{\n", "fulfil_labels_bought_total oops\n"])
def test_a_damaged_metrics_file_starts_the_counters_again(
    db: psycopg.Connection, fulfil_env: dict[str, str], tmp_path: Path, garbage: str
) -> None:
    path = tmp_path / "fulfil.prom"
    path.write_text(garbage, encoding="utf-8")
    assert run_fulfil("--metrics-file", str(path), "status", env=fulfil_env).returncode == 0
    assert samples(path)[("fulfil_command_runs_total", (("command", "status"), ("exit_code", "0")))] == 1


def test_the_readme_lists_every_metric() -> None:
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    for name, spec in METRICS.items():
        shown = f"{name}_total" if spec.kind == "counter" else name
        assert f"| `{shown}` | {spec.kind} |" in readme, f"{shown} is not in the README's metric list"
