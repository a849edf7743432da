"""Per-request work in the sandbox does not grow with what it holds: no request walks every shipment
or every order. A walk is counted, not timed: the state's shipments and orders are swapped for
dicts that count each entry a walk over them visits, and every request must visit none."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from fulfil.sandbox import Sandbox
from fulfil.sandbox.state import Shipment
from tests.sandbox.conftest import (
    CUSTOMER,
    NCSHIPMENT_MEDIA,
    SHIPMENT_MEDIA,
    TRACK_MEDIA,
    BestBuy,
    CanadaPost,
    contract_request,
    links,
    nc_request,
    parse,
)

CONTRACT = f"/rs/{CUSTOMER}/{CUSTOMER}/shipment"
NON_CONTRACT = f"/rs/{CUSTOMER}/ncshipment"
HELD_SHIPMENTS = 60
HELD_ORDERS = 150

Value = TypeVar("Value")


class WalkCountingDict(dict[str, Value]):
    """A dict that counts every entry a walk over it (keys, values, items, iteration) visits."""

    visited = 0

    def _count(self, entries: Iterator[Any]) -> Iterator[Any]:
        for entry in entries:
            self.visited += 1
            yield entry

    def __iter__(self) -> Iterator[str]:
        return self._count(super().__iter__())

    def keys(self) -> Any:
        return self._count(iter(super().keys()))

    def values(self) -> Any:
        return self._count(iter(super().values()))

    def items(self) -> Any:
        return self._count(iter(super().items()))


def pin_of(answer: Any) -> str:
    return str(parse(answer.content).findtext("{*}tracking-pin"))


def counting(sandbox: Sandbox) -> tuple[WalkCountingDict[Shipment], WalkCountingDict[dict[str, Any]]]:
    """Swap the state's shipments and orders for counting copies (same entries, same order)."""
    state = sandbox.sandbox_state
    with state.lock:
        state.shipments = WalkCountingDict(state.shipments)
        state.orders = WalkCountingDict(state.orders)
        return state.shipments, state.orders


@pytest.fixture
def held(sandbox: Sandbox, canadapost: CanadaPost) -> dict[str, str]:
    """A sandbox holding many shipments and orders, and the handles of a few of them."""
    for index in range(HELD_SHIPMENTS):
        body = contract_request(request_id=f"held-{index}", reference=f"held-{index}-A")
        assert canadapost.create(body).status_code == 200
    grouped = canadapost.create(contract_request(request_id="req-g", reference="ref-g", group_id="g-1"))
    assert canadapost.create_nc(nc_request(reference="ref-nc")).status_code == 200
    orders = sandbox.generate_orders(HELD_ORDERS, seed=4, state="SHIPPING")
    waiting = sandbox.generate_orders(1, seed=5, state="WAITING_ACCEPTANCE")
    found = links(grouped.content)
    return {
        "pin": pin_of(grouped),
        "self": found["self"].get("href"),
        "label": found["label"].get("href"),
        "order": orders[7]["order_id"],
        "waiting": waiting[0]["order_id"],
    }


