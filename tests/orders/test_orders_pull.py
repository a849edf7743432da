"""`fulfil orders pull` against the Best Buy sandbox: paging, re-runs, the poll limit, cancellations."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.conftest import run_fulfil
from tests.orders.helpers import json_lines, orders_table


def listing_queries(sandbox: Any) -> list[dict[str, list[str]]]:
    return [
        parse_qs(urlsplit(e["path"]).query)
        for e in sandbox.request_log()
        if e["service"] == "bestbuy" and e["endpoint"] == "OR11"
    ]


def backdate_last_poll(db: psycopg.Connection, seconds: int = 61) -> None:
    db.execute(
        "UPDATE api_calls SET started_at = started_at - make_interval(secs => %s), "
        "finished_at = finished_at - make_interval(secs => %s)",
        (seconds, seconds),
    )


@pytest.mark.slow
def test_pull_pages_through_more_than_a_hundred_orders_and_twice_changes_nothing(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    shipping = sandbox.generate_orders(230, seed=41)
    sandbox.generate_orders(12, seed=42, state="WAITING_ACCEPTANCE")
    sandbox.generate_orders(5, seed=43, state="SHIPPED")

    result = run_fulfil("orders", "pull", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert sorted(r["order_id"] for r in records) == sorted(o["order_id"] for o in shipping)
    assert {(r["outcome"], r["status"], r["order_state"]) for r in records} == {
        ("new", "accepted", "SHIPPING")
    }
    pages = listing_queries(sandbox)
    assert [(q["offset"], q["max"], q["order_state_codes"]) for q in pages] == [
        (["0"], ["100"], ["SHIPPING"]),
        (["100"], ["100"], ["SHIPPING"]),
        (["200"], ["100"], ["SHIPPING"]),
    ]
    table = orders_table(db)
    assert {order_id: row["raw_order_data"] for order_id, row in table.items()} == {
        o["order_id"]: o for o in shipping
    }
    assert {row["status"] for row in table.values()} == {"accepted"}

    # Mirakl asks for at most one poll a minute: a second pull right away is refused, before any call.
    too_soon = run_fulfil("orders", "pull", "--json", env=fulfil_env)
    assert too_soon.returncode == 75
    assert too_soon.stdout == ""
    assert "at most one poll a minute" in too_soon.stderr
    # Try again later: a warning, not an error, for cron's mail.
    assert too_soon.stderr.startswith("fulfil: warning: ")
    assert "--force" in too_soon.stderr
    assert len(listing_queries(sandbox)) == 3

    again = run_fulfil("orders", "pull", "--force", "--json", env=fulfil_env)
    assert again.returncode == 0, again.stderr
    assert {r["outcome"] for r in json_lines(again.stdout)} == {"unchanged"}
    assert len(json_lines(again.stdout)) == 230
    assert orders_table(db) == table

    # A minute later, no --force needed.
    backdate_last_poll(db)
    later = run_fulfil("orders", "pull", env=fulfil_env)
    assert (later.returncode, later.stdout, later.stderr) == (0, "", "")


def test_chosen_states_are_pulled(fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any) -> None:
    waiting = sandbox.generate_orders(3, seed=44, state="WAITING_ACCEPTANCE")
    shipping = sandbox.generate_orders(2, seed=45)

    result = run_fulfil(
        "orders",
        "pull",
        "--state",
        "waiting_acceptance,SHIPPING",
        "--state",
        "SHIPPING",
        "--json",
        env=fulfil_env,
    )

    assert result.returncode == 0, result.stderr
    assert listing_queries(sandbox)[0]["order_state_codes"] == ["WAITING_ACCEPTANCE,SHIPPING"]
    statuses = {o: row["status"] for o, row in orders_table(db).items()}
    assert statuses == {
        **{o["order_id"]: "waiting_acceptance" for o in waiting},
        **{o["order_id"]: "accepted" for o in shipping},
    }


def test_an_unknown_state_is_a_usage_error(fulfil_env: dict[str, str], sandbox: Any) -> None:
    result = run_fulfil("orders", "pull", "--state", "SHIPING", env=fulfil_env)
    assert result.returncode == 2
    assert "--state SHIPING: expected Best Buy order states among STAGING" in result.stderr
    assert sandbox.request_log() == []


def test_a_cancellation_reaches_fulfil_and_no_label_is_bought_for_it(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = sandbox.generate_orders(3, seed=46)
    kept_1, cancelled, kept_2 = (o["order_id"] for o in orders)
    assert run_fulfil("orders", "pull", env=fulfil_env).returncode == 0
    # Best Buy cancels one before its label is bought: it leaves the SHIPPING listing.
    sandbox.set_order_state(cancelled, "CANCELED")
    backdate_last_poll(db)

    result = run_fulfil("orders", "pull", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    assert (
        records[cancelled]["outcome"],
        records[cancelled]["previous_status"],
        records[cancelled]["status"],
    ) == (
        "updated",
        "accepted",
        "canceled",
    )
    assert records[cancelled]["position"] == "OR11 order_ids"
    assert listing_queries(sandbox)[-1]["order_ids"] == [cancelled]
    assert orders_table(db)[cancelled]["raw_order_data"]["order_state"] == "CANCELED"

    labels = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert labels.returncode == 0, labels.stderr
    assert {r["order_id"] for r in json_lines(labels.stdout)} == {kept_1, kept_2}
    assert sandbox.labels_bought_per_order() == {kept_1: 1, kept_2: 1}
    assert db.execute("SELECT count(*) FROM shipments WHERE order_id = %s", (cancelled,)).fetchone() == (0,)


def test_an_order_cancelled_after_its_shipment_row_was_made_gets_no_label(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order] = sandbox.generate_orders(1, seed=47)
    order_id = order["order_id"]
    db.execute(
        "INSERT INTO orders (order_id, status, raw_order_data) VALUES (%s, 'canceled', %s)",
        (order_id, Jsonb(order)),
    )
    db.execute(
        "INSERT INTO shipments (order_id, status, cp_request_id) VALUES (%s, 'label_pending', %s)",
        (order_id, "F" + "b" * 32),
    )

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert sandbox.labels_bought_per_order() == {}
    assert db.execute("SELECT status FROM shipments WHERE order_id = %s", (order_id,)).fetchone() == (
        "label_pending",
    )


def test_an_accepted_order_best_buy_does_not_know_is_flagged(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    sandbox.generate_orders(1, seed=48)
    db.execute(
        "INSERT INTO orders (order_id, status, raw_order_data) VALUES ('999000111-A', 'accepted', %s)",
        (Jsonb({"order_id": "999000111-A", "order_state": "SHIPPING"}),),
    )

    result = run_fulfil("orders", "pull", "--json", env=fulfil_env)

    assert result.returncode == 3
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    assert records["999000111-A"]["outcome"] == "not_found"
    assert "FULFIL_BESTBUY_SHOP_ID" in records["999000111-A"]["reason"]
    assert "fulfil: error: not_found: OR11 order_ids: order 999000111-A is accepted here" in result.stderr
    assert orders_table(db)["999000111-A"]["status"] == "accepted"

    # Reported once: the next pulls stay quiet (cron mails it once), and `fulfil status` keeps it.
    again = run_fulfil("orders", "pull", "--force", env=fulfil_env)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    as_json = run_fulfil("orders", "pull", "--force", "--json", env=fulfil_env)
    assert {r["order_id"]: r["outcome"] for r in json_lines(as_json.stdout)}[
        "999000111-A"
    ] == "still_not_found"
    status = run_fulfil("status", "--json", env=fulfil_env)
    assert status.returncode == 3
    [item] = [r for r in json_lines(status.stdout) if r.get("problem") == "not_at_best_buy"]
    assert item["order_id"] == "999000111-A"
    assert "FULFIL_BESTBUY_SHOP_ID" in item["fix"]

    # Best Buy returns it again (its shop id was fixed): no longer missing.
    [known] = sandbox.generate_orders(1, seed=50)
    db.execute("UPDATE orders SET order_id = %s WHERE order_id = '999000111-A'", (known["order_id"],))
    db.execute(
        "UPDATE orders SET raw_order_data = jsonb_set(raw_order_data, '{order_id}', to_jsonb(order_id)) "
        "WHERE order_id = %s",
        (known["order_id"],),
    )
    assert run_fulfil("orders", "pull", "--force", env=fulfil_env).returncode == 0
    [[still]] = db.execute(
        "SELECT missing_at_best_buy_since FROM orders WHERE order_id = %s", (known["order_id"],)
    ).fetchall()
    assert still is None


def test_a_refused_key_is_one_call_and_one_message(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    sandbox.generate_orders(3, seed=49)
    fulfil_env["FULFIL_BESTBUY_API_KEY"] = "not-the-shop-key"

    result = run_fulfil("orders", "pull", env=fulfil_env)

    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("fulfil: error: Best Buy refused the API key (Best Buy HTTP 401")
    assert "not-the-shop-key" not in result.stderr
    assert len(sandbox.request_log()) == 1
    assert orders_table(db) == {}


def test_a_failing_best_buy_stops_the_pull_and_keeps_the_pages_already_read(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    sandbox.generate_orders(150, seed=50)
    # The first page arrives; the second is throttled for longer than a run should sleep.
    from fulfil.sandbox import Faults

    sandbox.set_faults("bestbuy", Faults(retry_after_s=3600))
    sandbox.script_faults("bestbuy", "OR11", ["none", "rate_limit"])

    result = run_fulfil("orders", "pull", "--json", env=fulfil_env)

    assert result.returncode == 3
    assert len(json_lines(result.stdout)) == 100
    assert "fulfil: warning: stopped early: could not read orders (OR11): Best Buy HTTP 429" in result.stderr
    assert len(orders_table(db)) == 100


def test_the_shop_id_is_sent_on_every_call_and_a_wrong_one_is_a_configuration_error(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    sandbox.generate_orders(2, seed=51)
    fulfil_env["FULFIL_BESTBUY_SHOP_ID"] = "2004"  # the sandbox shop's id

    result = run_fulfil("orders", "pull", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert len(json_lines(result.stdout)) == 2
    assert {q["shop_id"][0] for q in listing_queries(sandbox)} == {"2004"}

    fulfil_env["FULFIL_BESTBUY_SHOP_ID"] = "2005"
    wrong = run_fulfil("orders", "pull", "--force", env=fulfil_env)
    assert wrong.returncode == 2
    assert wrong.stderr.startswith(
        "fulfil: error: Best Buy refused access (Best Buy HTTP 403: You are not allowed"
    )
    assert "check FULFIL_BESTBUY_SHOP_ID" in wrong.stderr


def test_a_pull_while_another_runs_is_refused(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    sandbox.generate_orders(1, seed=52)
    db.execute("SELECT pg_advisory_lock(hashtext('fulfil orders pull'))")  # held as a running pull holds it
    try:
        refused = run_fulfil("orders", "pull", env=fulfil_env)
        forced = run_fulfil("orders", "pull", "--force", "--json", env=fulfil_env)
    finally:
        db.execute("SELECT pg_advisory_unlock(hashtext('fulfil orders pull'))")

    assert refused.returncode == 75
    assert refused.stderr.startswith("fulfil: warning: another `fulfil orders pull` is running")
    assert forced.returncode == 0, forced.stderr
    assert [r["outcome"] for r in json_lines(forced.stdout)] == ["new"]
    assert len(listing_queries(sandbox)) == 1
