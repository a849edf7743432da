"""Orders PostgreSQL cannot store, as raw JSON text: what a hostile or broken Best Buy could send.

Each bad order is a real Best Buy order with one field spoiled in the JSON text itself (a raw
``\\ud800`` escape, bytes that are not UTF-8, 100,000 nested arrays), so the tests exercise the
parser and not only Python values.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from tests.orders.helpers import sample_orders

SPOIL = "@@spoil@@"  # stands for the bad value in the JSON text until it is spliced in
DEEP = 100_000


@dataclass(frozen=True)
class OrderText:
    order_id: str
    text: bytes  # one order object, as JSON
    problem: str | None  # the reason fulfil must give; None for a good order


def _spoiled(order: dict[str, Any], order_id: str, path: list[str | int], raw: bytes) -> bytes:
    order = copy.deepcopy(order)
    order["order_id"] = order_id
    target: Any = order
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = SPOIL
    return json.dumps(order).encode("ascii").replace(json.dumps(SPOIL).encode("ascii"), raw)


def good_and_bad_orders() -> list[OrderText]:
    """Two good orders and five bad ones, interleaved, each bad one spoiled in a different way."""
    first, second, base, *_ = sample_orders("bestbuy-ca.OR11-orders.SHIPPING.redacted.json")
    bad = [
        (
            "900000001-A",
            ["customer", "shipping_address", "street_1"],
            b'"123 \\u0000 St"',
            "customer.shipping_address.street_1 contains a NUL character",
        ),
        (
            "900000002-A",
            ["order_lines", 0, "product_title"],
            b'"Laptop \\ud800"',
            "order_lines[0].product_title contains a lone surrogate (U+D800)",
        ),
        (
            "900000003-A",
            ["customer", "billing_address", "city"],
            b'"Montr\xe9al"',  # Latin-1, not UTF-8
            "customer.billing_address.city contains a byte that is not UTF-8 (0xE9) "
            "or a lone surrogate (U+DCE9)",
        ),
        (
            "900000004-A",
            ["order_additional_fields"],
            b"[" * DEEP + b"]" * DEEP,
            "order_additional_fields[0][0][0][0][0][0][0]... is nested more than 64 levels deep",
        ),
        (
            "900000005-A",
            ["leadtime_to_ship"],
            b"1e400",
            "leadtime_to_ship is not a finite number (1e400)",
        ),
    ]
    texts = [OrderText(first["order_id"], json.dumps(first).encode("ascii"), None)]
    for order_id, path, raw, problem in bad:
        texts.append(OrderText(order_id, _spoiled(base, order_id, path, raw), f"order {order_id}: {problem}"))
    texts.insert(3, OrderText(second["order_id"], json.dumps(second).encode("ascii"), None))
    return texts


def as_json_array(orders: list[OrderText]) -> bytes:
    return b"[\n" + b",\n".join(o.text for o in orders) + b"\n]\n"


def as_json_lines(orders: list[OrderText]) -> bytes:
    return b"".join(o.text + b"\n" for o in orders)


def as_or11_answer(orders: list[OrderText], total_count: int | None = None) -> bytes:
    total = len(orders) if total_count is None else total_count
    return b'{"orders": [' + b", ".join(o.text for o in orders) + b'], "total_count": %d}' % total
