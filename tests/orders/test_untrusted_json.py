"""Reading untrusted JSON without losing the whole document, and finding what jsonb cannot store."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from fulfil.untrusted_json import MAX_DEPTH, NotJson, TooDeep, load_untrusted_json, unstorable_field

pytestmark = pytest.mark.unit


def nested(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


def test_nesting_exactly_at_the_limit_is_kept_and_one_more_is_cut() -> None:
    at_limit = load_untrusted_json(nested(MAX_DEPTH))
    assert at_limit == json.loads(nested(MAX_DEPTH))
    assert unstorable_field(at_limit) is None

    over = load_untrusted_json(nested(MAX_DEPTH + 1, '"x"'))
    innermost = over
    for _ in range(MAX_DEPTH - 1):
        [innermost] = innermost
    assert isinstance(innermost, list)
    [marker] = innermost
    assert isinstance(marker, TooDeep)
    assert unstorable_field(over) == "[0][0][0][0][0][0][0][0]... is nested more than 64 levels deep"

    assert unstorable_field(json.loads(nested(MAX_DEPTH + 1))) == (
        "[0][0][0][0][0][0][0][0]... is nested more than 64 levels deep"
    )
    assert unstorable_field({"a": {"b": json.loads(nested(MAX_DEPTH - 2))}}) is None
    assert unstorable_field({"a": {"b": json.loads(nested(MAX_DEPTH - 1))}}) is not None


def test_a_hundred_thousand_deep_costs_only_its_own_field() -> None:
    depth = 100_000
    text = '[{"order_id": "1-A", "x": ' + nested(depth, "1") + ', "after": "kept"}, {"order_id": "2-A"}]'
    assert depth > sys.getrecursionlimit()

    first, second = load_untrusted_json(text)

    assert first["after"] == "kept"
    assert second == {"order_id": "2-A"}
    assert (
        unstorable_field(first, root="the order")
        == "x[0][0][0][0][0][0][0]... is nested more than 64 levels deep"
    )
    assert unstorable_field(second) is None


def test_deep_objects_and_strings_with_brackets_are_counted_right() -> None:
    # Brackets inside strings (and escaped quotes) are text, not nesting.
    tricky = '"[[[{{{\\"]]]"'
    text = '{"a": ' * (MAX_DEPTH - 1) + '{"k": ' + tricky + "}" + "}" * (MAX_DEPTH - 1)
    value = load_untrusted_json(text)
    assert unstorable_field(value) is None
    deeper = '{"a": ' * MAX_DEPTH + '{"k": 1}' + "}" * MAX_DEPTH
    assert unstorable_field(load_untrusted_json(deeper)) == (
        "a.a.a.a.a.a.a.a... is nested more than 64 levels deep"
    )


def test_the_marker_cannot_be_forged() -> None:
    # Whatever object the input holds, only a cut produces the marker.
    value = load_untrusted_json('{"a": [' + nested(MAX_DEPTH + 5) + '], "b": {"x": 0}}')
    assert value["b"] == {"x": 0}
    forged = load_untrusted_json('{"TooDeep": 0, "limit": 64}')
    assert unstorable_field(forged) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"a": {"b": "x\\u0000y"}}', "a.b contains a NUL character"),
        ('{"a": {"b\\u0000": 1}}', 'a has a key ("b\\u0000") that contains a NUL character'),
        ('{"\\u0000": 1}', 'the value has a key ("\\u0000") that contains a NUL character'),
        ('{"a": ["ok", "\\ud800"]}', "a[1] contains a lone surrogate (U+D800)"),
        ('{"a": "\\udfff"}', "a contains a lone surrogate (U+DFFF)"),
        ('{"a": "\\ude00\\ud83d"}', "a contains a lone surrogate (U+DE00)"),  # a pair the wrong way round
        ('{"a": {"\\ud800x": 1}}', 'a has a key ("\\ud800x") that contains a lone surrogate (U+D800)'),
        ('{"a b": {"c-d": [1e400]}}', '["a b"]["c-d"][0] is not a finite number (1e400)'),
        ('{"a": -1e400}', "a is not a finite number (-1e400)"),
        ('{"a": NaN}', "a is not a finite number (NaN)"),
        ('{"a": [Infinity]}', "a[0] is not a finite number (Infinity)"),
        ('{"a": -Infinity}', "a is not a finite number (-Infinity)"),
        ('{"a": ' + "9" * 5000 + "}", f"a is a number of 5000 digits, too long to read ({'9' * 40}...)"),
        ('{"a": "raw\x00nul"}', "a contains a NUL character"),  # a raw NUL byte in a string
    ],
)
def test_what_jsonb_refuses_is_found_with_its_path(text: str, problem: str) -> None:
    assert unstorable_field(load_untrusted_json(text)) == problem


def test_bytes_that_are_not_utf8_cost_only_their_string() -> None:
    value = load_untrusted_json(b'[{"city": "Montr\xe9al"}, {"city": "Qu\xc3\xa9bec"}]')
    assert (
        unstorable_field(value[0])
        == "city contains a byte that is not UTF-8 (0xE9) or a lone surrogate (U+DCE9)"
    )
    assert value[1] == {"city": "Québec"}
    assert unstorable_field(value[1]) is None


@pytest.mark.parametrize(
    "value",
    [
        {"emoji": "\U0001f600 ok", "accents": "Érable & Fils", "tab": "\t", "big": 10**30, "small": 1e-300},
        [None, True, False, 0, -1.5, "", {}, []],
    ],
)
def test_storable_values_pass(value: Any) -> None:
    assert unstorable_field(value) is None
    assert unstorable_field(load_untrusted_json(json.dumps(value))) is None


def test_a_valid_surrogate_pair_stays_one_character() -> None:
    value = load_untrusted_json('{"a": "\\ud83d\\ude00"}')
    assert value == {"a": "\U0001f600"}
    assert unstorable_field(value) is None


def test_values_python_made_are_checked_too() -> None:
    assert unstorable_field({"a": float("nan")}) == "a is not a finite number (nan)"
    assert unstorable_field({"a": [float("inf")]}) == "a[0] is not a finite number (inf)"
    assert unstorable_field({"a": b"x"}) == "a is a Python bytes, not a JSON value"
    assert unstorable_field({1: "x"}) == "the value has a key (1) that is not text"
    assert unstorable_field("x\x00", root="the order") == "the order contains a NUL character"


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('{"a": 1,\n "b": }', 2, 7),
        ('{"a": ' + nested(200) + ',\n "b": }', 2, 7),  # after a cut, positions are still the input's
        ('{"a": ' + "[" * 200, 1, 207),  # a cut never closed: the end of the input
        ("", 1, 1),
        ('{"a": "no end', 1, 7),
    ],
)
def test_input_that_is_not_json_is_refused_with_its_own_position(text: str, line: int, column: int) -> None:
    with pytest.raises(NotJson) as refused:
        load_untrusted_json(text)
    assert isinstance(refused.value, ValueError)
    assert (refused.value.lineno, refused.value.colno) == (line, column)


def test_a_byte_order_mark_is_ignored() -> None:
    assert load_untrusted_json("\ufeff[1]") == [1]
    assert load_untrusted_json(b"\xef\xbb\xbf[1]") == [1]
