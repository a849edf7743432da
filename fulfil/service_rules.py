"""Which Canada Post service and which delivery options an order's label is bought with.

The seller writes ordered ``[[service_rules]]`` and ``[[option_rules]]`` tables in fulfil.toml.
Each rule names conditions on facts of the order; every condition it names must hold (a rule
with none matches every order):

- ``shipping_types``: Best Buy's ``shipping_type_code`` is one of these (e.g. ``["M"]``);
- ``provinces``: the destination province is one of these two-letter codes;
- ``postal_prefixes``: the destination postal code starts with one of these (``"V5"``, ``"H"``);
- ``min_order_value`` / ``max_order_value``: the order's ``total_price`` in CAD, ``min`` included,
  ``max`` excluded, so that one rule's max and the next rule's min meet without a gap;
- ``min_weight_kg`` / ``max_weight_kg``: the planned parcel's weight, same convention;
- ``deadline_within_days``: Best Buy's ``shipping_deadline`` is at most this many days away.

Service rules: the first that matches decides; none matching leaves the configured service
(FULFIL_CANADAPOST_SERVICE_CODE). A rule's ``service`` is a domestic service code, or
``cheapest_meeting_deadline``: Canada Post is asked for a quote of every service for the
parcel, and the cheapest whose expected delivery date is no later than Best Buy's shipping
deadline plus ``transit_days`` (default 3) is bought; when none meets it, the earliest to arrive
is bought, with a warning.

Option rules: every rule that matches adds its ``options``; ``COV`` (coverage) is bought for the
order's value. The options an order ends with are checked against Canada Post's conflicts (each
rule's own list when the file is read; the combination before anything is bought), so a
conflict is a configuration error, never a refused purchase.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from fulfil.bestbuy.timestamps import mirakl_timestamp
from fulfil.errors import ConfigError

CHEAPEST_MEETING_DEADLINE = "cheapest_meeting_deadline"
DEFAULT_TRANSIT_DAYS = 3
MAX_RULES = 100
_SERVICE_CODE = re.compile(r"DOM\.[A-Z0-9.]{1,28}")
_PROVINCES = frozenset({"AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT"})
_POSTAL_PREFIX = re.compile(r"[A-Z]([0-9]([A-Z]([0-9]([A-Z][0-9]?)?)?)?)?")
_SHIPPING_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_OPTION_CODE = re.compile(r"[A-Z0-9]{1,10}")
_CENT = Decimal("0.01")
# Best Buy Canada's shipping deadlines end its (Pacific) day: "2025-09-06T06:59:59.999Z" is the
# end of 5 September in Vancouver, so a deadline's day is read there.
BEST_BUY_TIME = ZoneInfo("America/Vancouver")
# Canada Post's option-amount (CostTypeNonZero): above zero, at most 999999.99.
OPTION_AMOUNT_MAX = Decimal("999999.99")

# The options fulfil can buy, with what each is for. D2PO (deliver to a post office) and COD
# (collect on delivery) need what Best Buy orders do not give (below).
OPTION_NAMES: dict[str, str] = {
    "SO": "signature",
    "COV": "coverage for the order's value",
    "PA18": "proof of age 18",
    "PA19": "proof of age 19",
    "HFP": "card for pickup (held at the post office)",
    "DNS": "do not safe drop",
    "LAD": "leave at door",
}
_UNAVAILABLE = {
    "D2PO": (
        "Canada Post needs the id of the post office and an e-mail address to tell the customer; a "
        "Best Buy order's pickup point (shipping_pudo_id) is Mirakl's, not a Canada Post office id, "
        "and its customer address is a Mirakl relay, often longer than the 60 characters Canada "
        "Post takes"
    ),
    "COD": "it needs collect-on-delivery payment details, which fulfil does not send",
}
# Pairs Canada Post refuses together: leave-at-door contradicts every option that has someone
# sign for or collect the parcel, and the two proof-of-age options are one or the other.
CONFLICTS: frozenset[frozenset[str]] = frozenset(
    frozenset(pair)
    for pair in (
        ("LAD", "SO"),
        ("LAD", "PA18"),
        ("LAD", "PA19"),
        ("LAD", "HFP"),
        ("LAD", "DNS"),
        ("PA18", "PA19"),
    )
)
_CONDITION_KEYS = (
    "shipping_types",
    "provinces",
    "postal_prefixes",
    "min_order_value",
    "max_order_value",
    "min_weight_kg",
    "max_weight_kg",
    "deadline_within_days",
)
_SERVICE_KEYS = frozenset({"name", "service", "transit_days", *_CONDITION_KEYS})
_OPTION_KEYS = frozenset({"name", "options", *_CONDITION_KEYS})


@dataclass(frozen=True)
class OrderFacts:
    """What rules may ask about an order; None where the order does not say."""

    shipping_type: str | None
    province: str
    postal_code: str
    order_value: Decimal | None
    weight_kg: Decimal
    shipping_deadline: datetime | None


@dataclass(frozen=True)
class Conditions:
    shipping_types: frozenset[str] | None = None
    provinces: frozenset[str] | None = None
    postal_prefixes: tuple[str, ...] | None = None
    min_order_value: Decimal | None = None
    max_order_value: Decimal | None = None
    min_weight_kg: Decimal | None = None
    max_weight_kg: Decimal | None = None
    deadline_within_days: int | None = None

    def hold_for(self, facts: OrderFacts, now: datetime) -> bool:
        if self.shipping_types is not None and facts.shipping_type not in self.shipping_types:
            return False
        if self.provinces is not None and facts.province not in self.provinces:
            return False
        if self.postal_prefixes is not None and not facts.postal_code.startswith(self.postal_prefixes):
            return False
        if not _within(facts.order_value, self.min_order_value, self.max_order_value):
            return False
        if not _within(facts.weight_kg, self.min_weight_kg, self.max_weight_kg):
            return False
        if self.deadline_within_days is not None:
            # An order without a deadline is not "due soon": the rule is for orders that say so.
            if facts.shipping_deadline is None:
                return False
            if facts.shipping_deadline - now > timedelta(days=self.deadline_within_days):
                return False
        return True


def _within(value: Decimal | None, low: Decimal | None, high: Decimal | None) -> bool:
    if low is None and high is None:
        return True
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value < high)


@dataclass(frozen=True)
class ServiceRule:
    name: str
    conditions: Conditions
    service: str  # a service code or CHEAPEST_MEETING_DEADLINE
    transit_days: int = DEFAULT_TRANSIT_DAYS


@dataclass(frozen=True)
class OptionRule:
    name: str
    conditions: Conditions
    options: tuple[str, ...]


@dataclass(frozen=True)
class LabelOption:
    code: str
    amount: Decimal | None = None  # COV: the coverage bought


@dataclass(frozen=True)
class ShippingRules:
    service_rules: tuple[ServiceRule, ...] = ()
    option_rules: tuple[OptionRule, ...] = ()

    @property
    def needs_quotes(self) -> bool:
        """Some rule picks its service from a rate quote."""
        return any(rule.service == CHEAPEST_MEETING_DEADLINE for rule in self.service_rules)

    def service_rule_for(self, facts: OrderFacts, now: datetime) -> ServiceRule | None:
        return next((rule for rule in self.service_rules if rule.conditions.hold_for(facts, now)), None)

    def options_for(self, order_id: str, facts: OrderFacts, now: datetime) -> tuple[LabelOption, ...]:
        """Every matching rule's options, once each, in the order the rules give them. Raises
        ConfigError for a combination Canada Post refuses (before anything is bought)."""
        codes: list[str] = []
        named_by: dict[str, str] = {}
        for rule in self.option_rules:
            if not rule.conditions.hold_for(facts, now):
                continue
            for code in rule.options:
                if code not in named_by:
                    codes.append(code)
                    named_by[code] = rule.name
        for first, second in _conflicting_pairs(codes):
            raise ConfigError(
                f"order {order_id}: option rules {named_by[first]!r} ({first}) and "
                f"{named_by[second]!r} ({second}) both apply, and Canada Post refuses "
                f"{OPTION_NAMES[first]} with {OPTION_NAMES[second]}; make the rules exclusive"
            )
        return tuple(
            LabelOption(code, _coverage(order_id, facts) if code == "COV" else None) for code in codes
        )


def _coverage(order_id: str, facts: OrderFacts) -> Decimal:
    from fulfil.canadapost.destination import OrderDataError

    value = facts.order_value
    if value is None or value <= 0:
        raise OrderDataError(
            order_id, "total_price", "coverage (COV) is bought for the order's value, and it has none"
        )
    amount = value.quantize(_CENT, rounding=ROUND_HALF_UP)
    if amount > OPTION_AMOUNT_MAX:
        raise OrderDataError(
            order_id, "total_price", f"{value} is over the {OPTION_AMOUNT_MAX} Canada Post can cover"
        )
    return amount


def _conflicting_pairs(codes: Sequence[str]) -> list[tuple[str, str]]:
    return [
        (first, second)
        for index, first in enumerate(codes)
        for second in codes[index + 1 :]
        if frozenset((first, second)) in CONFLICTS
    ]


# --- a quote's choice ------------------------------------------------------------------------


class QuotedService(Protocol):
    """What cheapest_meeting_deadline reads of a quoted service (fulfil.canadapost.rates.PriceQuote)."""

    @property
    def service_code(self) -> str: ...
    @property
    def due(self) -> Decimal: ...
    @property
    def expected_delivery_date(self) -> date | None: ...


@dataclass(frozen=True)
class QuoteChoice:
    service_code: str
    reason: str
    warning: str | None


def cheapest_meeting_deadline(
    quotes: Sequence[QuotedService], shipping_deadline: datetime | None, transit_days: int
) -> QuoteChoice | None:
    """The cheapest quote expected by ``shipping_deadline``'s date plus ``transit_days``; when none
    is, the earliest expected (ties: the cheaper), with a warning. None when nothing was quoted.
    An order without a deadline gets the cheapest service."""
    usable = [quote for quote in quotes if quote.service_code.startswith("DOM.")]
    if not usable:
        return None
    if shipping_deadline is None:
        best = min(usable, key=lambda q: (q.due, q.service_code))
        return QuoteChoice(
            best.service_code, f"the cheapest quoted ({best.due}); the order has no deadline", None
        )
    deadline_day = deadline_date(shipping_deadline)
    arrive_by = deadline_day + timedelta(days=transit_days)
    in_time = [
        q for q in usable if q.expected_delivery_date is not None and q.expected_delivery_date <= arrive_by
    ]
    if in_time:
        best = min(in_time, key=lambda q: (q.due, q.service_code))
        return QuoteChoice(
            best.service_code,
            f"the cheapest quoted ({best.due}) expected by {arrive_by.isoformat()} "
            f"(on {_expected(best)}: deadline {deadline_day.isoformat()} + {transit_days} days)",
            None,
        )
    dated = [q for q in usable if q.expected_delivery_date is not None]
    best = (
        min(dated, key=lambda q: (q.expected_delivery_date, q.due))
        if dated
        else min(usable, key=lambda q: q.due)
    )
    warning = (
        f"no quoted service is expected by {arrive_by.isoformat()} (deadline "
        f"{deadline_day.isoformat()} + {transit_days} days): bought the earliest, "
        f"{best.service_code}, expected on {_expected(best)}"
    )
    return QuoteChoice(
        best.service_code, f"the earliest quoted ({best.due}, expected on {_expected(best)})", warning
    )


def deadline_date(shipping_deadline: datetime) -> date:
    """The day a Best Buy shipping deadline falls on, in Best Buy's own time."""
    return shipping_deadline.astimezone(BEST_BUY_TIME).date()


