"""Best Buy (Mirakl) endpoints over real sockets: OR11 shaped like the real Best Buy orders, the
order state machine through OR21/OR23/OR24, SH21, A01 and every error a client must handle."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from fulfil.sandbox import Sandbox, SandboxConfig
from tests.sandbox.conftest import BB_KEY, BestBuy
from tests.shared_reference import mirakl_samples

JsonShape = tuple[dict[str, set[frozenset[str]]], dict[str, set[str]]]


def shape(value: Any, path: str = "", shapes: JsonShape | None = None) -> JsonShape:
    """Per JSON path: the key sets of its objects and the JSON types of its values."""
    keys, types = shapes or (defaultdict(set), defaultdict(set))
    types[path].add("null" if value is None else type(value).__name__)
    if isinstance(value, dict):
        keys[path].add(frozenset(value))
        for key, item in value.items():
            shape(item, f"{path}.{key}", (keys, types))
    elif isinstance(value, list):
        for item in value:
            shape(item, f"{path}[]", (keys, types))
    return keys, types


def sample_shape(state: str) -> JsonShape:
    orders = json.loads((mirakl_samples() / f"bestbuy-ca.OR11-orders.{state}.redacted.json").read_text())
    keys: dict[str, set[frozenset[str]]] = defaultdict(set)
    types: dict[str, set[str]] = defaultdict(set)
    for order in orders:
        shape(order, "", (keys, types))
    return keys, types


def assert_shaped_like_real_orders(orders: list[dict[str, Any]], state: str) -> None:
    real_keys, real_types = sample_shape(state)
    problems = []
    for order in orders:
        keys, types = shape(order)
        for path, key_sets in keys.items():
            for key_set in key_sets:
                if key_set not in real_keys.get(path, set()):
                    missing = set().union(*real_keys.get(path, [set()])) - key_set
                    extra = key_set - set().union(*real_keys.get(path, [set()]))
                    problems.append(f"{path}: missing {sorted(missing)} extra {sorted(extra)}")
        for path, seen in types.items():
            if not seen <= real_types.get(path, set()):
                problems.append(
                    f"{path}: {sorted(seen)} where Best Buy has {sorted(real_types.get(path, set()))}"
                )
    assert sorted(set(problems)) == []


@pytest.fixture
def clocked_bestbuy() -> Iterator[tuple[Sandbox, list[float], BestBuy]]:
    now = [1_756_742_400.0]
    with Sandbox(SandboxConfig(debit_delay_s=480.0), clock=lambda: now[0]) as sandbox:
        client = BestBuy(sandbox.base_url)
        yield sandbox, now, client
        client.session.close()


@pytest.mark.parametrize("state", ["WAITING_ACCEPTANCE", "SHIPPING", "SHIPPED"])
def test_or11_orders_have_the_fields_and_types_of_real_best_buy_orders(
    sandbox: Sandbox, bestbuy: BestBuy, state: str
) -> None:
    sandbox.generate_orders(12, seed=3, state=state, problems=2)
    answer = bestbuy.orders(max=100)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    payload = answer.json()
    assert set(payload) == {"orders", "total_count"}
    assert payload["total_count"] == 12
    assert_shaped_like_real_orders(payload["orders"], state)


def test_orders_keep_the_real_shape_through_the_state_machine(sandbox: Sandbox, bestbuy: BestBuy) -> None:
    [order] = sandbox.generate_orders(1, seed=9, state="WAITING_ACCEPTANCE")
    order_id = order["order_id"]
    line_ids = [line["order_line_id"] for line in order["order_lines"]]
    accept = bestbuy.request(
        "PUT",
        f"/api/orders/{order_id}/accept",
        json={"order_lines": [{"accepted": True, "id": i} for i in line_ids]},
    )
    assert accept.status_code == 204
    assert_shaped_like_real_orders([bestbuy.order(order_id)], "SHIPPING")
    tracking = {"carrier_code": "CPCL", "tracking_number": "7023210039414604"}
    assert bestbuy.request("PUT", f"/api/orders/{order_id}/tracking", json=tracking).status_code == 204
    assert bestbuy.request("PUT", f"/api/orders/{order_id}/ship").status_code == 204
    shipped = bestbuy.order(order_id)
    assert_shaped_like_real_orders([shipped], "SHIPPED")


def test_authentication_is_the_raw_key(bestbuy: BestBuy) -> None:
    for header in ("", f"Bearer {BB_KEY}", BB_KEY + "x"):
        answer = bestbuy.request("GET", "/api/account", headers={"Authorization": header})
        assert answer.status_code == 401
        assert answer.json() == {"status": 401, "message": "Unauthorized"}
    assert bestbuy.request("GET", "/api/account").status_code == 200


def test_or11_filters_paging_and_limits(sandbox: Sandbox, bestbuy: BestBuy) -> None:
    shipping = sandbox.generate_orders(105, seed=4, state="SHIPPING")
    waiting = sandbox.generate_orders(3, seed=5, state="WAITING_ACCEPTANCE")
    everything = bestbuy.orders(max=1000).json()
    assert everything["total_count"] == 108
    assert len(everything["orders"]) == 100  # max is capped at 100
    assert len(bestbuy.orders().json()["orders"]) == 10  # Mirakl's default page
    created = [o["created_date"] for o in everything["orders"]]
    assert created == sorted(created)
    page = bestbuy.orders(max=2, offset=1, order_state_codes="WAITING_ACCEPTANCE").json()
    assert page["total_count"] == 3
    assert [o["order_id"] for o in page["orders"]] == sorted(
        (o["order_id"] for o in waiting),
        key=lambda i: next(w["created_date"] for w in waiting if w["order_id"] == i),
    )[1:3]
    both = bestbuy.orders(order_state_codes="SHIPPING,WAITING_ACCEPTANCE", max=100).json()
    assert both["total_count"] == 108
    chosen = [o["order_id"] for o in shipping[:3]] + ["999999999-A"]
    by_id = bestbuy.orders(order_ids=",".join(chosen)).json()
    assert sorted(o["order_id"] for o in by_id["orders"]) == sorted(chosen[:3])
    too_many = bestbuy.orders(order_ids=",".join(o["order_id"] for o in shipping[:101]))
    assert too_many.status_code == 400
    assert too_many.json()["status"] == 400
    assert "100" in too_many.json()["message"]
    assert bestbuy.orders(order_state_codes="SHIPPING,LOST").status_code == 400
    assert bestbuy.orders(max="ten").status_code == 400
    assert bestbuy.orders(shop_id=2004).status_code == 200
    assert bestbuy.orders(shop_id=9999).status_code == 403
    assert bestbuy.orders(shop_id="x").status_code == 400
    later = bestbuy.orders(start_update_date=shipping[50]["last_updated_date"], max=100).json()
    assert 0 < later["total_count"] < 108


def test_accepting_moves_through_debit_to_shipping(
    clocked_bestbuy: tuple[Sandbox, list[float], BestBuy],
) -> None:
    sandbox, now, client = clocked_bestbuy
    [order] = sandbox.generate_orders(1, seed=2, state="WAITING_ACCEPTANCE")
    order_id = order["order_id"]
    before = client.order(order_id)
    assert before["customer"]["shipping_address"] is None
    assert before["can_shop_ship"] is False
    decisions = [{"accepted": True, "id": line["order_line_id"]} for line in order["order_lines"]]
    assert (
        client.request("PUT", f"/api/orders/{order_id}/accept", json={"order_lines": decisions}).status_code
        == 204
    )
    waiting = client.order(order_id)
    assert waiting["order_state"] == "WAITING_DEBIT_PAYMENT"
    assert waiting["customer"]["shipping_address"] is None
    assert waiting["acceptance_decision_date"] is not None
    now[0] += 481
    paid = client.order(order_id)
    assert paid["order_state"] == "SHIPPING"
    assert paid["can_shop_ship"] is True
    address = paid["customer"]["shipping_address"]
    assert address["country"] == "Canada"
    assert address["country_iso_code"] is None
    assert address["street_1"]
    assert paid["customer_debited_date"].endswith("Z")
    assert {line["order_line_state"] for line in paid["order_lines"]} == {"SHIPPING"}
    assert sandbox.state()["bestbuy"]["orders"][order_id] == {
        "state": "SHIPPING",
        "carrier_code": None,
        "tracking_number": None,
        "shipped": False,
    }


def test_acceptance_errors(sandbox: Sandbox, bestbuy: BestBuy) -> None:
    [order] = sandbox.generate_orders(1, seed=21, state="WAITING_ACCEPTANCE")
    order_id = order["order_id"]
    line = order["order_lines"][0]["order_line_id"]
    accept = f"/api/orders/{order_id}/accept"
    cases = [
        ({"order_lines": []}, 400),
        ({"order_lines": [{"id": line}]}, 400),
        ({"order_lines": [{"accepted": True, "id": "000"}]}, 400),
        ({"order_lines": [{"accepted": True, "id": line}, {"accepted": True, "id": line}]}, 400),
        ([], 400),
    ]
    for body, status in cases:
        answer = bestbuy.request("PUT", accept, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert set(answer.json()) == {"status", "message"}
    assert (
        bestbuy.request(
            "PUT", accept, data=b"{not json", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert bestbuy.request("PUT", "/api/orders/1-A/accept", json={"order_lines": []}).status_code == 404
    decisions = [{"accepted": True, "id": item["order_line_id"]} for item in order["order_lines"]]
    assert bestbuy.request("PUT", accept, json={"order_lines": decisions}).status_code == 204
    again = bestbuy.request("PUT", accept, json={"order_lines": decisions})
    assert again.status_code == 400
    assert "ORDER_INVALID_STATE" in again.json()["message"]


def test_refusing_every_line_refuses_the_order(sandbox: Sandbox, bestbuy: BestBuy) -> None:
    [order] = sandbox.generate_orders(1, seed=8, state="WAITING_ACCEPTANCE")
    decisions = [{"accepted": False, "id": line["order_line_id"]} for line in order["order_lines"]]
    answer = bestbuy.request(
        "PUT", f"/api/orders/{order['order_id']}/accept", json={"order_lines": decisions}
    )
    assert answer.status_code == 204
    refused = bestbuy.order(order["order_id"])
    assert refused["order_state"] == "REFUSED"
    assert refused["customer"]["shipping_address"] is None


def test_partial_acceptance_is_refused(sandbox: Sandbox, bestbuy: BestBuy) -> None:
    orders = sandbox.generate_orders(40, seed=12, state="WAITING_ACCEPTANCE")
    order = next(o for o in orders if len(o["order_lines"]) == 2)
    decisions = [
        {"accepted": True, "id": order["order_lines"][0]["order_line_id"]},
        {"accepted": False, "id": order["order_lines"][1]["order_line_id"]},
    ]
    answer = bestbuy.request(
        "PUT", f"/api/orders/{order['order_id']}/accept", json={"order_lines": decisions}
    )
    assert answer.status_code == 400
    missing = bestbuy.request(
        "PUT", f"/api/orders/{order['order_id']}/accept", json={"order_lines": decisions[:1]}
    )
    assert "ORDER_LINE_ACCEPTANCE_DECISION_MISSING" in missing.json()["message"]


def test_tracking_then_ship(sandbox: Sandbox, bestbuy: BestBuy) -> None:
    [order] = sandbox.generate_orders(1, seed=30, state="SHIPPING")
    order_id = order["order_id"]
    ship = f"/api/orders/{order_id}/ship"
    tracking = f"/api/orders/{order_id}/tracking"
    early = bestbuy.request("PUT", ship)
    assert early.status_code == 400
    for body in (
        {"carrier_code": "NOPE", "tracking_number": "1"},
        {"tracking_number": "1"},
        {"carrier_code": "CPCL"},
        {"carrier_code": 5, "tracking_number": "1"},
    ):
        assert bestbuy.request("PUT", tracking, json=body).status_code == 400, body
    assert (
        bestbuy.request("PUT", tracking, json={"carrier_code": "CPCL", "tracking_number": "1111"}).status_code
        == 204
    )
    # A second OR23 replaces the first, as Mirakl keeps one tracking number per order.
    answer = bestbuy.request(
        "PUT", tracking, json={"carrier_code": "CPCL", "tracking_number": "4000000000000000"}
    )
    assert answer.status_code == 204
    assert answer.content == b""
    tracked = bestbuy.order(order_id)
    assert tracked["shipping_carrier_code"] == "CPCL"
    assert tracked["shipping_carrier_standard_code"] == "ca-post"
    assert tracked["shipping_company"] == "Canada Post"
    assert tracked["shipping_tracking"] == "4000000000000000"
    assert tracked["shipping_tracking_url"] == "https://parcelsapp.com/en/tracking/4000000000000000"
    assert tracked["order_state"] == "SHIPPING"
    shipped = bestbuy.request("PUT", ship)
    assert shipped.status_code == 204
    after = bestbuy.order(order_id)
    assert after["order_state"] == "SHIPPED"
    assert after["can_shop_ship"] is False
    assert all(line["shipped_date"] for line in after["order_lines"])
    again = bestbuy.request("PUT", ship)
    assert again.status_code == 400
    # A shipped order's tracking number can still be changed (a replacement label; Best Buy does
    # not notify the customer of it), until the order is received.
    changed = {"carrier_code": "CPCL", "tracking_number": "4000000000000002"}
    assert bestbuy.request("PUT", tracking, json=changed).status_code == 204
    assert sandbox.state()["bestbuy"]["orders"][order_id] == {
        "state": "SHIPPED",
        "carrier_code": "CPCL",
        "tracking_number": "4000000000000002",
        "shipped": True,
    }
    sandbox.set_order_state(order_id, "RECEIVED")
    late = {"carrier_code": "CPCL", "tracking_number": "4000000000000003"}
    assert bestbuy.request("PUT", tracking, json=late).status_code == 400
    assert sandbox.state()["bestbuy"]["orders"][order_id]["tracking_number"] == "4000000000000002"
    counts = sandbox.state()["requests"]["counts"]
    assert counts["bestbuy.OR24"] == 3
    assert counts["bestbuy.OR23"] == 8


def test_unregistered_carrier_by_name(sandbox: Sandbox, bestbuy: BestBuy) -> None:
    [order] = sandbox.generate_orders(1, seed=31, state="SHIPPING")
    body = {
        "carrier_name": "Intelcom",
        "carrier_url": "https://example.test/t/INTL1",
        "tracking_number": "INTL1",
    }
    assert bestbuy.request("PUT", f"/api/orders/{order['order_id']}/tracking", json=body).status_code == 204
    tracked = bestbuy.order(order["order_id"])
    assert tracked["shipping_carrier_code"] is None
    assert tracked["shipping_company"] == "Intelcom"
    assert tracked["shipping_tracking_url"] == "https://example.test/t/INTL1"


def test_marketplace_side_cancellation_blocks_shipping(sandbox: Sandbox, bestbuy: BestBuy) -> None:
    [order] = sandbox.generate_orders(1, seed=32, state="SHIPPING")
    sandbox.set_order_state(order["order_id"], "CANCELED")
    canceled = bestbuy.order(order["order_id"])
    assert canceled["order_state"] == "CANCELED"
    assert canceled["can_shop_ship"] is False
    body = {"carrier_code": "CPCL", "tracking_number": "1"}
    assert bestbuy.request("PUT", f"/api/orders/{order['order_id']}/tracking", json=body).status_code == 400
    assert bestbuy.request("PUT", f"/api/orders/{order['order_id']}/ship").status_code == 400
    with pytest.raises(ValueError, match="unknown order state"):
        sandbox.set_order_state(order["order_id"], "LOST")
    with pytest.raises(KeyError):
        sandbox.set_order_state("1-A", "CANCELED")


def test_unknown_orders_are_404(bestbuy: BestBuy) -> None:
    for method, path, body in (
        ("PUT", "/api/orders/404-A/tracking", {"carrier_code": "CPCL", "tracking_number": "1"}),
        ("PUT", "/api/orders/404-A/ship", None),
    ):
        answer = bestbuy.request(method, path, json=body)
        assert answer.status_code == 404
        assert answer.json()["status"] == 404


def test_carriers_and_account(bestbuy: BestBuy) -> None:
    carriers = bestbuy.request("GET", "/api/shipping/carriers").json()["carriers"]
    labels = [carrier["label"] for carrier in carriers]
    assert labels == sorted(labels)
    canada_post = next(carrier for carrier in carriers if carrier["code"] == "CPCL")
    assert canada_post == {
        "code": "CPCL",
        "label": "Canada Post",
        "standard_code": "ca-post",
        "tracking_url": "https://parcelsapp.com/en/tracking/{trackingId}",
    }
    account = bestbuy.request("GET", "/api/account").json()
    assert account["shop_id"] == 2004
    assert account["shop_state"] == "OPEN"


def test_wrong_method_and_unknown_path(bestbuy: BestBuy) -> None:
    wrong = bestbuy.request("GET", "/api/orders/1-A/ship")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "PUT"
    assert bestbuy.request("GET", "/api/nothing").status_code == 404


def test_add_orders_refuses_duplicates_and_strangers(sandbox: Sandbox) -> None:
    [order] = sandbox.generate_orders(1, seed=40)
    with pytest.raises(ValueError, match="already"):
        sandbox.add_orders([order])
    with pytest.raises(ValueError, match="order_id"):
        sandbox.add_orders([{"order_state": "SHIPPING"}])
    with pytest.raises(ValueError, match="order_state"):
        sandbox.add_orders([{**order, "order_id": "2-A", "order_state": "LOST"}])
