"""Parcel weight and dimensions in the precision Canada Post's schema allows."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from fulfil.canadapost.schema import DIMENSION_MAX_CM, WEIGHT_MAX_KG
from fulfil.config import ParcelSettings, setting_name
from fulfil.errors import ConfigError

_GRAM = Decimal("0.001")
_MILLIMETRE = Decimal("0.1")
_DIMENSION_SETTINGS = ("FULFIL_PARCEL_LENGTH_CM", "FULFIL_PARCEL_WIDTH_CM", "FULFIL_PARCEL_HEIGHT_CM")


@dataclass(frozen=True)
class Dimensions:
    length_cm: Decimal
    width_cm: Decimal
    height_cm: Decimal


@dataclass(frozen=True)
class Parcel:
    weight_kg: Decimal  # 3 decimals
    dimensions: Dimensions | None  # 1 decimal each


def parcel_characteristics(parcel: ParcelSettings) -> Parcel:
    """Weight rounded to the gram, dimensions to the millimetre; ConfigError when out of range."""
    weight = parcel.weight_kg.quantize(_GRAM, rounding=ROUND_HALF_UP)
    if not Decimal(0) < weight <= WEIGHT_MAX_KG:
        raise ConfigError(
            f"{setting_name('FULFIL_PARCEL_WEIGHT_KG')} is {parcel.weight_kg} kg; Canada Post takes "
            f"parcels from 0.001 to {WEIGHT_MAX_KG} kg"
        )
    measures = (parcel.length_cm, parcel.width_cm, parcel.height_cm)
    if all(measure is None for measure in measures):
        return Parcel(weight, None)
    if any(measure is None for measure in measures):
        # Canada Post takes all three or none; dropping the ones given would misprice the parcel.
        missing = [
            setting_name(env)
            for env, measure in zip(_DIMENSION_SETTINGS, measures, strict=True)
            if measure is None
        ]
        raise ConfigError(
            f"parcel dimensions are partly set: also set {', '.join(missing)}, or unset all three"
        )
    rounded: list[Decimal] = []
    for env, measure in zip(_DIMENSION_SETTINGS, measures, strict=True):
        assert measure is not None
        value = measure.quantize(_MILLIMETRE, rounding=ROUND_HALF_UP)
        if not Decimal(0) < value <= DIMENSION_MAX_CM:
            raise ConfigError(
                f"{setting_name(env)} is {measure} cm; Canada Post takes 0.1 to {DIMENSION_MAX_CM} cm"
            )
        rounded.append(value)
    return Parcel(weight, Dimensions(*rounded))
