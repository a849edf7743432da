"""What each label cost: recorded from the Create Shipment answer that proved the purchase, or
from the price document or receipt fetched for it (fulfil/workflows/labels/price_fetch.py), and
summed for `fulfil report costs` (refunded labels netted out); which labels still have no price."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from fulfil.canadapost.prices import LabelPrice
from fulfil.db import query

GROUPINGS = ("day", "service", "province")


def _sql(name: str) -> str:
    return query("label_costs", name)


def record_price(
    conn: psycopg.Connection[Any],
    *,
    shipment_id: int,
    order_id: str,
    tracking_pin: str,
    cp_shipment_id: str | None,
    price: LabelPrice,
    call_id: int | None,
    bought_at: datetime | None = None,
) -> None:
    """Keep what this label cost (once: a label recorded again keeps its first price).
    ``bought_at``: when the label was bought, for a price fetched after the fact (None: now)."""

    def charges(items: Any) -> Jsonb:
        return Jsonb([{"code": item.code, "amount": str(item.amount)} for item in items])

    conn.execute(
        _sql("record_price"),
        {
            "tracking_pin": tracking_pin,
            "shipment_id": shipment_id,
            "order_id": order_id,
            "cp_shipment_id": cp_shipment_id,
            "service_code": price.service_code,
            "base": price.base,
            "options": charges(price.options),
            "adjustments": charges(price.adjustments),
            "pre_tax": price.pre_tax,
            "gst": price.gst,
            "pst": price.pst,
            "hst": price.hst,
            "due": price.due,
            "call_id": call_id,
            "bought_at": bought_at,
        },
    )


@dataclass(frozen=True)
class Unpriced:
    """Labels with no price on record, and how many of them `fulfil labels prices` can fetch."""

    labels: int = 0
    fetchable: int = 0


@dataclass(frozen=True)
class UnpricedLabel:
    """A label whose price is not on record and can be fetched from Canada Post."""

    shipment_id: int
    order_id: str
    tracking_pin: str
    cp_shipment_id: str
    contract: bool
    bought_at: datetime | None


def labels_without_price(conn: psycopg.Connection[Any], order_ids: list[str] | None) -> list[UnpricedLabel]:
    """The labels `fulfil labels prices` fetches a price for (only these orders' when given)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_sql("labels_without_price"), {"order_ids": order_ids}).fetchall()
    return [
        UnpricedLabel(
            shipment_id=row["shipment_id"],
            order_id=row["order_id"],
            tracking_pin=row["tracking_pin"],
            cp_shipment_id=row["cp_shipment_id"],
            contract=bool(row["contract"]),
            bought_at=row["label_created_at"],
        )
        for row in rows
    ]


def price_standing(conn: psycopg.Connection[Any], order_ids: list[str]) -> list[dict[str, Any]]:
    """Each order's label and its price on record, if any (to say why one was left alone)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_sql("price_standing"), {"order_ids": order_ids}).fetchall()


def costs_report(
    conn: psycopg.Connection[Any], *, by: str, since: datetime | None
) -> tuple[list[dict[str, Any]], dict[str, Any], Unpriced]:
    """Rows grouped ``by`` (day, service, province), their total, and the labels bought in the
    period that have no price on record."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_sql("costs"), {"by": by, "since": since}).fetchall()
        unpriced = cur.execute(_sql("unpriced_labels"), {"since": since}).fetchone()
    money = ("base", "options_and_adjustments", "pre_tax", "taxes", "due", "refunded")
    total: dict[str, Any] = {"key": "total", "labels": 0, "refunded_labels": 0}
    for name in money:
        total[name] = sum((Decimal(row[name]) for row in rows), Decimal(0))
    total["labels"] = sum(int(row["labels"]) for row in rows)
    total["refunded_labels"] = sum(int(row["refunded_labels"]) for row in rows)
    missing = Unpriced(int(unpriced["labels"]), int(unpriced["fetchable"])) if unpriced else Unpriced()
    return rows, total, missing
