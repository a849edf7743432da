"""`fulfil labels void`: every path of a void, against the sandbox over real sockets and a real
PostgreSQL (the Rocket Rides way: seed a label, run the command, assert the final state, what the
database recorded, and how many voids and refunds Canada Post saw: never one too many)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from psycopg.rows import dict_row

from fulfil.sandbox import Faults
from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from tests.conftest import run_fulfil
from tests.labels.helpers import api_calls, json_lines, seed_orders, shipments
from tests.tracking.helpers import move_as_a_run_would

REFUND_EMAIL = "shipping.desk@example.ca"
NO_LEASE = "lease_owner = NULL, lease_expires_at = NULL"
SHIPMENT_MEDIA = "application/vnd.cpc.shipment-v8+xml"


@pytest.fixture
def void_env(fulfil_env: dict[str, str]) -> dict[str, str]:
    return {**fulfil_env, "FULFIL_CANADAPOST_REFUND_EMAIL": REFUND_EMAIL}


def buy_labels(db: psycopg.Connection, env: dict[str, str], n: int = 1, seed: int = 51) -> list[str]:
    """n accepted orders with a label bought by fulfil at the sandbox (label_created, PDF on disk)."""
    order_ids = seed_orders(db, n, seed=seed)
    bought = run_fulfil("labels", "create", "--json", env=env)
    assert bought.returncode == 0, bought.stderr
    assert {shipments(db)[order_id]["status"] for order_id in order_ids} == {"label_created"}
    return order_ids


def at_canada_post(sandbox: Any, db: psycopg.Connection, order_id: str) -> Any:
    """The sandbox's own record of the order's label."""
    return sandbox.sandbox_state.shipments[shipments(db)[order_id]["cp_shipment_id"]]


def not_transmitted(sandbox: Any, db: psycopg.Connection, order_id: str) -> None:
    """Canada Post holds the label as created, not yet transmitted: it can still be voided.
    (fulfil buys with transmit-shipment, which the sandbox transmits at once: voiding those is a
    refund, so the void path needs its label held back as a group-flow label would be.)"""
    with sandbox.sandbox_state.lock:
        at_canada_post(sandbox, db, order_id).status = "created"


def cancel(db: psycopg.Connection, order_id: str) -> None:
    """The order canceled on Best Buy after its label was bought, as `tracking push` records it."""
    move_as_a_run_would(db, order_id, "record_canceled", f"last_error = 'canceled on Best Buy', {NO_LEASE}")


def counts(sandbox: Any) -> dict[str, int]:
    return dict(sandbox.state()["requests"]["counts"])


def sent(sandbox: Any, endpoint: str) -> int:
    return counts(sandbox).get(f"canadapost.{endpoint}", 0)


def moves(db: psycopg.Connection, order_id: str) -> list[str]:
    return [
        row[0]
        for row in db.execute(
            "SELECT move FROM shipment_events WHERE order_id = %s AND move IS NOT NULL ORDER BY event_id",
            (order_id,),
        )
    ]


def history(db: psycopg.Connection, order_id: str) -> list[dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM label_history WHERE order_id = %s ORDER BY label_id", (order_id,)
        ).fetchall()


def void(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = run_fulfil("labels", "void", *args, "--json", env=env)
    return result.returncode, json_lines(result.stdout), result.stderr


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ------------------------------------------------------------------------------------------------
# Void, refund, and what Canada Post's answers prove
# ------------------------------------------------------------------------------------------------


def test_a_label_not_transmitted_is_voided_and_its_pdf_kept_aside(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env)
    not_transmitted(sandbox, db, order_id)
    before = shipments(db)[order_id]
    pdf = Path(before["label_pdf_path"])
    content = pdf.read_bytes()

    code, [record], stderr = void(void_env, order_id)

    assert code == 0, stderr
    assert (record["outcome"], record["status"]) == ("voided", "label_voided")
    row = shipments(db)[order_id]
    assert row["status"] == "label_voided"
    assert row["voided_at"] is not None
    assert row["void_reason"] == "voided at Canada Post"
    assert (row["lease_owner"], row["void_from_status"]) == (None, None)
    # The PDF is kept, renamed so it is never printed by mistake.
    aside = Path(row["label_pdf_path"])
    assert aside.name == f"{pdf.stem}.{row['tracking_pin']}.voided.pdf"
    assert not pdf.exists()
    assert aside.read_bytes() == content
    assert record["label_pdf_path"] == str(aside)
    assert at_canada_post(sandbox, db, order_id).voided
    assert (sent(sandbox, "VoidShipment"), sent(sandbox, "RefundShipment")) == (1, 0)
    [call] = api_calls(db, "VoidShipment")
    assert (call["method"], call["status_code"], call["is_success"], call["related_id"]) == (
        "DELETE",
        204,
        True,
        order_id,
    )
    assert call["url"] == before["cp_self_url"]
    [label] = history(db, order_id)
    assert (label["outcome"], label["tracking_pin"], label["cp_shipment_id"]) == (
        "voided",
        row["tracking_pin"],
        row["cp_shipment_id"],
    )
    assert label["label_pdf_path"] == str(aside)
    assert label["voided_at"] is not None
    assert moves(db, order_id)[-2:] == ["start_void", "record_voided"]

    # Asked again: nothing to do, nothing sent.
    again, [record], _ = void(void_env, order_id)
    assert again == 0
    assert (record["outcome"], record["status"]) == ("skipped", "label_voided")
    assert "voided already" in record["reason"]
    assert sent(sandbox, "VoidShipment") == 1


def test_a_transmitted_label_gets_a_refund_request_with_its_service_ticket(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env)
    cancel(db, order_id)

    code, [record], stderr = void(void_env, order_id)

    assert code == 0, stderr
    assert (record["outcome"], record["status"]) == ("refund_requested", "refund_requested")
    ticket_id, ticket_date = at_canada_post(sandbox, db, order_id).refund_ticket
    row = shipments(db)[order_id]
    assert (row["refund_ticket_id"], str(row["refund_ticket_date"])) == (ticket_id, ticket_date)
    assert row["refund_requested_at"] is not None
    assert ticket_id in row["void_reason"]
    assert ticket_id in record["reason"]
    assert row["label_pdf_path"].endswith(".voided.pdf")
    # The void was refused (8064: transmitted), then the refund asked for, once; its body passed the
    # official XSD (the sandbox checks every body) and carries the seller's address.
    [voided] = api_calls(db, "VoidShipment")
    assert (voided["status_code"], voided["failure_class"]) == (400, "definitive")
    assert "8064" in voided["response_body"]
    [refund] = api_calls(db, "RefundShipment")
    assert (refund["method"], refund["status_code"], refund["is_success"]) == ("POST", 200, True)
    assert refund["url"] == f"{row['cp_self_url']}/refund"
    assert REFUND_EMAIL in refund["request_payload"]
    [label] = history(db, order_id)
    assert (label["outcome"], label["refund_ticket_id"]) == ("refund_requested", ticket_id)
    assert moves(db, order_id)[-2:] == ["start_void", "record_refund_requested"]


def test_a_refund_requested_before_is_recorded_with_the_ticket_canada_post_shows(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env)
    row = shipments(db)[order_id]
    # Someone asked for the refund on Canada Post's side already.
    direct = requests.post(
        f"{row['cp_self_url']}/refund",
        data=(
            f'<shipment-refund-request xmlns="http://www.canadapost.ca/ws/shipment-v8"><email>{REFUND_EMAIL}'
            "</email></shipment-refund-request>"
        ),
        auth=(
            DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_USERNAME"],
            DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_PASSWORD"],
        ),
        headers={"Content-Type": SHIPMENT_MEDIA, "Accept": SHIPMENT_MEDIA},
        timeout=5,
    )
    assert direct.status_code == 200, direct.text
    ticket_id, _ = at_canada_post(sandbox, db, order_id).refund_ticket

    code, [record], stderr = void(void_env, order_id)

    assert code == 0, stderr
    assert record["outcome"] == "refund_requested"
    row = shipments(db)[order_id]
    assert row["status"] == "refund_requested"
    assert row["refund_ticket_id"] == ticket_id
    assert "already been requested" in row["void_reason"]
    assert "7292" in row["void_reason"]
    [refund] = api_calls(db, "RefundShipment")
    assert (refund["status_code"], refund["failure_class"]) == (409, "definitive")
    assert sent(sandbox, "RefundShipment") == 2  # the one by hand, and fulfil's, refused
    assert sent(sandbox, "GetShipmentDetails") == 1  # where the ticket was read


def test_a_404_for_a_label_canada_post_no_longer_has_is_voided(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env)
    sandbox.sandbox_state.void(at_canada_post(sandbox, db, order_id))  # voided on Canada Post's site

    code, [record], stderr = void(void_env, order_id)

    assert code == 0, stderr
    assert record["outcome"] == "voided"
    row = shipments(db)[order_id]
    assert row["status"] == "label_voided"
    assert row["void_reason"].startswith("Canada Post no longer has it")
    # The 404 alone proved nothing: the details and the search by PIN both found nothing.
    [call] = api_calls(db, "VoidShipment")
    assert call["status_code"] == 404
    assert (sent(sandbox, "GetShipmentDetails"), sent(sandbox, "GetShipments")) == (1, 1)
    [search] = api_calls(db, "GetShipments")
    assert f"trackingPIN={row['tracking_pin']}" in search["url"]


def test_a_404_for_a_label_canada_post_still_has_is_not_voided(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env)
    not_transmitted(sandbox, db, order_id)
    cancel(db, order_id)
    row = shipments(db)[order_id]
    # The link recorded names no shipment Canada Post has (a 404, an empty <messages/>), while the
    # label itself is still live: the case a client that takes the 404 for success gets wrong.
    wrong = row["cp_self_url"].replace(row["cp_shipment_id"], "1" * 18)
    db.execute("UPDATE shipments SET cp_self_url = %s WHERE order_id = %s", (wrong, order_id))

    code, [record], stderr = void(void_env, order_id)

    assert code == 3, stderr
    assert (record["outcome"], record["status"]) == ("not_voided", "order_canceled")
    assert "still has the label" in record["error"]
    row = shipments(db)[order_id]
    assert row["status"] == "order_canceled"  # back where the void started
    assert "still has the label" in row["last_error"]
    assert row["void_from_status"] is None
    assert row["voided_at"] is None
    assert not row["label_pdf_path"].endswith(".voided.pdf")
    assert not at_canada_post(sandbox, db, order_id).voided
    assert history(db, order_id) == []
    assert moves(db, order_id)[-2:] == ["start_void", "release_void_to_order_canceled"]
    assert sent(sandbox, "RefundShipment") == 0


# ------------------------------------------------------------------------------------------------
# Answers lost, nothing sent, a run killed: settled by reading, never sent blindly twice
# ------------------------------------------------------------------------------------------------


def test_a_void_whose_answer_is_lost_is_settled_by_reading_and_never_sent_again(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env)
    not_transmitted(sandbox, db, order_id)
    sandbox.script_faults("canadapost", "VoidShipment", ["commit_then_drop"])  # voided, answer lost

    code, [record], stderr = void(void_env, order_id)

    assert code == 0, stderr
    assert record["outcome"] == "voided"
    assert "no longer has it" in shipments(db)[order_id]["void_reason"]
    assert sent(sandbox, "VoidShipment") == 1
    [call] = api_calls(db, "VoidShipment")
    assert (call["status_code"], call["failure_class"]) == (None, "indeterminate")


def test_a_lost_answer_that_cannot_be_read_yet_waits_for_the_next_run(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env)
    not_transmitted(sandbox, db, order_id)
    sandbox.script_faults("canadapost", "VoidShipment", ["commit_then_drop"])
    sandbox.script_faults("canadapost", "GetShipmentDetails", ["http_500"] * 3)  # every read attempt

    code, [record], stderr = void(void_env, order_id)

    assert code == 3, stderr
    assert (record["outcome"], record["status"]) == ("unsettled", "label_voiding")
    row = shipments(db)[order_id]
    assert (row["status"], row["last_error_code"], row["lease_owner"]) == (
        "label_voiding",
        "void-unsettled",
        None,
    )

    code, [record], stderr = void(void_env, order_id)

    assert code == 0, stderr
    assert record["outcome"] == "voided"
    assert "left unfinished" in shipments(db)[order_id]["void_reason"]
    assert sent(sandbox, "VoidShipment") == 1


def test_a_label_another_run_holds_is_left_to_it(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env)
    # A tracking push on another host has it right now.
    db.execute(
        "UPDATE shipments SET lease_owner = 'elsewhere/1/1.00/abc/node', "
        "lease_expires_at = now() + interval '5 minutes' WHERE order_id = %s",
        (order_id,),
    )

    code, [record], stderr = void(void_env, order_id)

    assert code == 3, stderr
    assert (record["outcome"], record["status"]) == ("pending", "label_created")
    assert "another fulfil run" in record["error"]
    assert shipments(db)[order_id]["lease_owner"] == "elsewhere/1/1.00/abc/node"
    assert sent(sandbox, "VoidShipment") == 0


def test_a_void_not_performed_behind_a_gateway_error_is_sent_once_more_after_reading(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env)
    not_transmitted(sandbox, db, order_id)
    sandbox.script_faults("canadapost", "VoidShipment", ["gateway_504"])  # a 504: not performed

    code, [record], stderr = void(void_env, order_id)

    assert code == 0, stderr
    assert record["outcome"] == "voided"
    calls = api_calls(db, "VoidShipment")
    assert [(c["status_code"], c["failure_class"]) for c in calls] == [(504, "indeterminate"), (204, None)]
    # Between the two, Canada Post was read and still showed the label.
    [read] = api_calls(db, "GetShipmentDetails")
    assert calls[0]["call_id"] < read["call_id"] < calls[1]["call_id"]
    assert sent(sandbox, "VoidShipment") == 2
    assert at_canada_post(sandbox, db, order_id).voided


def test_a_refund_whose_answer_is_lost_is_found_in_the_shipment_details(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env)
    sandbox.script_faults("canadapost", "RefundShipment", ["commit_then_drop"])

    code, [record], stderr = void(void_env, order_id)

    assert code == 0, stderr
    assert record["outcome"] == "refund_requested"
    ticket_id, _ = at_canada_post(sandbox, db, order_id).refund_ticket
    row = shipments(db)[order_id]
    assert row["refund_ticket_id"] == ticket_id
    assert "its details show the request" in row["void_reason"]
    assert sent(sandbox, "RefundShipment") == 1  # never asked twice


def test_a_void_that_reached_nothing_goes_back_where_it_was(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env)
    cancel(db, order_id)
    row = shipments(db)[order_id]
    # Canada Post cannot be reached (nothing listens there): every attempt fails before its first byte.
    port = closed_port()
    down = f"http://127.0.0.1:{port}"
    link = down + row["cp_self_url"].split(str(sandbox.port), 1)[1]
    db.execute("UPDATE shipments SET cp_self_url = %s WHERE order_id = %s", (link, order_id))

    code, [record], stderr = void({**void_env, "FULFIL_CANADAPOST_BASE_URL": down}, order_id)

    assert code == 3, stderr
    assert (record["outcome"], record["status"]) == ("not_voided", "order_canceled")
    assert "stopped early" in stderr
    row = shipments(db)[order_id]
    assert (row["status"], row["last_error_code"], row["lease_owner"]) == ("order_canceled", "not-sent", None)
    assert "not performed" in row["last_error"]
    calls = api_calls(db, "VoidShipment")
    assert calls
    assert {c["failure_class"] for c in calls} == {"not_sent"}
    assert moves(db, order_id)[-2:] == ["start_void", "release_void_to_order_canceled"]

    # Once Canada Post answers again, the next run voids it (a refund: it was transmitted).
    db.execute(
        "UPDATE shipments SET cp_self_url = %s WHERE order_id = %s",
        (shipments(db)[order_id]["cp_self_url"].replace(down, sandbox.base_url), order_id),
    )
    code, [record], stderr = void(void_env, order_id)
    assert code == 0, stderr
    assert record["outcome"] == "refund_requested"


def _wait_for(predicate: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def test_a_void_killed_mid_call_is_settled_by_the_next_run(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env)
    not_transmitted(sandbox, db, order_id)
    # Canada Post takes 3 s to answer: the run is killed while it waits (the void is performed).
    sandbox.set_faults("canadapost", Faults(latency_ms=3000))
    patient = {**void_env, "FULFIL_HTTP_READ_TIMEOUT": "10"}
    process = subprocess.Popen(
        [sys.executable, "-m", "fulfil", "labels", "void", order_id, "--json"],
        env=patient,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(
            lambda: (
                db.execute(
                    "SELECT count(*) FROM api_calls WHERE endpoint = 'VoidShipment' AND finished_at IS NULL"
                ).fetchone()
                == (1,)
            ),
            "the void's api_calls row written",
        )
        # The row is written just before the request: give it time to reach Canada Post, which
        # then holds it 3 s before performing it.
        time.sleep(1.0)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    row = shipments(db)[order_id]
    assert row["status"] == "label_voiding"
    assert row["lease_owner"] is not None
    _wait_for(lambda: sent(sandbox, "VoidShipment") == 1, "Canada Post performing the void")
    sandbox.set_faults("canadapost", Faults())

    code, [record], stderr = void(void_env, order_id)

    assert code == 0, stderr
    assert record["outcome"] == "voided"
    row = shipments(db)[order_id]
    assert row["status"] == "label_voided"
    assert "left unfinished" in row["void_reason"]
    assert sent(sandbox, "VoidShipment") == 1  # settled by reading, not sent again
    assert len(api_calls(db, "VoidShipment")) == 1
    assert row["label_pdf_path"].endswith(".voided.pdf")
    assert Path(row["label_pdf_path"]).exists()


# ------------------------------------------------------------------------------------------------
# Which orders, and what is said about the others
# ------------------------------------------------------------------------------------------------


def test_canceled_voids_every_label_of_a_canceled_order_and_nothing_else(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    first, second, kept = buy_labels(db, void_env, 3)
    cancel(db, first)
    cancel(db, second)
    not_transmitted(sandbox, db, first)

    code, records, stderr = void(void_env, "--canceled")

    assert code == 0, stderr
    assert {r["order_id"]: r["outcome"] for r in records} == {first: "voided", second: "refund_requested"}
    rows = shipments(db)
    assert (rows[first]["status"], rows[second]["status"], rows[kept]["status"]) == (
        "label_voided",
        "refund_requested",
        "label_created",
    )
    assert not rows[kept]["label_pdf_path"].endswith(".voided.pdf")
    # Nothing left: a second run finds nothing to do.
    again = run_fulfil("labels", "void", "--canceled", env=void_env)
    assert again.returncode == 0
    assert again.stdout == ""


def test_orders_that_cannot_be_voided_are_named_with_the_reason_and_the_others_go_on(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    mid_push, voidable = buy_labels(db, void_env, 2)
    move_as_a_run_would(db, mid_push, "record_tracking_sent", f"tracking_sent_at = now(), {NO_LEASE}")
    [no_label] = seed_orders(db, 1, seed=77)  # accepted, no label bought yet

    code, records, stderr = void(void_env, no_label, mid_push, "NOPE-1", voidable)

    assert code == 3, stderr
    by_order = {r["order_id"]: r for r in records}
    assert [r["order_id"] for r in records] == [no_label, mid_push, "NOPE-1", voidable]
    assert by_order[voidable]["outcome"] == "refund_requested"
    assert by_order[no_label]["outcome"] == "not_eligible"
    assert "no label" in by_order[no_label]["error"]
    assert by_order[mid_push]["outcome"] == "not_eligible"
    assert "ship confirmation is next" in by_order[mid_push]["error"]
    assert "not in the orders table" in by_order["NOPE-1"]["error"]
    assert shipments(db)[mid_push]["status"] == "tracking_sent"
    assert sent(sandbox, "VoidShipment") == 1


def test_a_dry_run_says_what_it_would_do_and_sends_and_writes_nothing(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    canceled, created, mid_push = buy_labels(db, void_env, 3)
    cancel(db, canceled)
    move_as_a_run_would(db, mid_push, "record_tracking_sent", f"tracking_sent_at = now(), {NO_LEASE}")
    rows_before = shipments(db)
    calls_before = len(api_calls(db))
    events_before = db.execute("SELECT count(*) FROM shipment_events").fetchone()
    requests_before = counts(sandbox)

    code, records, stderr = void(void_env, created, mid_push, "--canceled", "--dry-run")

    assert code == 3, stderr  # the one in the middle of a push cannot be voided now
    by_order = {r["order_id"]: r for r in records}
    assert set(by_order) == {canceled, created, mid_push}
    assert by_order[created]["outcome"] == "would_void"
    assert rows_before[created]["cp_self_url"] in by_order[created]["reason"]
    assert "8064" in by_order[created]["reason"]
    assert by_order[canceled]["outcome"] == "would_void"
    assert by_order[mid_push]["outcome"] == "not_eligible"
    assert shipments(db) == rows_before
    assert len(api_calls(db)) == calls_before
    assert db.execute("SELECT count(*) FROM shipment_events").fetchone() == events_before
    assert counts(sandbox) == requests_before
    assert Path(rows_before[canceled]["label_pdf_path"]).exists()


def test_without_orders_or_canceled_the_command_says_what_it_needs(void_env: dict[str, str]) -> None:
    result = run_fulfil("labels", "void", env=void_env)
    assert result.returncode == 2
    assert "--canceled" in result.stderr


# ------------------------------------------------------------------------------------------------
# The refund e-mail, and non-contract labels
# ------------------------------------------------------------------------------------------------


def test_a_refund_needed_without_the_refund_email_stops_with_exit_2_and_changes_nothing(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    first, second = buy_labels(db, fulfil_env, 2)

    result = run_fulfil("labels", "void", first, second, "--json", env=fulfil_env)

    assert result.returncode == 2, result.stderr
    assert "FULFIL_CANADAPOST_REFUND_EMAIL" in result.stderr
    records = json_lines(result.stdout)
    assert [(r["order_id"], r["outcome"]) for r in records] == [(first, "not_voided"), (second, "pending")]
    rows = shipments(db)
    assert (rows[first]["status"], rows[second]["status"]) == ("label_created", "label_created")
    assert sent(sandbox, "RefundShipment") == 0
    assert sent(sandbox, "VoidShipment") == 1
    assert moves(db, first)[-2:] == ["start_void", "release_void_to_label_created"]


def test_a_non_contract_label_is_refunded(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    env = {k: v for k, v in void_env.items() if k != "FULFIL_CANADAPOST_CONTRACT_ID"}
    [order_id] = buy_labels(db, env)
    assert shipments(db)[order_id]["cp_mode"] == "noncontract"

    without_email = {k: v for k, v in env.items() if k != "FULFIL_CANADAPOST_REFUND_EMAIL"}
    refused = run_fulfil("labels", "void", order_id, env=without_email)
    assert refused.returncode == 2
    assert "FULFIL_CANADAPOST_REFUND_EMAIL" in refused.stderr
    assert "non-contract" in refused.stderr
    assert shipments(db)[order_id]["status"] == "label_created"

    code, [record], stderr = void(env, order_id)

    assert code == 0, stderr
    assert record["outcome"] == "refund_requested"
    assert sent(sandbox, "RefundNCShipment") == 1
    assert sent(sandbox, "VoidShipment") == 0
    ticket_id, _ = at_canada_post(sandbox, db, order_id).refund_ticket
    assert shipments(db)[order_id]["refund_ticket_id"] == ticket_id


def test_a_refund_email_canada_post_would_refuse_is_a_configuration_error(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    result = run_fulfil(
        "labels", "void", "X-1", env={**void_env, "FULFIL_CANADAPOST_REFUND_EMAIL": "desk@local"}
    )
    assert result.returncode == 2
    assert "FULFIL_CANADAPOST_REFUND_EMAIL" in result.stderr


# ------------------------------------------------------------------------------------------------
# Canada Post contradicting what fulfil recorded
# ------------------------------------------------------------------------------------------------


def test_a_shipment_read_back_with_another_pin_is_parked_for_review(
    void_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env)
    not_transmitted(sandbox, db, order_id)
    db.execute("UPDATE shipments SET tracking_pin = '7999000000000001' WHERE order_id = %s", (order_id,))
    sandbox.script_faults("canadapost", "VoidShipment", ["gateway_504"])  # unknown: read it

    code, [record], stderr = void(void_env, order_id)

    assert code == 3, stderr
    assert (record["outcome"], record["status"]) == ("needs_review", "needs_review")
    assert "7999000000000001" in record["error"]
    assert moves(db, order_id)[-1] == "park_void"
    assert sent(sandbox, "VoidShipment") == 1


# ------------------------------------------------------------------------------------------------
# The database holds the void's rules
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def labelled(db: psycopg.Connection) -> int:
    db.execute("INSERT INTO orders (order_id, status, raw_order_data) VALUES ('V-1', 'canceled', '{}')")
    row = db.execute(
        "INSERT INTO shipments (order_id, status, tracking_pin, cp_shipment_id, cp_mode, last_error) "
        "VALUES ('V-1', 'order_canceled', '1234567890123', '42', 'contract', 'canceled') "
        "RETURNING shipment_id"
    ).fetchone()
    assert row is not None
    return int(row[0])


START_VOID = (
    "UPDATE shipments SET status = 'label_voiding', void_from_status = status, void_started_at = now(), "
    "lease_owner = 'me', lease_expires_at = now() + interval '1 minute', last_error = NULL "
    "WHERE shipment_id = %(id)s AND fulfil_shipment_move(%(id)s, 'start_void', 'me', NULL, 'by the test')"
)


def test_the_database_refuses_a_void_outcome_without_its_move_or_its_columns(
    db: psycopg.Connection, labelled: int
) -> None:
    db.execute("INSERT INTO orders (order_id, status, raw_order_data) VALUES ('V-2', 'accepted', '{}')")
    db.execute("INSERT INTO shipments (order_id, status) VALUES ('V-2', 'label_pending')")
    with pytest.raises(psycopg.Error) as refused:
        db.execute("UPDATE shipments SET status = 'label_voided' WHERE order_id = 'V-2'")
    assert refused.value.sqlstate == "FS001"
    with pytest.raises(psycopg.Error) as refused:
        db.execute("UPDATE shipments SET status = 'label_voiding' WHERE shipment_id = %s", (labelled,))
    assert refused.value.sqlstate == "FS002"  # only through fulfil_shipment_move()
    # A void that does not say where it started is refused.
    with pytest.raises(psycopg.errors.CheckViolation, match="void_from_status"):
        db.execute(
            "UPDATE shipments SET status = 'label_voiding', void_started_at = now() "
            "WHERE shipment_id = %(id)s AND fulfil_shipment_move(%(id)s, 'start_void', NULL, NULL, NULL)",
            {"id": labelled},
        )
    assert db.execute(START_VOID, {"id": labelled}).rowcount == 1
    # Voided without saying when, or by a run that does not hold the lease: refused.
    with pytest.raises(psycopg.errors.CheckViolation, match="voided_at"):
        db.execute(
            "UPDATE shipments SET status = 'label_voided', void_reason = 'x', void_from_status = NULL, "
            "lease_owner = NULL, lease_expires_at = NULL WHERE shipment_id = %(id)s "
            "AND fulfil_shipment_move(%(id)s, 'record_voided', 'me', NULL, NULL)",
            {"id": labelled},
        )
    record = (
        "UPDATE shipments SET status = 'label_voided', voided_at = now(), void_reason = 'x', "
        "void_from_status = NULL, lease_owner = NULL, lease_expires_at = NULL WHERE shipment_id = %(id)s "
        "AND fulfil_shipment_move(%(id)s, 'record_voided', %(owner)s, NULL, NULL)"
    )
    assert db.execute(record, {"id": labelled, "owner": "someone-else"}).rowcount == 0
    # A void goes back only where it started.
    with pytest.raises(psycopg.errors.CheckViolation, match="goes back there"):
        db.execute(
            "UPDATE shipments SET status = 'label_created', void_from_status = NULL, last_error = 'x' "
            "WHERE shipment_id = %(id)s "
            "AND fulfil_shipment_move(%(id)s, 'release_void_to_label_created', 'me', NULL, NULL)",
            {"id": labelled},
        )
    assert db.execute(record, {"id": labelled, "owner": "me"}).rowcount == 1
    # Its outcome stays with it, and belongs to it alone.
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE shipments SET voided_at = NULL WHERE shipment_id = %s", (labelled,))
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE shipments SET refund_ticket_id = 'T1' WHERE shipment_id = %s", (labelled,))
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE shipments SET voided_at = now() WHERE order_id = 'V-2'")
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "INSERT INTO label_history (shipment_id, order_id, tracking_pin, outcome, reason) "
            "VALUES (%s, 'V-1', '1234567890123', 'voided', 'no time')",
            (labelled,),
        )


# ------------------------------------------------------------------------------------------------
# Canada Post's own samples, and the request against the official XSDs
# ------------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_the_refund_request_is_valid_against_the_official_schemas() -> None:
    from lxml import etree

    from fulfil.canadapost.refund_request import build_refund_request
    from tests.shared_reference import xsd_dir

    for contract, schema in ((True, "shipment.xsd"), (False, "ncshipment.xsd")):
        request = build_refund_request(REFUND_EMAIL, contract=contract)
        etree.XMLSchema(etree.parse(str(xsd_dir() / schema))).assertValid(etree.fromstring(request.xml))
        assert request.xml.startswith(b"<?xml")


@pytest.mark.unit
def test_canada_posts_samples_read_as_the_void_reads_them() -> None:
    from datetime import date

    from fulfil.canadapost.responses import classify_error, messages_in, parse_refund_request_info
    from tests.shared_reference import canadapost_samples

    samples = canadapost_samples()
    ticket = parse_refund_request_info(
        (samples / "contract-shipment-refund-response.karrio.xml").read_bytes()
    )
    assert (ticket.ticket_id, ticket.ticket_date) == ("GT12345678RT", date(2015, 1, 28))
    transmitted = messages_in(
        (samples / "error-void-8064-already-transmitted.karrio-issue731.xml").read_bytes()
    )
    assert [m.code for m in transmitted or []] == ["8064"]
    repeated = messages_in(
        (samples / "error-refund-7292-already-requested.karrio-discussion756.xml").read_bytes()
    )
    assert [m.code for m in repeated or []] == ["7292"]
    empty = messages_in((samples / "error-void-empty-messages.karrio-issue682.xml").read_bytes())
    assert empty == []
    assert classify_error(404, empty).value == "not_found"  # not a success, whatever its body


_INFO = "<shipment-refund-request-info>{}</shipment-refund-request-info>"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("body", "named"),
    [
        (_INFO.format("<service-ticket-date>2015-01-28</service-ticket-date>"), "<service-ticket-id>"),
        (
            _INFO.format(
                "<service-ticket-date>28/01/2015</service-ticket-date><service-ticket-id>GT1</service-ticket-id>"
            ),
            "<service-ticket-date>",
        ),
        (
            _INFO.format(
                "<service-ticket-date>2015-01-28</service-ticket-date><service-ticket-id>../x</service-ticket-id>"
            ),
            "<service-ticket-id>",
        ),
    ],
)
def test_a_refund_answer_whose_ticket_fails_the_checks_names_the_field(body: str, named: str) -> None:
    from fulfil.canadapost.responses import ResponseFormatError, parse_refund_request_info

    with pytest.raises(ResponseFormatError, match=named):
        parse_refund_request_info(body)


def test_a_given_up_labels_parcel_is_no_longer_tracked_nor_listed_by_status(
    db: psycopg.Connection, void_env: dict[str, str], sandbox: Any
) -> None:
    voided, refunded, kept = buy_labels(db, void_env, 3)
    not_transmitted(sandbox, db, voided)
    assert void(void_env, voided, refunded)[0] == 0
    tracked = dict(
        db.execute(
            "SELECT s.order_id, t.auto_refresh FROM carrier_tracking t JOIN shipments s USING (shipment_id)"
        ).fetchall()
    )
    assert tracked == {voided: False, refunded: False, kept: True}
    # Nothing to spend group E on, and nothing to look at: a day later, status lists only the label
    # still meant to travel as never scanned.
    db.execute("UPDATE carrier_tracking SET label_created_at = now() - interval '2 days'")
    refresh = run_fulfil("tracking", "refresh", "--json", env=void_env)
    assert [record["order_id"] for record in json_lines(refresh.stdout)] == [kept]
    report = json_lines(run_fulfil("status", "--json", env=void_env).stdout)
    parcels = {
        (record["order_id"], record["problem"])
        for record in report
        if record["type"] == "attention"
        and record["problem"] in ("never_scanned", "tracking_refresh_stopped")
    }
    assert parcels == {(kept, "never_scanned")}


def test_status_names_a_void_a_stopped_run_left_unsettled(
    db: psycopg.Connection, void_env: dict[str, str], sandbox: Any
) -> None:
    [order_id] = buy_labels(db, void_env, 1)
    # As a run killed mid-void leaves it: label_voiding, its lease ended.
    move_as_a_run_would(
        db, order_id, "start_void", "void_from_status = 'label_created', void_started_at = now()"
    )
    report = run_fulfil("status", "--json", env=void_env)
    assert report.returncode == 3
    [item] = [
        r
        for r in json_lines(report.stdout)
        if r["type"] == "attention" and r["problem"] == "interrupted_void"
    ]
    assert item["order_id"] == order_id
    assert item["fix"] == f"`fulfil labels void {order_id}` settles it by reading Canada Post"
    # The fix settles it, and status has nothing more to say of it.
    assert void(void_env, order_id)[0] == 0
    again = json_lines(run_fulfil("status", "--json", env=void_env).stdout)
    assert not [r for r in again if r["type"] == "attention" and r["problem"] == "interrupted_void"]
