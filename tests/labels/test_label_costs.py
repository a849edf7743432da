"""What each label cost: the <shipment-price> of Canada Post's answer (the shared sample and the
sandbox's), kept with the label when it is bought through the real command line, and summed by
`fulfil report costs`, refunded labels netted out."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from fulfil.canadapost.prices import parse_shipment_price
from fulfil.canadapost.responses import ResponseFormatError
from tests.conftest import run_fulfil
from tests.labels.helpers import json_lines, seed_orders
from tests.shared_reference import canadapost_samples

SAMPLE = "contract-create-shipment-response-created.karrio.xml"


def test_the_shared_samples_price_is_read_to_the_cent() -> None:
    body = (canadapost_samples() / SAMPLE).read_bytes()
    price = parse_shipment_price(body)
    assert price is not None
    assert price.service_code == "DOM.EP"
    assert (price.base, price.pre_tax, price.hst, price.due) == (
        Decimal("25.07"),
        Decimal("27.95"),
        Decimal("3.63"),
        Decimal("31.58"),
    )
    assert [(c.code, c.amount) for c in price.options] == [("DC", Decimal("0.00"))]
    assert [(c.code, c.amount) for c in price.adjustments] == [("FUELSC", Decimal("2.88"))]
    assert price.taxes == Decimal("3.63")


def test_an_answer_without_a_price_has_none() -> None:
    body = canadapost_samples() / "contract-create-shipment-response.activeshipping-2012-v1ns.xml"
    assert parse_shipment_price(body.read_bytes()) is None


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("<due-amount>31.58</due-amount>", "<due-amount>31.589</due-amount>", "<due-amount>"),
        ("<due-amount>31.58</due-amount>", "<due-amount>-1.00</due-amount>", "<due-amount>"),
        ("<base-amount>25.07</base-amount>", "<base-amount>1e3</base-amount>", "<base-amount>"),
        ("<base-amount>25.07</base-amount>", "", "no <base-amount>"),
        (
            "<adjustment-code>FUELSC</adjustment-code>",
            "<adjustment-code>FUEL SC!</adjustment-code>",
            "<adjustment-code>",
        ),
    ],
)
def test_a_price_that_cannot_be_read_is_refused_naming_the_field(old: str, new: str, said: str) -> None:
    body = (canadapost_samples() / SAMPLE).read_text(encoding="utf-8")
    assert old in body
    with pytest.raises(ResponseFormatError, match=said.replace("[", r"\[")):
        parse_shipment_price(body.replace(old, new))


def costs(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    result = run_fulfil("report", "costs", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json_lines(result.stdout)


def test_labels_bought_keep_their_price_and_the_report_sums_them(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    orders = seed_orders(db, 3)
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0
    kept = db.execute(
        "SELECT c.order_id, c.due_amount, c.base_amount, c.call_id IS NOT NULL, "
        "c.tracking_pin = s.tracking_pin "
        "FROM label_costs c JOIN shipments s USING (shipment_id) ORDER BY c.order_id"
    ).fetchall()
    assert [row[0] for row in kept] == sorted(orders)
    assert all(row[1] > row[2] > 0 and row[3] and row[4] for row in kept)
    due = sum((row[1] for row in kept), Decimal(0))

    by_day = costs(fulfil_env)
    total = by_day[-1]
    assert total["type"] == "total"
    assert (total["labels"], Decimal(total["due"]), total["unpriced_labels"]) == (3, due, 0)
    assert sum(Decimal(line["due"]) for line in by_day[:-1]) == due
    by_service = costs(fulfil_env, "--by", "service")
    services = {row[0] for row in db.execute("SELECT service_code FROM label_costs")}
    assert {line["key"] for line in by_service[:-1]} == services
    by_province = costs(fulfil_env, "--by", "province")
    provinces = {
        row[0]
        for row in db.execute("SELECT raw_order_data #>> '{customer,shipping_address,state}' FROM orders")
    }
    assert {line["key"] for line in by_province[:-1]} == provinces

    as_csv = run_fulfil("report", "costs", "--csv", env=fulfil_env)
    table = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert table[0][:2] == ["key", "labels"]
    assert table[-1][0] == "total"
    assert Decimal(table[-1][6]) == due


def test_a_refunded_label_is_netted_out_and_its_replacement_counted(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    first, second = seed_orders(db, 2)
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0
    [refunded] = db.execute(
        "SELECT due_amount FROM label_costs WHERE order_id = %s", (first,)
    ).fetchone() or [None]
    [kept] = db.execute("SELECT due_amount FROM label_costs WHERE order_id = %s", (second,)).fetchone() or [
        None
    ]
    # Bought with <transmit-shipment> (the auto manifest): the void becomes a refund request.
    env = {**fulfil_env, "FULFIL_CANADAPOST_REFUND_EMAIL": "shipping@example.ca"}
    voided = run_fulfil("labels", "void", first, env=env)
    assert voided.returncode == 0, voided.stderr
    total = costs(fulfil_env)[-1]
    assert (total["labels"], total["refunded_labels"]) == (1, 1)
    assert (Decimal(total["due"]), Decimal(total["refunded"])) == (kept, refunded)

    # Its replacement is a label of its own; the one given up stays netted out.
    assert run_fulfil("labels", "create", "--order", first, env=env).returncode == 0
    total = costs(fulfil_env)[-1]
    assert (total["labels"], total["refunded_labels"]) == (2, 1)
    assert Decimal(total["refunded"]) == refunded


def test_labels_without_a_price_are_counted_apart(
    db: psycopg.Connection, fulfil_env: dict[str, str], sandbox: Any
) -> None:
    seed_orders(db, 2)
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0
    db.execute("DELETE FROM label_costs WHERE order_id = (SELECT min(order_id) FROM label_costs)")
    result = run_fulfil("report", "costs", "--json", env=fulfil_env)
    assert json_lines(result.stdout)[-1]["unpriced_labels"] == 1
    assert "1 labels in the period have no price on record" in result.stderr


@pytest.mark.parametrize(("option", "value"), [("--by", "week"), ("--since", "yesterday-ish")])
def test_a_bad_option_is_a_usage_error(fulfil_env: dict[str, str], option: str, value: str) -> None:
    result = run_fulfil("report", "costs", option, value, env=fulfil_env)
    assert result.returncode == 2
    assert option in result.stderr
