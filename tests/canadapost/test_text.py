from __future__ import annotations

import pytest

from fulfil.canadapost.text import (
    clean_text,
    fold_for_matching,
    shorten_at_word_boundary,
    split_at_word_boundary,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  123   Main\tSt \n", "123 Main St"),
        ("", None),
        ("   \t\n ", None),
        ("\u00a0", None),  # a no-break space alone is still nothing
        ("Rue\u00a0Sainte-Catherine", "Rue Sainte-Catherine"),
        ("Montre\u0301al", "Montréal"),  # combining accent composed: one character, not two
        ("Saint\u00adJean", "SaintJean"),  # a soft hyphen is invisible, not a word break
        ("A\x00B\x1fC", "A B C"),  # control characters cannot go into XML at all
        ("Zero\u200bwidth", "Zerowidth"),
        ("Line\u2028break", "Line break"),
    ],
)
def test_clean_text(raw: str, expected: str | None) -> None:
    assert clean_text(raw) == expected


def test_clean_text_counts_a_composed_accent_as_one_character() -> None:
    cleaned = clean_text("e\u0301" * 44)
    assert cleaned is not None
    assert len(cleaned) == 44


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, ("short", "")),
        ("1234 Boulevard Saint-Laurent Apartment 5", 30, ("1234 Boulevard Saint-Laurent", "Apartment 5")),
        ("12 Main St, Unit 5", 12, ("12 Main St", "Unit 5")),  # the comma goes with the cut
        ("Supercalifragilistic street", 10, None),  # no space within the limit
        ("exactly ten", 11, ("exactly ten", "")),
        ("ab cd", 2, ("ab", "cd")),
    ],
)
def test_split_at_word_boundary(text: str, limit: int, expected: tuple[str, str] | None) -> None:
    assert split_at_word_boundary(text, limit) == expected


def test_split_keeps_every_word() -> None:
    text = "Appartement 1203 Tour B 4000 Boulevard de Maisonneuve Ouest"
    split = split_at_word_boundary(text, 44)
    assert split is not None
    head, rest = split
    assert len(head) <= 44
    assert f"{head} {rest}" == text


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Fits", 10, "Fits"),
        ("Les Entreprises Générales du Québec Limitée", 30, "Les Entreprises Générales du"),
        ("Unbreakablewordthatgoeson", 10, "Unbreakabl"),
    ],
)
def test_shorten_at_word_boundary(text: str, limit: int, expected: str) -> None:
    shortened = shorten_at_word_boundary(text, limit)
    assert shortened == expected
    assert len(shortened) <= limit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Québec", "quebec"),
        ("ÎLE-DU-PRINCE-ÉDOUARD", "ile du prince edouard"),
        ("Newfoundland & Labrador", "newfoundland and labrador"),
        ("  P.E.I. ", "p e i"),
    ],
)
def test_fold_for_matching(raw: str, expected: str) -> None:
    assert fold_for_matching(raw) == expected
