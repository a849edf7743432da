"""A replacement label after a void, against the sandbox over real sockets: bought only when the
seller names the order (`labels create --order`), under a new customer-request-id, the label given
up kept (label_history, label_costs), one active label per order, the new parcel tracked, and the
new tracking number pushed to Best Buy with one ship confirmation."""

from __future__ import annotations

from typing import Any

import psycopg

from fulfil.bestbuy.client import RETRY
from fulfil.sandbox.faults import Faults
from tests.conftest import run_fulfil
from tests.labels.helpers import json_lines, kill_when, seed_orders, shipments
from tests.tracking.helpers import order_requests

REFUND_EMAIL = "shipping.desk@example.ca"


def sent(sandbox: Any, endpoint: str) -> int:
    return int(dict(sandbox.state()["requests"]["counts"]).get(endpoint, 0))


def bought_and_given_up(
    db: psycopg.Connection, sandbox: Any, env: dict[str, str], *, shipped: bool = False
) -> tuple[str, dict[str, Any]]:
    """An order whose label was bought (and, ``shipped``, confirmed shipped on Best Buy: OR23 and
    OR24), then voided; with the shipment as it was before the void."""
    [order_id] = seed_orders(db, 1, seed=62 if shipped else 61)
    sandbox.add_orders(
        [row[0] for row in db.execute("SELECT raw_order_data FROM orders WHERE order_id = %s", (order_id,))]
    )
    assert run_fulfil("labels", "create", env=env).returncode == 0
    if shipped:
        assert run_fulfil("tracking", "push", env=env).returncode == 0
        assert shipments(db)[order_id]["status"] == "tracking_updated"
    old = shipments(db)[order_id]
    voided = run_fulfil("labels", "void", order_id, "--json", env=env)
    assert voided.returncode == 0, voided.stderr
    assert [r["outcome"] for r in json_lines(voided.stdout)] in (["voided"], ["refund_requested"])
    assert shipments(db)[order_id]["status"] in ("label_voided", "refund_requested")
    return order_id, old


