"""The parcel choice: one item, several (weights summed, the largest unit's box), ships alone, the
30 kg split, a SKU with no profile (the default parcel, said), and order lines that cannot make a
label (OrderDataError naming the order and the field)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from fulfil.canadapost.destination import OrderDataError
from fulfil.canadapost.parcel import Dimensions, Parcel
from fulfil.canadapost.schema import WEIGHT_MAX_KG
from fulfil.parcels.choice import ParcelPlan, plan_parcels
from fulfil.parcels.profiles import ParcelProfile

pytestmark = pytest.mark.unit

DEFAULT = Parcel(Decimal("1.200"), Dimensions(Decimal("30.0"), Decimal("20.0"), Decimal("10.0")))


def dims(length: str, width: str, height: str) -> Dimensions:
    return Dimensions(Decimal(length), Decimal(width), Decimal(height))


PROFILES = {
    "MUG": ParcelProfile("MUG", Decimal("0.450"), dims("12", "12", "10"), "small"),
    "LAMP": ParcelProfile("LAMP", Decimal("2.300"), dims("40", "25", "25"), "tall"),
    "CABLE": ParcelProfile("CABLE", Decimal("0.050"), None, None),
    "TV": ParcelProfile("TV", Decimal("18.000"), dims("140", "85", "16"), "tv box", ships_alone=True),
    "PLATE": ParcelProfile("PLATE", Decimal("9.000"), dims("50", "50", "10"), "crate"),
    "BOLT": ParcelProfile("BOLT", Decimal("0.333"), None, "bag"),
    "NUT": ParcelProfile("NUT", Decimal("0.333"), None, "pouch"),
}


def order(*lines: tuple[str, int] | dict[str, Any]) -> dict[str, Any]:
    built = [
        line
        if isinstance(line, dict)
        else {"offer_sku": line[0], "quantity": line[1], "order_line_state": "SHIPPING"}
        for line in lines
    ]
    return {"order_id": "123-A", "order_lines": built}


def plan(*lines: tuple[str, int] | dict[str, Any]) -> ParcelPlan:
    return plan_parcels("123-A", order(*lines), PROFILES, DEFAULT)


def within_canada_post_limits(result: ParcelPlan) -> None:
    assert result.parcels
    for planned in result.parcels:
        weight = planned.parcel.weight_kg
        assert Decimal(0) < weight <= WEIGHT_MAX_KG
        assert weight == weight.quantize(Decimal("0.001"))


def test_one_item_ships_in_its_own_profile() -> None:
    result = plan(("MUG", 1))
    assert result.source == "profile"
    assert result.warnings == ()
    assert [(p.parcel, p.skus, p.box) for p in result.parcels] == [
        (Parcel(Decimal("0.450"), dims("12", "12", "10")), ("MUG",), "small")
    ]
    assert result.reason == "the parcel profile of SKU MUG"


def test_several_units_sum_their_weights_in_the_largest_units_box() -> None:
    result = plan(("MUG", 2), ("LAMP", 1), ("CABLE", 3))
    within_canada_post_limits(result)
    assert len(result.parcels) == 1
    (planned,) = result.parcels
    assert planned.parcel.weight_kg == Decimal("3.350")  # 2 × 0.45 + 2.3 + 3 × 0.05
    assert planned.parcel.dimensions == dims("40", "25", "25")  # the lamp is the largest
    assert planned.box == "tall"
    assert planned.skus == ("CABLE", "CABLE", "CABLE", "LAMP", "MUG", "MUG")
    assert result.reason == (
        "6 units in one parcel: weights summed (3.350 kg), dimensions and box of the largest unit (LAMP)"
    )


def test_with_no_dimensions_at_all_the_parcel_has_none_and_the_heavier_units_box() -> None:
    result = plan(("CABLE", 2), ("BOLT", 1))
    (planned,) = result.parcels
    assert planned.parcel == Parcel(Decimal("0.433"), None)
    assert planned.box == "bag"  # no volume either way: the heavier unit's box


def test_between_units_alike_the_first_in_sku_order_gives_the_box() -> None:
    result = plan(("NUT", 1), ("BOLT", 1))
    assert result.parcels[0].box == "bag"
    assert result.parcels[0].parcel.weight_kg == Decimal("0.666")


def test_a_ships_alone_sku_gets_a_parcel_per_unit() -> None:
    result = plan(("TV", 2), ("MUG", 1), ("CABLE", 1))
    within_canada_post_limits(result)
    assert [(p.skus, p.parcel.weight_kg, p.box) for p in result.parcels] == [
        (("CABLE", "MUG"), Decimal("0.500"), "small"),
        (("TV",), Decimal("18.000"), "tv box"),
        (("TV",), Decimal("18.000"), "tv box"),
    ]
    assert result.parcels[1].parcel.dimensions == dims("140", "85", "16")
    assert result.reason == "4 units in 3 parcels: 2 ship alone (TV); 2 more together in one parcel"


def test_only_ships_alone_units() -> None:
    result = plan(("TV", 1))
    assert [p.skus for p in result.parcels] == [("TV",)]
    assert [p.skus for p in plan(("TV", 3)).parcels] == [("TV",)] * 3


def test_over_30_kg_is_split_first_fit_decreasing() -> None:
    result = plan(("PLATE", 4))  # 36 kg: two parcels of two plates
    within_canada_post_limits(result)
    assert [(p.skus, p.parcel.weight_kg, p.box) for p in result.parcels] == [
        (("PLATE", "PLATE", "PLATE"), Decimal("27.000"), "crate"),
        (("PLATE",), Decimal("9.000"), "crate"),
    ]
    assert "4 units in 2 parcels" in result.reason
    assert "36.000 kg, split into 2 parcels of at most 30 kg" in result.reason


def test_the_split_fills_the_gaps_with_the_light_units() -> None:
    # Heaviest first: 3 plates (27 kg) in the first parcel, the 4th opens a second; the lamp
    # (2.3) and a mug (0.45) still fit the first (29.75 kg), the last mug only the second.
    result = plan(("PLATE", 4), ("LAMP", 1), ("MUG", 2))
    within_canada_post_limits(result)
    assert [(p.skus, p.parcel.weight_kg) for p in result.parcels] == [
        (("LAMP", "MUG", "PLATE", "PLATE", "PLATE"), Decimal("29.750")),
        (("MUG", "PLATE"), Decimal("9.450")),
    ]
    # Each parcel has the box and dimensions of its own largest unit.
    assert [p.box for p in result.parcels] == ["crate", "crate"]


def test_exactly_30_kg_is_one_parcel() -> None:
    profiles = {**PROFILES, "TEN": ParcelProfile("TEN", Decimal(10), None)}
    result = plan_parcels("123-A", order(("TEN", 3)), profiles, DEFAULT)
    assert [p.parcel.weight_kg for p in result.parcels] == [Decimal("30.000")]


def test_the_same_order_always_makes_the_same_plan() -> None:
    lines = [("PLATE", 2), ("TV", 1), ("MUG", 3), ("PLATE", 3), ("LAMP", 2)]
    first = plan(*lines)
    assert plan(*reversed(lines)) == first
    within_canada_post_limits(first)


def test_a_sku_with_no_profile_sends_the_whole_order_in_the_default_parcel_and_says_so() -> None:
    result = plan(("MUG", 1), ("GHOST", 2), ("TV", 1), ("PHANTOM", 1))
    assert result.source == "default"
    assert [(p.parcel, p.skus, p.box) for p in result.parcels] == [
        (DEFAULT, ("GHOST", "GHOST", "MUG", "PHANTOM", "TV"), None)
    ]
    assert result.warnings == (
        "order 123-A: no parcel profile for SKU GHOST: the default parcel is used "
        "(`fulfil parcels import` adds one)",
        "order 123-A: no parcel profile for SKU PHANTOM: the default parcel is used "
        "(`fulfil parcels import` adds one)",
    )
    assert result.reason == "no parcel profile for SKU GHOST, PHANTOM: the default parcel (FULFIL_PARCEL_*)"


def test_lines_that_no_longer_ship_do_not_count() -> None:
    result = plan(
        ("MUG", 1),
        {"offer_sku": "GHOST", "quantity": 1, "order_line_state": "CANCELED"},
        {"offer_sku": "PLATE", "quantity": 9, "order_line_state": "refused"},
        {"offer_sku": "TV", "quantity": 1, "order_line_state": "CLOSED"},
        {"offer_sku": "LAMP", "quantity": 1},  # no state: it ships
    )
    assert result.source == "profile"
    assert [p.skus for p in result.parcels] == [("LAMP", "MUG")]


def test_spaces_around_a_sku_are_ignored() -> None:
    assert plan((" MUG ", 1)).parcels[0].skus == ("MUG",)


HOSTILE: list[tuple[Any, str, str]] = [
    ({"order_id": "123-A"}, "order_lines", "missing"),
    ({"order_lines": {"offer_sku": "MUG"}}, "order_lines", "expected a list, found an object"),
    ({"order_lines": []}, "order_lines", "empty"),
    (
        {"order_lines": [{"offer_sku": "MUG", "quantity": 1, "order_line_state": "CANCELED"}]},
        "order_lines",
        "no line still ships",
    ),
    ({"order_lines": ["MUG"]}, "order_lines[0]", "expected an object, found text"),
    ({"order_lines": [{"quantity": 1}]}, "order_lines[0].offer_sku", "missing"),
    (
        {"order_lines": [{"offer_sku": 42, "quantity": 1}]},
        "order_lines[0].offer_sku",
        "expected text, found 42",
    ),
    ({"order_lines": [{"offer_sku": "  ", "quantity": 1}]}, "order_lines[0].offer_sku", "empty"),
    (
        {"order_lines": [{"offer_sku": "MUG\nfulfil: all good", "quantity": 1}]},
        "order_lines[0].offer_sku",
        "contains a control character",
    ),
    (
        {"order_lines": [{"offer_sku": "M" * 101, "quantity": 1}]},
        "order_lines[0].offer_sku",
        "101 characters",
    ),
    (
        {"order_lines": [{"offer_sku": "MUG", "quantity": 1}, {"offer_sku": "MUG", "quantity": 0}]},
        "order_lines[1].quantity",
        "0: expected 1 to 999 units",
    ),
    ({"order_lines": [{"offer_sku": "MUG", "quantity": -3}]}, "order_lines[0].quantity", "-3: expected 1"),
    ({"order_lines": [{"offer_sku": "MUG", "quantity": 1000}]}, "order_lines[0].quantity", "1000: expected"),
    (
        {"order_lines": [{"offer_sku": "MUG", "quantity": 10**400}]},
        "order_lines[0].quantity",
        "a number that large",
    ),
    ({"order_lines": [{"offer_sku": "MUG", "quantity": 2.5}]}, "order_lines[0].quantity", "found 2.5"),
    ({"order_lines": [{"offer_sku": "MUG", "quantity": "2"}]}, "order_lines[0].quantity", 'found "2"'),
    ({"order_lines": [{"offer_sku": "MUG", "quantity": True}]}, "order_lines[0].quantity", "found true"),
    ({"order_lines": [{"offer_sku": "MUG"}]}, "order_lines[0].quantity", "missing"),
    (
        {"order_lines": [{"offer_sku": "MUG", "quantity": 1, "order_line_state": ["CANCELED"]}]},
        "order_lines[0].order_line_state",
        "expected text, found a list",
    ),
    (
        {"order_lines": [{"offer_sku": "MUG", "quantity": 999}, {"offer_sku": "LAMP", "quantity": 1}]},
        "order_lines",
        "more than 999 units in all",
    ),
]


@pytest.mark.parametrize(("data", "field", "message"), HOSTILE, ids=[f"{f}:{m[:24]}" for _, f, m in HOSTILE])
def test_lines_that_cannot_make_a_label_name_the_order_and_the_field(
    data: Any, field: str, message: str
) -> None:
    with pytest.raises(OrderDataError) as raised:
        plan_parcels("123-A", data, PROFILES, DEFAULT)
    error = raised.value
    assert (error.order_id, error.field) == ("123-A", field)
    assert message in error.message
    assert str(error).startswith(f"order 123-A: {field}: ")
    assert "\n" not in str(error)  # a hostile SKU cannot forge a line of output


def test_a_bad_line_is_refused_even_when_a_sku_has_no_profile() -> None:
    data = {"order_lines": [{"offer_sku": "GHOST", "quantity": 1}, {"offer_sku": "MUG", "quantity": "x"}]}
    with pytest.raises(OrderDataError, match=r"order_lines\[1\]\.quantity"):
        plan_parcels("123-A", data, PROFILES, DEFAULT)


def test_any_mix_packs_every_unit_once_within_the_limits() -> None:
    import random

    rng = random.Random(14)
    skus = sorted(PROFILES)
    for _ in range(300):
        lines = [(rng.choice(skus), rng.randint(1, 12)) for _ in range(rng.randint(1, 6))]
        result = plan(*lines)
        within_canada_post_limits(result)
        packed = sorted(sku for planned in result.parcels for sku in planned.skus)
        assert packed == sorted(sku for sku, quantity in lines for _ in range(quantity))
        for planned in result.parcels:
            weights = sum((PROFILES[sku].weight_kg for sku in planned.skus), Decimal(0))
            assert planned.parcel.weight_kg == weights
            if any(PROFILES[sku].ships_alone for sku in planned.skus):
                assert len(planned.skus) == 1