def _expected(quote: QuotedService) -> str:
    return quote.expected_delivery_date.isoformat() if quote.expected_delivery_date else "an unknown date"


# --- reading the file ------------------------------------------------------------------------


def read_shipping_rules(source: str, tables: Mapping[str, Any]) -> ShippingRules:
    """``tables`` holds the file's ``service_rules`` and ``option_rules`` arrays (either may be
    absent). Raises ConfigError naming the rule and the key for anything fulfil cannot use."""
    service_rules = tuple(
        _service_rule(source, index, table)
        for index, table in enumerate(_array(source, "service_rules", tables.get("service_rules")), start=1)
    )
    option_rules = tuple(
        _option_rule(source, index, table)
        for index, table in enumerate(_array(source, "option_rules", tables.get("option_rules")), start=1)
    )
    return ShippingRules(service_rules, option_rules)


def _array(source: str, key: str, value: Any) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigError(f"{source}: {key} must be an array of tables ([[{key}]])")
    if len(value) > MAX_RULES:
        raise ConfigError(f"{source}: {key}: at most {MAX_RULES} rules")
    return value


class _RuleReader:
    def __init__(
        self, source: str, kind: str, index: int, table: Mapping[str, Any], keys: frozenset[str]
    ) -> None:
        self.table = table
        raw_name = table.get("name")
        self.name = raw_name.strip() if isinstance(raw_name, str) and raw_name.strip() else f"{kind} {index}"
        self.where = f"{source}: [[{kind}]] {index} ({self.name!r})"
        # Control and format characters of any kind (the database refuses them too): a name is
        # shown in tables and stored with each label bought by its rule.
        if isinstance(raw_name, str) and (
            len(self.name) > 80 or any(unicodedata.category(ch).startswith("C") for ch in raw_name)
        ):
            raise ConfigError(f"{self.where}: name must be at most 80 characters on one line")
        unknown = sorted(set(table) - keys)
        if unknown:
            raise ConfigError(
                f"{self.where}: unknown key {unknown[0]!r}; expected one of {', '.join(sorted(keys))}"
            )

    def fail(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self.where}: {key}: {why}")

    def strings(
        self, key: str, valid: Callable[[str], object], what: str, *, upper: bool
    ) -> list[str] | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
            raise self.fail(key, f"must be a non-empty list of {what}")
        items = [item.strip().upper() if upper else item.strip() for item in value]
        for item in items:
            if not valid(item):
                raise self.fail(key, f"{item!r} is not {what}")
        return items

    def decimal(self, key: str) -> Decimal | None:
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(key, "must be a number")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise self.fail(key, f"{value!r} is not a number") from None
        if not number.is_finite() or number < 0 or number > Decimal(10) ** 7:
            raise self.fail(key, f"{value!r} is not a number from 0 to 10000000")
        return number

    def whole(self, key: str, low: int, high: int) -> int | None:
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"must be a whole number from {low} to {high}")
        return value

    def range(self, low_key: str, high_key: str) -> tuple[Decimal | None, Decimal | None]:
        low, high = self.decimal(low_key), self.decimal(high_key)
        if low is not None and high is not None and low >= high:
            raise self.fail(high_key, f"must be above {low_key} ({low}); no order could match")
        return low, high

    def conditions(self) -> Conditions:
        shipping_types = self.strings(
            "shipping_types", _SHIPPING_TYPE.fullmatch, "Best Buy shipping type codes", upper=False
        )
        provinces = self.strings(
            "provinces", _PROVINCES.__contains__, "province codes (ON, QC …)", upper=True
        )
        prefixes = self.strings(
            "postal_prefixes", _POSTAL_PREFIX.fullmatch, "postal code beginnings (A, A9, A9A …)", upper=True
        )
        min_value, max_value = self.range("min_order_value", "max_order_value")
        min_weight, max_weight = self.range("min_weight_kg", "max_weight_kg")
        return Conditions(
            shipping_types=frozenset(shipping_types) if shipping_types is not None else None,
            provinces=frozenset(provinces) if provinces is not None else None,
            postal_prefixes=tuple(prefixes) if prefixes is not None else None,
            min_order_value=min_value,
            max_order_value=max_value,
            min_weight_kg=min_weight,
            max_weight_kg=max_weight,
            deadline_within_days=self.whole("deadline_within_days", 0, 365),
        )


