"""Every carrier status and its moves, end to end: labels bought through the real command line,
each parcel living one of the sandbox's tracking lives on its simulated clock, refreshed by the real
refresher over sockets, and what `fulfil status` then asks the seller to do."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from fulfil.canadapost.client import CanadaPostClient
from fulfil.carrier_tracking.refresh import Refresher
from fulfil.carrier_tracking.schedule import RefreshPolicy
from fulfil.carrier_tracking.store import CarrierTrackingStore
from fulfil.services import open_session
from tests.conftest import run_fulfil
from tests.labels.helpers import json_lines, label_settings
from tests.tracking.parcels import age_parcel, bought, detail_calls

# Each life: (simulated hours since the label, the status fulfil reads then); then the attention
# `fulfil status` gives the parcel where it ends (None: nothing to do).
LIVES: dict[str, tuple[list[tuple[float, str]], str | None]] = {
    "delivered": (
        [(1, "pre_transit"), (7, "in_transit"), (45, "out_for_delivery"), (51, "delivered")],
        None,
    ),
    "attempted": (
        [(45, "out_for_delivery"), (47, "delivery_attempted"), (61, "delivery_attempted"), (71, "delivered")],
        None,
    ),
    "exception": (
        [
            (15, "in_transit"),
            (31, "exception"),
            (55, "in_transit"),
            (69, "out_for_delivery"),
            (75, "delivered"),
        ],
        None,
    ),
    "returned": (
        [(45, "out_for_delivery"), (47, "delivery_attempted"), (51, "returned"), (71, "returned")],
        "parcel_returned",
    ),
    "never_scanned": ([(2, "pre_transit"), (30, "pre_transit"), (100, "pre_transit")], "never_scanned"),
}


# What `fulfil status` says of a parcel (besides what it says of its order, e.g. a seeded order's
# Best Buy shipping deadline).
PARCEL_PROBLEMS = {
    "parcel_returned",
    "delivery_attempted",
    "delivery_exception",
    "never_scanned",
    "past_expected_delivery",
    "tracking_refresh_stopped",
}


def parcel_problems(report_stdout: str, order_id: str) -> list[dict[str, Any]]:
    return [
        record
        for record in json_lines(report_stdout)
        if record["type"] == "attention"
        and record["order_id"] == order_id
        and record["problem"] in PARCEL_PROBLEMS
    ]


@pytest.fixture
def refresher(fulfil_env: dict[str, str], database_url: str, db: psycopg.Connection) -> Iterator[Refresher]:
    settings = label_settings(fulfil_env)
    with open_session(database_url, settings, "tracking refresh") as session:
        client = CanadaPostClient(settings.canadapost(), session.canadapost_http())
        store = CarrierTrackingStore(db, run_id=session.run.run_id, policy=RefreshPolicy())
        yield Refresher(store, client, lease_seconds=60)


def live(sandbox: Any, db: psycopg.Connection, refresher: Refresher, order_id: str, life: str) -> list[str]:
    """The statuses fulfil read at each point of the life."""
    sandbox.canadapost.set_tracking_scenario(order_id, life)
    seen, at = [], 0.0
    for hours, _ in LIVES[life][0]:
        age_parcel(sandbox, db, order_id, hours - at)
        at = hours
        [result] = refresher.refresh_due(order_ids=[order_id]).results
        seen.append(result.carrier_status.value if result.carrier_status else None)
    return seen


@pytest.mark.parametrize("life", list(LIVES))
def test_each_life_moves_through_its_statuses_and_status_says_what_to_do(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any, refresher: Refresher, life: str
) -> None:
    [order_id] = bought(db, fulfil_env, 1)
    expected, problem = LIVES[life]
    assert live(sandbox, db, refresher, order_id, life) == [status for _, status in expected]
    if expected[-1][1] == "delivered":
        # Final: never asked again, however long it waits.
        db.execute("UPDATE carrier_tracking SET next_refresh_at = now() - interval '1 day'")
        calls = detail_calls(sandbox)
        assert refresher.refresh_due().results == []
        assert detail_calls(sandbox) == calls
    if life == "never_scanned":
        # The label is as old as its life says (the attention counts from the label).
        db.execute("UPDATE carrier_tracking SET label_created_at = now() - interval '100 hours'")
    report = run_fulfil("status", "--json", env=fulfil_env)
    problems = {record["problem"] for record in parcel_problems(report.stdout, order_id)}
    assert problems == ({problem} if problem else set())


@pytest.mark.parametrize(("life", "hours", "problem"), [("attempted", 47, "delivery_attempted"),
                                                        ("exception", 31, "delivery_exception")])  # fmt: skip
def test_an_attempt_or_an_exception_is_attention_until_it_moves_on(
    db: psycopg.Connection,
    fulfil_env: dict[str, str],
    sandbox: Any,
    refresher: Refresher,
    life: str,
    hours: float,
    problem: str,
) -> None:
    [order_id] = bought(db, fulfil_env, 1)
    sandbox.canadapost.set_tracking_scenario(order_id, life)
    age_parcel(sandbox, db, order_id, hours)
    refresher.refresh_due()
    report = run_fulfil("status", "--json", env=fulfil_env)
    assert report.returncode == 3
    [item] = parcel_problems(report.stdout, order_id)
    assert item["problem"] == problem
    assert f"`fulfil tracking show {order_id}`" in item["fix"]


def test_004_before_the_first_scan_is_pre_transit_not_a_failure(
    db: psycopg.Connection, fulfil_env: dict[str, str], database_url: str
) -> None:
    from fulfil.sandbox import Sandbox, SandboxConfig

    # A sandbox whose parcels have no history at all for their first two simulated hours.
    with Sandbox(SandboxConfig(tracking_no_history_hours=2.0), host="127.0.0.1", port=0) as slow:
        env = {
            **fulfil_env,
            "FULFIL_CANADAPOST_BASE_URL": slow.base_url,
            "FULFIL_BESTBUY_BASE_URL": slow.base_url,
        }
        [order_id] = bought(db, env, 1)
        settings = label_settings(env)
        with open_session(database_url, settings, "tracking refresh") as session:
            client = CanadaPostClient(settings.canadapost(), session.canadapost_http())
            store = CarrierTrackingStore(db, run_id=session.run.run_id, policy=RefreshPolicy())
            refresher = Refresher(store, client, lease_seconds=60)
            [result] = refresher.refresh_due().results
            assert (result.outcome, result.carrier_status and result.carrier_status.value) == (
                "no_history",
                "pre_transit",
            )
            age_parcel(slow, db, order_id, 3)
            [result] = refresher.refresh_due().results
            assert result.outcome == "refreshed"
    row = db.execute("SELECT consecutive_failures, last_event_code FROM carrier_tracking").fetchone()
    assert row == (0, "3000")
