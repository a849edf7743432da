"""The tracking budget's other edges and `tracking show`'s cache-aside, against the sandbox over
real sockets: the daily cap (one process, two together, a call not sent gives its unit back),
workers inside one run, the summary of what the budget covered, and show asking Canada Post
about a stale parcel first (never with --cached, always with --refresh, within a cool-down)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fulfil.sandbox.throttle import GroupLimits
from tests.conftest import run_fulfil, run_fulfil_together
from tests.labels.helpers import json_lines
from tests.tracking.parcels import bought, detail_calls


def make_due(db: psycopg.Connection) -> None:
    db.execute("UPDATE carrier_tracking SET next_refresh_at = now() - interval '1 minute'")


def quota_used(db: psycopg.Connection) -> int:
    row = db.execute(
        "SELECT coalesce(sum(calls), 0) FROM tracking_daily_calls "
        "WHERE day = (now() AT TIME ZONE 'America/Toronto')::date"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_daily_cap_stops_the_run_and_the_next_until_the_day_ends(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    bought(db, fulfil_env, 5)
    env = {**fulfil_env, "FULFIL_TRACKING_DAILY_CALLS": "3"}
    before = detail_calls(sandbox)
    first = run_fulfil("tracking", "refresh", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert len(json_lines(first.stdout)) == 3
    assert "daily tracking budget (3 calls, FULFIL_TRACKING_DAILY_CALLS) is spent" in first.stderr
    assert detail_calls(sandbox) - before == 3
    second = run_fulfil("tracking", "refresh", "--json", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""
    assert "is spent" in second.stderr
    assert detail_calls(sandbox) - before == 3
    assert quota_used(db) == 3
    # Without the cap, the two left wait for nobody.
    rest = run_fulfil("tracking", "refresh", "--json", env=fulfil_env)
    assert len(json_lines(rest.stdout)) == 2


def test_two_processes_together_never_pass_the_daily_cap(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    bought(db, fulfil_env, 8)
    env = {**fulfil_env, "FULFIL_TRACKING_DAILY_CALLS": "5"}
    before = detail_calls(sandbox)
    results = run_fulfil_together(2, "tracking", "refresh", "--json", "--concurrency", "2", env=env)
    assert [result.returncode for result in results] == [0, 0], [result.stderr for result in results]
    records = [record for result in results for record in json_lines(result.stdout)]
    assert len(records) == 5
    assert len({record["order_id"] for record in records}) == 5
    assert detail_calls(sandbox) - before == 5
    assert quota_used(db) == 5


def test_a_call_that_sent_nothing_gives_its_unit_of_the_daily_cap_back(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    bought(db, fulfil_env, 2)
    unreachable = {
        **fulfil_env,
        "FULFIL_TRACKING_DAILY_CALLS": "1",
        "FULFIL_CANADAPOST_BASE_URL": "http://127.0.0.1:9",
    }
    result = run_fulfil("tracking", "refresh", "--json", env=unreachable)
    assert [record["outcome"] for record in json_lines(result.stdout)] == ["held_back"]
    assert quota_used(db) == 0
    # The unit is there for the next run, which reaches Canada Post.
    again = run_fulfil(
        "tracking", "refresh", "--json", env={**fulfil_env, "FULFIL_TRACKING_DAILY_CALLS": "1"}
    )
    assert [record["outcome"] for record in json_lines(again.stdout)] == ["refreshed"]
    assert quota_used(db) == 1


def test_workers_in_one_run_refresh_each_parcel_once_within_the_budget(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    orders = bought(db, fulfil_env, 9)
    sandbox.set_canadapost_limits(GroupLimits(limits={"E": 6}, window_s=1.0))
    env = {**fulfil_env, "FULFIL_CANADAPOST_RATE_E": "6/1", "FULFIL_RATE_HEADROOM": "0.5"}
    before = detail_calls(sandbox)
    result = run_fulfil("tracking", "refresh", "--json", "--concurrency", "3", env=env)
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert sorted(record["order_id"] for record in records) == sorted(orders)
    assert detail_calls(sandbox) - before == 9
    report = sandbox.throttle_report()
    assert report["rejection_count"] == 0, report["rejections"]
    assert report["canadapost"]["groups"]["E"]["peak_in_window"] <= 6
    runs = db.execute(
        "SELECT count(DISTINCT run_id) FROM api_calls WHERE endpoint = 'TrackingDetail'"
    ).fetchone()
    assert runs == (1,)


def test_the_summary_says_what_the_budget_covered_and_when_the_rest_can_go(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    bought(db, fulfil_env, 4)
    # -v: the summary is talk for a person (cron hears only problems).
    result = run_fulfil("-v", "tracking", "refresh", "--limit", "1", env=fulfil_env)
    assert result.returncode == 0, result.stderr
    [summary] = [line for line in result.stderr.splitlines() if line.startswith("refreshed ")]
    assert summary.startswith(
        "refreshed 1 of 4 due; tracking budget 100000 a minute; 3 still due, next slot in"
    )
    assert summary.endswith("at this budget")


def test_a_global_pause_shows_in_status(db: psycopg.Connection, fulfil_env: dict[str, str]) -> None:
    assert run_fulfil("tracking", "pause", "--reason", "Canada Post outage", env=fulfil_env).returncode == 0
    status = run_fulfil("status", "--format", "table", env=fulfil_env)
    assert "Tracking refreshes are paused for every host" in status.stdout
    assert "Canada Post outage" in status.stdout
    as_json = json_lines(run_fulfil("status", "--json", env=fulfil_env).stdout)
    [pause] = [record for record in as_json if record["type"] == "tracking_pause"]
    assert pause["reason"] == "Canada Post outage"
    assert run_fulfil("tracking", "resume", env=fulfil_env).returncode == 0
    assert "paused" not in run_fulfil("status", env=fulfil_env).stdout


# ------------------------------------------------------------------------------------------------
# tracking show: cache-aside
# ------------------------------------------------------------------------------------------------


def show(fulfil_env: dict[str, str], *args: str) -> tuple[list[dict[str, Any]], Any]:
    result = run_fulfil("tracking", "show", *args, "--json", env=fulfil_env)
    assert result.returncode == 0, result.stderr
    return json_lines(result.stdout), result


def make_stale(db: psycopg.Connection, order_id: str) -> None:
    """Its last answer five hours old (pre-transit: fresh for four), last asked as long ago."""
    db.execute(
        "UPDATE carrier_tracking SET refreshed_at = now() - interval '5 hours' "
        "WHERE shipment_id = (SELECT shipment_id FROM shipments WHERE order_id = %s)",
        (order_id,),
    )
    db.execute(
        "UPDATE tracking_refreshes SET at = now() - interval '5 hours' "
        "WHERE shipment_id = (SELECT shipment_id FROM shipments WHERE order_id = %s)",
        (order_id,),
    )


def test_show_asks_about_a_stale_parcel_first_and_answers_a_fresh_one_from_the_database(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    stale, fresh = bought(db, fulfil_env, 2)
    assert run_fulfil("tracking", "refresh", env=fulfil_env).returncode == 0
    make_stale(db, stale)
    before = detail_calls(sandbox)
    records, _ = show(fulfil_env, stale, fresh)
    by_order = {record["order_id"]: record for record in records}
    assert detail_calls(sandbox) - before == 1
    assert by_order[stale]["asked_now"] is True
    assert by_order[stale]["freshness"] == "fresh"
    assert by_order[fresh]["asked_now"] is False
    # The call is audited under a run of its own, like every other.
    run = db.execute(
        "SELECT r.command FROM api_calls c JOIN runs r USING (run_id) "
        "WHERE c.endpoint = 'TrackingDetail' ORDER BY c.call_id DESC LIMIT 1"
    ).fetchone()
    assert run == ("tracking show",)


def test_show_cached_never_calls_even_for_a_stale_parcel(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    [order_id] = bought(db, fulfil_env, 1)
    assert run_fulfil("tracking", "refresh", env=fulfil_env).returncode == 0
    make_stale(db, order_id)
    before = detail_calls(sandbox)
    [record], _ = show(fulfil_env, order_id, "--cached")
    assert record["freshness"] == "stale"
    assert record["asked_now"] is False
    assert detail_calls(sandbox) == before


def test_show_refresh_asks_about_a_fresh_parcel_but_not_twice_within_the_cool_down(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    [order_id] = bought(db, fulfil_env, 1)
    assert run_fulfil("tracking", "refresh", env=fulfil_env).returncode == 0
    before = detail_calls(sandbox)
    # Asked a second ago by the refresher: within the cool-down, --refresh does not call.
    [record], _ = show(fulfil_env, order_id, "--refresh")
    assert detail_calls(sandbox) == before
    assert record["asked_now"] is False
    assert record["not_refreshed"].startswith("not refreshed: asked ")
    # Six minutes later it does, though the answer is still fresh.
    db.execute("UPDATE tracking_refreshes SET at = now() - interval '6 minutes'")
    [record], _ = show(fulfil_env, order_id, "--refresh")
    assert detail_calls(sandbox) - before == 1
    assert record["asked_now"] is True
    table = run_fulfil("tracking", "show", order_id, "--refresh", "--format", "table", env=fulfil_env)
    assert "again in" in table.stdout


def test_show_does_not_call_while_refreshes_are_paused_and_says_so(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    [order_id] = bought(db, fulfil_env, 1)
    assert run_fulfil("tracking", "refresh", env=fulfil_env).returncode == 0
    make_stale(db, order_id)
    assert run_fulfil("tracking", "pause", "--reason", "maintenance", env=fulfil_env).returncode == 0
    before = detail_calls(sandbox)
    [record], _ = show(fulfil_env, order_id)
    assert detail_calls(sandbox) == before
    assert record["not_refreshed"] == "not refreshed: tracking refreshes are paused (maintenance)"


def test_show_keeps_to_the_daily_cap(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    [order_id] = bought(db, fulfil_env, 1)
    env = {**fulfil_env, "FULFIL_TRACKING_DAILY_CALLS": "1"}
    assert run_fulfil("tracking", "refresh", env=env).returncode == 0
    make_stale(db, order_id)
    before = detail_calls(sandbox)
    [record], _ = show(env, order_id)
    assert detail_calls(sandbox) == before
    assert "daily tracking budget" in record["not_refreshed"]


def test_show_cached_and_refresh_together_is_a_usage_error(fulfil_env: dict[str, str]) -> None:
    result = run_fulfil("tracking", "show", "X", "--cached", "--refresh", env=fulfil_env)
    assert result.returncode == 2
    assert "--cached and --refresh" in result.stderr


@pytest.mark.parametrize("value", ["0", "many"])
def test_a_bad_daily_cap_is_a_configuration_error(
    db: psycopg.Connection, fulfil_env: dict[str, str], value: str
) -> None:
    result = run_fulfil("tracking", "refresh", env={**fulfil_env, "FULFIL_TRACKING_DAILY_CALLS": value})
    assert result.returncode == 2
    assert "FULFIL_TRACKING_DAILY_CALLS" in result.stderr


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"FULFIL_CANADAPOST_USERNAME": ""}, "FULFIL_CANADAPOST_USERNAME"),
        ({"FULFIL_CANADAPOST_PASSWORD": "not-the-password"}, "refused"),
    ],
    ids=["not configured", "key refused"],
)
def test_show_still_shows_the_cached_answer_when_canada_post_cannot_be_asked(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any, change: dict[str, str], said: str
) -> None:
    [order_id] = bought(db, fulfil_env, 1)
    assert run_fulfil("tracking", "refresh", env=fulfil_env).returncode == 0
    make_stale(db, order_id)
    before = db.execute("SELECT next_refresh_at FROM carrier_tracking").fetchone()
    env = {**fulfil_env, **change}
    result = run_fulfil("tracking", "show", order_id, "--json", env=env)
    assert result.returncode == 2
    [record] = json_lines(result.stdout)
    assert record["freshness"] == "stale"
    assert said in record["not_refreshed"]
    assert said in result.stderr
    assert "not-the-password" not in result.stdout + result.stderr
    # The parcel is due as it was: its claim was given back.
    assert db.execute("SELECT next_refresh_at FROM carrier_tracking").fetchone() == before
