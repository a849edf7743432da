"""Refreshing parcels against the sandbox over real sockets: labels bought by the real command line
are tracked, asked about once when due and not again until due, move to delivered on the
sandbox's clock, 004 before the first scan, and every call is audited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from fulfil.canadapost.client import CanadaPostClient
from fulfil.canadapost.tracking import CarrierStatus
from fulfil.carrier_tracking.refresh import HELD_BACK, NO_HISTORY, REFRESHED, Refresher
from fulfil.carrier_tracking.schedule import RefreshPolicy
from fulfil.carrier_tracking.store import CarrierTrackingStore
from fulfil.services import open_session
from tests.conftest import run_fulfil, run_fulfil_together
from tests.labels.helpers import json_lines, label_settings
from tests.tracking.parcels import age_parcel, bought, detail_calls


@pytest.fixture
def refresher(fulfil_env: dict[str, str], database_url: str, db: psycopg.Connection) -> Iterator[Refresher]:
    settings = label_settings(fulfil_env)
    with open_session(database_url, settings, "tracking refresh") as session:
        client = CanadaPostClient(settings.canadapost(), session.canadapost_http())
        store = CarrierTrackingStore(db, run_id=session.run.run_id, policy=RefreshPolicy())
        yield Refresher(store, client, lease_seconds=60)


def test_bought_labels_are_refreshed_once_then_not_until_due(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any, refresher: Refresher
) -> None:
    orders = bought(db, fulfil_env, 3)
    assert db.execute("SELECT count(*) FROM carrier_tracking").fetchone() == (3,)
    before = detail_calls(sandbox)
    cycle = refresher.refresh_due()
    assert cycle.due == 3
    assert sorted(result.order_id for result in cycle.results) == sorted(orders)
    assert {result.outcome for result in cycle.results} == {REFRESHED}
    # Just bought: Canada Post has its electronic notice only.
    assert {result.carrier_status for result in cycle.results} == {CarrierStatus.PRE_TRANSIT}
    assert detail_calls(sandbox) - before == 3
    again = refresher.refresh_due()
    assert again.due == 0
    assert again.results == []
    assert detail_calls(sandbox) - before == 3
    audited = db.execute(
        "SELECT related_id, is_success FROM api_calls WHERE endpoint = 'TrackingDetail' ORDER BY call_id"
    ).fetchall()
    assert sorted(audited) == sorted((order_id, True) for order_id in orders)
    logged = db.execute("SELECT count(*) FROM tracking_refreshes WHERE call_id IS NOT NULL").fetchone()
    assert logged == (3,)


def test_a_parcel_moves_to_delivered_on_the_sandboxs_clock_and_is_never_asked_again(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any, refresher: Refresher
) -> None:
    [order_id] = bought(db, fulfil_env, 1)
    refresher.refresh_due()
    seen = []
    for hours in (7, 38, 8):  # picked up; out for delivery at 45 h; delivered at 51 h
        age_parcel(sandbox, db, order_id, hours)
        [result] = refresher.refresh_due().results
        seen.append(result.carrier_status)
    assert seen == [CarrierStatus.IN_TRANSIT, CarrierStatus.OUT_FOR_DELIVERY, CarrierStatus.DELIVERED]
    row = db.execute(
        "SELECT carrier_status, delivered_at IS NOT NULL, last_event_code FROM carrier_tracking"
    ).fetchone()
    assert row == ("delivered", True, "1496")
    events = db.execute("SELECT count(*) FROM tracking_events").fetchone()
    assert events == (6,)  # the sandbox's whole timeline, each event once
    db.execute("UPDATE carrier_tracking SET next_refresh_at = now() - interval '1 hour'")
    before = detail_calls(sandbox)
    assert refresher.refresh_due().results == []
    assert detail_calls(sandbox) == before


def test_a_pin_canada_post_has_no_history_for_is_no_history_not_a_failure(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any, refresher: Refresher
) -> None:
    [order_id] = bought(db, fulfil_env, 1)
    # A label the sandbox never sold (say, bought by hand elsewhere): Canada Post answers 004.
    db.execute("UPDATE shipments SET tracking_pin = '7999000000000001' WHERE order_id = %s", (order_id,))
    [result] = refresher.refresh_due().results
    assert result.outcome == NO_HISTORY
    row = db.execute("SELECT carrier_status, consecutive_failures FROM carrier_tracking").fetchone()
    assert row == ("pre_transit", 0)


def test_canada_post_unreachable_leaves_the_parcel_due_and_ends_the_cycle(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any, database_url: str
) -> None:
    bought(db, fulfil_env, 2)
    unreachable = {**fulfil_env, "FULFIL_CANADAPOST_BASE_URL": "http://127.0.0.1:9"}
    settings = label_settings(unreachable)
    with open_session(database_url, settings, "tracking refresh") as session:
        client = CanadaPostClient(settings.canadapost(), session.canadapost_http())
        store = CarrierTrackingStore(db, run_id=session.run.run_id, policy=RefreshPolicy())
        cycle = Refresher(store, client, lease_seconds=60).refresh_due()
    assert [result.outcome for result in cycle.results] == [HELD_BACK]
    assert cycle.stopped is not None
    assert "nothing was sent" in cycle.stopped
    due = db.execute(
        "SELECT count(*) FROM carrier_tracking WHERE next_refresh_at <= now() AND consecutive_failures = 0"
    ).fetchone()
    assert due == (2,)


def test_the_command_refreshes_what_is_due_and_says_how_much_it_covered(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    orders = bought(db, fulfil_env, 2)
    result = run_fulfil("tracking", "refresh", "--json", env=fulfil_env)
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert sorted(record["order_id"] for record in records) == sorted(orders)
    assert {record["outcome"] for record in records} == {"refreshed"}
    assert {record["carrier_status"] for record in records} == {"pre_transit"}
    before = detail_calls(sandbox)
    again = run_fulfil("tracking", "refresh", "--json", env=fulfil_env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    assert detail_calls(sandbox) == before
    runs = db.execute("SELECT command, exit_code FROM runs WHERE command = 'tracking refresh'").fetchall()
    assert runs == [("tracking refresh", 0), ("tracking refresh", 0)]


def test_the_command_keeps_to_the_orders_it_is_given(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    first, _second = bought(db, fulfil_env, 2)
    result = run_fulfil("tracking", "refresh", "--order", first, "--json", env=fulfil_env)
    assert result.returncode == 0, result.stderr
    assert [record["order_id"] for record in json_lines(result.stdout)] == [first]


def test_two_processes_refresh_each_parcel_once_and_keep_to_the_budget_together(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:

    from fulfil.sandbox.throttle import GroupLimits

    orders = bought(db, fulfil_env, 10)
    # Canada Post's group E, scaled: 4 tracking calls in any 1 s, enforced by the sandbox. fulfil
    # spends half of it, so a call arriving late never puts a window over the limit.
    sandbox.set_canadapost_limits(GroupLimits(limits={"E": 4}, window_s=1.0))
    env = {**fulfil_env, "FULFIL_CANADAPOST_RATE_E": "4/1", "FULFIL_RATE_HEADROOM": "0.5"}
    before = detail_calls(sandbox)
    results = run_fulfil_together(2, "tracking", "refresh", "--json", env=env)
    assert [result.returncode for result in results] == [0, 0], [result.stderr for result in results]
    records = [record for result in results for record in json_lines(result.stdout)]
    # Every parcel once, by one process or the other; no call twice for one parcel.
    assert sorted(record["order_id"] for record in records) == sorted(orders)
    assert detail_calls(sandbox) - before == 10
    report = sandbox.throttle_report()
    assert report["rejection_count"] == 0, report["rejections"]
    assert report["canadapost"]["groups"]["E"]["peak_in_window"] <= 4
    per_shipment = db.execute(
        "SELECT count(DISTINCT shipment_id), count(*) FROM tracking_refreshes WHERE outcome = 'refreshed'"
    ).fetchone()
    assert per_shipment == (10, 10)


def test_the_intervals_are_settings(db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any) -> None:
    bought(db, fulfil_env, 1)
    env = {**fulfil_env, "FULFIL_TRACKING_PRE_TRANSIT_MINUTES": "7"}
    result = run_fulfil("tracking", "refresh", env=env)
    assert result.returncode == 0, result.stderr
    wait = db.execute("SELECT next_refresh_at - refreshed_at FROM carrier_tracking").fetchone()
    assert wait is not None
    assert abs(wait[0].total_seconds() - 7 * 60) < 5


@pytest.mark.parametrize("value", ["0", "-3", "soon", "1.5"])
def test_a_bad_interval_is_a_configuration_error_naming_it(
    db: psycopg.Connection, fulfil_env: dict[str, str], value: str
) -> None:
    result = run_fulfil(
        "tracking", "refresh", env={**fulfil_env, "FULFIL_TRACKING_IN_TRANSIT_MINUTES": value}
    )
    assert result.returncode == 2
    assert "FULFIL_TRACKING_IN_TRANSIT_MINUTES" in result.stderr
    assert "Traceback" not in result.stderr
    assert db.execute("SELECT count(*) FROM api_calls").fetchone() == (0,)


def test_show_answers_from_the_database_without_a_call(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    [order_id] = bought(db, fulfil_env, 1)
    assert run_fulfil("tracking", "refresh", env=fulfil_env).returncode == 0
    pin = db.execute("SELECT tracking_pin FROM shipments").fetchone()[0]  # type: ignore[index]
    calls = db.execute("SELECT count(*) FROM api_calls").fetchone()
    by_order = run_fulfil("tracking", "show", order_id, "--json", env=fulfil_env)
    by_pin = run_fulfil("tracking", "show", pin, "--json", env=fulfil_env)
    assert by_order.returncode == 0, by_order.stderr
    assert by_pin.returncode == 0, by_pin.stderr
    [record] = json_lines(by_order.stdout)
    assert [(r["order_id"], r["tracking_pin"]) for r in json_lines(by_pin.stdout)] == [(order_id, pin)]
    assert record["carrier_status"] == "pre_transit"
    assert record["freshness"] == "fresh"
    assert [event["code"] for event in record["events"]] == ["3000"]
    # On the clock of the place it was scanned (the sender's, in Quebec: Eastern, in December).
    assert record["events"][0]["time_zone"] == "EST"
    assert record["events"][0]["at"].endswith("-05:00")
    assert record["last_event"]["code"] == "3000"
    assert db.execute("SELECT count(*) FROM api_calls").fetchone() == calls
    table = run_fulfil("tracking", "show", order_id, env=fulfil_env)
    assert table.returncode == 0, table.stderr
    assert order_id in table.stdout
    assert "pre_transit" in table.stdout


@pytest.mark.parametrize(("hours_ago", "freshness"), [(1, "fresh"), (5, "stale"), (17, "expired")])
def test_show_says_how_fresh_the_answer_is(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any, hours_ago: int, freshness: str
) -> None:
    [order_id] = bought(db, fulfil_env, 1)
    assert run_fulfil("tracking", "refresh", env=fulfil_env).returncode == 0
    # Not yet scanned: fresh for 4 hours, stale up to four times that, then expired.
    db.execute("UPDATE carrier_tracking SET refreshed_at = now() - make_interval(hours => %s)", (hours_ago,))
    [record] = json_lines(run_fulfil("tracking", "show", order_id, "--json", env=fulfil_env).stdout)
    assert record["freshness"] == freshness


def test_show_names_what_it_cannot_find_and_exits_3(
    db: psycopg.Connection, fulfil_env: dict[str, str]
) -> None:
    result = run_fulfil("tracking", "show", "NO-SUCH-ORDER", env=fulfil_env)
    assert result.returncode == 3
    assert "NO-SUCH-ORDER: no tracked label" in result.stderr


def test_a_pause_reaches_every_process_until_resumed(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    bought(db, fulfil_env, 2)
    paused = run_fulfil("tracking", "pause", "--reason", "maintenance tonight", "--json", env=fulfil_env)
    assert paused.returncode == 0, paused.stderr
    assert json_lines(paused.stdout)[0]["reason"] == "maintenance tonight"
    before = detail_calls(sandbox)
    # Another process (this one) finds the pause in the database and asks nothing.
    result = run_fulfil("tracking", "refresh", "--json", env=fulfil_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert detail_calls(sandbox) == before
    assert run_fulfil("tracking", "resume", env=fulfil_env).returncode == 0
    again = run_fulfil("tracking", "refresh", "--json", env=fulfil_env)
    assert len(json_lines(again.stdout)) == 2
    assert detail_calls(sandbox) == before + 2


def test_a_pause_for_one_order_stops_only_its_parcel(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    first, second = bought(db, fulfil_env, 2)
    paused = run_fulfil(
        "tracking", "pause", "--order", first, "--reason", "picked up at the depot", env=fulfil_env
    )
    assert paused.returncode == 0, paused.stderr
    refreshed = json_lines(run_fulfil("tracking", "refresh", "--json", env=fulfil_env).stdout)
    assert [record["order_id"] for record in refreshed] == [second]
    [shown] = json_lines(run_fulfil("tracking", "show", first, "--json", env=fulfil_env).stdout)
    assert shown["auto_refresh"] is False
    assert shown["auto_refresh_stopped_reason"] == "paused by hand: picked up at the depot"
    assert run_fulfil("tracking", "resume", "--order", first, env=fulfil_env).returncode == 0
    refreshed = json_lines(run_fulfil("tracking", "refresh", "--json", env=fulfil_env).stdout)
    assert [record["order_id"] for record in refreshed] == [first]
    unknown = run_fulfil("tracking", "pause", "--order", "NO-SUCH", env=fulfil_env)
    assert unknown.returncode == 3
    assert "NO-SUCH: no tracked label" in unknown.stderr


def test_status_lists_a_parcel_never_scanned_and_one_canada_post_could_not_deliver(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    first, second = bought(db, fulfil_env, 2)
    db.execute(
        "UPDATE carrier_tracking SET label_created_at = now() - interval '30 hours' "
        "WHERE shipment_id = (SELECT shipment_id FROM shipments WHERE order_id = %s)",
        (first,),
    )
    db.execute(
        "UPDATE carrier_tracking SET carrier_status = 'delivery_attempted', "
        "last_event_description = 'Attempted delivery; notice card left' "
        "WHERE shipment_id = (SELECT shipment_id FROM shipments WHERE order_id = %s)",
        (second,),
    )
    result = run_fulfil("status", "--json", env=fulfil_env)
    assert result.returncode == 3, result.stderr
    attention = {
        (record["order_id"], record["problem"]): record
        for record in json_lines(result.stdout)
        if record["type"] == "attention"
    }
    assert "handed over" in attention[(first, "never_scanned")]["reason"]
    assert "notice card left" in attention[(second, "delivery_attempted")]["reason"]
    # The default of 24 hours is a setting.
    relaxed = run_fulfil("status", "--json", env={**fulfil_env, "FULFIL_TRACKING_NO_SCAN_HOURS": "48"})
    problems = {(r["order_id"], r["problem"]) for r in json_lines(relaxed.stdout) if r["type"] == "attention"}
    assert (first, "never_scanned") not in problems
    assert (second, "delivery_attempted") in problems


@pytest.mark.parametrize(
    ("faults", "said"),
    [({"garbage_rate": 1.0}, "unusable tracking answer"), ({"error_rate": 1.0}, "tracking PIN")],
    ids=["garbage answer", "5xx"],
)
def test_a_bad_answer_fails_that_parcel_names_it_and_the_others_go_on(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any, faults: dict[str, float], said: str
) -> None:
    from fulfil.sandbox import Faults

    orders = bought(db, fulfil_env, 2)
    sandbox.set_faults("canadapost", Faults(**faults))
    result = run_fulfil("tracking", "refresh", "--json", env=fulfil_env)
    assert result.returncode == 3, result.stderr
    records = json_lines(result.stdout)
    # Every parcel was asked about: one bad answer never stops the others.
    assert sorted(record["order_id"] for record in records) == sorted(orders)
    for record in records:
        assert record["outcome"] == "failed"
        assert record["order_id"] in record["error"]
        assert record["tracking_pin"] in record["error"]
        assert said in record["error"]
    rows = db.execute(
        "SELECT consecutive_failures, last_refresh_error IS NOT NULL, next_refresh_at > now() "
        "FROM carrier_tracking"
    ).fetchall()
    assert rows == [(1, True, True)] * 2
    # Every call is on record with its answer, and every failure in the refresh log.
    unfinished = db.execute(
        "SELECT count(*) FROM api_calls WHERE endpoint = 'TrackingDetail' AND finished_at IS NULL"
    ).fetchone()
    assert unfinished == (0,)
    assert db.execute("SELECT count(*) FROM tracking_refreshes WHERE outcome = 'failed'").fetchone() == (2,)
