"""Order objects out of whatever a seller has: an OR11 answer, a JSON array, or JSON lines.

Accepted shapes:

* an OR11 answer, ``{"orders": [...], "total_count": N}``;
* a JSON array of order objects;
* JSON lines: one order object (or one OR11 answer, e.g. a dump of pages) per line;
* a single order object.

Each candidate carries where it came from ("item 3", "line 7", "line 2, orders[4]") so a problem
can be reported precisely. A malformed candidate is kept as a problem and the others go on; only
input that is none of the shapes above (say, a JSON array cut off in the middle) is refused as a
whole.

The input is read as untrusted (``fulfil.untrusted_json``): an order holding anything PostgreSQL
cannot store (a NUL, a lone surrogate, bytes that are not UTF-8, ``1e400``, nesting 100,000 deep)
is refused alone, naming its field, and the rest of the file is read.

One input holds each order once. When an order id appears again, the first copy is the one used
and every later copy is refused, naming where the first one is and whether the two differ: a
file that says two things about one order is a mistake to look at (exit 3), not something to
settle silently by whichever copy came last.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fulfil.bestbuy.order_states import status_for_state
from fulfil.errors import UsageError
from fulfil.untrusted_json import NotJson, load_untrusted_json, unstorable_field

MAX_ORDER_ID_CHARS = 100
# Where a JSON line ends. Not str.splitlines: it also breaks at U+2028, U+0085 and the like, which
# JSON allows raw inside a string.
_LINE_BREAK = re.compile(r"\r\n?|\n")


@dataclass(frozen=True)
class OrderCandidate:
    position: str
    value: Any  # as read
    problem: str | None = None  # why it cannot be stored; None when it can

    @property
    def order(self) -> dict[str, Any] | None:
        """The order object, when it can be stored."""
        return self.value if self.problem is None else None

    @property
    def order_id(self) -> str | None:
        """The order id, when the object has a usable one (even if it is refused otherwise)."""
        return _usable_order_id(self.value.get("order_id")) if isinstance(self.value, dict) else None


def read_order_documents(data: bytes | str) -> list[OrderCandidate]:
    """Every order object in ``data``, each checked (see ``order_problem``), repeats refused.

    Bytes are UTF-8; any that are not cost only the order whose string holds them.
    """
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    # Not stripped: line numbers in messages are the file's own.
    body = text.removeprefix("\ufeff")
    if not body.strip():
        return []
    try:
        document = load_untrusted_json(body)
    except NotJson as exc:
        if body.lstrip().startswith("["):
            raise UsageError(f"the input is not valid JSON: {_describe(exc)}") from None
        return _first_copies_only(_json_lines(body))
    return _first_copies_only(list(_candidates(document, prefix="")))


def _json_lines(body: str) -> list[OrderCandidate]:
    candidates: list[OrderCandidate] = []
    parsed_any = False
    first_error = ""
    for number, line in enumerate(_LINE_BREAK.split(body), start=1):
        if not line.strip():
            continue
        position = f"line {number}"
        try:
            value = load_untrusted_json(line)
        except NotJson as exc:
            first_error = first_error or f"line {number}: {exc.msg}"
            candidates.append(OrderCandidate(position, None, f"not valid JSON ({exc.msg})"))
            continue
        parsed_any = parsed_any or isinstance(value, dict)
        if isinstance(value, dict) and "orders" in value and "order_id" not in value:
            candidates.extend(_candidates(value, prefix=f"{position}, "))
        else:
            candidates.append(checked_candidate(position, value))
    if not parsed_any:
        raise UsageError(
            f"the input is neither a JSON document nor JSON lines of order objects ({first_error})"
        )
    return candidates


def _first_copies_only(candidates: Sequence[OrderCandidate]) -> list[OrderCandidate]:
    """``candidates`` with every later copy of an order id refused (see the module's docstring)."""
    first_copies: dict[str, OrderCandidate] = {}
    checked: list[OrderCandidate] = []
    for candidate in candidates:
        order_id = candidate.order_id
        first = first_copies.setdefault(order_id, candidate) if order_id is not None else candidate
        if first is not candidate and candidate.problem is None:
            kind = "identical" if first.value == candidate.value else "with different content"
            outcome = (
                "only the first copy is used"
                if first.problem is None
                else "the first copy is refused, and a later one is not used in its place"
            )
            candidate = OrderCandidate(
                candidate.position,
                candidate.value,
                f"order {order_id}: appears again (first at {first.position}, {kind}); {outcome}",
            )
        checked.append(candidate)
    return checked


def _candidates(document: Any, *, prefix: str) -> Iterator[OrderCandidate]:
    if isinstance(document, dict) and "orders" in document and "order_id" not in document:
        orders = document["orders"]
        if not isinstance(orders, list):
            raise UsageError(f"{prefix}'orders' is not a list of order objects")
        for index, value in enumerate(orders):
            yield checked_candidate(f"{prefix}orders[{index}]", value)
    elif isinstance(document, list):
        for index, value in enumerate(document, start=1):
            yield checked_candidate(f"{prefix}item {index}", value)
    elif isinstance(document, dict):
        yield checked_candidate(f"{prefix}item 1", document)
    else:
        raise UsageError(
            f"{prefix}expected an OR11 answer, a JSON array of orders or JSON lines, "
            f"not a JSON {_json_type(document)}"
        )


def checked_candidate(position: str, value: Any) -> OrderCandidate:
    return OrderCandidate(position, value, order_problem(value))


def order_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as an order, or None when it can.

    What fulfil relies on is checked (an order id and an order state it understands), and that
    PostgreSQL can store every value of it (``unstorable_field``). The rest (addresses, lines) is
    checked when a label is bought, with the order and field named.
    """
    if not isinstance(value, dict):
        return f"not an order object (a JSON {_json_type(value)})"
    order_id = value.get("order_id")
    if order_id is None or order_id == "":
        return "no order_id"
    if not isinstance(order_id, str):
        return f"order_id is a JSON {_json_type(order_id)}, not Mirakl's text id"
    if not order_id.strip():
        return "no order_id"
    if _usable_order_id(order_id) is None:
        return f"order_id {order_id[:MAX_ORDER_ID_CHARS]!r} is not a Mirakl order id"
    unstorable = unstorable_field(value, root="the order")
    if unstorable is not None:
        return f"order {order_id}: {unstorable}"
    state = value.get("order_state")
    if not isinstance(state, str) or not state:
        return f"order {order_id}: no order_state"
    if status_for_state(state) is None:
        return f"order {order_id}: order_state {state!r} is not one fulfil knows; not imported"
    return None


def _usable_order_id(order_id: Any) -> str | None:
    # isprintable() also refuses NUL, lone surrogates and line breaks: the id goes into SQL
    # parameters and messages, where none of them can go.
    if (
        isinstance(order_id, str)
        and order_id.strip() == order_id
        and 0 < len(order_id) <= MAX_ORDER_ID_CHARS
        and order_id.isprintable()
    ):
        return order_id
    return None


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _describe(exc: NotJson) -> str:
    return f"line {exc.lineno} column {exc.colno}: {exc.msg}"
