"""What Canada Post charged for a label: the ``<shipment-price>`` of a Create Shipment answer.

fulfil asks for it with ``<provide-pricing-info>`` (contract shipments), so the price comes in the
answer that proves the purchase, at no extra call. Every amount is checked (dollars and cents, not
negative, within Canada Post's CostType bounds), naming the field: a price that cannot be read is
reported by the caller, and never stops the label from being recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from lxml import etree

from fulfil.canadapost.responses import ResponseFormatError, document_root, shown, single_child, single_value
from fulfil.xml_parsing import children

# Canada Post's CostType: up to 99,999.99, two decimals at most.
_AMOUNT = re.compile(r"\d{1,5}(\.\d{1,2})?")
_CODE = re.compile(r"[A-Za-z0-9._-]{1,32}")
_SHIPMENT_INFO_ROOTS = ("shipment-info",)


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
    value = single_value(parent, name)
    if value is None:
        if required:
            raise ResponseFormatError(f"<shipment-price> has no <{name}>")
        return Decimal(0)
    negative = signed and value.startswith("-")
    digits = value[1:] if negative else value
    if not _AMOUNT.fullmatch(digits):
        raise ResponseFormatError(f"<{name}> is {shown(value)}; expected dollars and cents")
    amount = Decimal(digits)
    return -amount if negative else amount


def _charges(parent: etree._Element, group: str, item: str, code: str, amount: str) -> tuple[Charge, ...]:
    container = single_child(parent, group)
    if container is None:
        return ()
    found = []
    for element in children(container, item):
        name = single_value(element, code)
        if name is None or not _CODE.fullmatch(name):
            raise ResponseFormatError(f"<{code}> in <{item}> is {shown(name or '')}; expected a code")
        found.append(Charge(name, _amount(element, amount, signed=True, required=False)))
    return tuple(found)


def parse_shipment_price(body: bytes | str) -> LabelPrice | None:
    """The price in a Create Shipment answer; None when it carries none."""
    root = document_root(body, _SHIPMENT_INFO_ROOTS)
    price = single_child(root, "shipment-price")
    if price is None:
        return None
    service = single_value(price, "service-code")
    if service is None or not _CODE.fullmatch(service):
        raise ResponseFormatError(f"<service-code> in <shipment-price> is {shown(service or '')}")
    return LabelPrice(
        service_code=service,
        base=_amount(price, "base-amount"),
        options=_charges(price, "priced-options", "priced-option", "option-code", "option-price"),
        adjustments=_charges(price, "adjustments", "adjustment", "adjustment-code", "adjustment-amount"),
        pre_tax=_amount(price, "pre-tax-amount"),
        gst=_amount(price, "gst-amount", required=False),
        pst=_amount(price, "pst-amount", required=False),
        hst=_amount(price, "hst-amount", required=False),
        due=_amount(price, "due-amount"),
    )
