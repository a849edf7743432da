"""`fulfil tracking push` end to end: the real CLI, a real PostgreSQL, the Best Buy sandbox over sockets."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from fulfil.sandbox import Faults
from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from tests.conftest import run_fulfil
from tests.tracking.helpers import (
    api_calls,
    dead_owner,
    json_lines,
    log_entries,
    move_as_a_run_would,
    order_requests,
    order_statuses,
    seed_labelled,
    send_tracking_directly,
    ship_directly,
    shipments,
)


def test_happy_path_sends_tracking_then_ship_for_each_order(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = seed_labelled(db, sandbox, 5)
    order_ids = [o["order_id"] for o in orders]
    pins = {order_id: row["tracking_pin"] for order_id, row in shipments(db).items()}

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    assert set(records) == set(order_ids)
    assert {r["outcome"] for r in records.values()} == {"shipped"}
    rows = shipments(db)
    statuses = order_statuses(db)
    best_buy = sandbox.state()["bestbuy"]["orders"]
    for order_id in order_ids:
        # Best Buy heard OR23, then OR24, once each, in that order.
        assert order_requests(sandbox, order_id) == [("OR23", 204), ("OR24", 204)]
        assert rows[order_id]["status"] == "tracking_updated"
        assert rows[order_id]["tracking_sent_at"] <= rows[order_id]["shipped_at"]
        assert rows[order_id]["lease_owner"] is None
        assert statuses[order_id] == "shipped"
        assert best_buy[order_id] == {
            "state": "SHIPPED",
            "carrier_code": "CPCL",
            "tracking_number": pins[order_id],
            "shipped": True,
        }
        calls = api_calls(db, related_id=order_id)
        assert len(calls) <= 4
        assert [(c["endpoint"], c["status_code"]) for c in calls] == [("OR23", 204), ("OR24", 204)]
        assert calls[0]["request_payload"] == {"carrier_code": "CPCL", "tracking_number": pins[order_id]}
        assert calls[0]["method"] == calls[1]["method"] == "PUT"
        assert records[order_id]["tracking_pin"] == pins[order_id]
    # The shop key never reaches the audit log.
    key = DEFAULT_CREDENTIALS["FULFIL_BESTBUY_API_KEY"]
    [dump] = db.execute("SELECT string_agg(t::text, ' ') FROM api_calls t").fetchall()
    assert "[redacted]" in dump[0]
    assert key not in dump[0]

    again = run_fulfil("tracking", "push", "--json", env=fulfil_env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    assert sandbox.state()["requests"]["counts"] == {"bestbuy.OR23": 5, "bestbuy.OR24": 5}


def test_quiet_on_success_when_not_on_a_terminal(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    seed_labelled(db, sandbox, 2)
    result = run_fulfil("tracking", "push", env=fulfil_env)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")


def test_a_run_that_died_after_tracking_was_sent_is_finished_with_one_ship(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    # Left by a process killed between OR23 and OR24: its lease has not expired, but its
    # process is gone, which this host can see at once.
    [order] = seed_labelled(db, sandbox, 1, status="tracking_sent", lease_owner=dead_owner())
    order_id = order["order_id"]
    assert order_requests(sandbox, order_id) == [("OR23", 204)]

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json_lines(result.stdout)] == ["shipped"]
    assert order_requests(sandbox, order_id) == [("OR23", 204), ("OR24", 204)]
    assert shipments(db)[order_id]["status"] == "tracking_updated"
    assert order_statuses(db)[order_id] == "shipped"


def test_a_live_lease_of_another_run_is_left_alone(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order] = seed_labelled(db, sandbox, 1, lease_owner="elsewhere/1/1/another-host", lease_left_s=600)
    result = run_fulfil("tracking", "push", "--json", "--order", order["order_id"], env=fulfil_env)
    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    assert record["outcome"] == "skipped"
    assert "another fulfil run is working on it" in record["error"]
    assert order_requests(sandbox, order["order_id"]) == []


def test_ship_refused_because_already_shipped_is_done(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    # An earlier run's OR24 went through, but its 204 was never recorded.
    [order] = seed_labelled(db, sandbox, 1, status="tracking_sent")
    order_id = order["order_id"]
    ship_directly(sandbox, order_id)

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    assert (record["outcome"], record["status"], record["order_state"]) == (
        "already_shipped",
        "tracking_updated",
        "SHIPPED",
    )
    calls = api_calls(db)
    assert [(c["endpoint"], c["status_code"]) for c in calls] == [("OR24", 400), ("OR11", 200)]
    assert calls[1]["url"].endswith(f"order_ids={order_id}&max=100")
    assert shipments(db)[order_id]["status"] == "tracking_updated"
    assert order_statuses(db)[order_id] == "shipped"


def test_a_dropped_ship_answer_is_settled_without_a_second_shipment(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order] = seed_labelled(db, sandbox, 1)
    order_id = order["order_id"]
    # Best Buy ships the order, then the connection drops before the 204 arrives.
    sandbox.script_faults("bestbuy", "OR24", ["commit_then_drop"])

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json_lines(result.stdout)] == ["already_shipped"]
    assert order_requests(sandbox, order_id) == [("OR23", 204), ("OR24", None), ("OR24", 400)]
    assert [c["endpoint"] for c in api_calls(db)] == ["OR23", "OR24", "OR24", "OR11"]
    assert shipments(db)[order_id]["status"] == "tracking_updated"


@pytest.mark.parametrize("seeded", ["label_created", "tracking_sent"])
def test_an_order_cancelled_on_best_buy_gets_its_own_state(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, seeded: str
) -> None:
    orders = seed_labelled(db, sandbox, 3, status=seeded)
    cancelled = orders[1]["order_id"]
    sandbox.set_order_state(cancelled, "CANCELED")

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert result.returncode == 3, result.stderr
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    assert records[cancelled]["outcome"] == "order_canceled"
    assert records[cancelled]["order_state"] == "CANCELED"
    row = shipments(db)[cancelled]
    assert row["status"] == "order_canceled"
    assert row["last_error"] == records[cancelled]["error"]
    assert row["tracking_pin"] in row["last_error"]
    assert "void the label" in row["last_error"]
    assert order_statuses(db)[cancelled] == "canceled"
    # The refusal was settled by reading the order, and Best Buy never got a ship for it.
    refused = "OR23" if seeded == "label_created" else "OR24"
    assert order_requests(sandbox, cancelled) == ([] if seeded == "label_created" else [("OR23", 204)]) + [
        (refused, 400)
    ]
    for other in (orders[0]["order_id"], orders[2]["order_id"]):
        assert records[other]["outcome"] == "shipped"
        assert shipments(db)[other]["status"] == "tracking_updated"

    again = run_fulfil("tracking", "push", "--json", env=fulfil_env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""


def test_rate_limited_ship_waits_retry_after_before_trying_again(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order] = seed_labelled(db, sandbox, 1)
    sandbox.script_faults("bestbuy", "OR24", ["rate_limit"])  # 429 with Retry-After: 2

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json_lines(result.stdout)] == ["shipped"]
    first, second = log_entries(sandbox, "OR24")
    assert (first["status"], second["status"]) == (429, 204)
    # Measured by the sandbox: the retry came no sooner than Retry-After allowed.
    assert second["started_at"] - first["finished_at"] >= 2.0
    calls = api_calls(db, endpoint="OR24")
    assert [(c["status_code"], c["failure_class"]) for c in calls] == [(429, "rate_limited"), (204, None)]
    assert shipments(db)[order["order_id"]]["status"] == "tracking_updated"


def test_throttled_for_longer_than_a_run_should_wait_stops_with_exit_3(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = seed_labelled(db, sandbox, 2)
    sandbox.set_faults("bestbuy", Faults(retry_after_s=900))
    sandbox.script_faults("bestbuy", "OR23", ["rate_limit"])

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert result.returncode == 3
    [record] = json_lines(result.stdout)
    assert (record["order_id"], record["outcome"], record["status"]) == (
        orders[0]["order_id"],
        "pending",
        "label_created",
    )
    assert result.stderr == (
        "fulfil: warning: stopped early: Best Buy is throttling this API key (it asks to wait 900 s); "
        "the remaining shipments wait\n"
    )
    assert [c["status_code"] for c in api_calls(db)] == [429]
    assert {(r["status"], r["lease_owner"]) for r in shipments(db).values()} == {("label_created", None)}


def test_a_refused_key_stops_the_run_with_one_call_and_one_message(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    seed_labelled(db, sandbox, 3)
    fulfil_env["FULFIL_BESTBUY_API_KEY"] = "wrong-shop-key-123"

    result = run_fulfil("tracking", "push", env=fulfil_env)

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fulfil: error: Best Buy refused the API key (Best Buy HTTP 401")
    assert "FULFIL_BESTBUY_API_KEY" in lines[0]
    assert "wrong-shop-key-123" not in result.stderr
    calls = api_calls(db)
    assert [(c["endpoint"], c["status_code"]) for c in calls] == [("OR23", 401)]
    assert "wrong-shop-key-123" not in str(calls[0])
    assert {(r["status"], r["lease_owner"]) for r in shipments(db).values()} == {("label_created", None)}


def test_no_api_key_is_a_configuration_error_before_anything_is_claimed(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    seed_labelled(db, sandbox, 1)
    del fulfil_env["FULFIL_BESTBUY_API_KEY"]
    result = run_fulfil("tracking", "push", env=fulfil_env)
    assert result.returncode == 2
    assert result.stderr == "fulfil: error: Best Buy is not configured: set FULFIL_BESTBUY_API_KEY\n"
    assert {r["lease_owner"] for r in shipments(db).values()} == {None}
    assert sandbox.request_log() == []


def test_a_refused_tracking_number_is_failed_with_best_buys_message_and_can_be_retried(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order] = seed_labelled(db, sandbox, 1)
    order_id = order["order_id"]
    fulfil_env["FULFIL_BESTBUY_CARRIER_CODE"] = "NOPE"

    result = run_fulfil("tracking", "push", "--json", env=fulfil_env)

    assert result.returncode == 3, result.stderr
    [record] = json_lines(result.stdout)
    assert (record["outcome"], record["status"], record["order_state"]) == (
        "failed",
        "tracking_failed",
        "SHIPPING",
    )
    assert "Carrier with code 'NOPE' not found" in record["error"]
    assert shipments(db)[order_id]["last_error"] == record["error"]
    assert order_requests(sandbox, order_id) == [("OR23", 400)]
    # Not tried again on its own …
    assert run_fulfil("tracking", "push", "--json", env=fulfil_env).stdout == ""

    # … but once the carrier code is fixed and the seller asks for it.
    fulfil_env["FULFIL_BESTBUY_CARRIER_CODE"] = "CPCL"
    retried = run_fulfil("tracking", "retry", order_id, "--format", "tsv", "--no-headers", env=fulfil_env)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == f"{order_id}\tlabel_created\n"
    done = run_fulfil("tracking", "push", "--json", env=fulfil_env)
    assert done.returncode == 0, done.stderr
    assert [r["outcome"] for r in json_lines(done.stdout)] == ["shipped"]


def test_order_option_limit_and_stdin(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = seed_labelled(db, sandbox, 4)
    ids = [o["order_id"] for o in orders]

    limited = run_fulfil("tracking", "push", "--json", "--limit", "1", env=fulfil_env)
    assert limited.returncode == 0, limited.stderr
    assert [r["order_id"] for r in json_lines(limited.stdout)] == [ids[0]]

    piped = run_fulfil(
        "tracking", "push", "--json", "--order", "-", env=fulfil_env, input_text=f"{ids[2]}\n{ids[3]}\n"
    )
    assert piped.returncode == 0, piped.stderr
    assert {r["order_id"]: r["outcome"] for r in json_lines(piped.stdout)} == {
        ids[2]: "shipped",
        ids[3]: "shipped",
    }

    named = run_fulfil(
        "tracking", "push", "--json", "--order", ids[0], "--order", "999999999-A", env=fulfil_env
    )
    assert named.returncode == 3
    records = {r["order_id"]: r for r in json_lines(named.stdout)}
    assert records[ids[0]]["outcome"] == "skipped"
    assert records["999999999-A"]["outcome"] == "not_pushable"
    assert "order 999999999-A is not in the orders table" in records["999999999-A"]["error"]
    assert shipments(db)[ids[1]]["status"] == "label_created"


def test_dry_run_sends_nothing_and_writes_nothing(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = seed_labelled(db, sandbox, 2)
    send_tracking_directly(sandbox, orders[1]["order_id"], "7000000000000099")
    move_as_a_run_would(db, orders[1]["order_id"], "record_tracking_sent", "tracking_sent_at = now()")
    before = shipments(db)
    env = {k: v for k, v in fulfil_env.items() if k != "FULFIL_BESTBUY_API_KEY"}

    result = run_fulfil("tracking", "push", "--dry-run", env=env)

    assert result.returncode == 0, result.stderr
    first, second = (o["order_id"] for o in orders)
    pin = before[first]["tracking_pin"]
    assert result.stdout.splitlines() == [
        f"# order {second}: tracking_sent, PIN {before[second]['tracking_pin']}",
        f"OR24 PUT /api/orders/{second}/ship",
        f"# order {first}: label_created, PIN {pin}",
        f'OR23 PUT /api/orders/{first}/tracking {{"carrier_code": "CPCL", "tracking_number": "{pin}"}}',
        f"OR24 PUT /api/orders/{first}/ship",
    ]
    assert shipments(db) == before
    assert api_calls(db) == []
    assert log_entries(sandbox, "OR24") == []
