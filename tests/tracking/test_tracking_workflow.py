"""The tracking workflow and the Best Buy client in-process (real PostgreSQL, sandbox over sockets),
where the waits are recorded instead of slept and the batch size can be made small."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fulfil.bestbuy.client import BestBuyClient
from fulfil.config import load_settings
from fulfil.sandbox import Faults
from fulfil.services import Session, open_session
from fulfil.workflows.tracking import TrackingSettings, TrackingWorkflow
from tests.tracking.helpers import api_calls, order_requests, seed_labelled, shipments


@pytest.fixture
def session(fulfil_env: dict[str, str], database_url: str) -> Iterator[Session]:
    settings = load_settings(fulfil_env, Path.cwd())
    with open_session(database_url, settings, "tracking push") as opened:
        yield opened


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(session: Session, sleeps: list[float]) -> BestBuyClient:
    return BestBuyClient(session.settings.bestbuy(), session.bestbuy_http(), sleep=sleeps.append)


def workflow(session: Session, client: BestBuyClient, *, check_batch: int = 100) -> TrackingWorkflow:
    return TrackingWorkflow(
        database_url=session.database_url,
        settings=TrackingSettings(carrier_code="CPCL", lease_seconds=60, check_batch=check_batch),
        client=client,
        lease_owner=session.run.lease_owner,
    )


def test_refused_ships_are_settled_by_reading_orders_in_batches(
    session: Session, client: BestBuyClient, db: psycopg.Connection, sandbox: Any
) -> None:
    # Best Buy already has every order shipped: each OR24 is refused as a repeat.
    orders = seed_labelled(db, sandbox, 7, seed=31, status="tracking_sent", tracking_at_best_buy=False)
    for order in orders:
        sandbox.set_order_state(order["order_id"], "SHIPPED")

    run = workflow(session, client, check_batch=3).push()

    assert run.stopped is None
    assert run.fatal is None
    assert [r.outcome for r in run.results] == ["already_shipped"] * 7
    batches = [call["related_id"].split(",") for call in api_calls(db, endpoint="OR11")]
    assert [len(batch) for batch in batches] == [3, 3, 1]
    assert sorted(order_id for batch in batches for order_id in batch) == sorted(
        o["order_id"] for o in orders
    )
    assert {r["status"] for r in shipments(db).values()} == {"tracking_updated"}


def test_orders_are_read_a_hundred_ids_at_a_time(
    client: BestBuyClient, db: psycopg.Connection, sandbox: Any
) -> None:
    orders = sandbox.generate_orders(101, seed=33)
    wanted = [o["order_id"] for o in orders] + ["000000000-A"]

    found = client.orders_by_id(wanted)

    assert set(found) == set(wanted[:-1])
    assert found[wanted[0]]["order_state"] == "SHIPPING"
    reads = api_calls(db, endpoint="OR11")
    assert [len(call["related_id"].split(",")) for call in reads] == [100, 2]
    assert all(call["url"].count("order_ids=") == 1 for call in reads)


def test_the_account_names_the_shop_the_key_belongs_to(client: BestBuyClient, db: psycopg.Connection) -> None:
    account = client.account()
    assert (account["shop_id"], account["shop_state"]) == (2004, "OPEN")
    assert [(c["endpoint"], c["method"], c["status_code"]) for c in api_calls(db)] == [("A01", "GET", 200)]


def test_failures_that_waiting_cures_are_retried_with_growing_waits(
    session: Session, client: BestBuyClient, sleeps: list[float], db: psycopg.Connection, sandbox: Any
) -> None:
    [order] = seed_labelled(db, sandbox, 1, seed=35)
    sandbox.script_faults("bestbuy", "OR23", ["http_500", "gateway_502", "gateway_504"])

    run = workflow(session, client).push()

    assert [r.outcome for r in run.results] == ["shipped"]
    assert sleeps == [0.5, 1.0, 2.0]
    assert [c["status_code"] for c in api_calls(db, endpoint="OR23")] == [500, 502, 504, 204]
    assert order_requests(sandbox, order["order_id"])[-1] == ("OR24", 204)


def test_a_retry_after_too_long_to_sleep_through_stops_the_run(
    session: Session, client: BestBuyClient, sleeps: list[float], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = seed_labelled(db, sandbox, 2, seed=37)
    sandbox.set_faults("bestbuy", Faults(retry_after_s=600))
    sandbox.script_faults("bestbuy", "OR23", ["rate_limit"])

    run = workflow(session, client).push()

    assert sleeps == []
    assert (
        run.stopped
        == "Best Buy is throttling this API key (it asks to wait 600 s); the remaining shipments wait"
    )
    [result] = run.results
    assert (result.order_id, result.outcome, result.status) == (
        orders[0]["order_id"],
        "pending",
        "label_created",
    )
    rows = shipments(db)
    assert [(rows[o["order_id"]]["status"], rows[o["order_id"]]["lease_owner"]) for o in orders] == [
        ("label_created", None),
        ("label_created", None),
    ]
    assert rows[orders[0]["order_id"]]["last_error_code"] == "bestbuy-unavailable"
    assert len(api_calls(db)) == 1


def test_best_buy_unreachable_stops_the_run_and_claims_nothing_more(
    fulfil_env: dict[str, str], database_url: str, db: psycopg.Connection, sandbox: Any
) -> None:
    from tests.local_http import closed_port_url

    orders = seed_labelled(db, sandbox, 3, seed=39)
    settings = load_settings({**fulfil_env, "FULFIL_BESTBUY_BASE_URL": closed_port_url()}, Path.cwd())
    sleeps: list[float] = []
    with open_session(database_url, settings, "tracking push") as session:
        client = BestBuyClient(settings.bestbuy(), session.bestbuy_http(), sleep=sleeps.append)
        run = workflow(session, client).push()

    assert run.stopped is not None
    assert run.stopped.startswith("Best Buy is not answering (Best Buy no answer: connection refused")
    assert len(sleeps) == 3
    assert [c["failure_class"] for c in api_calls(db)] == ["not_sent"] * 4
    assert {r["status"] for r in shipments(db).values()} == {"label_created"}
    assert {r["lease_owner"] for r in shipments(db).values()} == {None}
    assert len(run.results) == 1
    assert run.results[0].order_id == orders[0]["order_id"]


def test_ship_answered_503_twice_then_204_is_done_after_three_attempts(
    session: Session, client: BestBuyClient, sleeps: list[float], db: psycopg.Connection, sandbox: Any
) -> None:
    [order] = seed_labelled(db, sandbox, 1, seed=41)
    sandbox.script_faults("bestbuy", "OR24", ["http_503", "http_503"])

    run = workflow(session, client).push()

    assert [r.outcome for r in run.results] == ["shipped"]
    assert sleeps == [0.5, 1.0]
    assert [c["status_code"] for c in api_calls(db, endpoint="OR24")] == [503, 503, 204]
    assert order_requests(sandbox, order["order_id"]) == [
        ("OR23", 204),
        ("OR24", 503),
        ("OR24", 503),
        ("OR24", 204),
    ]
    assert shipments(db)[order["order_id"]]["status"] == "tracking_updated"


def test_best_buy_failing_throughout_leaves_the_shipment_for_the_next_run(
    session: Session, client: BestBuyClient, sleeps: list[float], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = seed_labelled(db, sandbox, 2, seed=43)
    first = orders[0]["order_id"]
    sandbox.script_faults("bestbuy", "OR24", ["http_503"] * 4)

    run = workflow(session, client).push()

    # Four attempts, then the order is read: still SHIPPING, so nothing shipped; the run stops
    # rather than hammer a failing Best Buy with the other order.
    assert sleeps == [0.5, 1.0, 2.0]
    assert run.stopped == (
        "Best Buy did not answer the ship confirmation (OR24) clearly "
        "(Best Buy HTTP 503: Service Unavailable)"
    )
    [result] = run.results
    assert (result.order_id, result.outcome, result.status, result.order_state) == (
        first,
        "pending",
        "tracking_sent",
        "SHIPPING",
    )
    assert [c["status_code"] for c in api_calls(db, endpoint="OR24")] == [503] * 4
    assert len(api_calls(db, endpoint="OR11")) == 1
    rows = shipments(db)
    assert (rows[first]["status"], rows[first]["last_error_code"], rows[first]["lease_owner"]) == (
        "tracking_sent",
        "ship-unconfirmed",
        None,
    )
    assert rows[orders[1]["order_id"]]["status"] == "label_created"

    again = workflow(session, client).push()

    assert [r.outcome for r in again.results] == ["shipped", "shipped"]
    # The resumed shipment was not sent its tracking number again.
    assert [e for e, _ in order_requests(sandbox, first)] == ["OR23"] + ["OR24"] * 5


def test_a_refused_ship_is_failed_and_a_retry_starts_again_from_the_tracking_number(
    session: Session, client: BestBuyClient, db: psycopg.Connection, sandbox: Any
) -> None:
    # fulfil recorded tracking_sent, but Best Buy has no tracking number for the order.
    [order] = seed_labelled(db, sandbox, 1, seed=45, status="tracking_sent", tracking_at_best_buy=False)
    order_id = order["order_id"]

    run = workflow(session, client).push()

    [result] = run.results
    assert (result.outcome, result.status, result.order_state) == ("failed", "tracking_failed", "SHIPPING")
    assert result.error == (
        f"order {order_id}: the ship confirmation (OR24) was refused (Best Buy HTTP 400: Order {order_id} "
        "has no tracking information; call OR23 first); the order is SHIPPING on Best Buy"
    )
    assert shipments(db)[order_id]["last_error_code"] == "refused"

    retried = workflow(session, client).retry([order_id, "000000000-A"])

    assert [(r.order_id, r.outcome, r.status) for r in retried.results] == [
        (order_id, "retryable", "label_created"),
        ("000000000-A", "skipped", None),
    ]
    done = workflow(session, client).push()
    assert [r.outcome for r in done.results] == ["shipped"]
    assert order_requests(sandbox, order_id) == [("OR24", 400), ("OR23", 204), ("OR24", 204)]
