"""Generated Best Buy orders: deterministic, realistic, valid for Canada Post unless asked not to be."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from fulfil.sandbox import Sandbox
from fulfil.sandbox.orders import (
    CITIES,
    PROVINCES,
    address_fits_canada_post,
    generate_order_set,
    generate_orders,
)
from tests.sandbox.conftest import CanadaPost, contract_request, message_codes

# First letter of the postal code for each province (Canada Post's postal districts).
POSTAL_DISTRICTS = {
    "NL": "A", "NS": "B", "PE": "C", "NB": "E", "QC": "GHJ", "ON": "KLMNP",
    "MB": "R", "SK": "S", "AB": "T", "BC": "V", "NT": "X", "NU": "X", "YT": "Y",
}  # fmt: skip


@pytest.mark.unit
def test_same_seed_same_json_and_other_seeds_differ() -> None:
    first = json.dumps(generate_orders(25, seed=7, state="SHIPPING"), sort_keys=True)
    assert first == json.dumps(generate_orders(25, seed=7, state="SHIPPING"), sort_keys=True)
    assert first != json.dumps(generate_orders(25, seed=8, state="SHIPPING"), sort_keys=True)


@pytest.mark.unit
def test_addresses_are_realistic_and_fit_canada_post() -> None:
    orders = generate_orders(300, seed=1, state="SHIPPING")
    ids = [order["order_id"] for order in orders]
    assert len(set(ids)) == 300
    assert all(re.fullmatch(r"26\d{7}-A", order_id) for order_id in ids)
    provinces = Counter()
    for order in orders:
        address = order["customer"]["shipping_address"]
        assert address_fits_canada_post(address), address
        assert address["zip_code"][0] in POSTAL_DISTRICTS[address["state"]]
        assert re.fullmatch(r"\d{3}-555-01\d{2}", address["phone"])
        assert (address["country"], address["country_iso_code"]) == ("Canada", None)
        assert address["street_2"] is not None
        assert address["company"] is not None
        assert order["can_shop_ship"] is True
        language = order["order_lines"][0]["order_line_additional_fields"][0]["value"]
        assert language == ("FR" if order["customer"]["locale"] == "fr_CA" else "EN")
        provinces[address["state"]] += 1
    assert len(provinces) >= 9
    everything = json.dumps(orders, ensure_ascii=False)
    assert re.search(r"[éèêëàâîïôöûüçÉ]", everything)
    assert sum(order["customer"]["locale"] == "fr_CA" for order in orders) > 20
    assert any(o["customer"]["shipping_address"]["street_2"] for o in orders)
    assert any(re.match(r"\d+-\d+ ", o["customer"]["shipping_address"]["street_1"]) for o in orders)


@pytest.mark.unit
def test_city_table_uses_real_postal_districts() -> None:
    for city, province, districts, area_code in CITIES:
        assert province in PROVINCES
        for district in districts:
            assert re.fullmatch(r"[A-Z]\d[A-Z]", district)
            assert district[0] in POSTAL_DISTRICTS[province], (city, district)
        assert re.fullmatch(r"\d{3}", area_code)


@pytest.mark.unit
def test_taxes_follow_the_province() -> None:
    for order in generate_orders(200, seed=2):
        province = order["customer"]["shipping_address"]["state"]
        for line in order["order_lines"]:
            taxes = {tax["code"]: tax["amount"] for tax in line["taxes"]}
            expected = {
                code: round(line["price"] * rate + 1e-9, 2) for code, rate in PROVINCES[province].taxes
            }
            assert taxes == expected, (province, taxes)
        if province == "QC":
            assert set(taxes) == {"GST", "QST"}
        if province == "ON":
            assert taxes["HST"] == round(line["price"] * 0.13 + 1e-9, 2)


@pytest.mark.unit
def test_states_shape_the_order() -> None:
    waiting = generate_orders(5, seed=3, state="WAITING_ACCEPTANCE")
    assert all(o["customer"]["shipping_address"] is None for o in waiting)
    assert all(o["customer"]["billing_address"] is None for o in waiting)
    assert all(o["can_shop_ship"] is False for o in waiting)
    shipped = generate_orders(5, seed=3, state="SHIPPED")
    for order in shipped:
        assert order["shipping_carrier_code"] == "CPCL"
        assert re.fullmatch(r"\d{16}", order["shipping_tracking"])
        assert order["shipping_tracking_url"].endswith(order["shipping_tracking"])
        assert order["can_shop_ship"] is False
    with pytest.raises(ValueError, match="generated"):
        generate_orders(1, state="CLOSED")


@pytest.mark.unit
def test_problem_orders_are_the_last_ones_and_unshippable() -> None:
    generated = generate_order_set(9, seed=4, problems=3)
    assert [item.problem for item in generated[:6]] == [None] * 6
    assert [item.problem for item in generated[6:]] == ["line_too_long", "bad_postal_code", "missing_street"]
    for item in generated:
        address = item.order["customer"]["shipping_address"]
        assert address_fits_canada_post(address) is (item.problem is None)
    assert len(generated[6].order["customer"]["shipping_address"]["street_1"]) > 44
    with pytest.raises(ValueError, match="problems"):
        generate_orders(2, problems=3)


def test_canada_post_refuses_problem_orders_and_accepts_the_rest(
    sandbox: Sandbox, canadapost: CanadaPost
) -> None:
    orders = sandbox.generate_orders(6, seed=5, problems=3)
    verdicts = []
    for order in orders:
        address = order["customer"]["shipping_address"]
        body = contract_request(
            request_id=order["order_id"],
            reference=order["order_id"],
            name=f"{address['firstname']} {address['lastname']}",
            line_1=address["street_1"] or "",
            line_2=address["street_2"] or None,
            city=address["city"],
            province=address["state"],
            postal=address["zip_code"],
        )
        answer = canadapost.create(body)
        verdicts.append(answer.status_code)
        if answer.status_code != 200:
            assert message_codes(answer) == ["Server"]
    assert verdicts == [200, 200, 200, 400, 400, 400]
    assert sandbox.labels_bought_per_order() == {order["order_id"]: 1 for order in orders[:3]}
