"""Get Rates (``POST /rs/ship/price``, rate-v4): the sandbox's price quotes, before anything is bought.

A ``<mailing-scenario>`` is checked like every request body (the exact media types, well formed,
the field rules of ``cp_schema``, the official rating.xsd when the sandbox has it) and then by the
rules Canada Post applies beyond the schema: the customer number is ours (``AA004`` otherwise, as
Canada Post answers a key that may not mail for that customer), a commercial quote names one,
postal codes start with a letter Canada Post uses, options are ones the sandbox prices. Any
failure is a ``<messages>`` answer like the other endpoints' (code ``Server``, a ``cvc-…`` text,
HTTP 400).

The answer is a ``<price-quotes>`` with one quote per domestic service. The price model, made up
but shaped like Canada Post's:

- **billed weight**: the greater of the actual weight and the volumetric ("cubed") weight,
  length × width × height / 6000 (cm, kg), when dimensions are given;
- **base**: per service, a fixed part plus a rate per billed kilogram, times the zone's factor;
  the zone comes from the first letters of the two postal codes: the same letter is local,
  the same or a neighbouring region is regional, anything else is far;
- the **quote type**: ``commercial`` with a ``contract-id`` is the contract's rates (15 % below
  the list), ``commercial`` without is the list, ``counter`` is the retail price (15 % above);
- **options**: signature (SO) at a flat price, coverage (COV) per 100 dollars of value beyond what
  the service includes (its ``option-amount``, 100 dollars when none is given);
- a **fuel surcharge** (adjustment FUELSC) of 11.5 % of the base, the rate the label answers use;
- **taxes** of the destination's province (from its postal code), as the labels' prices have them;
- **service standard**: business days by service and zone, counted from the mailing day (the
  ``expected-mailing-date``, or today on the sandbox's clock in Eastern time) and skipping
  weekends, so faster services cost more and arrive sooner and farther parcels take longer.

Nothing is random: the same request on the same day is the same answer. A parcel no service
takes (over 30 kg billed), a destination outside Canada or a ``<services>`` list naming no
domestic service gets an empty ``<price-quotes/>``: the sandbox rates domestic parcels only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from lxml import etree

from fulfil.sandbox import cp_schema
from fulfil.sandbox.canadapost_documents import root_element, serialize, sub
from fulfil.sandbox.canadapost_requests import (
    AA004_TEXT,
    CanadaPostError,
    accepted_media,
    check_content_type,
    field_error,
    parse_body,
)
from fulfil.sandbox.orders import PROVINCES
from fulfil.sandbox.wire import ApiRequest, ApiResponse
from fulfil.sandbox.xsd import OfficialSchemas
from fulfil.xml_parsing import child, child_text, children, find_path

RATE_NS = cp_schema.RATE_NS
RATE_MEDIA = "application/vnd.cpc.ship.rate-v4+xml"
CENT = Decimal("0.01")
GRAM = Decimal("0.001")
# Canada Post's volumetric divisor for parcels measured in centimetres and weighed in kilograms.
VOLUMETRIC_DIVISOR = Decimal(6000)
MAX_BILLED_KG = Decimal(30)
FUEL_SURCHARGE_PERCENT = Decimal("11.5")
CONTRACT_FACTOR = Decimal("0.85")
COUNTER_FACTOR = Decimal("1.15")
SIGNATURE_PRICE = Decimal("1.75")
COVERAGE_STEP = Decimal(100)
COVERAGE_STEP_COST = Decimal("2.75")
DEFAULT_COVERAGE = Decimal(100)


@dataclass(frozen=True)
class Service:
    code: str
    name_en: str
    name_fr: str
    fixed: Decimal  # dollars, before the zone
    per_kg: Decimal  # dollars per billed kilogram, before the zone
    transit_days: tuple[int, int, int]  # business days: local, regional, far
    guaranteed: bool
    included_coverage: Decimal  # dollars of value covered at no charge


# Cheapest and slowest first, which is also the order of the answer.
SERVICES: tuple[Service, ...] = (
    Service(
        code="DOM.RP",
        name_en="Regular Parcel",
        name_fr="Colis standard",
        fixed=Decimal("10.20"),
        per_kg=Decimal("1.70"),
        transit_days=(2, 4, 7),
        guaranteed=False,
        included_coverage=Decimal(0),
    ),
    Service(
        code="DOM.EP",
        name_en="Expedited Parcel",
        name_fr="Colis accélérés",
        fixed=Decimal("11.40"),
        per_kg=Decimal("1.95"),
        transit_days=(2, 3, 5),
        guaranteed=False,
        included_coverage=Decimal(100),
    ),
    Service(
        code="DOM.XP",
        name_en="Xpresspost",
        name_fr="Xpresspost",
        fixed=Decimal("15.90"),
        per_kg=Decimal("3.10"),
        transit_days=(1, 2, 3),
        guaranteed=True,
        included_coverage=Decimal(100),
    ),
    Service(
        code="DOM.PC",
        name_en="Priority",
        name_fr="Priorité",
        fixed=Decimal("24.50"),
        per_kg=Decimal("4.60"),
        transit_days=(1, 1, 2),
        guaranteed=True,
        included_coverage=Decimal(100),
    ),
)
LOCAL, REGIONAL, FAR = 0, 1, 2
ZONE_FACTORS = (Decimal("1.00"), Decimal("1.35"), Decimal("1.80"))

# The region each first letter of a postal code sorts to, and which regions border each other.
REGIONS: dict[str, str] = {
    **dict.fromkeys("ABCE", "atlantic"),
    **dict.fromkeys("GHJ", "quebec"),
    **dict.fromkeys("KLMNP", "ontario"),
    **dict.fromkeys("RST", "prairies"),
    "V": "pacific",
    **dict.fromkeys("XY", "north"),
}
NEIGHBOURS = frozenset(
    frozenset(pair)
    for pair in (
        ("atlantic", "quebec"),
        ("quebec", "ontario"),
        ("ontario", "prairies"),
        ("prairies", "pacific"),
        ("prairies", "north"),
        ("pacific", "north"),
    )
)
# The province of a postal code is its first letter's; X is both territories, by district.
PROVINCE_OF_LETTER: dict[str, str] = {
    "A": "NL",
    "B": "NS",
    "C": "PE",
    "E": "NB",
    **dict.fromkeys("GHJ", "QC"),
    **dict.fromkeys("KLMNP", "ON"),
    "R": "MB",
    "S": "SK",
    "T": "AB",
    "V": "BC",
    "X": "NT",
    "Y": "YT",
}
NUNAVUT_DISTRICTS = ("X0A", "X0B", "X0C")
OPTION_NAMES: dict[str, tuple[str, str]] = {
    "SO": ("Signature", "Signature"),
    "COV": ("Coverage", "Protection"),
}


@dataclass(frozen=True)
class Scenario:
    """What a mailing scenario asks to be rated."""

    weight: Decimal
    dimensions: tuple[Decimal, Decimal, Decimal] | None
    origin: str
    destination: str | None  # None: a destination outside Canada
    quote_type: str  # "commercial" or "counter"
    contract: bool
    options: Mapping[str, Decimal | None]  # code -> option-amount
    services: tuple[str, ...] | None  # the <services> asked for; None: all
    mailing_date: date
    french: bool


@dataclass(frozen=True)
class PricedOption:
    code: str
    name: str
    price: Decimal
    coverage: Decimal | None  # COV: the value covered; its qualifier shows the steps


@dataclass(frozen=True)
class Quote:
    service: Service
    cubed_weight: Decimal | None
    base: Decimal
    options: tuple[PricedOption, ...]
    fuel: Decimal
    taxes: tuple[tuple[str, Decimal, Decimal], ...]  # (gst|pst|hst, percent, amount)
    transit_days: int
    delivery_date: date

    @property
    def due(self) -> Decimal:
        pre_tax = self.base + sum((option.price for option in self.options), Decimal(0)) + self.fuel
        return pre_tax + sum((amount for _, _, amount in self.taxes), Decimal(0))


# --- the endpoint ---------------------------------------------------------------------------


def get_rates(
    request: ApiRequest, schemas: OfficialSchemas | None, customer_number: str, today: date
) -> ApiResponse:
    """Answer a Get Rates call (``today``: the sandbox clock's date in Eastern time); raises
    CanadaPostError for a request Canada Post would refuse."""
    accepted_media(request, (RATE_MEDIA,))
    check_content_type(request, RATE_MEDIA)
    # A directory of XSDs without rating.xsd checks what it can; the built-in rules check the rest.
    official = schemas if schemas is not None and schemas.covers(RATE_NS) else None
    root = parse_body(request, RATE_NS, "mailing-scenario", RATE_MEDIA, official)
    scenario = read_scenario(request, root, customer_number, today)
    body = price_quotes_document(rate(scenario), request.base_url, french=scenario.french)
    return ApiResponse(200, body, RATE_MEDIA)


def read_scenario(request: ApiRequest, root: etree._Element, customer_number: str, today: date) -> Scenario:
    """A schema-valid ``<mailing-scenario>``, checked by the rules beyond the schema."""
    customer = child_text(root, "customer-number")
    if customer is not None and int(customer) != int(customer_number):
        raise CanadaPostError(403, [("AA004", AA004_TEXT)], RATE_MEDIA)
    quote_type = child_text(root, "quote-type") or "commercial"  # Canada Post's default
    if quote_type == "commercial" and customer is None:
        raise field_error(
            request,
            "cvc-complex-type.2.4.b: The content of element 'mailing-scenario' is not complete. "
            f"One of '{{\"{RATE_NS}\":customer-number}}' is expected (a commercial quote is the "
            "customer's own price).",
            RATE_MEDIA,
        )
    origin = _known_postal_code(request, child_text(root, "origin-postal-code") or "", "origin-postal-code")
    domestic = find_path(root, "destination", "domestic", "postal-code")
    destination = (
        _known_postal_code(request, domestic.text or "", "destination postal-code")
        if domestic is not None
        else None
    )
    parcel = child(root, "parcel-characteristics")
    assert parcel is not None  # the schema requires it
    services = child(root, "services")
    mailing = child_text(root, "expected-mailing-date")
    return Scenario(
        weight=Decimal(child_text(parcel, "weight") or "0"),
        dimensions=_dimensions(child(parcel, "dimensions")),
        origin=origin,
        destination=destination,
        quote_type=quote_type,
        contract=child_text(root, "contract-id") is not None,
        options=_options(request, child(root, "options")),
        services=(
            tuple(" ".join((code.text or "").split()) for code in children(services, "service-code"))
            if services is not None
            else None
        ),
        mailing_date=_mailing_date(request, mailing, today),
        french=(request.header("Accept-language") or "").strip().lower().startswith("fr"),
    )


def _mailing_date(request: ApiRequest, mailing: str | None, today: date) -> date:
    if mailing is None:
        return today
    try:
        # The schema allows a zone after the day, which the day itself ignores.
        planned = date.fromisoformat(mailing[:10])
    except ValueError:
        # Years the schema allows (before year 1, after 9999) that no parcel is mailed in.
        raise field_error(
            request, f"expected-mailing-date '{mailing}' is not a day a parcel can be mailed on.", RATE_MEDIA
        ) from None
    # A day already past is mailed today: a quote never promises delivery before it is asked for.
    return max(today, planned)


def _known_postal_code(request: ApiRequest, postal_code: str, field: str) -> str:
    # The schema's pattern takes any capital letter; Canada Post's codes never start with D, F, I,
    # O, Q, U, W or Z, and a code the sandbox cannot place has no zone and no province to tax.
    if postal_code[:1] not in REGIONS:
        raise field_error(
            request,
            f"cvc-pattern-valid: Value '{postal_code}' is not facet-valid with respect to pattern "
            f"'[ABCEGHJ-NPRSTVXY]\\d[A-Z]\\d[A-Z]\\d' for type 'PostalCodeType' ({field}).",
            RATE_MEDIA,
        )
    return postal_code


def _dimensions(element: etree._Element | None) -> tuple[Decimal, Decimal, Decimal] | None:
    if element is None:
        return None
    length, width, height = (
        Decimal(child_text(element, side) or "0") for side in ("length", "width", "height")
    )
    return length, width, height


def _options(request: ApiRequest, element: etree._Element | None) -> dict[str, Decimal | None]:
    found: dict[str, Decimal | None] = {}
    if element is None:
        return found
    for option in children(element, "option"):
        code = " ".join((child_text(option, "option-code") or "").split())
        if code not in OPTION_NAMES:
            raise field_error(
                request,
                f"cvc-enumeration-valid: Value '{code}' is not facet-valid with respect to enumeration "
                f"'[{', '.join(OPTION_NAMES)}]' (option-code: the options the sandbox rates).",
                RATE_MEDIA,
            )
        if code in found:
            raise field_error(request, f"option-code '{code}' is given more than once.", RATE_MEDIA)
        amount = child_text(option, "option-amount")
        found[code] = Decimal(amount) if amount is not None else None
    return found


# --- the price model ------------------------------------------------------------------------


def zone(origin: str, destination: str) -> int:
    if origin[0] == destination[0]:
        return LOCAL
    regions = REGIONS[origin[0]], REGIONS[destination[0]]
    if regions[0] == regions[1] or frozenset(regions) in NEIGHBOURS:
        return REGIONAL
    return FAR


def province_of(postal_code: str) -> str:
    if postal_code.startswith(NUNAVUT_DISTRICTS):
        return "NU"
    return PROVINCE_OF_LETTER[postal_code[0]]


def cubed_weight(dimensions: tuple[Decimal, Decimal, Decimal]) -> Decimal:
    length, width, height = dimensions
    return (length * width * height / VOLUMETRIC_DIVISOR).quantize(GRAM, ROUND_HALF_UP)


def business_days_after(start: date, days: int) -> date:
    day = start
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day


def rate(scenario: Scenario) -> list[Quote]:
    """Every service's quote for the scenario, cheapest first; empty when none applies."""
    if scenario.destination is None:
        return []
    cubed = cubed_weight(scenario.dimensions) if scenario.dimensions is not None else None
    billed = max(scenario.weight, cubed) if cubed is not None else scenario.weight
    if billed > MAX_BILLED_KG:
        return []
    where = zone(scenario.origin, scenario.destination)
    tariff = _tariff(scenario)
    taxes = dict(PROVINCES[province_of(scenario.destination)].taxes)
    quotes = []
    for service in SERVICES:
        if scenario.services is not None and service.code not in scenario.services:
            continue
        base = ((service.fixed + service.per_kg * billed) * ZONE_FACTORS[where] * tariff).quantize(
            CENT, ROUND_HALF_UP
        )
        options = tuple(
            _priced_option(code, amount, service, scenario.french)
            for code, amount in scenario.options.items()
        )
        fuel = _percent_of(base, FUEL_SURCHARGE_PERCENT)
        pre_tax = base + sum((option.price for option in options), Decimal(0)) + fuel
        days = service.transit_days[where]
        quotes.append(
            Quote(
                service=service,
                cubed_weight=cubed,
                base=base,
                options=options,
                fuel=fuel,
                taxes=_taxes(pre_tax, taxes),
                transit_days=days,
                delivery_date=business_days_after(scenario.mailing_date, days),
            )
        )
    return quotes


def _tariff(scenario: Scenario) -> Decimal:
    """What the quote type makes of the list price: retail, the list itself, or the contract's."""
    if scenario.quote_type == "counter":
        return COUNTER_FACTOR
    return CONTRACT_FACTOR if scenario.contract else Decimal(1)


def _priced_option(code: str, amount: Decimal | None, service: Service, french: bool) -> PricedOption:
    english, french_name = OPTION_NAMES[code]
    name = french_name if french else english
    if code == "SO":
        return PricedOption(code, name, SIGNATURE_PRICE, None)
    coverage = amount if amount is not None else DEFAULT_COVERAGE
    steps = math.ceil(max(Decimal(0), coverage - service.included_coverage) / COVERAGE_STEP)
    return PricedOption(code, name, COVERAGE_STEP_COST * steps, coverage)


def _taxes(pre_tax: Decimal, rates: Mapping[str, float]) -> tuple[tuple[str, Decimal, Decimal], ...]:
    # Quebec's QST is charged where Canada Post's answers have a PST, as in the labels' prices.
    provincial = rates.get("QST", rates.get("PST", 0.0))
    found = []
    for name, rate_value in (
        ("gst", rates.get("GST", 0.0)),
        ("pst", provincial),
        ("hst", rates.get("HST", 0.0)),
    ):
        percent = (Decimal(str(rate_value)) * 100).normalize()
        found.append((name, percent, _percent_of(pre_tax, percent)))
    return tuple(found)


def _percent_of(amount: Decimal, percent: Decimal) -> Decimal:
    return (amount * percent / 100).quantize(CENT, ROUND_HALF_UP)


# --- the answer -----------------------------------------------------------------------------


def price_quotes_document(quotes: list[Quote], base_url: str, *, french: bool) -> bytes:
    root = root_element(RATE_NS, "price-quotes")
    for quote in quotes:
        service = quote.service
        element = sub(root, "price-quote")
        sub(element, "service-code", service.code)
        # Canada Post links each quote to its service's description (Get Service).
        service_link = {
            "rel": "service",
            "href": f"{base_url}/rs/ship/service/{service.code}?country=CA",
            "media-type": RATE_MEDIA,
        }
        sub(element, "service-link", **service_link)
        sub(element, "service-name", service.name_fr if french else service.name_en)
        _price_details(sub(element, "price-details"), quote, french)
        weight = sub(element, "weight-details")
        if quote.cubed_weight is not None:
            sub(weight, "cubed-weight", _fixed(quote.cubed_weight, GRAM))
        standard = sub(element, "service-standard")
        sub(standard, "am-delivery", "false")
        sub(standard, "guaranteed-delivery", "true" if service.guaranteed else "false")
        sub(standard, "expected-transit-time", str(quote.transit_days))
        sub(standard, "expected-delivery-date", quote.delivery_date.isoformat())
    return serialize(root)


def _price_details(details: etree._Element, quote: Quote, french: bool) -> None:
    sub(details, "base", _fixed(quote.base, CENT))
    taxes = sub(details, "taxes")
    for name, percent, amount in quote.taxes:
        sub(taxes, name, _fixed(amount, CENT), percent=format(percent, "f"))
    sub(details, "due", _fixed(quote.due, CENT))
    if quote.options:
        options = sub(details, "options")
        for priced in quote.options:
            option = sub(options, "option")
            sub(option, "option-code", priced.code)
            sub(option, "option-name", priced.name)
            sub(option, "option-price", _fixed(priced.price, CENT))
            if priced.coverage is not None:
                qualifier = sub(option, "qualifier")
                sub(qualifier, "step-size", _fixed(COVERAGE_STEP, CENT))
                sub(qualifier, "step-cost", _fixed(COVERAGE_STEP_COST, CENT))
                sub(qualifier, "included-amount", _fixed(quote.service.included_coverage, CENT))
    adjustments = sub(details, "adjustments")
    adjustment = sub(adjustments, "adjustment")
    sub(adjustment, "adjustment-code", "FUELSC")
    sub(adjustment, "adjustment-name", "Supplément carburant" if french else "Fuel surcharge")
    sub(adjustment, "adjustment-cost", _fixed(quote.fuel, CENT))
    sub(sub(adjustment, "qualifier"), "percent", format(FUEL_SURCHARGE_PERCENT, "f"))


def _fixed(value: Decimal, step: Decimal) -> str:
    return format(value.quantize(step, ROUND_HALF_UP), "f")