def test_requests_visit_no_shipment_and_no_order_but_their_own(
    sandbox: Sandbox, canadapost: CanadaPost, bestbuy: BestBuy, held: dict[str, str]
) -> None:
    shipments, orders = counting(sandbox)
    [waiting] = bestbuy.orders(order_ids=held["waiting"]).json()["orders"]
    decisions = [{"accepted": True, "id": line["order_line_id"]} for line in waiting["order_lines"]]
    tracking = {"carrier_code": "CPCL", "tracking_number": held["pin"]}
    requests: dict[str, Callable[[], Any]] = {
        "CreateShipment": lambda: canadapost.create(contract_request(request_id="new", reference="new-A")),
        "CreateNCShipment": lambda: canadapost.create_nc(nc_request(reference="new-nc")),
        "GetShipment": lambda: canadapost.get(held["self"]),
        "GetShipments by requestId": lambda: canadapost.get(f"{CONTRACT}?requestId=req-g"),
        "GetShipments by trackingPIN": lambda: canadapost.get(f"{CONTRACT}?trackingPIN={held['pin']}"),
        "GetShipments by groupId": lambda: canadapost.get(f"{CONTRACT}?groupId=g-1"),
        "GetNCShipments by trackingPIN": lambda: canadapost.get(
            f"{NON_CONTRACT}?trackingPIN={held['pin']}", NCSHIPMENT_MEDIA
        ),
        "GetArtifact": lambda: canadapost.get(held["label"], "application/pdf"),
        "TrackingSummary": lambda: canadapost.get(f"/vis/track/pin/{held['pin']}/summary", TRACK_MEDIA),
        "TrackingDetail": lambda: canadapost.get(f"/vis/track/pin/{held['pin']}/detail", TRACK_MEDIA),
        "OR11 by order_ids": lambda: bestbuy.orders(order_ids=f"{held['order']},{held['waiting']},404-A"),
        "OR21": lambda: bestbuy.request(
            "PUT", f"/api/orders/{held['waiting']}/accept", json={"order_lines": decisions}
        ),
        "OR23": lambda: bestbuy.request("PUT", f"/api/orders/{held['order']}/tracking", json=tracking),
        "OR24": lambda: bestbuy.request("PUT", f"/api/orders/{held['order']}/ship"),
        "VoidShipment": lambda: canadapost.delete(held["self"]),
        "TrackingSummary of a voided PIN": lambda: canadapost.get(
            f"/vis/track/pin/{held['pin']}/summary", TRACK_MEDIA
        ),
        "labels_bought_per_order": sandbox.labels_bought_per_order,
    }
    walked: dict[str, int] = {}
    for name, request in requests.items():
        before = shipments.visited + orders.visited
        answer = request()
        status = getattr(answer, "status_code", 200)
        assert status < 300 or name == "TrackingSummary of a voided PIN", (name, status)
        walked[name] = shipments.visited + orders.visited - before
    assert walked == dict.fromkeys(requests, 0)
    held_orders = {f"held-{index}-A": 1 for index in range(HELD_SHIPMENTS)}
    # ref-g's one label was voided: the order has none left, so no entry.
    assert sandbox.labels_bought_per_order() == {**held_orders, "ref-nc": 1, "new-A": 1, "new-nc": 1}
    assert sandbox.state()["canadapost"]["labels_bought"] == HELD_SHIPMENTS + 3


def test_a_colliding_pin_is_refused_without_a_walk_even_once_voided(
    sandbox: Sandbox, canadapost: CanadaPost
) -> None:
    """Replaying the seeded id generator makes the next PIN drawn equal an existing (voided) one."""
    for index in range(HELD_SHIPMENTS):
        assert canadapost.create(contract_request(request_id=f"held-{index}")).status_code == 200
    state = sandbox.sandbox_state
    replay = state.ids.getstate()
    first = canadapost.create(contract_request(request_id="first", group_id="g-2"))
    assert canadapost.delete(links(first.content)["self"].get("href")).status_code == 204
    shipments, _ = counting(sandbox)
    with state.lock:
        state.ids = random.Random()
        state.ids.setstate(replay)
    second = canadapost.create(contract_request(request_id="second"))
    assert second.status_code == 200
    assert pin_of(second) != pin_of(first)
    assert shipments.visited == 0
    assert len({shipment.tracking_pin for shipment in state.shipments.values()}) == HELD_SHIPMENTS + 2


def test_reset_forgets_the_indexes(sandbox: Sandbox, canadapost: CanadaPost, bestbuy: BestBuy) -> None:
    created = canadapost.create(contract_request(request_id="gone", reference="gone-A", group_id="g-3"))
    pin = pin_of(created)
    [order] = sandbox.generate_orders(1, seed=8, state="SHIPPING")
    sandbox.reset()
    assert canadapost.get(f"/vis/track/pin/{pin}/summary", TRACK_MEDIA).status_code == 404
    for query in ("requestId=gone", f"trackingPIN={pin}", "groupId=g-3"):
        found = canadapost.get(f"{CONTRACT}?{query}", SHIPMENT_MEDIA)
        assert found.status_code == 200
        assert parse(found.content).findall("{*}link") == []
    assert canadapost.get(links(created.content)["label"].get("href"), "application/pdf").status_code == 404
    assert sandbox.labels_bought_per_order() == {}
    assert bestbuy.orders(order_ids=order["order_id"]).json()["orders"] == []
    assert bestbuy.orders(order_state_codes="SHIPPING").json()["total_count"] == 0
    # The same seed after a reset draws the same PIN again: it must not collide with a forgotten one.
    again = canadapost.create(contract_request(request_id="gone", reference="gone-A", group_id="g-3"))
    assert pin_of(again) == pin
    assert sandbox.labels_bought_per_order() == {"gone-A": 1}
