"""JSON from outside (order files, Best Buy's answers) read so that one bad value costs one order.

Python's ``json`` takes things PostgreSQL's ``jsonb`` refuses, and a few it cannot take at all:

* ``\\u0000`` (jsonb cannot hold NUL) and lone surrogates such as ``\\ud800`` (jsonb refuses them;
  psycopg cannot even encode them as UTF-8), in values and in keys;
* ``NaN``, ``Infinity`` and numbers such as ``1e400`` that overflow to ``inf``: written back out they
  are not JSON, so jsonb refuses the whole document;
* an integer of more than 4,300 digits, which Python refuses to convert (the whole parse fails);
* nesting 100,000 deep, which raises RecursionError and loses the whole document.

``load_untrusted_json`` reads all of these without raising, leaving in their place values that
``unstorable_field`` finds, with the dotted path of the first one and why. Containers nested more
than ``MAX_DEPTH`` deep are cut out of the text before parsing and replaced by a marker no input
can forge (its key is a fresh random token), so the rest of the document still parses. Bytes that
are not UTF-8 are kept as lone surrogates (``surrogateescape``), so only the string holding them
is unstorable, not the whole answer. Raw control characters inside strings are accepted (a NUL
byte then costs its order, like a ``\\u0000``, instead of the whole file).

``MAX_DEPTH`` is 64, counted from the top of the document: Mirakl's orders nest under 10 deep
(order, order_lines, a line, its taxes, a tax …) and sit at most 3 deep in an OR11 answer, so 64
leaves room for any field Mirakl adds, while every later walk of a stored order (psycopg's
``json.dumps``, PostgreSQL's jsonb functions, fulfil's own code) stays far from Python's recursion
limit (1,000) and PostgreSQL's stack depth limit. ``unstorable_field`` counts from the value it is
given, with the same limit: an order at depth 3 of an OR11 answer is cut at 62 levels of its own.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 64
MAX_PATH_STEPS = 8  # a path longer than this is shown cut off: enough to find the field
MAX_NUMBER_TEXT = 40  # characters of an unusable number quoted in a message

# A JSON string (escapes included), a bracket, or an unterminated string's opening quote.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|"', re.DOTALL)
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_INT_BITS = 10_000  # about 3,000 digits: always within what Python converts to text (4,300)


class NotJson(json.JSONDecodeError):
    """The input is not JSON at all; line and column are the caller's own (before any cut)."""


class TooDeep:
    """Where a container nested more than ``limit`` deep was cut out of the text."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __repr__(self) -> str:
        return f"TooDeep(limit={self.limit})"


class UnusableNumber:
    """A number Python reads as inf or nan, or cannot read at all; ``text`` is as written."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason

    def __repr__(self) -> str:
        return f"UnusableNumber({self.text[:MAX_NUMBER_TEXT]!r})"


@dataclass(frozen=True)
class _Cut:
    """One container cut out of the text: where it was, and where its marker is now."""

    original_start: int
    original_end: int
    marker_start: int
    marker_end: int


