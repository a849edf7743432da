"""The one owner of the parcel profile queries (sql/queries/parcel_profiles.sql).

Like the other stores: one autocommit connection, each statement its own transaction unless it
runs in a ``transaction()`` block. A batch of profiles is written in one statement, in one
transaction: an import is all written or none of it.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from fulfil.canadapost.parcel import Dimensions
from fulfil.db import connect, query
from fulfil.parcels.profiles import ParcelProfile

Row = dict[str, Any]


def _sql(name: str) -> str:
    return query("parcel_profiles", name)


@dataclass(frozen=True)
class UpsertResult:
    """What a batch did, SKU by SKU: new profiles, changed ones, and ones already as given."""

    inserted: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]

    def outcomes(self) -> dict[str, str]:
        """Each SKU's outcome: "inserted", "updated" or "unchanged"."""
        found = dict.fromkeys(self.unchanged, "unchanged")
        found.update(dict.fromkeys(self.updated, "updated"))
        found.update(dict.fromkeys(self.inserted, "inserted"))
        return found


@dataclass(frozen=True)
class StoredProfile:
    profile: ParcelProfile
    updated_at: datetime

    def as_record(self) -> dict[str, Any]:
        p = self.profile
        d = p.dimensions
        return {
            "sku": p.sku,
            "weight_kg": p.weight_kg,
            "length_cm": d.length_cm if d else None,
            "width_cm": d.width_cm if d else None,
            "height_cm": d.height_cm if d else None,
            "box": p.box,
            "ships_alone": p.ships_alone,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class MissingProfile:
    """A SKU of orders still to label that has no profile: how many orders, one of them, a title."""

    sku: str
    orders: int
    example_order: str
    product_title: str | None

    def as_record(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "orders": self.orders,
            "example_order": self.example_order,
            "product_title": self.product_title,
        }


class ParcelProfileStore:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    @classmethod
    @contextlib.contextmanager
    def open(cls, database_url: str, *, purpose: str = "parcels") -> Iterator[ParcelProfileStore]:
        with connect(
            database_url, autocommit=True, row_factory=dict_row, application_name=f"fulfil-{purpose}"
        ) as conn:
            yield cls(conn)

    def _all(self, name: str, **params: Any) -> list[Row]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            return list(cur.execute(_sql(name), params).fetchall())

    def upsert(self, profiles: Sequence[ParcelProfile]) -> UpsertResult:
        """Insert or update every profile, in one transaction; a profile as stored already is left
        alone. Raises ValueError for a SKU given twice (which one would win is not for us to pick)."""
        skus = [p.sku for p in profiles]
        if len(set(skus)) != len(skus):
            twice = sorted(sku for sku, n in Counter(skus).items() if n > 1)
            raise ValueError(f"SKU given more than once: {', '.join(twice)}")
        if not profiles:
            return UpsertResult((), (), ())

        def measure(p: ParcelProfile, name: str) -> Decimal | None:
            return getattr(p.dimensions, name) if p.dimensions is not None else None

        with self.conn.transaction():
            rows = self._all(
                "upsert_profiles",
                skus=skus,
                weights=[p.weight_kg for p in profiles],
                lengths=[measure(p, "length_cm") for p in profiles],
                widths=[measure(p, "width_cm") for p in profiles],
                heights=[measure(p, "height_cm") for p in profiles],
                boxes=[p.box for p in profiles],
                ships_alone=[p.ships_alone for p in profiles],
            )
        written = {row["sku"]: bool(row["inserted"]) for row in rows}
        return UpsertResult(
            inserted=tuple(sku for sku in skus if written.get(sku) is True),
            updated=tuple(sku for sku in skus if written.get(sku) is False),
            unchanged=tuple(sku for sku in skus if sku not in written),
        )

    def all(self) -> list[StoredProfile]:
        """Every profile, in SKU order."""
        return [_stored(row) for row in self._all("all_profiles")]

    def profiles_for(self, skus: Iterable[str]) -> dict[str, ParcelProfile]:
        """The profiles of these SKUs that exist, by SKU (for the parcel choice of an order)."""
        wanted = sorted(set(skus))
        if not wanted:
            return {}
        return {row["sku"]: _stored(row).profile for row in self._all("profiles_for_skus", skus=wanted)}

    def skus_without_profile(self) -> list[MissingProfile]:
        """SKUs of accepted orders whose label is still to buy that have no profile, the SKU of
        the most such orders first."""
        return [
            MissingProfile(
                sku=row["sku"],
                orders=int(row["orders"]),
                example_order=row["example_order"],
                product_title=row["product_title"],
            )
            for row in self._all("skus_without_profile")
        ]


def _stored(row: Row) -> StoredProfile:
    measures = (row["length_cm"], row["width_cm"], row["height_cm"])
    dimensions = Dimensions(*measures) if all(m is not None for m in measures) else None
    profile = ParcelProfile(
        sku=row["sku"],
        weight_kg=row["weight_kg"],
        dimensions=dimensions,
        box=row["box"],
        ships_alone=bool(row["ships_alone"]),
    )
    return StoredProfile(profile, row["updated_at"])