def test_a_voided_order_gets_a_new_label_only_when_named_and_keeps_the_old_one(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    env = {**fulfil_env, "FULFIL_CANADAPOST_REFUND_EMAIL": REFUND_EMAIL}
    order_id, old = bought_and_given_up(db, sandbox, env)
    before = sent(sandbox, "canadapost.CreateShipment")
    # A run that is not told to: the order is still accepted, but nothing is bought for it.
    assert run_fulfil("labels", "create", env=env).returncode == 0
    assert sent(sandbox, "canadapost.CreateShipment") == before
    # Named: a new label, under a new customer-request-id.
    result = run_fulfil("labels", "create", "--order", order_id, "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert [record["outcome"] for record in json_lines(result.stdout)] == ["bought"]
    assert sent(sandbox, "canadapost.CreateShipment") == before + 1
    new = shipments(db)[order_id]
    assert new["status"] == "label_created"
    assert new["tracking_pin"] != old["tracking_pin"]
    assert new["cp_request_id"] != old["cp_request_id"]
    assert new["label_print_id"] is None
    # Nothing forgotten: the label given up, and what both cost.
    history = db.execute("SELECT tracking_pin FROM label_history WHERE order_id = %s", (order_id,)).fetchall()
    assert history == [(old["tracking_pin"],)]
    priced = {
        row[0] for row in db.execute("SELECT tracking_pin FROM label_costs WHERE order_id = %s", (order_id,))
    }
    assert priced == {old["tracking_pin"], new["tracking_pin"]}
    moves = [
        row[0]
        for row in db.execute(
            "SELECT move FROM shipment_events WHERE order_id = %s ORDER BY event_id", (order_id,)
        )
    ]
    assert "replace_label" in moves
    # The new parcel is tracked, from scratch.
    tracked = db.execute(
        "SELECT tracking_pin, auto_refresh, carrier_status, refreshed_at FROM carrier_tracking "
        "WHERE shipment_id = %s",
        (new["shipment_id"],),
    ).fetchone()
    assert tracked == (new["tracking_pin"], True, "pre_transit", None)
    # Named again: the order has its label; nothing more is bought.
    again = run_fulfil("labels", "create", "--order", order_id, "--json", env=env)
    assert sent(sandbox, "canadapost.CreateShipment") == before + 1
    assert [record["outcome"] for record in json_lines(again.stdout)] != ["bought"]


def test_the_new_tracking_number_reaches_best_buy_with_one_ship_confirmation(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    env = {**fulfil_env, "FULFIL_CANADAPOST_REFUND_EMAIL": REFUND_EMAIL}
    order_id, _ = bought_and_given_up(db, sandbox, env)
    assert run_fulfil("labels", "create", "--order", order_id, env=env).returncode == 0
    pushed = run_fulfil("tracking", "push", "--order", order_id, "--json", env=env)
    assert pushed.returncode == 0, pushed.stderr
    new_pin = shipments(db)[order_id]["tracking_pin"]
    assert sandbox.state()["bestbuy"]["orders"][order_id]["tracking_number"] == new_pin
    assert sent(sandbox, "bestbuy.OR24") == 1


def test_a_canceled_order_is_not_given_a_new_label(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    env = {**fulfil_env, "FULFIL_CANADAPOST_REFUND_EMAIL": REFUND_EMAIL}
    order_id, _ = bought_and_given_up(db, sandbox, env)
    db.execute("UPDATE orders SET status = 'canceled' WHERE order_id = %s", (order_id,))
    before = sent(sandbox, "canadapost.CreateShipment")
    run_fulfil("labels", "create", "--order", order_id, env=env)
    assert sent(sandbox, "canadapost.CreateShipment") == before
    assert shipments(db)[order_id]["status"] in ("label_voided", "refund_requested")


def test_a_shipped_order_s_replacement_gets_the_new_number_and_no_second_ship_confirmation(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    env = {**fulfil_env, "FULFIL_CANADAPOST_REFUND_EMAIL": REFUND_EMAIL}
    order_id, shipped = bought_and_given_up(db, sandbox, env, shipped=True)
    assert db.execute("SELECT status FROM orders WHERE order_id = %s", (order_id,)).fetchone() == ("shipped",)
    bought = run_fulfil("labels", "create", "--order", order_id, "--json", env=env)
    assert [record["outcome"] for record in json_lines(bought.stdout)] == ["bought"], bought.stderr
    new_pin = shipments(db)[order_id]["tracking_pin"]
    assert new_pin != shipped["tracking_pin"]
    or23, or24 = sent(sandbox, "bestbuy.OR23"), sent(sandbox, "bestbuy.OR24")

    planned = run_fulfil("tracking", "push", "--order", order_id, "--dry-run", "--json", env=env)
    [plan] = json_lines(planned.stdout)
    assert plan["planned"][0].startswith("OR23 ")
    assert new_pin in plan["planned"][0]
    assert not any(step.startswith("OR24") for step in plan["planned"])

    pushed = run_fulfil("tracking", "push", "--order", order_id, "--json", env=env)

    assert pushed.returncode == 0, pushed.stderr
    [result] = json_lines(pushed.stdout)
    assert (result["outcome"], result["status"], result["tracking_pin"]) == (
        "retracked",
        "tracking_updated",
        new_pin,
    )
    assert "does not notify the customer" in result["error"]
    assert (sent(sandbox, "bestbuy.OR23"), sent(sandbox, "bestbuy.OR24")) == (or23 + 1, or24)
    assert sandbox.state()["bestbuy"]["orders"][order_id]["tracking_number"] == new_pin
    row = shipments(db)[order_id]
    assert row["status"] == "tracking_updated"
    assert row["shipped_at"] == shipped["shipped_at"]  # the one ship confirmation's time
    moves = [r[0] for r in db.execute("SELECT move FROM shipment_events WHERE order_id = %s", (order_id,))]
    assert moves.count("record_shipped") == 1
    assert moves.count("record_retracked") == 1
    # Pushed again: nothing more is sent.
    again = run_fulfil("tracking", "push", "--order", order_id, env=env)
    assert again.returncode == 0
    assert (sent(sandbox, "bestbuy.OR23"), sent(sandbox, "bestbuy.OR24")) == (or23 + 1, or24)


def test_a_replacement_number_best_buy_refuses_is_failed_not_taken_as_shipped(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    env = {**fulfil_env, "FULFIL_CANADAPOST_REFUND_EMAIL": REFUND_EMAIL}
    order_id, shipped = bought_and_given_up(db, sandbox, env, shipped=True)
    assert run_fulfil("labels", "create", "--order", order_id, env=env).returncode == 0
    # The buyer confirmed receipt meanwhile: Best Buy takes no tracking change any more, and
    # still shows the old number (the order looks shipped, but not with the new label).
    sandbox.set_order_state(order_id, "RECEIVED")
    or24 = sent(sandbox, "bestbuy.OR24")

    pushed = run_fulfil("tracking", "push", "--order", order_id, "--json", env=env)

    assert pushed.returncode == 3
    [result] = json_lines(pushed.stdout)
    assert (result["outcome"], result["status"]) == ("failed", "tracking_failed")
    assert shipped["tracking_pin"] in result["error"]
    assert "replacement tracking number" in result["error"]
    assert sent(sandbox, "bestbuy.OR24") == or24
    assert shipments(db)[order_id]["last_error_code"] == "tracking-not-replaced"


def replaced_after_shipping(
    db: psycopg.Connection, sandbox: Any, env: dict[str, str]
) -> tuple[str, str, int]:
    """A shipped order whose label was voided and replaced: (order id, new PIN, OR24s sent so far)."""
    order_id, shipped = bought_and_given_up(db, sandbox, env, shipped=True)
    assert run_fulfil("labels", "create", "--order", order_id, env=env).returncode == 0
    new_pin = shipments(db)[order_id]["tracking_pin"]
    assert new_pin != shipped["tracking_pin"]
    return order_id, new_pin, sent(sandbox, "bestbuy.OR24")


def finished_as_retracked(
    db: psycopg.Connection, sandbox: Any, env: dict[str, str], order_id: str, pin: str
) -> None:
    """The next push finishes the replacement: the new number on Best Buy, one ship confirmation."""
    pushed = run_fulfil("tracking", "push", "--order", order_id, "--json", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert [(r["outcome"], r["status"]) for r in json_lines(pushed.stdout)] == [
        ("retracked", "tracking_updated")
    ]
    assert sandbox.state()["bestbuy"]["orders"][order_id]["tracking_number"] == pin
    moves = [r[0] for r in db.execute("SELECT move FROM shipment_events WHERE order_id = %s", (order_id,))]
    assert (moves.count("record_shipped"), moves.count("record_retracked")) == (1, 1)


def test_a_lost_answer_to_the_replacement_number_is_sent_again_and_never_ships_twice(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    env = {**fulfil_env, "FULFIL_CANADAPOST_REFUND_EMAIL": REFUND_EMAIL}
    order_id, new_pin, or24 = replaced_after_shipping(db, sandbox, env)
    # Best Buy takes the new number, then the connection drops before its 204 arrives: setting the
    # same number again is harmless, so it is sent again at once, and that answer is the one kept.
    sandbox.script_faults("bestbuy", "OR23", ["commit_then_drop"])

    finished_as_retracked(db, sandbox, env, order_id, new_pin)

    asked = order_requests(sandbox, order_id)
    assert asked[-2:] == [("OR23", None), ("OR23", 204)]
    assert sent(sandbox, "bestbuy.OR24") == or24


def test_a_replacement_number_whose_answers_stay_lost_waits_for_the_next_run(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    env = {**fulfil_env, "FULFIL_CANADAPOST_REFUND_EMAIL": REFUND_EMAIL}
    order_id, new_pin, or24 = replaced_after_shipping(db, sandbox, env)
    before = len(order_requests(sandbox, order_id))
    # Every attempt of the run is carried out and its answer lost.
    sandbox.script_faults("bestbuy", "OR23", ["commit_then_drop"] * RETRY.max_attempts)

    lost = run_fulfil("tracking", "push", "--order", order_id, "--json", env=env)

    assert lost.returncode == 3, lost.stderr
    [result] = json_lines(lost.stdout)
    assert (result["outcome"], result["status"]) == ("pending", "label_created")
    # It went out: the message must not say it was not sent.
    assert "not sent" not in result["error"]
    assert "answer is not known" in result["error"]
    assert order_requests(sandbox, order_id)[before:] == [("OR23", None)] * RETRY.max_attempts

    finished_as_retracked(db, sandbox, env, order_id, new_pin)
    assert sent(sandbox, "bestbuy.OR24") == or24


def test_a_push_killed_after_best_buy_took_the_replacement_number_is_finished_by_the_next(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    env = {**fulfil_env, "FULFIL_CANADAPOST_REFUND_EMAIL": REFUND_EMAIL}
    order_id, new_pin, or24 = replaced_after_shipping(db, sandbox, env)
    # Best Buy takes the number at once and holds its answer; the push is killed meanwhile, as a
    # crash between OR23's 204 and recording it leaves things.
    sandbox.set_faults("bestbuy", Faults(late_answer_s=20.0))
    sandbox.script_faults("bestbuy", "OR23", ["commit_then_late"])
    kill_when(
        ["tracking", "push", "--order", order_id],
        env,
        lambda: sandbox.state()["bestbuy"]["orders"][order_id]["tracking_number"] == new_pin,
        "Best Buy took the replacement number",
    )
    sandbox.set_faults("bestbuy", Faults())
    assert shipments(db)[order_id]["status"] == "label_created"

    finished_as_retracked(db, sandbox, env, order_id, new_pin)
    assert order_requests(sandbox, order_id)[-1] == ("OR23", 204)
    assert sent(sandbox, "bestbuy.OR24") == or24
