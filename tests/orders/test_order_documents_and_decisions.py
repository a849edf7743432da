"""Reading order documents of every accepted shape, and deciding what storing an order does."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from fulfil.bestbuy.order_documents import read_order_documents
from fulfil.bestbuy.order_states import KNOWN_STATES, moves_forward, status_for_state
from fulfil.errors import UsageError
from fulfil.workflows.order_import import NEW, UNCHANGED, UPDATED, decide
from tests.orders.helpers import OTHER_SAMPLES, sample_path

pytestmark = pytest.mark.unit


def order(
    order_id: str = "1-A", state: str = "SHIPPING", updated: str | None = "2025-08-29T03:17:16Z"
) -> dict[str, Any]:
    return {"order_id": order_id, "order_state": state, "last_updated_date": updated}


def test_every_mirakl_state_has_a_status() -> None:
    assert {state: status_for_state(state) for state in KNOWN_STATES} == {
        "STAGING": "waiting_acceptance",
        "WAITING_ACCEPTANCE": "waiting_acceptance",
        "WAITING_DEBIT": "waiting_payment",
        "WAITING_DEBIT_PAYMENT": "waiting_payment",
        "SHIPPING": "accepted",
        "SHIPPED": "shipped",
        "TO_COLLECT": "shipped",
        "RECEIVED": "shipped",
        "CLOSED": "shipped",
        "REFUSED": "canceled",
        "CANCELED": "canceled",
    }
    assert status_for_state("WAITING_REFUND") is None


@pytest.mark.parametrize(
    ("current", "proposed", "allowed"),
    [
        ("waiting_acceptance", "waiting_payment", True),
        ("waiting_payment", "accepted", True),
        ("waiting_acceptance", "shipped", True),
        ("accepted", "canceled", True),
        ("accepted", "waiting_payment", False),
        ("shipped", "accepted", False),
        ("shipped", "canceled", False),
        ("canceled", "shipped", False),
        ("canceled", "accepted", False),
        ("shipped", "shipped", True),
    ],
)
def test_statuses_only_move_forward(current: str, proposed: str, allowed: bool) -> None:
    assert moves_forward(current, proposed) is allowed


def test_decisions() -> None:
    stored = order()
    new = decide(None, None, stored)
    assert (new.outcome, new.status, new.write) == (NEW, "accepted", True)
    same = decide("accepted", stored, order())
    assert (same.outcome, same.write) == (UNCHANGED, False)
    newer = decide("accepted", stored, order(updated="2025-08-30T00:00:00Z"))
    assert (newer.outcome, newer.status, newer.write) == (UPDATED, "accepted", True)
    shipped = decide("accepted", stored, order(state="SHIPPED", updated="2025-08-30T00:00:00Z"))
    assert (shipped.outcome, shipped.status, shipped.write) == (UPDATED, "shipped", True)
    older = decide("accepted", stored, order(state="CANCELED", updated="2025-08-28T00:00:00Z"))
    assert (older.outcome, older.status, older.write) == (UNCHANGED, "accepted", False)
    backwards = decide("shipped", stored, order(updated="2025-08-30T00:00:00Z"))
    assert (backwards.outcome, backwards.status, backwards.write) == (UNCHANGED, "shipped", False)
    # Without dates to compare, the status rule alone decides.
    undated = decide("waiting_payment", order(updated=None), order(updated=None))
    assert (undated.outcome, undated.status, undated.write) == (UPDATED, "accepted", True)
    # A status an earlier tool wrote is kept; only the data is refreshed.
    foreign = decide("label_printed", stored, order(state="SHIPPED", updated="2025-08-30T00:00:00Z"))
    assert (foreign.outcome, foreign.status, foreign.write) == (UPDATED, "label_printed", True)
    assert foreign.reason == "status 'label_printed' was not set by fulfil and is kept"


def positions(text: bytes | str) -> list[tuple[str, str | None, str | None]]:
    return [(c.position, c.order_id, c.problem) for c in read_order_documents(text)]


def test_document_shapes() -> None:
    one, two = order("1-A"), order("2-A")
    assert positions(json.dumps({"orders": [one, two], "total_count": 2})) == [
        ("orders[0]", "1-A", None),
        ("orders[1]", "2-A", None),
    ]
    assert positions(json.dumps([one, two])) == [("item 1", "1-A", None), ("item 2", "2-A", None)]
    assert positions(json.dumps(one)) == [("item 1", "1-A", None)]
    assert positions(f"{json.dumps(one)}\n\n{json.dumps(two)}\n") == [
        ("line 1", "1-A", None),
        ("line 3", "2-A", None),
    ]
    # JSON lines of OR11 pages, as a dump of a paged listing looks.
    pages = "\n".join(json.dumps({"orders": [o], "total_count": 2}) for o in (one, two))
    assert positions(pages) == [("line 1, orders[0]", "1-A", None), ("line 2, orders[0]", "2-A", None)]
    assert positions("\ufeff" + json.dumps([one])) == [("item 1", "1-A", None)]
    assert positions("  \n ") == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"order_state": "SHIPPING"}, "no order_id"),
        ({"order_id": "", "order_state": "SHIPPING"}, "no order_id"),
        ({"order_id": 7, "order_state": "SHIPPING"}, "order_id is a JSON number, not Mirakl's text id"),
        ({"order_id": " 1-A", "order_state": "SHIPPING"}, "order_id ' 1-A' is not a Mirakl order id"),
        (
            {"order_id": "1-A\n2-A", "order_state": "SHIPPING"},
            "order_id '1-A\\n2-A' is not a Mirakl order id",
        ),
        ({"order_id": "1-A"}, "order 1-A: no order_state"),
        ({"order_id": "1-A", "order_state": 3}, "order 1-A: no order_state"),
        ("1-A", "not an order object (a JSON string)"),
        (None, "not an order object (a JSON null)"),
    ],
)
def test_malformed_objects_are_named(value: Any, problem: str) -> None:
    [candidate] = read_order_documents(json.dumps([value]))
    assert (candidate.position, candidate.order, candidate.problem) == ("item 1", None, problem)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("order_id,order_state\n1-A,SHIPPING\n", "neither a JSON document nor JSON lines"),
        ("{\n  broken", "lines of order objects (line 1: Expecting property name"),
        ('\n\n[{"order_id": "1-A"},\n {"order_id": ', "not valid JSON: line 4 column 15: Expecting value"),
        ('"just a string"', "not a JSON string"),
        ('{"orders": {"order_id": "1-A"}}', "'orders' is not a list"),
    ],
    ids=["csv", "broken-object", "cut-off-array", "scalar", "orders-not-a-list"],
)
def test_a_document_of_no_known_shape_is_refused_whole(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        read_order_documents(text)


@pytest.mark.parametrize("name", OTHER_SAMPLES)
def test_samples_of_other_calls_hold_no_order(name: str) -> None:
    candidates = read_order_documents(sample_path(name).read_text(encoding="utf-8"))
    assert candidates
    assert [c.order for c in candidates] == [None] * len(candidates)
    assert all(c.problem for c in candidates)


def test_a_repeated_order_id_is_refused_after_its_first_copy() -> None:
    refused_first = {**order("1-A"), "note": "a\u0000b"}
    text = "\n".join(
        json.dumps(o) for o in (refused_first, order("2-A"), order("1-A"), order("2-A", "SHIPPED"))
    )
    assert positions(text) == [
        ("line 1", "1-A", "order 1-A: note contains a NUL character"),
        ("line 2", "2-A", None),
        (
            "line 3",
            "1-A",
            "order 1-A: appears again (first at line 1, with different content); the first copy is "
            "refused, and a later one is not used in its place",
        ),
        (
            "line 4",
            "2-A",
            "order 2-A: appears again (first at line 2, with different content); only the first copy is used",
        ),
    ]
    # An order id that is not a Mirakl id is not one to compare.
    assert [
        c.problem for c in read_order_documents(json.dumps([order("1-A\u0000"), order("1-A\u0000")]))
    ] == ["order_id '1-A\\x00' is not a Mirakl order id"] * 2


def test_bytes_that_are_not_utf8_cost_only_their_order() -> None:
    text = (
        b'[{"order_id": "1-A", "order_state": "SHIPPING", "city": "Montr\xe9al"}, '
        + json.dumps(order("2-A")).encode()
        + b"]"
    )
    assert positions(text) == [
        (
            "item 1",
            "1-A",
            "order 1-A: city contains a byte that is not UTF-8 (0xE9) or a lone surrogate (U+DCE9)",
        ),
        ("item 2", "2-A", None),
    ]


def test_json_lines_break_at_newlines_only() -> None:
    # U+2028 and U+0085 are line breaks to str.splitlines, but only text inside a JSON string here.
    one = {**order("1-A"), "note": "a\u2028b\x85c"}
    text = json.dumps(one, ensure_ascii=False) + "\n" + json.dumps(order("2-A"))
    assert positions(text) == [("line 1", "1-A", None), ("line 2", "2-A", None)]


def test_json_lines_may_end_in_crlf_or_cr() -> None:
    one, two = json.dumps(order("1-A")), json.dumps(order("2-A"))
    assert positions(f"{one}\r\n{two}\r\n") == [("line 1", "1-A", None), ("line 2", "2-A", None)]
    assert positions(f"{one}\r\r{two}") == [("line 1", "1-A", None), ("line 3", "2-A", None)]