def _service_rule(source: str, index: int, table: Mapping[str, Any]) -> ServiceRule:
    reader = _RuleReader(source, "service_rules", index, table, _SERVICE_KEYS)
    service = table.get("service")
    if not isinstance(service, str) or not service.strip():
        raise reader.fail(
            "service", f"is required: a domestic service code (DOM.RP …) or {CHEAPEST_MEETING_DEADLINE!r}"
        )
    service = service.strip()
    if service != CHEAPEST_MEETING_DEADLINE:
        service = service.upper()
        if not _SERVICE_CODE.fullmatch(service):
            raise reader.fail(
                "service",
                f"{table['service']!r} is not a domestic service code (DOM.RP, DOM.EP, DOM.XP, DOM.PC …) "
                f"or {CHEAPEST_MEETING_DEADLINE!r}; fulfil ships within Canada only",
            )
    transit_days = reader.whole("transit_days", 0, 60)
    if transit_days is not None and service != CHEAPEST_MEETING_DEADLINE:
        raise reader.fail(
            "transit_days", f"only means something with service = {CHEAPEST_MEETING_DEADLINE!r}"
        )
    return ServiceRule(
        reader.name,
        reader.conditions(),
        service,
        transit_days if transit_days is not None else DEFAULT_TRANSIT_DAYS,
    )


