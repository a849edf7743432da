from __future__ import annotations

import itertools
import string

import pytest

from fulfil.canadapost.canada import (
    PROVINCE_CODES,
    normalise_phone,
    normalise_postal_code,
    province_code,
    provinces_for_postal_code,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("K1A0B1", "K1A0B1"),
        ("k1a 0b1", "K1A0B1"),
        ("K1A-0B1", "K1A0B1"),
        (" h2b  1a0 ", "H2B1A0"),
        ("A1A1A1", "A1A1A1"),  # the redaction placeholder in the real samples is a valid code
        ("X0A0H0", "X0A0H0"),
        ("T2P2Z5", "T2P2Z5"),  # W and Z are fine after the first position
        ("K1A\u00a00B1", "K1A0B1"),  # a no-break space pasted from a web page
    ],
)
def test_valid_postal_codes(raw: str, expected: str) -> None:
    assert normalise_postal_code(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "A1A 1A",  # too short
        "A1A1A1A",
        "12345",  # a US ZIP code
        "90210-1234",
        "W1A1A1",  # W never first
        "Z1A1A1",  # Z never first
        "K1A 0B",
        "1A1A1A",
        "",
    ],
)
def test_invalid_postal_codes(raw: str) -> None:
    assert normalise_postal_code(raw) is None


@pytest.mark.parametrize("letter", list("DFIOQU"))
def test_letters_never_used_in_postal_codes(letter: str) -> None:
    for position in (0, 2, 4):
        candidate = list("K1A1A1")
        candidate[position] = letter
        assert normalise_postal_code("".join(candidate)) is None, "".join(candidate)


def test_every_valid_letter_combination_is_accepted() -> None:
    first_letters = set("ABCEGHJKLMNPRSTVXY")
    other_letters = first_letters | {"W", "Z"}
    for first, second, third in itertools.product(string.ascii_uppercase, repeat=3):
        code = f"{first}1{second}2{third}3"
        valid = first in first_letters and second in other_letters and third in other_letters
        assert (normalise_postal_code(code) is not None) == valid, code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ON", "ON"),
        ("qc", "QC"),
        (" ns ", "NS"),
        ("Ontario", "ON"),
        ("QUÉBEC", "QC"),
        ("Quebec", "QC"),
        ("québec", "QC"),
        ("British Columbia", "BC"),
        ("Colombie-Britannique", "BC"),
        ("Nouvelle-Écosse", "NS"),
        ("Terre-Neuve-et-Labrador", "NL"),
        ("Newfoundland and Labrador", "NL"),
        ("Île-du-Prince-Édouard", "PE"),
        ("Prince Edward Island", "PE"),
        ("Territoires du Nord-Ouest", "NT"),
        ("Nunavut", "NU"),
        ("Yukon", "YT"),
        ("PQ", "QC"),
    ],
)
def test_province_codes_and_names(raw: str, expected: str) -> None:
    assert province_code(raw) == expected


@pytest.mark.parametrize("raw", ["Ontari", "XX", "NY", "California", "O N", ""])
def test_unknown_provinces(raw: str) -> None:
    assert province_code(raw) is None


def test_every_province_has_a_postal_letter() -> None:
    covered = {province for letter in "ABCEGHJKLMNPRSTVXY" for province in provinces_for_postal_code(letter)}
    assert covered == PROVINCE_CODES
    assert provinces_for_postal_code("K1A0B1") == ("ON",)
    assert provinces_for_postal_code("X0A0H0") == ("NT", "NU")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("555-555-0100", "555-555-0100"),
        ("(613) 555-0100", "613-555-0100"),
        ("613.555.0100", "613-555-0100"),
        ("6135550100", "613-555-0100"),
        ("+1 613 555 0100", "613-555-0100"),
        ("1-613-555-0100", "613-555-0100"),
        ("613-555-0100 ext. 1234", "613-555-0100 ext 1234"),
        ("613-555-0100 x12", "613-555-0100 ext 12"),
        ("6135550100X12", "613-555-0100 ext 12"),
        ("514 555-0100 poste 22", "514-555-0100 ext 22"),
        ("613-555-0100 #7", "613-555-0100 ext 7"),
        ("613-555-0100 Extension: 99", "613-555-0100 ext 99"),
        ("555-0100", "5550100"),
        ("+44 20 7946 0958", "442079460958"),
    ],
)
def test_phone_numbers(raw: str, expected: str) -> None:
    phone = normalise_phone(raw)
    assert phone == expected
    assert len(phone) <= 25


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "N/A",
        "none",
        "1-800-FLOWERS",  # letters: not dialable as written
        "12345",  # too short to be a number
        "1234567890123456",  # longer than any phone number
        "613-555-0100 ext 12345678901234",  # over 25 characters with the extension
        "call after 5pm",
    ],
)
def test_not_phone_numbers(raw: str) -> None:
    assert normalise_phone(raw) is None
