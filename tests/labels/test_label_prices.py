"""Labels bought without a price in their answer get it from Canada Post afterwards: a non-contract
label from its receipt, a contract label from its price document; a failure there is a warning on
the label, never a second purchase; `fulfil labels prices` fetches what is still missing, once.

Through the real command line, against PostgreSQL and the sandbox over real sockets. Where the
sandbox must answer wrongly, its Canada Post side is changed (monkeypatch on the sandbox object, as
tests/sandbox does) or a fault is scripted for the endpoint; fulfil itself runs untouched."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from fulfil.canadapost.prices import parse_price_document, parse_receipt
from fulfil.sandbox.canadapost_documents import shipment_info
from fulfil.sandbox.orders import generate_orders
from tests.conftest import run_fulfil
from tests.labels.helpers import (
    api_calls,
    assert_valid_label,
    bought_per_order,
    buy_directly,
    insert_orders,
    json_lines,
    record_request_only,
    seed_initiated,
    seed_orders,
    shipments,
)

PRICE_ENDPOINTS = ("GetShipmentPrice", "GetNCShipmentReceipt")


def non_contract(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "FULFIL_CANADAPOST_CONTRACT_ID"}


def costs_by_order(db: psycopg.Connection) -> dict[str, dict[str, Any]]:
    rows = db.execute(
        "SELECT c.order_id, c.due_amount, c.base_amount, c.pre_tax_amount, a.endpoint, a.response_body "
        "FROM label_costs c LEFT JOIN api_calls a USING (call_id) ORDER BY c.order_id"
    ).fetchall()
    return {
        row[0]: {"due": row[1], "base": row[2], "pre_tax": row[3], "endpoint": row[4], "body": row[5]}
        for row in rows
    }


def price_calls(db: psycopg.Connection) -> list[dict[str, Any]]:
    return [call for call in api_calls(db) if call["endpoint"] in PRICE_ENDPOINTS]


def create(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """A label run's results, with the price warnings only: these orders' SKUs have no parcel
    profile, which each result also says (tests/labels/test_label_choice.py checks that)."""
    result = run_fulfil("labels", "create", "--json", *args, env=env)
    records = json_lines(result.stdout)
    for record in records:
        record["warnings"] = [w for w in record["warnings"] if "no parcel profile for SKU" not in w]
    return result.returncode, records, result.stderr


def prices(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = run_fulfil("labels", "prices", "--json", *args, env=env)
    return result.returncode, json_lines(result.stdout), result.stderr


def without_price(sandbox: Any) -> Callable[..., bytes]:
    """The sandbox's Create Shipment answer as Canada Post gives it without <provide-pricing-info>."""

    def answer(request: Any, shipment: Any, *, priced: bool = False) -> bytes:
        return shipment_info(shipment, sandbox.canadapost._links(request), priced=False)

    return answer


def with_unreadable_surcharge(original: Callable[..., bytes]) -> Callable[..., bytes]:
    """A price whose fuel surcharge has a code fulfil refuses: still valid against the official
    schema (an xsd:normalizedString), which the suite's sandbox checks every answer against (an
    invalid one would be its own 500), so the answer is a 200 that fulfil cannot read a price from."""

    def broken(*args: Any, **kwargs: Any) -> bytes:
        body = original(*args, **kwargs)
        return body.replace(b"<adjustment-code>FUELSC<", b"<adjustment-code>FUEL SC!<")

    return broken