def load_untrusted_json(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in ``data``; never RecursionError. Raises NotJson (a ValueError) when the
    input is not JSON. Values PostgreSQL cannot store are left for ``unstorable_field`` to find."""
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    if text.startswith("\ufeff"):
        text = " " + text[1:]  # a byte order mark read as blank: positions stay the caller's
    token = secrets.token_hex(16)
    marker = '{"' + token + '":0}'
    parsed_text, cuts = _cut_too_deep(text, max_depth, marker)

    def marked(obj: dict[str, Any]) -> Any:
        return TooDeep(max_depth) if len(obj) == 1 and token in obj else obj

    try:
        return json.loads(
            parsed_text,
            strict=False,
            parse_float=_float,
            parse_int=_int,
            parse_constant=_constant,
            object_hook=marked if cuts else None,
        )
    except json.JSONDecodeError as exc:
        raise NotJson(exc.msg, text, _original_position(exc.pos, cuts)) from None
    except RecursionError:  # only when the interpreter's own limit is far below MAX_DEPTH
        raise NotJson("nested too deeply to read", text, 0) from None


def _cut_too_deep(text: str, max_depth: int, marker: str) -> tuple[str, list[_Cut]]:
    """``text`` with every container deeper than ``max_depth`` replaced by ``marker``."""
    pieces: list[str] = []
    cuts: list[_Cut] = []
    depth = 0
    kept_until = 0  # text before this is in pieces (or cut)
    new_length = 0
    cut_from: int | None = None
    for match in _TOKENS.finditer(text):
        first = match.group()[0]
        if first == '"':
            if match.end() - match.start() == 1:
                break  # an unterminated string: the parser reports it
            continue
        if first in "[{":
            depth += 1
            if depth == max_depth + 1 and cut_from is None:
                cut_from = match.start()
            continue
        if depth == max_depth + 1 and cut_from is not None:
            new_length = _append_cut(
                text, pieces, cuts, kept_until, cut_from, match.end(), marker, new_length
            )
            kept_until, cut_from = match.end(), None
        depth -= 1
    if cut_from is not None:  # never closed: the parser reports the end of the input
        _append_cut(text, pieces, cuts, kept_until, cut_from, len(text), marker, new_length)
        kept_until = len(text)
    if not cuts:
        return text, cuts
    pieces.append(text[kept_until:])
    return "".join(pieces), cuts


def _append_cut(
    text: str,
    pieces: list[str],
    cuts: list[_Cut],
    kept_until: int,
    start: int,
    end: int,
    marker: str,
    new_length: int,
) -> int:
    pieces.append(text[kept_until:start])
    marker_start = new_length + (start - kept_until)
    pieces.append(marker)
    cuts.append(_Cut(start, end, marker_start, marker_start + len(marker)))
    return marker_start + len(marker)


def _original_position(position: int, cuts: list[_Cut]) -> int:
    shift = 0
    for cut in cuts:
        if position < cut.marker_start:
            break
        if position < cut.marker_end:
            return cut.original_start
        shift = cut.original_end - cut.marker_end
    return position + shift


def _float(text: str) -> float | UnusableNumber:
    value = float(text)
    return value if math.isfinite(value) else UnusableNumber(text, "is not a finite number")


def _int(text: str) -> int | UnusableNumber:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return UnusableNumber(text, f"is a number of {len(text.lstrip('-'))} digits, too long to read")


def _constant(name: str) -> UnusableNumber:
    return UnusableNumber(name, "is not a finite number")  # NaN, Infinity, -Infinity


# --- finding what PostgreSQL cannot store ----------------------------------------------------


def unstorable_field(value: Any, *, root: str = "the value", max_depth: int = MAX_DEPTH) -> str | None:
    """Where and why ``value`` cannot be stored in jsonb, for the first such place; None if it can.

    Read depth first in document order; the answer reads like
    ``customer.shipping_address.street_1 contains a NUL character`` or
    ``customer has a key ("a\\u0000b") that contains a NUL character``; ``root`` names ``value``
    itself when the problem is there. ``value`` itself is depth 1.
    """
    if _storable(value, max_depth):
        return None  # the common case, found without building a path for every value
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(value, (), 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list | tuple) and depth > max_depth:
            return f"{_where(path, root)} is nested more than {max_depth} levels deep"
        if isinstance(item, dict):
            children: list[tuple[Any, tuple[str | int, ...], int]] = []
            for key, child in item.items():
                problem = _text_problem(key) if isinstance(key, str) else "is not text"
                if problem is not None:
                    return f"{_where(path, root)} has a key ({_quoted(key)}) that {problem}"
                children.append((child, (*path, key), depth + 1))
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            stack.extend(
                (child, (*path, index), depth + 1) for index, child in reversed(list(enumerate(item)))
            )
        else:
            problem = _scalar_problem(item)
            if problem is not None:
                return f"{_where(path, root)} {problem}"
    return None


def _storable(item: Any, levels_left: int) -> bool:
    """Whether jsonb can hold ``item``: the same rules as ``unstorable_field``, without the path.

    Recursive, but only ``levels_left`` deep (at most MAX_DEPTH), so far from Python's limit.
    """
    kind = type(item)
    if kind is str:
        return _UNSTORABLE_CHARACTER.search(item) is None
    if kind is dict:
        return levels_left > 0 and all(
            type(key) is str
            and _UNSTORABLE_CHARACTER.search(key) is None
            and _storable(child, levels_left - 1)
            for key, child in item.items()
        )
    if kind is list:
        return levels_left > 0 and all(_storable(child, levels_left - 1) for child in item)
    if kind is bool or item is None:
        return True
    if kind is float:
        return math.isfinite(item)
    # Anything else (a marker, a tuple, a huge int): the walker says what it is.
    return kind is int and item.bit_length() <= _PLAIN_INT_BITS


def _scalar_problem(item: Any) -> str | None:
    if item is None or isinstance(item, bool):
        return None
    if isinstance(item, str):
        return _text_problem(item)
    if isinstance(item, int):
        if item.bit_length() > _PLAIN_INT_BITS:  # beyond this, check that Python can still write it out
            try:
                str(item)
            except ValueError:
                return "is a number too long to write out"
        return None
    if isinstance(item, float):
        return None if math.isfinite(item) else f"is not a finite number ({item!r})"
    if isinstance(item, UnusableNumber):
        shown = item.text if len(item.text) <= MAX_NUMBER_TEXT else item.text[:MAX_NUMBER_TEXT] + "..."
        return f"{item.reason} ({shown})"
    if isinstance(item, TooDeep):
        return f"is nested more than {item.limit} levels deep"
    return f"is a Python {type(item).__name__}, not a JSON value"


def _text_problem(text: str) -> str | None:
    found = _UNSTORABLE_CHARACTER.search(text)
    if found is None:
        return None
    code = ord(found.group())
    if code == 0:
        return "contains a NUL character"
    if 0xDC80 <= code <= 0xDCFF:  # how a byte that is not UTF-8 reads (surrogateescape)
        return f"contains a byte that is not UTF-8 (0x{code - 0xDC00:02X}) or a lone surrogate (U+{code:04X})"
    return f"contains a lone surrogate (U+{code:04X})"


def _where(path: tuple[str | int, ...], root: str) -> str:
    if not path:
        return root
    shown = "".join(_step(step, first=index == 0) for index, step in enumerate(path[:MAX_PATH_STEPS]))
    return shown + ("..." if len(path) > MAX_PATH_STEPS else "")


def _step(step: str | int, *, first: bool) -> str:
    if isinstance(step, int):
        return f"[{step}]"
    if _IDENTIFIER.fullmatch(step):
        return step if first else f".{step}"
    return f"[{_quoted(step)}]"


def _quoted(key: Any) -> str:
    """A key as JSON text in ASCII: a NUL or a surrogate shows as its escape, never raw."""
    return json.dumps(key) if isinstance(key, str) else repr(key)
