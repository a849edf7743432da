"""Parcel profiles: what one unit of a SKU weighs and measures, packed, and the CSV they come in.

A profile is refused unless Canada Post can take it as it stands: a weight from 0.001 to 30 kg in
whole grams, and either no dimensions or all three, each from 0.1 to 999.9 cm in whole
millimetres. Nothing is rounded on the way in: a weight of 1.2345 kg is a typing error more often
than a precision, and a label bought for the wrong weight costs money (or is refused at the
counter). The database holds the same rules as CHECK constraints (sql/0018_parcel_profiles.sql).

The CSV (`fulfil parcels import`) has the header ``sku,weight_kg,length_cm,width_cm,height_cm,
box,ships_alone``, in that order; ``box`` and ``ships_alone`` may be left out. Each row stands
alone: a bad one is rejected with its line, its field and why, and the good ones are kept. A
header that is not this one is one error for the whole file (nothing in it can be trusted to be
in the right column). Rows of nothing but empty fields (spreadsheets export them) are skipped.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from fulfil.canadapost.parcel import Dimensions
from fulfil.canadapost.schema import DIMENSION_MAX_CM, WEIGHT_MAX_KG
from fulfil.errors import UsageError

# Bounds the database holds too (sql/0018_parcel_profiles.sql): keep both in step.
SKU_MAX = 100
BOX_MAX = 64

GRAM = Decimal("0.001")
MILLIMETRE = Decimal("0.1")

COLUMNS = ("sku", "weight_kg", "length_cm", "width_cm", "height_cm", "box", "ships_alone")
REQUIRED_COLUMNS = COLUMNS[:5]
DIMENSION_COLUMNS = ("length_cm", "width_cm", "height_cm")
HEADER = ",".join(COLUMNS)

TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0", ""})

# C0, DEL and C1 controls, and lone surrogates (what a byte that is not UTF-8 reads as): none of
# them belongs in a SKU or a box name, and a newline in one would forge a line of output.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# A plain decimal number: no exponent, no underscores, no NaN or Infinity (Decimal takes them all).
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_SHOWN_MAX = 40  # characters of a bad value quoted in a message


class ProfileFileError(UsageError):
    """The profile file as a whole cannot be read: its header, its encoding, its CSV quoting."""


@dataclass(frozen=True)
class ParcelProfile:
    """One unit of ``sku``, packed: its weight, its box's outside dimensions (None: not measured),
    the name of the box (for the packer; None: none given), and whether it must travel alone."""

    sku: str
    weight_kg: Decimal
    dimensions: Dimensions | None
    box: str | None = None
    ships_alone: bool = False

    def __post_init__(self) -> None:
        # The same rules as the CSV and the database: a profile that exists can make a label.
        problem = (
            sku_problem(self.sku)
            or weight_problem(self.weight_kg)
            or (box_problem(self.box) if self.box is not None else None)
        )
        if problem is None and self.dimensions is not None:
            measures = (self.dimensions.length_cm, self.dimensions.width_cm, self.dimensions.height_cm)
            problem = next((p for p in map(dimension_problem, measures) if p is not None), None)
        if problem is not None:
            raise ValueError(f"parcel profile {self.sku!r}: {problem}")

    @property
    def volume_cm3(self) -> Decimal:
        """The box's volume; 0 when it was not measured."""
        if self.dimensions is None:
            return Decimal(0)
        d = self.dimensions
        return d.length_cm * d.width_cm * d.height_cm