def test_a_non_contract_label_gets_the_price_on_its_receipt(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    env = non_contract(fulfil_env)
    orders = seed_orders(db, 2)
    code, records, stderr = create(env)
    assert code == 0, stderr
    assert [(r["outcome"], r["warnings"]) for r in records] == [("bought", [])] * 2
    kept = costs_by_order(db)
    assert sorted(kept) == sorted(orders)
    for cost in kept.values():
        assert cost["endpoint"] == "GetNCShipmentReceipt"
        receipt = parse_receipt(cost["body"])
        assert (cost["due"], cost["base"], cost["pre_tax"]) == (receipt.due, receipt.base, receipt.pre_tax)
        assert cost["due"] > cost["base"] > 0
    # One receipt per label, asked for at the configured host, in the non-contract media type.
    calls = price_calls(db)
    assert len(calls) == 2
    assert all(call["url"].startswith(env["FULFIL_CANADAPOST_BASE_URL"] + "/rs/") for call in calls)
    assert all(call["url"].endswith("/receipt") for call in calls)


def test_a_contract_answer_without_a_price_has_its_price_document_fetched(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox.canadapost, "_shipment_info", without_price(sandbox))
    [order_id] = seed_orders(db, 1)
    code, records, stderr = create(fulfil_env)
    assert code == 0, stderr
    assert [(r["outcome"], r["warnings"]) for r in records] == [("bought", [])]
    cost = costs_by_order(db)[order_id]
    assert cost["endpoint"] == "GetShipmentPrice"
    assert cost["due"] == parse_price_document(cost["body"]).due > 0
    assert price_calls(db)[0]["url"].endswith(f"/shipment/{shipments(db)[order_id]['cp_shipment_id']}/price")


def test_a_contract_answer_with_its_price_asks_nothing_more(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    seed_orders(db, 2)
    assert create(fulfil_env)[0] == 0
    assert {cost["endpoint"] for cost in costs_by_order(db).values()} == {"CreateShipment"}
    assert price_calls(db) == []


def test_an_unreadable_price_is_a_warning_and_labels_prices_fills_it_in_later(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The answer's <shipment-price> is broken, and so is the price document fetched instead.
    canadapost = sandbox.canadapost
    monkeypatch.setattr(canadapost, "_shipment_info", with_unreadable_surcharge(canadapost._shipment_info))
    monkeypatch.setattr(canadapost, "_shipment_price", with_unreadable_surcharge(canadapost._shipment_price))
    [order_id] = seed_orders(db, 1)

    code, records, stderr = create(fulfil_env)

    assert code == 0, stderr  # a warning: the label is bought and recorded all the same
    [record] = records
    assert (record["outcome"], record["status"]) == ("bought", "label_created")
    [warning] = record["warnings"]
    assert warning.startswith(f"order {order_id}: ")
    assert "price in Canada Post's answer could not be read" in warning
    assert "price document (Get Shipment Price) could not be fetched" in warning
    assert warning.count("<adjustment-code>") == 2
    assert "`fulfil labels prices`" in warning
    assert_valid_label(shipments(db)[order_id])
    assert costs_by_order(db) == {}
    assert bought_per_order(sandbox) == {order_id: 1}

    # Until Canada Post's document can be read, `labels prices` says so, and exits 3.
    code, records, stderr = prices(fulfil_env)
    assert code == 3
    [failed] = records
    assert (failed["order_id"], failed["outcome"], failed["document"]) == (order_id, "failed", "price")
    assert "<adjustment-code>" in failed["error"]
    assert failed["error"].startswith(f"order {order_id}: ")

    monkeypatch.undo()  # the sandbox behaves again
    code, records, stderr = prices(fulfil_env)
    assert code == 0, stderr
    [priced] = records
    cost = costs_by_order(db)[order_id]
    assert (priced["outcome"], Decimal(priced["due"])) == ("priced", cost["due"])
    assert cost["endpoint"] == "GetShipmentPrice"
    assert bought_per_order(sandbox) == {order_id: 1}


def test_garbage_for_the_price_document_leaves_the_label_recorded_and_its_price_unknown(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox.canadapost, "_shipment_info", without_price(sandbox))
    sandbox.script_faults("canadapost", "GetShipmentPrice", ["garbage"])
    [order_id] = seed_orders(db, 1)

    code, records, stderr = create(fulfil_env)

    assert code == 0, stderr
    [warning] = records[0]["warnings"]
    assert warning.startswith(
        f"order {order_id}: its price document (Get Shipment Price) could not be fetched"
    )
    assert "not usable XML" in warning
    assert_valid_label(shipments(db)[order_id])
    assert costs_by_order(db) == {}
    report = run_fulfil("report", "costs", "--json", env=fulfil_env)
    assert json_lines(report.stdout)[-1]["unpriced_labels"] == 1
    assert "1 labels in the period have no price on record; `fulfil labels prices` fetches them" in (
        report.stderr
    )


def test_a_receipt_that_times_out_is_a_warning_and_the_label_is_kept(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    env = non_contract(fulfil_env)
    # Every attempt of the read (it is retried: reads change nothing) answers too late.
    sandbox.script_faults("canadapost", "GetNCShipmentReceipt", ["commit_then_late"] * 3)
    [order_id] = seed_orders(db, 1)

    code, records, stderr = create(env)

    assert code == 0, stderr
    [record] = records
    assert record["outcome"] == "bought"
    [warning] = record["warnings"]
    assert warning.startswith(f"order {order_id}: its receipt could not be fetched")
    assert "GetNCShipmentReceipt" in warning
    assert_valid_label(shipments(db)[order_id])
    assert costs_by_order(db) == {}
    assert len(price_calls(db)) == 3
    # Bought once, and never again: a second run buys nothing, and the price is fetched by
    # `labels prices`, not by buying.
    assert create(env)[0] == 0
    assert bought_per_order(sandbox) == {order_id: 1}
    code, records, stderr = prices(env)
    assert code == 0, stderr
    assert [r["outcome"] for r in records] == ["priced"]
    assert costs_by_order(db)[order_id]["endpoint"] == "GetNCShipmentReceipt"


def test_labels_prices_fetches_each_missing_price_once_and_the_report_sums_them(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    env = non_contract(fulfil_env)
    orders = seed_orders(db, 3)
    assert create(env)[0] == 0
    # As labels bought before fulfil kept prices leave them: bought, no price on record.
    db.execute("DELETE FROM label_costs")
    before = run_fulfil("report", "costs", "--json", env=env)
    assert json_lines(before.stdout)[-1]["unpriced_labels"] == 3
    assert "`fulfil labels prices` fetches them from Canada Post" in before.stderr

    dry = run_fulfil("labels", "prices", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    assert [(r["outcome"], r["document"]) for r in json_lines(dry.stdout)] == [("would_fetch", "receipt")] * 3
    assert costs_by_order(db) == {}
    calls_before = len(api_calls(db))

    code, records, stderr = prices(env)
    assert code == 0, stderr
    assert sorted(r["order_id"] for r in records) == sorted(orders)
    assert {r["outcome"] for r in records} == {"priced"}
    assert len(api_calls(db)) == calls_before + 3
    kept = costs_by_order(db)
    assert {order_id: Decimal(r["due"]) for r in records for order_id in [r["order_id"]]} == {
        order_id: cost["due"] for order_id, cost in kept.items()
    }

    # Again: nothing is missing, nothing is asked.
    again = run_fulfil("labels", "prices", "--json", env=env)
    assert (again.returncode, again.stdout) == (0, "")
    assert len(api_calls(db)) == calls_before + 3

    report = run_fulfil("report", "costs", "--json", env=env)
    total = json_lines(report.stdout)[-1]
    assert (total["labels"], total["unpriced_labels"]) == (3, 0)
    assert Decimal(total["due"]) == sum((cost["due"] for cost in kept.values()), Decimal(0))
    assert "no price on record" not in report.stderr


def test_an_order_asked_for_says_why_it_has_no_price_to_fetch(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    priced, waiting = seed_orders(db, 2)
    assert create(fulfil_env, "--order", priced)[0] == 0
    code, records, _ = prices(fulfil_env, "--order", priced, "--order", waiting)
    assert code == 3  # an order named that cannot be priced, as for `labels create`
    by_order = {r["order_id"]: r for r in records}
    assert by_order[priced]["outcome"] == "already_priced"
    assert Decimal(by_order[priced]["due"]) == costs_by_order(db)[priced]["due"]
    assert by_order[waiting]["outcome"] == "not_eligible"
    assert by_order[waiting]["error"] == f"order {waiting} has no label"
    assert price_calls(db) == []


def test_a_contract_label_found_again_after_a_lost_answer_gets_its_price(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    request_id = "F" + "c" * 32
    [order] = generate_orders(1, seed=23)
    insert_orders(db, [order])
    seed_initiated(db, order["order_id"], request_id=request_id)
    record_request_only(db, order["order_id"], "<shipment/>")  # the process died waiting
    buy_directly(fulfil_env, order, request_id)

    code, records, stderr = create(fulfil_env)

    assert code == 0, stderr
    assert [r for r in records if r["order_id"] == order["order_id"]][-1]["outcome"] == "adopted"
    cost = costs_by_order(db)[order["order_id"]]
    assert cost["endpoint"] == "GetShipmentPrice"
    assert bought_per_order(sandbox) == {order["order_id"]: 1}


def test_a_non_contract_label_found_again_after_a_lost_answer_gets_its_receipt(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    env = non_contract(fulfil_env)
    [order_id] = seed_orders(db, 1)
    # The purchase is made, its answer lost; the run after finds it in the listing.
    sandbox.script_faults("canadapost", "CreateNCShipment", ["commit_then_drop"])
    create(env)
    code, _, stderr = create(env)
    assert code == 0, stderr
    assert bought_per_order(sandbox) == {order_id: 1}
    row = shipments(db)[order_id]
    assert row["tracking_pin"] is not None
    assert costs_by_order(db)[order_id]["endpoint"] == "GetNCShipmentReceipt"
