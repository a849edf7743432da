"""Every recovery point of the label state machine, seeded and then run (the Rocket Rides way):
assert the final state and how many labels the sandbox sold (never more than one per order)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fulfil.sandbox import Faults
from fulfil.sandbox.orders import generate_orders
from tests.conftest import run_fulfil
from tests.labels.helpers import (
    api_calls,
    assert_valid_label,
    bought_per_order,
    buy_directly,
    insert_orders,
    json_lines,
    record_answered,
    record_request_only,
    seed_initiated,
    seed_orders,
    shipments,
)

REQUEST_ID = "F" + "b" * 32


def one_order(db: psycopg.Connection, seed: int = 21) -> dict[str, Any]:
    [order] = generate_orders(1, seed=seed)
    insert_orders(db, [order])
    return order


def counts(sandbox: Any) -> dict[str, int]:
    return sandbox.state()["requests"]["counts"]


def final(records: list[dict[str, Any]], order_id: str) -> dict[str, Any]:
    return [r for r in records if r["order_id"] == order_id][-1]


def test_intent_committed_but_never_sent_is_bought_once(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order = one_order(db)
    seed_initiated(db, order["order_id"], request_id=REQUEST_ID)  # the run died before its api_calls row

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert [r["outcome"] for r in records] == ["retryable", "bought"]
    assert bought_per_order(sandbox) == {order["order_id"]: 1}
    row = shipments(db)[order["order_id"]]
    assert_valid_label(row)
    assert row["cp_request_id"] == REQUEST_ID  # the same key as the first attempt: never a new one
    assert row["attempts"] == 2


def test_answer_logged_but_not_recorded_is_adopted_from_the_audit_log(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order = one_order(db)
    seed_initiated(db, order["order_id"], request_id=REQUEST_ID)
    bought = buy_directly(fulfil_env, order, REQUEST_ID)
    record_answered(db, order["order_id"], bought["body"])

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert final(json_lines(result.stdout), order["order_id"])["outcome"] == "adopted"
    row = shipments(db)[order["order_id"]]
    assert row["tracking_pin"] == bought["tracking_pin"]
    assert row["cp_shipment_id"] == bought["shipment_id"]
    assert_valid_label(row)
    assert bought_per_order(sandbox) == {order["order_id"]: 1}
    assert "canadapost.GetShipments" not in counts(sandbox)  # the log was enough: Canada Post not asked


def test_request_sent_but_answer_lost_is_found_at_canada_post(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order = one_order(db)
    seed_initiated(db, order["order_id"], request_id=REQUEST_ID)
    record_request_only(db, order["order_id"], "<shipment/>")  # the process died waiting for the answer
    bought = buy_directly(fulfil_env, order, REQUEST_ID)

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert final(json_lines(result.stdout), order["order_id"])["outcome"] == "adopted"
    assert shipments(db)[order["order_id"]]["tracking_pin"] == bought["tracking_pin"]
    assert bought_per_order(sandbox) == {order["order_id"]: 1}
    assert counts(sandbox)["canadapost.GetShipments"] == 1


def test_non_contract_answer_lost_is_found_in_the_listing(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    fulfil_env.pop("FULFIL_CANADAPOST_CONTRACT_ID")
    orders = generate_orders(2, seed=22)
    insert_orders(db, orders)
    target = orders[0]
    seed_initiated(db, target["order_id"], cp_mode="noncontract", request_id=REQUEST_ID)
    record_request_only(db, target["order_id"], "<non-contract-shipment/>", endpoint="CreateNCShipment")
    bought = buy_directly(fulfil_env, target, REQUEST_ID)
    buy_directly(fulfil_env, orders[1], "unused")  # another order's label in the same listing

    result = run_fulfil("labels", "reconcile", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json_lines(result.stdout)] == ["adopted"]
    assert shipments(db)[target["order_id"]]["tracking_pin"] == bought["tracking_pin"]
    assert bought_per_order(sandbox) == {target["order_id"]: 1, orders[1]["order_id"]: 1}


def test_label_recorded_but_pdf_missing_is_downloaded_without_buying(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = seed_orders(db, 1)
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0
    row = shipments(db)[order_id]
    Path(row["label_pdf_path"]).unlink()
    # As a crash right after recording the purchase leaves it: bought, no file yet.
    db.execute(
        "UPDATE shipments SET label_pdf_path = NULL, label_pdf_sha256 = NULL, label_pdf_bytes = NULL "
        "WHERE order_id = %s",
        (order_id,),
    )

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json_lines(result.stdout)] == ["downloaded"]
    assert_valid_label(shipments(db)[order_id])
    assert bought_per_order(sandbox) == {order_id: 1}


def test_label_not_ready_then_ready(fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any) -> None:
    [order_id] = seed_orders(db, 1)
    sandbox.script_faults("canadapost", "GetArtifact", ["label_not_ready"])

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert_valid_label(shipments(db)[order_id])
    artifact_calls = api_calls(db, "GetArtifact")
    assert [c["status_code"] for c in artifact_calls] == [202, 200]
    assert bought_per_order(sandbox) == {order_id: 1}


def test_label_never_ready_keeps_the_purchase_and_download_fetches_it_later(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = seed_orders(db, 1)
    # Every attempt of the one fetch fails (the client's retry policy asks four times); the run does
    # not ask again and again: what waiting cures was already retried, and the next run fetches it.
    sandbox.script_faults("canadapost", "GetArtifact", ["http_500"] * 3 + ["truncate"])

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 3
    assert sandbox.state()["requests"]["counts"]["canadapost.GetArtifact"] == 4
    [record] = json_lines(result.stdout)
    assert record["outcome"] == "download_failed"
    assert "fulfil labels download" in record["error"]
    row = shipments(db)[order_id]
    assert row["status"] == "label_created"  # the purchase is kept
    assert row["label_pdf_path"] is None

    later = run_fulfil("labels", "download", "--json", env=fulfil_env)
    assert later.returncode == 0, later.stderr
    assert [r["outcome"] for r in json_lines(later.stdout)] == ["downloaded"]
    assert_valid_label(shipments(db)[order_id])
    assert shipments(db)[order_id]["last_error"] is None
    assert bought_per_order(sandbox) == {order_id: 1}


@pytest.mark.parametrize("damage", ["deleted", "corrupted"])
def test_download_replaces_a_deleted_or_corrupted_file(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, damage: str
) -> None:
    order_ids = seed_orders(db, 2)
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0
    path = Path(shipments(db)[order_ids[0]]["label_pdf_path"])
    original = path.read_bytes()
    if damage == "deleted":
        path.unlink()
    else:
        path.write_bytes(original[: len(original) // 2])

    result = run_fulfil("labels", "download", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert [r["order_id"] for r in json_lines(result.stdout)] == [order_ids[0]]  # the intact one untouched
    assert path.read_bytes() == original
    assert hashlib.sha256(original).hexdigest() == shipments(db)[order_ids[0]]["label_pdf_sha256"]
    assert bought_per_order(sandbox) == dict.fromkeys(order_ids, 1)


@pytest.mark.parametrize("contract", [True, False], ids=["contract", "non-contract"])
def test_commit_then_drop_is_adopted_not_bought_again(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, contract: bool
) -> None:
    if not contract:
        fulfil_env.pop("FULFIL_CANADAPOST_CONTRACT_ID")
    order_ids = seed_orders(db, 3)
    endpoint = "CreateShipment" if contract else "CreateNCShipment"
    sandbox.script_faults("canadapost", endpoint, ["none", "commit_then_drop"])

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    outcomes = {r["order_id"]: r["outcome"] for r in json_lines(result.stdout)}
    assert outcomes == {order_ids[0]: "bought", order_ids[1]: "adopted", order_ids[2]: "bought"}
    assert bought_per_order(sandbox) == dict.fromkeys(order_ids, 1)
    for order_id in order_ids:
        assert_valid_label(shipments(db)[order_id])
    dropped = [c for c in api_calls(db, endpoint) if c["related_id"] == order_ids[1]]
    assert [(c["failure_class"], c["status_code"]) for c in dropped] == [("indeterminate", None)]


def test_answer_arriving_after_the_timeout_is_adopted(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    sandbox.set_faults("canadapost", Faults(late_answer_s=3.0))
    sandbox.script_faults("canadapost", "CreateShipment", ["commit_then_late"])
    [order_id] = seed_orders(db, 1)

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)  # read timeout: 2 s

    assert result.returncode == 0, result.stderr
    assert [r["outcome"] for r in json_lines(result.stdout)] == ["adopted"]
    assert bought_per_order(sandbox) == {order_id: 1}


def test_unknown_outcome_with_nothing_at_canada_post_waits_then_buys_once(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = seed_orders(db, 1)
    sandbox.script_faults("canadapost", "CreateShipment", ["gateway_504"])  # refused, but who can tell

    first = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert first.returncode == 3
    [record] = json_lines(first.stdout)
    assert record["outcome"] == "unsettled"
    assert "checked again" in record["error"]
    assert shipments(db)[order_id]["status"] == "label_creation_initiated"
    assert bought_per_order(sandbox) == {}

    too_soon = run_fulfil("labels", "create", "--json", env=fulfil_env)
    # Its first run is gone, so this one looks again; still too early to conclude anything.
    assert [r["outcome"] for r in json_lines(too_soon.stdout)] == ["unsettled"]
    assert bought_per_order(sandbox) == {}

    # Later: the purchase has had its time to settle and Canada Post still has nothing. (The
    # settle window counts from the last attempt's deadline, recorded with the attempt.)
    db.execute(
        "UPDATE shipments SET purchase_started_at = purchase_started_at - interval '1 hour' "
        "WHERE order_id = %s",
        (order_id,),
    )
    db.execute(
        "UPDATE api_calls SET started_at = started_at - interval '1 hour', "
        "deadline_at = deadline_at - interval '1 hour' WHERE related_id = %s",
        (order_id,),
    )
    later = run_fulfil("labels", "create", "--json", env=fulfil_env)
    assert later.returncode == 0, later.stderr
    assert [r["outcome"] for r in json_lines(later.stdout)] == ["retryable", "bought"]
    assert bought_per_order(sandbox) == {order_id: 1}


def test_two_labels_under_one_request_id_need_review(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order = one_order(db)
    seed_initiated(db, order["order_id"], request_id=REQUEST_ID)
    record_request_only(db, order["order_id"], "<shipment/>")
    first = buy_directly(fulfil_env, order, REQUEST_ID)
    second = buy_directly(fulfil_env, order, REQUEST_ID)

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 3
    [record] = json_lines(result.stdout)
    assert record["outcome"] == "needs_review"
    assert first["shipment_id"] in record["error"]
    assert second["shipment_id"] in record["error"]
    assert shipments(db)[order["order_id"]]["status"] == "needs_review"

    for args in (["labels", "retry"], ["labels", "retry", "--not-bought"]):
        refused = run_fulfil(*args, order["order_id"], env=fulfil_env)
        assert refused.returncode == 3
        assert "fulfil labels keep" in refused.stderr  # never re-bought: both were paid for
        assert shipments(db)[order["order_id"]]["status"] == "needs_review"
    assert bought_per_order(sandbox) == {order["order_id"]: 2}  # fulfil bought none of them

    # The seller voids one at Canada Post and tells fulfil which one is kept.
    kept = run_fulfil("labels", "keep", order["order_id"], second["shipment_id"], env=fulfil_env)
    assert kept.returncode == 0, kept.stderr
    row = shipments(db)[order["order_id"]]
    assert row["status"] == "label_created"
    assert row["tracking_pin"] == second["tracking_pin"]
    download = run_fulfil("labels", "download", "--json", env=fulfil_env)
    assert download.returncode == 0, download.stderr
    assert_valid_label(shipments(db)[order["order_id"]])
    open_surplus = db.execute("SELECT count(*) FROM surplus_labels WHERE resolved_at IS NULL").fetchone()
    assert open_surplus == (0,)
    status = run_fulfil("status", "--json", env=fulfil_env)
    problems = {r["problem"] for r in json_lines(status.stdout) if r.get("order_id") == order["order_id"]}
    assert not problems & {"needs_review", "surplus_label"}


def test_purchase_left_by_the_older_scripts_goes_to_review(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order = one_order(db)
    seed_initiated(db, order["order_id"], cp_mode=None, request_id=None, lease_owner=None)  # type: ignore[arg-type]

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 3
    [record] = json_lines(result.stdout)
    assert record["outcome"] == "needs_review"
    assert "earlier tool" in record["error"]
    assert bought_per_order(sandbox) == {}

    confirmed = run_fulfil("labels", "retry", "--not-bought", order["order_id"], env=fulfil_env)
    assert confirmed.returncode == 0, confirmed.stderr
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0
    assert bought_per_order(sandbox) == {order["order_id"]: 1}


def test_retry_makes_a_failed_order_eligible_again(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order_id] = seed_orders(db, 1)
    fulfil_env["FULFIL_PARCEL_WEIGHT_KG"] = "45"  # over Canada Post's 30 kg: a configuration error
    broken = run_fulfil("labels", "create", env=fulfil_env)
    assert broken.returncode == 2
    assert "FULFIL_PARCEL_WEIGHT_KG" in broken.stderr
    # The setting is refused before any order is claimed (or even given a shipment).
    assert db.execute("SELECT count(*) FROM shipments").fetchone() == (0,)
    fulfil_env["FULFIL_PARCEL_WEIGHT_KG"] = "1.5"
    db.execute(
        "INSERT INTO shipments (order_id, status, cp_request_id) VALUES (%s, 'label_pending', %s)",
        (order_id, "F" + "1" * 32),
    )
    db.execute(
        "UPDATE shipments SET status = 'label_failed', last_error = 'x', "
        "failed_order_data_hash = (SELECT md5(raw_order_data::text) FROM orders WHERE order_id = %s) "
        "WHERE order_id = %s AND fulfil_shipment_move(shipment_id, 'refuse_order_data', NULL, NULL, 'x')",
        (order_id, order_id),
    )
    assert (
        run_fulfil("labels", "create", "--json", env=fulfil_env).stdout == ""
    )  # unchanged data: not retried

    retried = run_fulfil("labels", "retry", order_id, "--format", "tsv", env=fulfil_env)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.splitlines() == ["order_id\toutcome", f"{order_id}\tretryable"]
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0
    assert bought_per_order(sandbox) == {order_id: 1}