@dataclass(frozen=True)
class Rejection:
    """A row of the CSV that was not imported: its 1-based line, the column at fault and why."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


# --- the rules, shared with the parcel choice -------------------------------------------------


def sku_problem(sku: str) -> str | None:
    """Why ``sku`` (already stripped of spaces) cannot name a profile; None when it can."""
    if not sku:
        return "empty (a SKU is required)"
    if _CONTROL.search(sku):
        return f"{shown(sku)} contains a control character"
    if len(sku) > SKU_MAX:
        return f"{len(sku)} characters, more than {SKU_MAX}"
    return None


def box_problem(box: str) -> str | None:
    if not box:
        return "empty"
    if _CONTROL.search(box):
        return f"{shown(box)} contains a control character"
    if len(box) > BOX_MAX:
        return f"{len(box)} characters, more than {BOX_MAX}"
    return None


def weight_problem(weight: Decimal) -> str | None:
    text = _cut(str(weight))
    # NaN first: comparing it raises, and Decimal reads "NaN" and "Infinity" as numbers.
    if not weight.is_finite():
        return f"{text} is not a number"
    if weight <= 0:
        return f"{text} kg: a weight must be more than 0"
    if weight > WEIGHT_MAX_KG:
        return f"{text} kg: more than the {WEIGHT_MAX_KG} kg Canada Post takes"
    if weight != weight.quantize(GRAM):
        return f"{text} kg: more than 3 decimals (Canada Post weighs to the gram)"
    return None


def dimension_problem(measure: Decimal) -> str | None:
    text = _cut(str(measure))
    if not measure.is_finite():
        return f"{text} is not a number"
    if measure <= 0:
        return f"{text} cm: a dimension must be more than 0"
    if measure > DIMENSION_MAX_CM:
        return f"{text} cm: more than the {DIMENSION_MAX_CM} cm Canada Post takes"
    if measure != measure.quantize(MILLIMETRE):
        return f"{text} cm: more than 1 decimal (Canada Post measures to the millimetre)"
    return None


def shown(value: str) -> str:
    """A value quoted for a message: in double quotes, escapes for control characters, cut short."""
    return json.dumps(_cut(value), ensure_ascii=False)


def _cut(text: str) -> str:
    return text if len(text) <= _SHOWN_MAX else text[:_SHOWN_MAX] + "..."


# --- the CSV ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileRow:
    """A row of the CSV that makes a profile, and the line it starts on."""

    line: int
    profile: ParcelProfile


def read_profiles_csv(text: str) -> tuple[list[ParcelProfile], list[Rejection]]:
    """The profiles of a CSV file's text, and the rows rejected (both in file order). Raises
    ProfileFileError when the header is not the expected one or the CSV cannot be parsed."""
    rows, rejections = read_profile_rows(text)
    return [row.profile for row in rows], rejections


def read_profile_rows(text: str) -> tuple[list[ProfileRow], list[Rejection]]:
    """``read_profiles_csv``, with the line of each profile."""
    rows = _rows(text.removeprefix("\ufeff"))
    first = next(rows, None)
    if first is None:
        raise ProfileFileError(f"the file is empty: expected the header {HEADER}")
    header_line, header = first
    columns = _columns(header_line, header)
    profiles: list[ProfileRow] = []
    rejections: list[Rejection] = []
    first_line_of: dict[str, int] = {}
    for line, fields in rows:
        if all(not field.strip() for field in fields):
            continue
        if len(fields) != len(columns):
            rejections.append(
                Rejection(line, "row", f"{len(fields)} fields, but the header has {len(columns)} columns")
            )
            continue
        values = dict(zip(columns, fields, strict=True))
        sku = values["sku"].strip(" ")
        if sku and not sku_problem(sku):
            if sku in first_line_of:
                rejections.append(
                    Rejection(
                        line, "sku", f"{shown(sku)} is also on line {first_line_of[sku]} (once per file)"
                    )
                )
                continue
            first_line_of[sku] = line
        read = _profile(line, values)
        if isinstance(read, Rejection):
            rejections.append(read)
        else:
            profiles.append(ProfileRow(line, read))
    return profiles, rejections


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank row with the line it starts on (a quoted field may span several lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The parser's place in the file is lost: no later row can be trusted to be a row.
            raise ProfileFileError(
                f"line {start}: not readable as CSV ({exc}); nothing was imported"
            ) from None
        if fields:
            yield start, fields


def _columns(line: int, header: list[str]) -> tuple[str, ...]:
    names = [name.strip() for name in header]
    expected = [c for c in COLUMNS if c in REQUIRED_COLUMNS or c in names]
    if names == expected:
        return tuple(names)
    unknown = [name for name in names if name not in COLUMNS]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    twice = sorted({name for name in names if name in COLUMNS and names.count(name) > 1})
    if unknown:
        why = "unknown column " + ", ".join(shown(name) for name in unknown)
    elif missing:
        why = "missing column " + ", ".join(missing)
    elif twice:
        why = "column " + ", ".join(twice) + " given twice"
    else:
        why = f"columns out of order ({','.join(names)})"
    raise ProfileFileError(
        f"line {line}: header: {why}; expected {HEADER} (box and ships_alone may be left out)"
    )


def _profile(line: int, values: dict[str, str]) -> ParcelProfile | Rejection:
    """The row's profile, or why it is rejected: the first field at fault, in column order."""
    sku = values["sku"].strip(" ")
    problem = sku_problem(sku)
    if problem is not None:
        return Rejection(line, "sku", problem)
    weight = _number(values["weight_kg"])
    if isinstance(weight, str) or weight is None:
        return Rejection(line, "weight_kg", weight or "missing (a weight is required)")
    problem = weight_problem(weight)
    if problem is not None:
        return Rejection(line, "weight_kg", problem)
    measures: list[Decimal | None] = []
    for column in DIMENSION_COLUMNS:
        measure = _number(values[column])
        if isinstance(measure, str):
            return Rejection(line, column, measure)
        if measure is not None and (problem := dimension_problem(measure)) is not None:
            return Rejection(line, column, problem)
        measures.append(measure)
    dimensions: Dimensions | None = None
    if any(measure is not None for measure in measures):
        given = [c for c, m in zip(DIMENSION_COLUMNS, measures, strict=True) if m is not None]
        absent = [c for c, m in zip(DIMENSION_COLUMNS, measures, strict=True) if m is None]
        if absent:
            # Canada Post takes all three or none; a guess for the missing one would misprice it.
            return Rejection(
                line,
                absent[0],
                f"missing while {' and '.join(given)} given: give all three dimensions or none",
            )
        length, width, height = (m.quantize(MILLIMETRE) for m in measures if m is not None)
        dimensions = Dimensions(length, width, height)
    box: str | None = values.get("box", "").strip(" ") or None
    if box is not None and (problem := box_problem(box)) is not None:
        return Rejection(line, "box", problem)
    ships_alone = values.get("ships_alone", "").strip().lower()
    if ships_alone not in TRUE_WORDS | FALSE_WORDS:
        return Rejection(
            line,
            "ships_alone",
            f"{shown(values['ships_alone'])} is not one of true, false, yes, no, 1, 0 (or empty)",
        )
    # Exact already (checked above): quantized only so every weight reads with 3 decimals.
    return ParcelProfile(sku, weight.quantize(GRAM), dimensions, box, ships_alone in TRUE_WORDS)


def _number(text: str) -> Decimal | str | None:
    """A plain decimal number; None when the field is empty; a message when it is not a number."""
    value = text.strip()
    if not value:
        return None
    if not _NUMBER.fullmatch(value):
        hint = " (write decimals with a point: 1.5)" if re.fullmatch(r"[0-9]+,[0-9]+", value) else ""
        return f"{shown(value)} is not a number{hint}"
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal reads
        return f"{shown(value)} is not a number"
