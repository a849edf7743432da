"""`fulfil orders show`: one order's whole story, from the database: after the real pipeline ran
against the sandbox, for a shipment in every state, for an order with no shipment, for one fulfil
does not have, and with hostile text in the order's JSON."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from fulfil.sandbox.orders import generate_orders
from fulfil.shipments.states import STATE_INFO, STATES, ShipmentState
from tests.conftest import run_fulfil
from tests.labels.helpers import insert_orders, json_lines, seed_orders


def story(env: dict[str, str], order_id: str) -> dict[str, Any]:
    result = run_fulfil("orders", "show", order_id, "--json", env=env)
    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    return record


def test_the_story_of_a_shipped_order_and_of_one_canada_post_refused(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    generated = generate_orders(3, seed=13)
    address = generated[-1]["customer"]["shipping_address"]
    address["zip_code"] = address["zip_code"][:5]  # not a Canadian postal code
    orders = insert_orders(db, generated)
    sandbox.add_orders(generated)  # Best Buy has them too, for the push
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 3  # the problem address
    assert run_fulfil("tracking", "push", env=fulfil_env).returncode == 0
    assert run_fulfil("tracking", "refresh", env=fulfil_env).returncode == 0
    statuses = dict(db.execute("SELECT order_id, status FROM shipments").fetchall())
    shipped = next(order for order in orders if statuses[order] == "tracking_updated")
    failed = next(order for order in orders if statuses[order] == "label_failed")

    told = story(fulfil_env, shipped)
    assert told["order"]["order_id"] == shipped
    assert told["order"]["best_buy_state"] == "SHIPPING"
    assert told["order"]["buyer"]
    assert told["order"]["shipping_address"]["zip_code"]
    assert told["order"]["lines"]
    assert told["shipment"]["status"] == "tracking_updated"
    assert [(e["from"], e["to"]) for e in told["history"]] == [
        (None, "label_pending"),
        ("label_pending", "label_creation_initiated"),
        ("label_creation_initiated", "label_created"),
        ("label_created", "tracking_sent"),
        ("tracking_sent", "tracking_updated"),
    ]
    endpoints = [call["endpoint"] for call in told["calls"]]
    assert endpoints[:2] == ["CreateShipment", "GetArtifact"]
    assert {"OR23", "OR24", "TrackingDetail"} <= set(endpoints)
    assert all(call["outcome"] == "ok" for call in told["calls"])
    ids = {row[0] for row in db.execute("SELECT call_id FROM api_calls WHERE related_id = %s", (shipped,))}
    assert {call["call_id"] for call in told["calls"]} == ids
    assert told["tracking"]["carrier_status"] == "pre_transit"
    assert told["next_step"] == "nothing"

    refused = story(fulfil_env, failed)
    assert refused["shipment"]["status"] == "label_failed"
    assert "customer.shipping_address." in refused["shipment"]["last_error"]
    assert refused["tracking"] is None
    assert f"`fulfil labels retry {failed}`" in refused["next_step"]

    table = run_fulfil("orders", "show", shipped, env=fulfil_env)
    assert table.returncode == 0, table.stderr
    # Off a terminal, each table is its header line and tab-separated rows, a blank line between
    # tables, and no sentence among them; a person's table form has the next step too.
    for heading in ("fulfil status\tshipped", "at\tfrom\tto\tmove\treason", "\tendpoint\t"):
        assert heading in table.stdout
    assert "\n\nat\tfrom\tto\tmove\treason\n" in table.stdout
    assert "Next:" not in table.stdout
    drawn = run_fulfil("orders", "show", shipped, "--format", "table", env=fulfil_env)
    assert drawn.stdout.rstrip("\n").endswith("Next: nothing")


def columns_for(state: ShipmentState) -> dict[str, Any]:
    """What a shipment in ``state`` must have (the database's CHECKs say so)."""
    info = STATE_INFO[state]
    columns: dict[str, Any] = {}
    if info.has_label:
        columns |= {"tracking_pin": "7123456789012345", "cp_shipment_id": "912345678901234567"}
    if info.needs_reason:
        columns |= {"last_error": f"seeded in {state.value}", "last_error_code": "seeded"}
    if state is ShipmentState.LABEL_CREATION_INITIATED:
        columns |= {"cp_request_id": "fulfil-test-request", "purchase_started_at": "now"}
    if state is ShipmentState.LABEL_VOIDING:
        columns |= {"void_from_status": "order_canceled", "void_started_at": "now"}
    if state is ShipmentState.LABEL_VOIDED:
        columns |= {"voided_at": "now", "void_reason": "voided at Canada Post"}
    if state is ShipmentState.REFUND_REQUESTED:
        columns |= {"refund_requested_at": "now", "void_reason": "refund requested at Canada Post"}
    return columns


# The states whose move gives the label up, and the outcome label_history records for it.
GIVEN_UP = {ShipmentState.LABEL_VOIDED: "voided", ShipmentState.REFUND_REQUESTED: "refund_requested"}


@pytest.mark.parametrize("state", [info.state for info in STATES], ids=[info.state.value for info in STATES])
def test_an_order_in_every_shipment_state_says_where_it_is_and_what_comes_next(
    db: psycopg.Connection, fulfil_env: dict[str, str], state: ShipmentState
) -> None:
    [order_id] = insert_orders(db, generate_orders(1, seed=11))
    columns = {"order_id": order_id, "status": state.value, "cp_mode": "contract", **columns_for(state)}
    names = ", ".join(columns)
    values = ", ".join(f"%({name})s" for name in columns)
    db.execute(f"INSERT INTO shipments ({names}) VALUES ({values})", columns)  # type: ignore[arg-type]
    given_up = GIVEN_UP.get(state)
    if given_up is not None:
        # As the move into this state writes it, in the same statement: the label given up.
        db.execute(
            f"""
            INSERT INTO label_history (shipment_id, order_id, cp_mode, cp_shipment_id, tracking_pin,
                                       outcome, {given_up}_at, reason)
            SELECT shipment_id, order_id, cp_mode, cp_shipment_id, tracking_pin, %s, now(), void_reason
            FROM shipments WHERE order_id = %s
            """,  # type: ignore[arg-type]
            (given_up, order_id),
        )
    told = story(fulfil_env, order_id)
    info = STATE_INFO[state]
    next_step = info.way_out.replace("ORDER", order_id)
    assert told["shipment"]["status"] == state.value
    assert told["shipment"]["meaning"] == info.meaning
    assert told["next_step"] == next_step
    assert [event["to"] for event in told["history"]] == [state.value]
    # The label it holds is listed, as active or as given up; a state without a label lists none.
    assert [(label["tracking_pin"], label["outcome"]) for label in told["labels"]] == (
        [(columns["tracking_pin"], given_up or "active")] if info.has_label else []
    )

    # As a person reads it: the same state, its meaning and the next step, off a terminal as
    # tab-separated tables.
    shown = run_fulfil("orders", "show", order_id, env=fulfil_env)
    assert shown.returncode == 0, shown.stderr
    assert f"status\t{state.value}: {info.meaning}" in shown.stdout
    assert f"\t-\t{state.value}\t" in shown.stdout  # the history's one move
    assert "Next:" not in shown.stdout  # tables only: the next step is in --json and on a terminal
    drawn = run_fulfil("orders", "show", order_id, "--format", "table", env=fulfil_env)
    assert drawn.stdout.rstrip("\n").endswith(f"Next: {next_step}")


def test_an_accepted_order_without_a_shipment_says_labels_create_is_next(
    db: psycopg.Connection, fulfil_env: dict[str, str]
) -> None:
    [order_id] = seed_orders(db, 1)
    told = story(fulfil_env, order_id)
    assert told["shipment"] is None
    assert told["history"] == []
    assert told["calls"] == []
    assert told["next_step"] == f"`fulfil labels create --order {order_id}` buys its label"


def test_an_order_fulfil_does_not_have_is_named_and_exits_3(fulfil_env: dict[str, str]) -> None:
    result = run_fulfil("orders", "show", "NO-SUCH-ORDER", env=fulfil_env)
    assert result.returncode == 3
    assert "order NO-SUCH-ORDER is not in the orders table" in result.stderr


def test_hostile_text_in_the_order_is_shown_escaped_whatever_its_type(
    db: psycopg.Connection, fulfil_env: dict[str, str]
) -> None:
    [order] = generate_orders(1, seed=12)
    order["order_lines"][0]["product_title"] = "TV \x1b[2J\x1b]0;pwned\x07 \u202eevil"
    order["customer"]["firstname"] = {"not": "a name"}
    order["customer"]["shipping_address"]["city"] = 12345
    db.execute(
        "INSERT INTO orders (order_id, status, raw_order_data) VALUES (%s, 'accepted', %s)",
        (order["order_id"], Jsonb(order)),
    )
    told = story(fulfil_env, order["order_id"])
    title = told["order"]["lines"][0]["product"]
    assert "\x1b" not in title
    assert "\u202e" not in title
    assert title.startswith("TV \\x1b[2J")
    assert told["order"]["shipping_address"]["city"] == "12345"
    table = run_fulfil("orders", "show", order["order_id"], env=fulfil_env)
    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout
