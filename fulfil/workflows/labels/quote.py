"""`fulfil labels quote`: what Canada Post would charge for each service, for each parcel of an
order, and which service its rules would buy. A read: every Get Rates call is audited, nothing
is bought and nothing is written to the order's shipment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fulfil.canadapost.destination import OrderDataError
from fulfil.canadapost.parcel import Parcel
from fulfil.canadapost.rates import PriceQuote
from fulfil.shipments.store import ShipmentStore
from fulfil.workflows.labels.choice import LabelChooser, QuoteFailed, parcel_records

QUOTED = "quoted"
FAILED = "failed"
NOT_FOUND = "not_found"


@dataclass(frozen=True)
class QuoteRow:
    """One service quoted for one parcel of an order, or why an order got no quote."""

    order_id: str
    outcome: str
    parcel_no: int | None = None
    parcels: int | None = None
    parcel: Parcel | None = None
    quote: PriceQuote | None = None
    chosen: bool = False
    rule: str | None = None
    error: str | None = None

    def as_record(self) -> dict[str, Any]:
        quote, parcel = self.quote, self.parcel
        dimensions = parcel.dimensions if parcel is not None else None
        return {
            "order_id": self.order_id,
            "outcome": self.outcome,
            "parcel": self.parcel_no,
            "parcels": self.parcels,
            "weight_kg": str(parcel.weight_kg) if parcel is not None else None,
            "dimensions_cm": (
                f"{dimensions.length_cm}x{dimensions.width_cm}x{dimensions.height_cm}" if dimensions else None
            ),
            "service_code": quote.service_code if quote else None,
            "service_name": quote.service_name if quote else None,
            "base": str(quote.base) if quote else None,
            "taxes": str(quote.gst + quote.pst + quote.hst) if quote else None,
            "due": str(quote.due) if quote else None,
            "expected_delivery_date": (
                quote.expected_delivery_date.isoformat() if quote and quote.expected_delivery_date else None
            ),
            "transit_days": quote.expected_transit_days if quote else None,
            "guaranteed": quote.guaranteed if quote else None,
            "chosen": self.chosen,
            "rule": self.rule,
            "error": self.error,
        }


@dataclass
class QuoteRun:
    rows: list[QuoteRow] = field(default_factory=list)
    stopped: str | None = None
    fatal: Exception | None = None

    @property
    def needs_attention(self) -> bool:
        return self.stopped is not None or any(row.outcome != QUOTED for row in self.rows)

    def summary(self) -> str:
        """One line for a person: how many orders were quoted, and how many were not."""
        orders = {row.order_id for row in self.rows}
        unquoted = {row.order_id for row in self.rows if row.outcome != QUOTED}
        quoted = len(orders - unquoted)
        line = f"{quoted} of {len(orders)} order{'' if len(orders) == 1 else 's'} quoted"
        return line + (f"; {len(unquoted)} not (named above)" if unquoted else "")

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.outcome] = counts.get(row.outcome, 0) + 1
        return counts


def quote_orders(
    store: ShipmentStore, chooser: LabelChooser, order_ids: list[str], emit: Callable[[QuoteRow], None]
) -> QuoteRun:
    """Quote each order, in the order given; one order's problem never stops the others, but
    Canada Post out of reach (or throttling) stops the run: the rest would fail the same way."""
    run = QuoteRun()
    found = {row["order_id"]: row for row in store.orders_by_id(order_ids)}
    for order_id in dict.fromkeys(order_ids):
        row = found.get(order_id)
        if row is None:
            why = f"order {order_id} is not in the orders table: `fulfil orders pull` it first"
            rows = [QuoteRow(order_id, NOT_FOUND, error=why)]
        else:
            try:
                rows = list(_quoted(chooser, order_id, row["raw_order_data"] or {}))
            except OrderDataError as exc:
                rows = [QuoteRow(order_id, FAILED, error=str(exc))]
            except QuoteFailed as exc:
                rows = [QuoteRow(order_id, FAILED, error=str(exc))]
                if exc.retry_later:
                    run.stopped = f"{exc}; the remaining orders were not quoted"
        for item in rows:
            run.rows.append(item)
            emit(item)
        if run.stopped:
            break
    return run


def _quoted(chooser: LabelChooser, order_id: str, order: dict[str, Any]) -> Iterator[QuoteRow]:
    plan = chooser.plan(order_id, order)
    count = len(plan.parcels)
    records = parcel_records(plan)
    for number, planned in enumerate(plan.parcels, start=1):
        facts = chooser.facts(order_id, order, planned.parcel)
        quotes = chooser.quote(order_id, planned.parcel, facts)
        if not quotes:
            yield QuoteRow(
                order_id,
                FAILED,
                number,
                count,
                planned.parcel,
                error=f"order {order_id}: Canada Post quoted no domestic service for parcel {number}",
            )
            continue
        # Each parcel of a split order is bought on its own, as its record says.
        fixed = records[number - 1] if count > 1 else None
        chosen_code, rule = _what_the_rules_buy(chooser, order_id, order, quotes, fixed, number, count)
        for quote in sorted(quotes, key=lambda q: (q.due, q.service_code)):
            yield QuoteRow(
                order_id,
                QUOTED,
                number,
                count,
                planned.parcel,
                quote,
                chosen=quote.service_code == chosen_code,
                rule=rule if quote.service_code == chosen_code else None,
            )


def _what_the_rules_buy(
    chooser: LabelChooser,
    order_id: str,
    order: dict[str, Any],
    quotes: tuple[PriceQuote, ...],
    fixed: dict[str, Any] | None,
    number: int,
    count: int,
) -> tuple[str | None, str | None]:
    try:
        choice = chooser.choose(
            order_id, order, quotes=quotes, fixed=fixed, parcel_no=number, parcel_count=count
        )
    except (OrderDataError, QuoteFailed):
        return None, None
    return choice.service_code, choice.service_rule or "the configured service"
