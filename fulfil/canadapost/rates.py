"""Get Rates (rate-v4): what Canada Post would charge for a parcel, service by service, before
anything is bought.

``build_rates_request`` writes the ``<mailing-scenario>``; ``parse_price_quotes`` reads the
``<price-quotes>`` answer. A quote buys nothing, so nothing here is recorded against a shipment,
but an answer is untrusted input like any other: every value fulfil keeps is checked against what
rating.xsd declares, tightened where fulfil shows or adds it up (see ``# --- values``), and a value
that fails is a ResponseFormatError naming the field and the service it belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from lxml import etree

from fulfil.canadapost.canada import normalise_postal_code
from fulfil.canadapost.parcel import Parcel
from fulfil.canadapost.responses import (
    ResponseFormatError,
    document_root,
    shown,
    single_child,
    single_value,
)
from fulfil.canadapost.schema import DIMENSION_MAX_CM, RATE_NAMESPACE, WEIGHT_MAX_KG
from fulfil.config import CanadaPostSettings, setting_name
from fulfil.errors import ConfigError
from fulfil.xml_parsing import children, local_name

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_DIGITS_1_TO_10 = re.compile(r"\d{1,10}")
# rating.xsd allows 1 to 10 characters of any kind; every option code Canada Post publishes (SO,
# COV, PA18, D2PO …) is capital letters and digits, and anything else is a typo best caught here.
_OPTION_CODE = re.compile(r"[A-Z0-9]{1,10}")
_MAX_OPTIONS = 20  # rating.xsd: <option maxOccurs="20">
_GRAM = Decimal("0.001")
_MILLIMETRE = Decimal("0.1")


@dataclass(frozen=True)
class PriceQuote:
    """One service Canada Post offers for the parcel, with what it would cost and how long it takes."""

    service_code: str
    service_name: str
    base: Decimal
    gst: Decimal
    pst: Decimal
    hst: Decimal
    due: Decimal  # what the label would cost in all: base, options, surcharges and taxes
    expected_transit_days: int | None  # business days
    expected_delivery_date: date | None
    guaranteed: bool | None  # None: the answer did not say


# --- the request ----------------------------------------------------------------------------


def build_rates_request(
    *,
    parcel: Parcel,
    origin_postal_code: str,
    destination_postal_code: str,
    canadapost: CanadaPostSettings,
    options: Sequence[str] = (),
    option_amounts: Mapping[str, Decimal] | None = None,
) -> bytes:
    """The Get Rates body for a parcel sent within Canada: UTF-8, with its XML declaration.

    ``option_amounts``: an option's amount where it has one (COV: the value covered), so the
    quote prices the option the label will be bought with.

    Quotes are the account's own: its customer number and, when it has one, its contract. Raises
    ConfigError for a customer number or contract id Canada Post could not take, and ValueError
    for a postal code that is not Canadian, a parcel out of Canada Post's range, or an option code
    that is not one (more than 20, or one twice).
    """
    customer_number = _setting_digits(canadapost.customer_number, "FULFIL_CANADAPOST_CUSTOMER_NUMBER")
    contract_id = (
        _setting_digits(canadapost.contract_id, "FULFIL_CANADAPOST_CONTRACT_ID")
        if canadapost.contract_id is not None
        else None
    )
    origin = _postal_code(origin_postal_code, "origin")
    destination = _postal_code(destination_postal_code, "destination")
    option_codes = _option_codes(options)
    _check_parcel(parcel)

    # Elements in the order Canada Post's Get Rates page lists them (xsd:all takes any order).
    w = _Writer()
    scenario = w.root("mailing-scenario")
    # The customer number is what makes the quote the account's price, not the retail one.
    w.add(scenario, "customer-number", customer_number)
    if contract_id is not None:
        w.add(scenario, "contract-id", contract_id)
    # "commercial" quotes what this customer is billed: its contract's rates with a contract id,
    # its commercial (Solutions for Small Business) rates without; "counter" would quote the retail
    # price a walk-in customer pays. It is Canada Post's default, written out so that the quote
    # never depends on a default.
    w.add(scenario, "quote-type", "commercial")
    if option_codes:
        container = w.add(scenario, "options")
        for code in option_codes:
            option = w.add(container, "option")
            w.add(option, "option-code", code)
            amount = (option_amounts or {}).get(code)
            if amount is not None:
                # CostTypeNonZero: above zero, at most 999999.99, two decimals.
                if not Decimal(0) < amount <= Decimal("999999.99"):
                    raise ValueError(f"option {code}: amount {amount} is not from 0.01 to 999999.99")
                w.add(option, "option-amount", _decimal(amount, Decimal("0.01")))
    characteristics = w.add(scenario, "parcel-characteristics")
    w.add(characteristics, "weight", _decimal(parcel.weight_kg, _GRAM))
    if parcel.dimensions is not None:
        dimensions = w.add(characteristics, "dimensions")
        w.add(dimensions, "length", _decimal(parcel.dimensions.length_cm, _MILLIMETRE))
        w.add(dimensions, "width", _decimal(parcel.dimensions.width_cm, _MILLIMETRE))
        w.add(dimensions, "height", _decimal(parcel.dimensions.height_cm, _MILLIMETRE))
    w.add(scenario, "origin-postal-code", origin)
    domestic = w.add(w.add(scenario, "destination"), "domestic")
    w.add(domestic, "postal-code", destination)
    return _XML_DECLARATION + etree.tostring(scenario, encoding="UTF-8", pretty_print=True)


class _Writer:
    """Elements in the rate-v4 namespace, as elementFormDefault="qualified" requires."""

    def root(self, name: str) -> etree._Element:
        return etree.Element(f"{{{RATE_NAMESPACE}}}{name}", nsmap={None: RATE_NAMESPACE})

    def add(self, parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{RATE_NAMESPACE}}}{name}")
        if text is not None:
            element.text = text
        return element


def _setting_digits(value: str, env: str) -> str:
    # Settings are checked when loaded; this guards settings built some other way (tests, scripts).
    if not _DIGITS_1_TO_10.fullmatch(value):
        raise ConfigError(f"{setting_name(env)} must be 1 to 10 digits")
    return value


def _postal_code(raw: str, which: str) -> str:
    postal_code = normalise_postal_code(raw)
    if postal_code is None:
        raise ValueError(f"the {which} postal code {raw!r} is not a Canadian postal code such as K1A 0B1")
    return postal_code


def _option_codes(options: Sequence[str]) -> list[str]:
    if isinstance(options, str):
        # A lone "SO" is a sequence of "S" and "O": refused rather than quoted as two options.
        raise TypeError("options is a sequence of option codes, not one string")
    codes = list(options)
    for code in codes:
        if not _OPTION_CODE.fullmatch(code):
            raise ValueError(f"option code {code!r} is not 1 to 10 capital letters and digits (SO, COV …)")
    if len(codes) > _MAX_OPTIONS:
        raise ValueError(f"{len(codes)} options; Canada Post rates at most {_MAX_OPTIONS}")
    repeated = sorted({code for code in codes if codes.count(code) > 1})
    if repeated:
        raise ValueError(f"option {', '.join(repeated)} is given more than once")
    return codes


def _check_parcel(parcel: Parcel) -> None:
    # parcel_characteristics() already fits a parcel to these bounds; a Parcel built by hand is
    # checked too, since Canada Post would refuse the whole request over one extra decimal.
    weight = parcel.weight_kg
    if not (Decimal(0) < weight <= WEIGHT_MAX_KG and _decimals(weight) <= 3):
        raise ValueError(f"parcel weight {weight} kg is not 0.001 to {WEIGHT_MAX_KG} kg in grams")
    if parcel.dimensions is None:
        return
    for side, measure in (
        ("length", parcel.dimensions.length_cm),
        ("width", parcel.dimensions.width_cm),
        ("height", parcel.dimensions.height_cm),
    ):
        if not (Decimal(0) < measure <= DIMENSION_MAX_CM and _decimals(measure) <= 1):
            raise ValueError(f"parcel {side} {measure} cm is not 0.1 to {DIMENSION_MAX_CM} cm in millimetres")


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _decimal(value: Decimal, step: Decimal) -> str:
    # Fixed-point at the schema's precision (exact: _check_parcel saw no finer digit): str() of a
    # Decimal can use an exponent ("1E+1"), which xsd:decimal refuses.
    return format(value.quantize(step), "f")


# --- the answer -----------------------------------------------------------------------------


def parse_price_quotes(body: bytes) -> list[PriceQuote]:
    """The quotes of a ``<price-quotes>`` answer, in the order Canada Post gave them; an answer
    with no ``<price-quote>`` (no service takes the parcel) is an empty list.

    Parsed without entity expansion, DTDs or network (fulfil.xml_parsing); elements fulfil does
    not read are ignored, since Canada Post adds elements without changing the version.
    """
    root = document_root(body, ("price-quotes",))
    quotes: list[PriceQuote] = []
    seen: set[str] = set()
    for position, element in enumerate(children(root, "price-quote"), start=1):
        quote = _price_quote(element, position)
        if quote.service_code in seen:
            # Two prices for one service: no way to tell which one Canada Post would charge.
            raise ResponseFormatError(f"<price-quote> for {quote.service_code} appears more than once")
        seen.add(quote.service_code)
        quotes.append(quote)
    return quotes


# --- values ---------------------------------------------------------------------------------
#
# What rating.xsd declares, and what fulfil accepts:
#
# - service-code, ServiceCodeType: 1 to 32 characters, no pattern. Canada Post's codes are a
#   three-letter family and dot-separated parts in capitals and digits (DOM.EP, USA.TP.LVM,
#   INT.IP.SURF); fulfil sends them back in Create Shipment, so nothing else.
# - service-name: xsd:normalizedString. fulfil shows it: printable, one line, at most 100.
# - base, due, and the taxes (TaxType, an xsd:decimal with a percent attribute fulfil does not
#   need): dollars and cents as Canada Post's CostType has them, 0 to 99,999.99 with at most two
#   decimals. None of them can be negative (a discount is an adjustment, not a negative base).
#   A tax left out is a tax not charged: the due amount, which is required, is the total anyway.
# - service-standard (required by the schema, yet read as optional: a quote without it still
#   has a price): guaranteed-delivery xsd:boolean; expected-transit-time an integer 0 to 99;
#   expected-delivery-date xsd:date, a real day (an optional zone is allowed and ignored).

_SERVICE_CODE = re.compile(r"[A-Z]{3}(?:\.[A-Z0-9]{1,10}){1,4}")
_SERVICE_CODE_MAX = 32
_SERVICE_NAME_MAX = 100
_MONEY = re.compile(r"\d{1,5}(?:\.\d{1,2})?")
_TRANSIT_DAYS = re.compile(r"\d{1,2}")
_XSD_DATE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:Z|[+-][0-9]{2}:[0-9]{2})?")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def _price_quote(element: etree._Element, position: int) -> PriceQuote:
    service_code = _service_code(element, position)
    where = f"the {service_code} quote"
    details = single_child(element, "price-details")
    if details is None:
        raise ResponseFormatError(f"{where} has no <price-details>")
    taxes = single_child(details, "taxes")
    standard = single_child(element, "service-standard")
    return PriceQuote(
        service_code=service_code,
        service_name=_service_name(element, where),
        base=_money(details, "base", where),
        gst=_tax(taxes, "gst", where),
        pst=_tax(taxes, "pst", where),
        hst=_tax(taxes, "hst", where),
        due=_money(details, "due", where),
        expected_transit_days=_transit_days(standard, where) if standard is not None else None,
        expected_delivery_date=_delivery_date(standard, where) if standard is not None else None,
        guaranteed=_guaranteed(standard, where) if standard is not None else None,
    )


def _service_code(element: etree._Element, position: int) -> str:
    code = single_value(element, "service-code")
    if code is None:
        raise ResponseFormatError(f"<price-quote> number {position} has no <service-code>")
    if len(code) > _SERVICE_CODE_MAX or not _SERVICE_CODE.fullmatch(code):
        raise ResponseFormatError(
            f"<service-code> {shown(code)} of <price-quote> number {position} is not a Canada Post service "
            f"code (such as DOM.EP: capitals, digits and dots, at most {_SERVICE_CODE_MAX} characters)"
        )
    return code


def _service_name(element: etree._Element, where: str) -> str:
    name = single_value(element, "service-name")
    if name is None:
        raise ResponseFormatError(f"{where} has no <service-name>")
    if len(name) > _SERVICE_NAME_MAX or not name.isprintable():
        raise ResponseFormatError(
            f"<service-name> {shown(name)} of {where} is not a name of at most {_SERVICE_NAME_MAX} "
            "printable characters on one line"
        )
    return name


def _money(parent: etree._Element, name: str, where: str) -> Decimal:
    value = single_value(parent, name)
    if value is None:
        raise ResponseFormatError(f"<{name}> is missing from <{local_name(parent)}> of {where}")
    if not _MONEY.fullmatch(value):
        raise ResponseFormatError(
            f"<{name}> {shown(value)} in <{local_name(parent)}> of {where} is not an amount in dollars and "
            "cents (0 to 99999.99, at most two decimals)"
        )
    return Decimal(value)


def _tax(taxes: etree._Element | None, name: str, where: str) -> Decimal:
    if taxes is None or single_child(taxes, name) is None:
        return Decimal(0)
    return _money(taxes, name, where)


def _transit_days(standard: etree._Element, where: str) -> int | None:
    value = single_value(standard, "expected-transit-time")
    if value is None:
        return None
    if not _TRANSIT_DAYS.fullmatch(value):
        raise ResponseFormatError(
            f"<expected-transit-time> {shown(value)} of {where} is not a number of days from 0 to 99"
        )
    return int(value)


def _delivery_date(standard: etree._Element, where: str) -> date | None:
    value = single_value(standard, "expected-delivery-date")
    if value is None:
        return None
    match = _XSD_DATE.fullmatch(value)
    try:
        if match is None:
            raise ValueError(value)
        return date.fromisoformat(match.group(1))
    except ValueError:
        raise ResponseFormatError(
            f"<expected-delivery-date> {shown(value)} of {where} is not a date (YYYY-MM-DD)"
        ) from None


def _guaranteed(standard: etree._Element, where: str) -> bool | None:
    value = single_value(standard, "guaranteed-delivery")
    if value is None:
        return None
    if value not in _BOOLEANS:
        raise ResponseFormatError(f"<guaranteed-delivery> {shown(value)} of {where} is not true or false")
    return _BOOLEANS[value]
