"""What each label cost: recorded from the Create Shipment answer that proved the purchase, and
summed for `fulfil report costs` (refunded labels netted out)."""

from __future__ import annotations

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
) -> None:
    """Keep what this label cost (once: a label recorded again keeps its first price)."""

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
        },
    )


def costs_report(
    conn: psycopg.Connection[Any], *, by: str, since: datetime | None
) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """Rows grouped ``by`` (day, service, province), their total, and how many labels bought in
    the period have no price on record."""
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
    return rows, total, int(unpriced["labels"]) if unpriced else 0
