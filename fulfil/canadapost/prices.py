"""What Canada Post charged for a label, from the three documents that say it.

- The ``<shipment-price>`` inside a contract Create Shipment answer: fulfil asks for it with
  ``<provide-pricing-info>``, so the price comes in the answer that proves the purchase, at no
  extra call (``parse_shipment_price``).
- The same ``<shipment-price>`` served on its own by Get Shipment Price
  (``…/shipment/{id}/price``), for a contract label whose answer carried none or one that could not
  be read, or that was found again after a lost answer (``parse_price_document``).
- The ``<non-contract-shipment-receipt>`` of Get Non-Contract Shipment Receipt
  (``…/ncshipment/{id}/receipt``): a non-contract label is paid by card, and its price is only on
  its receipt (``parse_receipt``).

All three give the same LabelPrice. Every amount is checked (dollars and cents, not negative but
for options and adjustments, within Canada Post's CostType digits), naming the field and the
document: a price that cannot be read is reported by the caller, and never stops the label from
being recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from lxml import etree

from fulfil.canadapost.responses import ResponseFormatError, document_root, shown, single_child, single_value
from fulfil.xml_parsing import children, local_name

# Canada Post's CostType: up to 99,999.99, two decimals at most.
_AMOUNT = re.compile(r"\d{1,5}(\.\d{1,2})?")
_CODE = re.compile(r"[A-Za-z0-9._-]{1,32}")
_SHIPMENT_INFO_ROOTS = ("shipment-info",)
_PRICE_ROOTS = ("shipment-price",)
_RECEIPT_ROOTS = ("non-contract-shipment-receipt",)
# The currency the amounts of a price are in (CostType has none: Canada Post prices in dollars).
CURRENCY = "CAD"


@dataclass(frozen=True)
class Charge:
    """A priced option or an adjustment (a fuel surcharge, a discount): its code and amount."""

    code: str
    amount: Decimal  # an adjustment can be negative (a discount)


@dataclass(frozen=True)
class LabelPrice:
    service_code: str
    base: Decimal
    options: tuple[Charge, ...]
    adjustments: tuple[Charge, ...]
    pre_tax: Decimal
    gst: Decimal
    pst: Decimal
    hst: Decimal
    due: Decimal

    @property
    def taxes(self) -> Decimal:
        return self.gst + self.pst + self.hst


def _amount(parent: etree._Element, name: str, *, signed: bool = False, required: bool = True) -> Decimal:
    where = local_name(parent)
    value = single_value(parent, name)
    if value is None:
        if required:
            raise ResponseFormatError(f"<{where}> has no <{name}>")
        return Decimal(0)
    negative = value.startswith("-")
    if negative and not signed:
        raise ResponseFormatError(
            f"<{name}> in <{where}> is {shown(value)}: negative, where only a discount may be"
        )
    digits = value[1:] if negative else value
    if not _AMOUNT.fullmatch(digits):
        raise ResponseFormatError(f"<{name}> in <{where}> is {shown(value)}; expected dollars and cents")
    amount = Decimal(digits)
    return -amount if negative else amount


def _charges(
    parent: etree._Element, group: str, item: str, code: str, amount: str, *, amount_required: bool
) -> tuple[Charge, ...]:
    container = single_child(parent, group)
    if container is None:
        return ()
    found = []
    for element in children(container, item):
        name = single_value(element, code)
        if name is None or not _CODE.fullmatch(name):
            raise ResponseFormatError(f"<{code}> in <{item}> is {shown(name or '')}; expected a code")
        found.append(Charge(name, _amount(element, amount, signed=True, required=amount_required)))
    return tuple(found)


def _service_code(parent: etree._Element) -> str:
    service = single_value(parent, "service-code")
    if service is None or not _CODE.fullmatch(service):
        raise ResponseFormatError(f"<service-code> in <{local_name(parent)}> is {shown(service or '')}")
    return service


def _options(parent: etree._Element) -> tuple[Charge, ...]:
    # An option's price is optional in shipment.xsd (an option that costs nothing): 0.
    return _charges(
        parent, "priced-options", "priced-option", "option-code", "option-price", amount_required=False
    )


def _adjustments(parent: etree._Element) -> tuple[Charge, ...]:
    # Both schemas require an adjustment's amount: an adjustment without one says nothing.
    return _charges(
        parent, "adjustments", "adjustment", "adjustment-code", "adjustment-amount", amount_required=True
    )


def _price(price: etree._Element) -> LabelPrice:
    """A ``<shipment-price>`` element, inside an answer or on its own."""
    return LabelPrice(
        service_code=_service_code(price),
        base=_amount(price, "base-amount"),
        options=_options(price),
        adjustments=_adjustments(price),
        pre_tax=_amount(price, "pre-tax-amount"),
        # A tax Canada Post leaves out is one it did not charge: the due amount, which it always
        # gives, is the total either way.
        gst=_amount(price, "gst-amount", required=False),
        pst=_amount(price, "pst-amount", required=False),
        hst=_amount(price, "hst-amount", required=False),
        due=_amount(price, "due-amount"),
    )


def parse_shipment_price(body: bytes | str) -> LabelPrice | None:
    """The price in a Create Shipment answer; None when it carries none."""
    root = document_root(body, _SHIPMENT_INFO_ROOTS)
    price = single_child(root, "shipment-price")
    if price is None:
        return None
    return _price(price)


def parse_price_document(body: bytes | str) -> LabelPrice:
    """The answer to Get Shipment Price: a ``<shipment-price>`` document (a contract label)."""
    return _price(document_root(body, _PRICE_ROOTS))


def parse_receipt(body: bytes | str) -> LabelPrice:
    """The answer to Get Non-Contract Shipment Receipt: a ``<non-contract-shipment-receipt>``."""
    root = document_root(body, _RECEIPT_ROOTS)
    # A receipt has no due amount of its own, so the due amount may be worked out from the taxes:
    # each one is required (as ncshipment.xsd has them), a missing tax is never taken as none.
    pre_tax = _amount(root, "pre-tax-amount")
    gst = _amount(root, "gst-amount")
    pst = _amount(root, "pst-amount")
    hst = _amount(root, "hst-amount")
    return LabelPrice(
        service_code=_service_code(root),
        base=_amount(root, "base-amount"),
        options=_options(root),
        adjustments=_adjustments(root),
        pre_tax=pre_tax,
        gst=gst,
        pst=pst,
        hst=hst,
        due=_charged(root, pre_tax + gst + pst + hst),
    )


def _charged(receipt: etree._Element, lines: Decimal) -> Decimal:
    """What the label cost in all: the card's ``charge-amount`` when the receipt has one in CAD,
    else the sum of its lines (pre-tax amount and taxes).

    The charge is preferred because it is what left the seller's account, the figure a card
    statement is reconciled against; Canada Post computes it from the same lines, so the two
    agree on every receipt seen. The lines are the fallback for a receipt without a card block
    (the schema requires one, yet a receipt is untrusted input like any answer), and for a charge
    in another currency, which could not be added to the other labels' dollars: every other
    amount of the receipt is a CostType, in Canadian dollars.
    """
    card = single_child(receipt, "cc-receipt-details")
    if card is None or single_value(card, "charge-amount") is None:
        return lines
    charge = _amount(card, "charge-amount")
    currency = single_value(card, "currency")
    if currency is not None and currency.upper() != CURRENCY:
        return lines
    return charge