def _option_rule(source: str, index: int, table: Mapping[str, Any]) -> OptionRule:
    reader = _RuleReader(source, "option_rules", index, table, _OPTION_KEYS)
    options = reader.strings("options", _OPTION_CODE.fullmatch, "Canada Post option codes", upper=True)
    if options is None:
        raise reader.fail("options", f"is required: a list of option codes ({', '.join(OPTION_NAMES)})")
    for code in options:
        if code in _UNAVAILABLE:
            raise reader.fail("options", f"{code} cannot be bought by fulfil: {_UNAVAILABLE[code]}")
        if code not in OPTION_NAMES:
            raise reader.fail("options", f"{code} is not an option fulfil knows ({', '.join(OPTION_NAMES)})")
    if len(set(options)) != len(options):
        raise reader.fail("options", "names an option twice")
    for first, second in _conflicting_pairs(options):
        raise reader.fail(
            "options",
            f"Canada Post refuses {first} ({OPTION_NAMES[first]}) with {second} ({OPTION_NAMES[second]})",
        )
    return OptionRule(reader.name, reader.conditions(), tuple(options))


# --- an order's facts ------------------------------------------------------------------------


def order_facts(
    order: Mapping[str, Any], *, province: str, postal_code: str, weight_kg: Decimal
) -> OrderFacts:
    """The facts rules read from an OR11 order (destination and weight already checked by the
    caller). Values Best Buy left out or sent unusable are None: a rule asking about them then
    does not match, which is the safe reading of an unknown."""
    shipping_type = order.get("shipping_type_code")
    if not isinstance(shipping_type, str) or not _SHIPPING_TYPE.fullmatch(shipping_type):
        shipping_type = None
    return OrderFacts(
        shipping_type=shipping_type,
        province=province,
        postal_code=postal_code.replace(" ", ""),
        order_value=_money(order.get("total_price")),
        weight_kg=weight_kg,
        shipping_deadline=mirakl_timestamp(order.get("shipping_deadline")),
    )


def _money(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    if not number.is_finite() or number < 0 or number > Decimal(10) ** 9:
        return None
    return number
