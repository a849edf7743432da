"""The profile CSV: good rows kept, each bad row rejected alone with its line and field, header
problems one error for the file; the table's CHECKs refusing what Canada Post cannot take even
when a row is written by hand; the store's upsert counting what it inserted and updated."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from fulfil.canadapost.parcel import Dimensions
from fulfil.parcels.profiles import (
    BOX_MAX,
    SKU_MAX,
    ParcelProfile,
    ProfileFileError,
    Rejection,
    read_profile_rows,
    read_profiles_csv,
)
from fulfil.parcels.store import ParcelProfileStore

HEADER = "sku,weight_kg,length_cm,width_cm,height_cm,box,ships_alone\n"
unit = pytest.mark.unit


@unit
def test_good_rows_become_profiles_exactly_as_given() -> None:
    profiles, rejections = read_profiles_csv(
        HEADER
        + "MUG-1,0.45,12,12,10.5,small,no\n"
        + "TV-55, 18.2 ,140,85,16,TV box,YES\n"
        + "CABLE,0.05,,,,,\n"
        + "LAMP,30,999.9,0.1,1,,1\n"
    )
    assert rejections == []
    assert profiles == [
        ParcelProfile(
            "MUG-1", Decimal("0.450"), Dimensions(Decimal(12), Decimal(12), Decimal("10.5")), "small"
        ),
        ParcelProfile(
            "TV-55", Decimal("18.2"), Dimensions(Decimal(140), Decimal(85), Decimal(16)), "TV box", True
        ),
        ParcelProfile("CABLE", Decimal("0.05"), None, None, False),
        ParcelProfile(
            "LAMP", Decimal(30), Dimensions(Decimal("999.9"), Decimal("0.1"), Decimal(1)), None, True
        ),
    ]
    # Every weight to the gram, every dimension to the millimetre, as Canada Post reads them.
    assert str(profiles[0].weight_kg) == "0.450"
    assert profiles[0].dimensions is not None
    assert str(profiles[0].dimensions.length_cm) == "12.0"


@unit
def test_the_optional_columns_may_be_left_out() -> None:
    five, _ = read_profiles_csv("sku,weight_kg,length_cm,width_cm,height_cm\nA,1,,,\n")
    six, _ = read_profiles_csv("sku,weight_kg,length_cm,width_cm,height_cm,box\nA,1,,,,crate\n")
    no_box, _ = read_profiles_csv("sku,weight_kg,length_cm,width_cm,height_cm,ships_alone\nA,1,,,,true\n")
    assert [(p.box, p.ships_alone) for p in five + six + no_box] == [
        (None, False),
        ("crate", False),
        (None, True),
    ]


@unit
def test_a_byte_order_mark_crlf_and_blank_rows_are_fine() -> None:
    rows, rejections = read_profile_rows(
        "\ufeff" + HEADER.replace("\n", "\r\n") + "A,1,,,,,\r\n\r\n,,,,,,\r\nB,2,,,,,\r\n"
    )
    assert rejections == []
    assert [(row.line, row.profile.sku) for row in rows] == [(2, "A"), (5, "B")]


BAD_ROWS = [
    ("B,abc,,,,,", "weight_kg", '"abc" is not a number'),
    ("B,,,,,,", "weight_kg", "missing (a weight is required)"),
    ("B,-1,,,,,", "weight_kg", "-1 kg: a weight must be more than 0"),
    ("B,0,,,,,", "weight_kg", "0 kg: a weight must be more than 0"),
    ("B,30.001,,,,,", "weight_kg", "30.001 kg: more than the 30 kg Canada Post takes"),
    ("B,1.2345,,,,,", "weight_kg", "1.2345 kg: more than 3 decimals (Canada Post weighs to the gram)"),
    ("B,NaN,,,,,", "weight_kg", '"NaN" is not a number'),
    ("B,1e2,,,,,", "weight_kg", '"1e2" is not a number'),
    ('B,"1,5",,,,,', "weight_kg", '"1,5" is not a number (write decimals with a point: 1.5)'),
    (
        "B,1,10,20,,,",
        "height_cm",
        "missing while length_cm and width_cm given: give all three dimensions or none",
    ),
    ("B,1,,,5,,", "length_cm", "missing while height_cm given: give all three dimensions or none"),
    ("B,1,1000,20,10,,", "length_cm", "1000 cm: more than the 999.9 cm Canada Post takes"),
    ("B,1,10,0,10,,", "width_cm", "0 cm: a dimension must be more than 0"),
    (
        "B,1,10,20,10.25,,",
        "height_cm",
        "10.25 cm: more than 1 decimal (Canada Post measures to the millimetre)",
    ),
    ("B,1,10,twenty,10,,", "width_cm", '"twenty" is not a number'),
    ("B,1,,,,,maybe", "ships_alone", '"maybe" is not one of true, false, yes, no, 1, 0 (or empty)'),
    (",1,,,,,", "sku", "empty (a SKU is required)"),
    ('"B\tC",1,,,,,', "sku", '"B\\tC" contains a control character'),
    ('"B\nC",1,,,,,', "sku", '"B\\nC" contains a control character'),
    ("S" * (SKU_MAX + 1) + ",1,,,,,", "sku", f"{SKU_MAX + 1} characters, more than {SKU_MAX}"),
    ("B,1,,,," + "x" * (BOX_MAX + 1) + ",", "box", f"{BOX_MAX + 1} characters, more than {BOX_MAX}"),
    ("B,1,,,,\x1b[31mred,", "box", '"\\u001b[31mred" contains a control character'),
    ("B,1,,,,", "row", "6 fields, but the header has 7 columns"),
    ("B,1,,,,,,extra", "row", "8 fields, but the header has 7 columns"),
]


@unit
@pytest.mark.parametrize(("row", "field", "message"), BAD_ROWS, ids=[f"{f}:{m[:30]}" for _, f, m in BAD_ROWS])
def test_a_bad_row_is_rejected_alone_with_its_line_and_field(row: str, field: str, message: str) -> None:
    profiles, rejections = read_profiles_csv(HEADER + "A,1,,,,,\n" + row + "\nC,2,,,,,\n")
    assert [p.sku for p in profiles] == ["A", "C"]
    assert rejections == [Rejection(3, field, message)]


@unit
def test_a_rejection_reads_as_one_line() -> None:
    _, rejections = read_profiles_csv(HEADER + "A,1,,,,,\n" * 0 + "\n" * 5 + "B,abc,,,,,\n")
    assert [str(r) for r in rejections] == ['line 7: weight_kg: "abc" is not a number']


@unit
def test_a_sku_twice_in_the_file_is_rejected_the_second_time() -> None:
    profiles, rejections = read_profiles_csv(HEADER + "A,1,,,,,\nB,2,,,,,\n A ,3,,,,,\n")
    assert [(p.sku, p.weight_kg) for p in profiles] == [("A", Decimal("1.000")), ("B", Decimal("2.000"))]
    assert [str(r) for r in rejections] == ['line 4: sku: "A" is also on line 2 (once per file)']


@unit
def test_a_row_spanning_lines_is_counted_from_its_first_line() -> None:
    rows, rejections = read_profile_rows(HEADER + 'A,1,,,,"two\nline box",\nB,abc,,,,,\n')
    assert [str(r) for r in rejections] == [
        'line 2: box: "two\\nline box" contains a control character',
        'line 4: weight_kg: "abc" is not a number',
    ]
    assert rows == []


@unit
@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("sku,weight,length_cm,width_cm,height_cm", 'unknown column "weight"'),
        ("sku,weight_kg,length_cm,width_cm", "missing column height_cm"),
        ("sku,weight_kg,length_cm,width_cm,height_cm,box,box", "column box given twice"),
        (
            "weight_kg,sku,length_cm,width_cm,height_cm",
            "columns out of order (weight_kg,sku,length_cm,width_cm,height_cm)",
        ),
        ("sku,weight_kg,length_cm,width_cm,height_cm,ships_alone,box", "columns out of order"),
        ("A,1,,,,,", 'unknown column "A"'),
    ],
)
def test_a_wrong_header_is_one_error_for_the_whole_file(header: str, why: str) -> None:
    with pytest.raises(ProfileFileError) as raised:
        read_profiles_csv(header + "\nA,1,,,\n")
    message = str(raised.value)
    assert message.startswith(f"line 1: header: {why}")
    assert message.endswith(
        "expected sku,weight_kg,length_cm,width_cm,height_cm,box,ships_alone "
        "(box and ships_alone may be left out)"
    )


@unit
def test_an_empty_file_and_broken_quoting_are_errors_for_the_file() -> None:
    with pytest.raises(ProfileFileError, match="the file is empty"):
        read_profiles_csv("")
    with pytest.raises(ProfileFileError, match=r"^line 3: not readable as CSV"):
        read_profiles_csv(HEADER + "A,1,,,,,\n" + 'B,"1,,,,,\n')


@unit
def test_a_profile_that_canada_post_could_not_take_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="more than the 30 kg"):
        ParcelProfile("A", Decimal("30.5"), None)
    with pytest.raises(ValueError, match="not a number"):
        ParcelProfile("A", Decimal("NaN"), None)
    with pytest.raises(ValueError, match="more than 1 decimal"):
        ParcelProfile("A", Decimal(1), Dimensions(Decimal("1.25"), Decimal(1), Decimal(1)))
    with pytest.raises(ValueError, match="control character"):
        ParcelProfile("A\n", Decimal(1), None)


# --- the table ---------------------------------------------------------------------------------

INSERT = (
    "INSERT INTO parcel_profiles (sku, weight_kg, length_cm, width_cm, height_cm, box, ships_alone) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


@pytest.mark.parametrize(
    "row",
    [
        ("A", "0", None, None, None, None, False),
        ("A", "-1", None, None, None, None, False),
        ("A", "30.001", None, None, None, None, False),
        ("A", "1.2345", None, None, None, None, False),
        ("A", "NaN", None, None, None, None, False),
        ("A", "1", "10", "10", None, None, False),  # two dimensions of three
        ("A", "1", "1000", "10", "10", None, False),
        ("A", "1", "10.25", "10", "10", None, False),
        ("A", "1", "0", "10", "10", None, False),
        ("", "1", None, None, None, None, False),
        (" A", "1", None, None, None, None, False),
        ("A\nB", "1", None, None, None, None, False),
        ("A\x1b", "1", None, None, None, None, False),
        ("S" * (SKU_MAX + 1), "1", None, None, None, None, False),
        ("A", "1", None, None, None, "", False),
        ("A", "1", None, None, None, "x" * (BOX_MAX + 1), False),
        ("A", "1", None, None, None, "bad\tbox", False),
    ],
)
def test_the_table_refuses_what_canada_post_cannot_take(
    db: psycopg.Connection, row: tuple[object, ...]
) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(INSERT, row)


def test_the_table_takes_the_limits_themselves(db: psycopg.Connection) -> None:
    db.execute(INSERT, ("S" * SKU_MAX, "30", "999.9", "0.1", "1", "x" * BOX_MAX, True))
    db.execute(INSERT, ("light", "0.001", None, None, None, None, False))
    db.execute(INSERT, ("trailing zeros", "1.5000", "10.50", "1", "1", None, False))
    assert db.execute("SELECT count(*) FROM parcel_profiles").fetchone() == (3,)


def test_upsert_counts_inserted_updated_and_unchanged(database_url: str) -> None:
    first, _ = read_profiles_csv(HEADER + "A,1,10,10,10,small,no\nB,2,,,,,\nC,3,,,,,yes\n")
    second, _ = read_profiles_csv(HEADER + "A,1.0,10,10,10.0,small,\nB,2.5,,,,,\nD,4,,,,,\n")
    with ParcelProfileStore.open(database_url) as store:
        once = store.upsert(first)
        assert (once.inserted, once.updated, once.unchanged) == (("A", "B", "C"), (), ())
        before = {s.profile.sku: s.updated_at for s in store.all()}

        again = store.upsert(second)
        assert (again.inserted, again.updated, again.unchanged) == (("D",), ("B",), ("A",))
        assert again.outcomes() == {"A": "unchanged", "B": "updated", "D": "inserted"}

        stored = {s.profile.sku: s for s in store.all()}
        assert [s for s in stored] == ["A", "B", "C", "D"]
        assert stored["A"].updated_at == before["A"]  # nothing changed: not touched
        assert stored["B"].profile.weight_kg == Decimal("2.5")
        assert stored["C"].profile.ships_alone is True
        assert stored["A"].profile.dimensions == Dimensions(Decimal(10), Decimal(10), Decimal(10))
        assert stored["B"].profile.dimensions is None

        assert set(store.profiles_for(["A", "D", "nope"])) == {"A", "D"}
        assert store.profiles_for([]) == {}
        assert store.upsert([]).outcomes() == {}


def test_upsert_refuses_a_sku_given_twice_and_writes_nothing(database_url: str) -> None:
    profile = ParcelProfile("A", Decimal(1), None)
    with ParcelProfileStore.open(database_url) as store:
        with pytest.raises(ValueError, match="more than once: A"):
            store.upsert([profile, ParcelProfile("B", Decimal(1), None), profile])
        assert store.all() == []
