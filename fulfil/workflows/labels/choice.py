"""What a label is bought as: the order's parcel (from its SKUs' profiles), its service (the first
service rule that matches, with a rate quote when the rule asks for one) and its delivery options.

Decided for each order after its claim is committed and before its request is built, and stored
on the shipment before anything is sent, so that what was bought, and why, can always be read
back (``fulfil orders show``). A dry run decides the same way, quotes included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from fulfil.audit.outcome import FailureClass, HttpOutcome
from fulfil.canadapost.client import CanadaPostClient
from fulfil.canadapost.destination import OrderDataError, destination_from_order
from fulfil.canadapost.parcel import Dimensions, Parcel
from fulfil.canadapost.rates import PriceQuote, build_rates_request, parse_price_quotes
from fulfil.canadapost.responses import ResponseFormatError
from fulfil.canadapost.shipment_request import ShipmentRequest, build_shipment_request
from fulfil.config import CanadaPostSettings
from fulfil.parcels.choice import ParcelPlan, PlannedParcel, plan_parcels
from fulfil.parcels.profiles import ParcelProfile
from fulfil.service_rules import (
    CHEAPEST_MEETING_DEADLINE,
    LabelOption,
    OrderFacts,
    ShippingRules,
    cheapest_meeting_deadline,
    order_facts,
)
from fulfil.workflows.labels.results import LabelSettings

# More lines than any order has: the profile lookup stops there (plan_parcels refuses the order).
MAX_LINES = 500
# Asks Canada Post for rates: (order id, mailing-scenario body) → the audited call's outcome.
QuoteCall = Callable[[str, bytes], HttpOutcome]


class QuoteFailed(Exception):
    """The quote a service rule needs could not be had; nothing was bought. ``retry_later``: the
    failure was Canada Post's or the network's (the order waits for the next run), otherwise
    Canada Post refused the quote for this order (the order fails, with Canada Post's words)."""

    def __init__(
        self, order_id: str, message: str, outcome: HttpOutcome | None, *, retry_later: bool
    ) -> None:
        super().__init__(f"order {order_id}: rate quote: {message}")
        self.order_id = order_id
        self.outcome = outcome
        self.retry_later = retry_later


# The most parcels fulfil buys for one order on its own; an order needing more is refused (with
# its plan named) before anything is bought: so many labels for one order is a profile mistake
# far more often than a real shipment, and each costs money.
MAX_PARCELS_PER_ORDER = 20


@dataclass(frozen=True)
class LabelChoice:
    plan: ParcelPlan  # the order's parcels (a split order's: this parcel only, as fixed at the split)
    service_code: str
    service_rule: str | None  # the rule's name; None: the configured service
    service_reason: str
    options: tuple[LabelOption, ...]
    quotes: tuple[PriceQuote, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    # Which parcel of the order this label is for: 1 of 1 for an order in one parcel.
    parcel_no: int = 1
    parcel_count: int = 1

    @property
    def planned(self) -> PlannedParcel:
        """This label's parcel: parcel 1 of a plan made now, or the one parcel fixed at the split."""
        return self.plan.parcels[0]

    @property
    def parcel(self) -> Parcel:
        return self.planned.parcel

    @property
    def parcel_reference(self) -> str | None:
        """customer-ref-2 of a split order's label ("2/3"): how Canada Post's copy of each parcel
        is told from its order's others (a non-contract label is found by its references)."""
        return f"{self.parcel_no}/{self.parcel_count}" if self.parcel_count > 1 else None

    def splits_order(self) -> bool:
        """Parcel 1 of an order that needs several, decided now: its other parcels are made (and
        the split fixed) before this label's request may go out."""
        return self.parcel_count > 1 and len(self.plan.parcels) == self.parcel_count

    def parcel_records(self) -> list[dict[str, Any]]:
        """Every parcel of the plan as shipments.planned_parcel holds it (parcel 1 first)."""
        return parcel_records(self.plan)

    def as_record(self) -> dict[str, Any]:
        """As stored in shipments.label_choice and shown by --dry-run --json."""
        return {
            "parcel": _parcel_record(self.planned, self.plan),
            "parcel_no": self.parcel_no,
            "parcel_count": self.parcel_count,
            "service_code": self.service_code,
            "service_rule": self.service_rule,
            "service_reason": self.service_reason,
            "options": [
                {"code": option.code, "amount": str(option.amount) if option.amount is not None else None}
                for option in self.options
            ],
            "quotes": [
                {
                    "service_code": quote.service_code,
                    "service_name": quote.service_name,
                    "due": str(quote.due),
                    "expected_delivery_date": (
                        quote.expected_delivery_date.isoformat() if quote.expected_delivery_date else None
                    ),
                }
                for quote in self.quotes
            ],
            "warnings": list(self.warnings),
        }

    def describe(self) -> list[str]:
        """The decision as a person reads it, one line each: parcel, service, options."""
        dimensions = self.parcel.dimensions
        size = (
            f" {dimensions.length_cm} × {dimensions.width_cm} × {dimensions.height_cm} cm"
            if dimensions
            else ""
        )
        box = f", box {self.planned.box}" if self.planned.box else ""
        of = f" {self.parcel_no} of {self.parcel_count}" if self.parcel_count > 1 else ""
        lines = [
            f"parcel{of}: {self.parcel.weight_kg} kg{size}{box} ({self.plan.reason})",
            f"service: {self.service_code} ({self.service_reason})",
        ]
        if self.options:
            lines.append("options: " + ", ".join(_option_text(option) for option in self.options))
        for quote in self.quotes:
            expected = quote.expected_delivery_date.isoformat() if quote.expected_delivery_date else "?"
            lines.append(f"quote: {quote.service_code} {quote.due} CAD, expected {expected}")
        return lines


def _parcel_record(planned: PlannedParcel, plan: ParcelPlan) -> dict[str, Any]:
    dimensions = planned.parcel.dimensions
    return {
        "weight_kg": str(planned.parcel.weight_kg),
        "length_cm": str(dimensions.length_cm) if dimensions else None,
        "width_cm": str(dimensions.width_cm) if dimensions else None,
        "height_cm": str(dimensions.height_cm) if dimensions else None,
        "box": planned.box,
        "skus": list(planned.skus),
        "source": plan.source,
        "reason": plan.reason,
    }


def parcel_records(plan: ParcelPlan) -> list[dict[str, Any]]:
    return [_parcel_record(planned, plan) for planned in plan.parcels]


def fixed_plan(record: Mapping[str, Any], *, parcel_no: int, parcel_count: int) -> ParcelPlan:
    """The parcel a split order's row was given at the split (shipments.planned_parcel, written
    by _parcel_record), as a plan of that one parcel."""
    measures = [record.get(key) for key in ("length_cm", "width_cm", "height_cm")]
    dimensions = (
        Dimensions(*(Decimal(str(measure)) for measure in measures))
        if all(measure is not None for measure in measures)
        else None
    )
    planned = PlannedParcel(
        Parcel(Decimal(str(record["weight_kg"])), dimensions),
        tuple(str(sku) for sku in record.get("skus") or ()),
        record.get("box"),
    )
    reason = f"parcel {parcel_no} of {parcel_count}: {record.get('reason')}"
    return ParcelPlan((planned,), str(record.get("source") or "profile"), reason, ())


def _line_skus(order: Mapping[str, Any]) -> list[str]:
    """The SKUs an order's lines name, to look their profiles up (plan_parcels checks them)."""
    lines = order.get("order_lines")
    if not isinstance(lines, list):
        return []
    skus = {
        line["offer_sku"].strip(" ")
        for line in lines[:MAX_LINES]
        if isinstance(line, dict) and isinstance(line.get("offer_sku"), str)
    }
    return sorted(sku for sku in skus if 0 < len(sku) <= 200)


def _option_text(option: LabelOption) -> str:
    return f"{option.code} {option.amount}" if option.amount is not None else option.code


class LabelChooser:
    """Decides each order's label; ``ask_rates`` is None where nothing may be sent (then a rule that
    needs a quote is a configuration error: say so, never guess)."""

    def __init__(
        self,
        *,
        rules: ShippingRules,
        default_parcel: Parcel,
        default_service: str,
        profiles: Callable[[list[str]], Mapping[str, ParcelProfile]],
        build_quote_request: Callable[[Parcel, str, tuple[LabelOption, ...]], bytes],
        ask_rates: QuoteCall | None,
        now: Callable[[], datetime],
    ) -> None:
        self.rules = rules
        self.default_parcel = default_parcel
        self.default_service = default_service
        self.profiles = profiles
        self.build_quote_request = build_quote_request
        self.ask_rates = ask_rates
        self.now = now

    def plan(self, order_id: str, order: Mapping[str, Any]) -> ParcelPlan:
        """The order's parcels, from its SKUs' profiles as they are now."""
        return plan_parcels(order_id, order, self.profiles(_line_skus(order)), self.default_parcel)

    def facts(self, order_id: str, order: Mapping[str, Any], parcel: Parcel) -> OrderFacts:
        destination = destination_from_order(order_id, order)
        return order_facts(
            order,
            province=destination.province,
            postal_code=destination.postal_code,
            weight_kg=parcel.weight_kg,
        )

    def options(self, order_id: str, facts: OrderFacts) -> tuple[LabelOption, ...]:
        return self.rules.options_for(order_id, facts, self.now())

    def quote(self, order_id: str, parcel: Parcel, facts: OrderFacts) -> tuple[PriceQuote, ...]:
        """Canada Post's quote of every service for ``parcel`` with the order's options."""
        return self._quotes(order_id, parcel, facts.postal_code, self.options(order_id, facts))

    def choose(
        self,
        order_id: str,
        order: Mapping[str, Any],
        *,
        quotes: tuple[PriceQuote, ...] | None = None,
        fixed: Mapping[str, Any] | None = None,
        parcel_no: int = 1,
        parcel_count: int = 1,
    ) -> LabelChoice:
        """Raises OrderDataError for an order that cannot make a label, QuoteFailed, and
        ConfigError for rules that cannot be applied (conflicting options). ``quotes``: the
        parcel's quotes when the caller has them already (`labels quote`), so none is asked twice.
        ``fixed``: the parcel a split order's row was given (planned_parcel), ``parcel_no`` of
        ``parcel_count``; without it the order is planned afresh, and the choice is its parcel 1's."""
        if fixed is not None:
            plan = fixed_plan(fixed, parcel_no=parcel_no, parcel_count=parcel_count)
        else:
            plan = self.plan(order_id, order)
            parcel_no, parcel_count = 1, len(plan.parcels)
            if parcel_count > MAX_PARCELS_PER_ORDER:
                raise OrderDataError(
                    order_id,
                    "order_lines",
                    f"needs {parcel_count} parcels ({plan.reason}); fulfil buys at most "
                    f"{MAX_PARCELS_PER_ORDER} labels for one order: check the SKUs' profiles, or ship "
                    "it by hand",
                )
        parcel = plan.parcels[0].parcel
        facts = self.facts(order_id, order, parcel)
        now = self.now()
        options = self.rules.options_for(order_id, facts, now)
        warnings = list(plan.warnings)
        rule = self.rules.service_rule_for(facts, now)
        used: tuple[PriceQuote, ...] | None = ()
        if rule is None:
            service, reason = self.default_service, "the configured service; no service rule matched"
        elif rule.service != CHEAPEST_MEETING_DEADLINE:
            service, reason = rule.service, f"rule {rule.name!r}"
        else:
            used = quotes
            if used is None:
                used = self._quotes(order_id, parcel, facts.postal_code, options)
            picked = cheapest_meeting_deadline(used, facts.shipping_deadline, rule.transit_days)
            if picked is None:
                raise QuoteFailed(
                    order_id,
                    "Canada Post quoted no domestic service for this parcel",
                    None,
                    retry_later=False,
                )
            service, reason = picked.service_code, f"rule {rule.name!r}: {picked.reason}"
            if picked.warning:
                warnings.append(f"order {order_id}: {picked.warning}")
        return LabelChoice(
            plan=plan,
            service_code=service,
            service_rule=rule.name if rule is not None else None,
            service_reason=reason,
            options=options,
            quotes=used or (),
            warnings=tuple(warnings),
            parcel_no=parcel_no,
            parcel_count=parcel_count,
        )

    def choose_every_parcel(self, order_id: str, order: Mapping[str, Any]) -> list[LabelChoice]:
        """The label of each parcel the order would ship in now (a dry run of an order not split
        yet): parcel 1 as its purchase decides it, each other parcel as its own purchase would."""
        first = self.choose(order_id, order)
        if first.parcel_count == 1:
            return [first]
        records = first.parcel_records()
        return [
            first,
            *(
                self.choose(order_id, order, fixed=record, parcel_no=number, parcel_count=len(records))
                for number, record in enumerate(records[1:], start=2)
            ),
        ]

    def _quotes(
        self, order_id: str, parcel: Parcel, postal_code: str, options: tuple[LabelOption, ...]
    ) -> tuple[PriceQuote, ...]:
        from fulfil.errors import ConfigError

        if self.ask_rates is None:
            raise ConfigError(f"order {order_id}: a {CHEAPEST_MEETING_DEADLINE} rule needs a rate quote")
        outcome = self.ask_rates(order_id, self.build_quote_request(parcel, postal_code, options))
        if not outcome.ok:
            from fulfil.canadapost.client import auth_error, interpret_error
            from fulfil.canadapost.responses import ErrorKind

            error = interpret_error(outcome)
            if error.kind is ErrorKind.AUTH:
                raise auth_error(error)
            definitive = outcome.failure is FailureClass.DEFINITIVE and error.kind not in (
                ErrorKind.RATE_LIMITED,
                ErrorKind.NOT_FOUND,
            )
            raise QuoteFailed(order_id, error.description, outcome, retry_later=not definitive)
        try:
            return tuple(parse_price_quotes(outcome.body))
        except ResponseFormatError as exc:
            raise QuoteFailed(order_id, f"unusable answer: {exc}", outcome, retry_later=True) from None


def shipment_request_for(
    settings: LabelSettings,
    order_id: str,
    order: Mapping[str, Any],
    choice: LabelChoice,
    *,
    request_id: str | None,
    group_id: str | None,
) -> ShipmentRequest:
    """The Create Shipment body for ``order`` bought as ``choice`` (a purchase and a dry run)."""
    return build_shipment_request(
        order_id=order_id,
        order=order,
        canadapost=settings.canadapost,
        sender=settings.sender,
        parcel=choice.parcel,
        request_id=request_id,
        group_id=group_id,
        service_code=choice.service_code,
        options=choice.options,
        parcel_reference=choice.parcel_reference,
    )


def rates_request_builder(
    *, origin_postal_code: str, canadapost: CanadaPostSettings
) -> Callable[[Parcel, str, tuple[LabelOption, ...]], bytes]:
    def build(parcel: Parcel, destination_postal_code: str, options: tuple[LabelOption, ...]) -> bytes:
        return build_rates_request(
            parcel=parcel,
            origin_postal_code=origin_postal_code,
            destination_postal_code=destination_postal_code,
            canadapost=canadapost,
            options=[option.code for option in options],
            option_amounts={option.code: option.amount for option in options if option.amount is not None},
        )

    return build


def label_chooser(
    settings: LabelSettings,
    client: CanadaPostClient | None,
    profiles: Callable[[list[str]], Mapping[str, ParcelProfile]],
) -> LabelChooser:
    """The chooser of a label run; without a client (a dry run without a session) a rule that
    needs a quote is a configuration error."""
    from datetime import UTC

    from fulfil.canadapost.parcel import parcel_characteristics
    from fulfil.canadapost.sender import sender_address

    origin = sender_address(settings.sender).postal_code
    return LabelChooser(
        rules=settings.rules,
        default_parcel=parcel_characteristics(settings.parcel),
        default_service=settings.canadapost.service_code,
        profiles=profiles,
        build_quote_request=rates_request_builder(origin_postal_code=origin, canadapost=settings.canadapost),
        ask_rates=client.get_rates if client is not None else None,
        now=lambda: datetime.now(UTC),
    )
