"""The parcel (or parcels) an order ships in, from its lines and the SKUs' parcel profiles.

A pure function of the order, the profiles and the default parcel; the rules, in order:

1. Only lines that still ship count: a line whose ``order_line_state`` is CANCELED, REFUSED or
   CLOSED is left out. Every other line needs a SKU (``offer_sku``: text, at most 100
   characters, no control characters; spaces around it are ignored) and a ``quantity`` that is a
   whole number from 1 to 999, and the order at most 999 units in all. An order with no line
   left, or with a line that breaks these, cannot make a label: OrderDataError naming the order
   and the field (``order 123-A: order_lines[1].quantity: ...``; lines are counted from 0).
2. If any SKU still shipping has no profile, the whole order goes in the default parcel (the
   FULFIL_PARCEL_* settings), one parcel, with a warning naming each SKU: never a guess from the
   SKUs that do have one.
3. Otherwise every unit (a line of quantity 3 is three units) is packed:
   * each unit of a "ships alone" SKU in a parcel of its own;
   * the other units together in one parcel while they weigh 30 kg (Canada Post's limit) or less
     in all; over that, split first-fit decreasing: heaviest unit first, each into the first
     parcel it still fits in (30 kg at most), a new parcel when it fits in none, which makes as
     few parcels as this simple rule can.
4. A parcel of several units weighs what its units weigh together (summed exactly, to the gram)
   and has the dimensions and box of its largest unit by volume (a unit with no dimensions counts
   as volume 0; between units of the same volume, the heavier; then the first in SKU order). If
   none of its units has dimensions, neither has the parcel. A parcel of one unit is its profile.
5. Each parcel lists its units' SKUs in SKU order, and the parcels come in the order of their
   first unit (by SKU, then unit number): the same order always makes the same plan.

Every parcel made is within Canada Post's limits, since every profile is (fulfil.parcels.profiles).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from fulfil.canadapost.destination import OrderDataError
from fulfil.canadapost.parcel import Parcel
from fulfil.canadapost.schema import WEIGHT_MAX_KG
from fulfil.parcels.profiles import GRAM, ParcelProfile, shown, sku_problem

MAX_QUANTITY = 999  # units of one line
MAX_UNITS = 999  # units of one order: bounds the packing's work whatever the order says

# Mirakl's states of a line that will not be shipped (any other state ships, or may still).
NOT_SHIPPING_LINE_STATES = frozenset({"CANCELED", "REFUSED", "CLOSED"})

PROFILE = "profile"
DEFAULT = "default"


@dataclass(frozen=True)
class PlannedParcel:
    parcel: Parcel
    skus: tuple[str, ...]  # one entry per unit packed in it
    box: str | None


@dataclass(frozen=True)
class ParcelPlan:
    parcels: tuple[PlannedParcel, ...]  # at least one
    source: str  # "profile" or "default"
    reason: str  # one human line: why this parcel (or these parcels)
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _Line:
    sku: str
    quantity: int
    field: str  # order_lines[i], for messages


@dataclass(frozen=True)
class _Unit:
    sku: str
    number: int  # 1, 2 … within its SKU
    profile: ParcelProfile

    @property
    def key(self) -> tuple[str, int]:
        return (self.sku, self.number)


def plan_parcels(
    order_id: str, order: Mapping[str, Any], profiles: Mapping[str, ParcelProfile], default: Parcel
) -> ParcelPlan:
    """The parcels ``order`` (a Mirakl OR11 order object) ships in: see the module's rules.
    Raises OrderDataError when its lines cannot make a label."""
    lines = _shipping_lines(order_id, order)
    skus = sorted({line.sku for line in lines})
    missing = [sku for sku in skus if sku not in profiles]
    if missing:
        every_unit = tuple(sorted(sku for line in lines for sku in [line.sku] * line.quantity))
        listed = ", ".join(missing)
        return ParcelPlan(
            parcels=(PlannedParcel(default, every_unit, None),),
            source=DEFAULT,
            reason=f"no parcel profile for SKU {listed}: the default parcel (FULFIL_PARCEL_*)",
            warnings=tuple(
                f"order {order_id}: no parcel profile for SKU {sku}: the default parcel is used "
                "(`fulfil parcels import` adds one)"
                for sku in missing
            ),
        )
    units = _units(lines, profiles)
    alone = [unit for unit in units if unit.profile.ships_alone]
    together = [unit for unit in units if not unit.profile.ships_alone]
    groups = [[unit] for unit in alone] + _packed(together)
    groups = sorted((sorted(group, key=lambda u: u.key) for group in groups), key=lambda g: g[0].key)
    parcels = tuple(_parcel_of(group) for group in groups)
    return ParcelPlan(
        parcels=parcels,
        source=PROFILE,
        reason=_reason(units, alone, together, parcels),
        warnings=(),
    )


# --- reading the lines (untrusted) ------------------------------------------------------------


def _shipping_lines(order_id: str, order: Mapping[str, Any]) -> list[_Line]:
    found = order.get("order_lines")
    if found is None:
        raise OrderDataError(order_id, "order_lines", "missing (the lines say what to pack)")
    if not isinstance(found, list):
        raise OrderDataError(order_id, "order_lines", f"expected a list, found {_kind(found)}")
    lines: list[_Line] = []
    units = 0
    for index, line in enumerate(found):
        field = f"order_lines[{index}]"
        if not isinstance(line, Mapping):
            raise OrderDataError(order_id, field, f"expected an object, found {_kind(line)}")
        state = line.get("order_line_state")
        if state is not None and not isinstance(state, str):
            raise OrderDataError(
                order_id, f"{field}.order_line_state", f"expected text, found {_kind(state)}"
            )
        if state is not None and state.strip(" ").upper() in NOT_SHIPPING_LINE_STATES:
            continue
        read = _Line(_sku(order_id, field, line), _quantity(order_id, field, line), field)
        units += read.quantity
        if units > MAX_UNITS:
            raise OrderDataError(
                order_id, "order_lines", f"more than {MAX_UNITS} units in all: not packed automatically"
            )
        lines.append(read)
    if not lines:
        why = "empty" if not found else "no line still ships (each is canceled, refused or closed)"
        raise OrderDataError(order_id, "order_lines", why)
    return lines


def _sku(order_id: str, field: str, line: Mapping[str, Any]) -> str:
    value = line.get("offer_sku")
    path = f"{field}.offer_sku"
    if value is None:
        raise OrderDataError(order_id, path, "missing (the SKU picks the parcel)")
    if not isinstance(value, str):
        raise OrderDataError(order_id, path, f"expected text, found {_kind(value)}")
    sku = value.strip(" ")
    problem = sku_problem(sku)
    if problem is not None:
        raise OrderDataError(order_id, path, problem)
    return sku


def _quantity(order_id: str, field: str, line: Mapping[str, Any]) -> int:
    value = line.get("quantity")
    path = f"{field}.quantity"
    if value is None:
        raise OrderDataError(order_id, path, "missing (how many units to pack)")
    # bool is an int to Python; true is not a number of units.
    if not isinstance(value, int) or isinstance(value, bool):
        what = shown(value) if isinstance(value, str) else _kind(value)
        raise OrderDataError(order_id, path, f"expected a whole number of units, found {what}")
    if not 1 <= value <= MAX_QUANTITY:
        shown_value = value if abs(value) < 10**12 else "a number that large"
        raise OrderDataError(order_id, path, f"{shown_value}: expected 1 to {MAX_QUANTITY} units")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if abs(value) < 10**12 else type(value).__name__
    names = {dict: "an object", list: "a list", str: "text", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# --- packing ------------------------------------------------------------------------------------


def _units(lines: Sequence[_Line], profiles: Mapping[str, ParcelProfile]) -> list[_Unit]:
    """Every unit, in SKU order then unit number (a SKU on two lines numbers on from the first)."""
    counts: dict[str, int] = {}
    for line in lines:
        counts[line.sku] = counts.get(line.sku, 0) + line.quantity
    return [
        _Unit(sku, number, profiles[sku]) for sku in sorted(counts) for number in range(1, counts[sku] + 1)
    ]


def _packed(units: Sequence[_Unit]) -> list[list[_Unit]]:
    """Units in as few parcels of at most 30 kg as first-fit decreasing finds (one when they fit)."""
    if not units:
        return []
    if sum((unit.profile.weight_kg for unit in units), Decimal(0)) <= WEIGHT_MAX_KG:
        return [list(units)]
    bins: list[list[_Unit]] = []
    weights: list[Decimal] = []
    # Heaviest first; ties in SKU order, so the same order always packs the same way.
    for unit in sorted(units, key=lambda u: (-u.profile.weight_kg, u.key)):
        weight = unit.profile.weight_kg
        for index, held in enumerate(weights):
            if held + weight <= WEIGHT_MAX_KG:
                bins[index].append(unit)
                weights[index] = held + weight
                break
        else:
            bins.append([unit])
            weights.append(weight)
    return bins


def _parcel_of(units: Sequence[_Unit]) -> PlannedParcel:
    weight = sum((unit.profile.weight_kg for unit in units), Decimal(0)).quantize(GRAM, ROUND_HALF_UP)
    largest = _largest(units)
    if weight > WEIGHT_MAX_KG:  # pragma: no cover - packing keeps to the limit; checked all the same
        raise AssertionError(f"a parcel of {weight} kg was planned")
    return PlannedParcel(
        parcel=Parcel(weight, largest.profile.dimensions),
        skus=tuple(unit.sku for unit in units),
        box=largest.profile.box,
    )


def _largest(units: Sequence[_Unit]) -> _Unit:
    """The unit whose box the parcel takes: the largest by volume, then the heavier, then the
    first in SKU order."""
    return min(units, key=lambda u: (-u.profile.volume_cm3, -u.profile.weight_kg, u.key))


def _reason(
    units: Sequence[_Unit],
    alone: Sequence[_Unit],
    together: Sequence[_Unit],
    parcels: Sequence[PlannedParcel],
) -> str:
    if len(units) == 1:
        return f"the parcel profile of SKU {units[0].sku}"
    if len(parcels) == 1:
        return (
            f"{len(units)} units in one parcel: weights summed ({parcels[0].parcel.weight_kg} kg), "
            f"dimensions and box of the largest unit ({_largest(units).sku})"
        )
    parts: list[str] = []
    if alone:
        parts.append(f"{len(alone)} ship alone ({', '.join(sorted({u.sku for u in alone}))})")
    if together:
        shared = len(parcels) - len(alone)
        if shared > 1:
            total = sum((u.profile.weight_kg for u in together), Decimal(0))
            parts.append(
                f"{len(together)} more weigh {total} kg, split into {shared} parcels of at most "
                f"{WEIGHT_MAX_KG} kg"
            )
        else:
            parts.append(f"{len(together)} more together in one parcel")
    return f"{len(units)} units in {len(parcels)} parcels: " + "; ".join(parts)
