"""Create Shipment request bodies: contract (shipment-v8) and non-contract (ncshipment-v4).

Elements are written in the order Canada Post documents them even though the schema's
``xsd:all`` would accept any order: it is the order Canada Post's own samples use, and a request
that looks like theirs is the one least likely to meet an undocumented quirk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lxml import etree

from fulfil.canadapost.destination import Destination, OrderDataError, destination_from_order
from fulfil.canadapost.groups import GROUP_ID
from fulfil.canadapost.parcel import Parcel, parcel_characteristics
from fulfil.canadapost.schema import (
    CUSTOMER_REQUEST_ID_MAX,
    NCSHIPMENT_MEDIA_TYPE,
    NCSHIPMENT_NAMESPACE,
    REFERENCE_MAX,
    SERVICE_CODE_MAX,
    SHIPMENT_MEDIA_TYPE,
    SHIPMENT_NAMESPACE,
)
from fulfil.canadapost.sender import SenderAddress, sender_address
from fulfil.canadapost.text import clean_text
from fulfil.config import CanadaPostSettings, ParcelSettings, SenderSettings, setting_name
from fulfil.errors import ConfigError
from fulfil.service_rules import LabelOption

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
LABEL_FORMATS = ("8.5x11", "4x6")


@dataclass(frozen=True)
class ShipmentRequest:
    xml: bytes  # UTF-8 with XML declaration
    media_type: str  # SHIPMENT_MEDIA_TYPE or NCSHIPMENT_MEDIA_TYPE
    contract: bool
    warnings: tuple[str, ...]


def build_shipment_request(
    *,
    order_id: str,
    order: Mapping[str, Any],
    canadapost: CanadaPostSettings,
    sender: SenderSettings,
    parcel: ParcelSettings | Parcel,
    request_id: str | None,
    group_id: str | None = None,
    service_code: str | None = None,
    options: Sequence[LabelOption] = (),
    parcel_reference: str | None = None,
) -> ShipmentRequest:
    """The Create Shipment body for one order.

    Raises OrderDataError when the order's data cannot make a label, ConfigError when a setting
    is wrong, and ValueError when a contract request lacks a usable ``request_id`` (the
    customer-request-id that lets a lost answer be found again, so it must never be missing).
    A non-contract request has no place for a request id; one given is not used.

    ``group_id`` (contract only; FULFIL_CANADAPOST_MANIFEST=end_of_day): the label is bought into
    that group, ``created`` at Canada Post until the group is transmitted (``fulfil manifest
    transmit``), instead of ``<transmit-shipment>``. A non-contract label has no group: ValueError.

    ``parcel`` is the configured default or the parcel chosen for the order, ``service_code`` the
    service a rule chose (default: the configured one), ``options`` its delivery options
    (fulfil.service_rules, already checked for conflicts). ``parcel_reference`` ("2/3") goes in
    customer-ref-2 for a label that is one parcel of an order split into several.
    """
    _check_order_id(order_id, order)
    if parcel_reference is not None and not _PARCEL_REFERENCE.fullmatch(parcel_reference):
        raise ValueError(f"parcel reference {parcel_reference!r} is not PARCEL/PARCELS")
    destination = destination_from_order(order_id, order)
    origin = sender_address(sender)
    measured = parcel if isinstance(parcel, Parcel) else parcel_characteristics(parcel)
    service_code = _service_code(canadapost, service_code)
    _check_contract_settings(canadapost)
    if group_id is not None and not canadapost.contract:
        raise ValueError("a non-contract shipment has no group: it is final when bought")
    if canadapost.contract:
        root = _contract_shipment(
            _customer_request_id(request_id),
            _group_id(group_id),
            canadapost,
            service_code,
            origin,
            destination,
            measured,
            order_id,
            options,
            parcel_reference,
        )
        media_type = SHIPMENT_MEDIA_TYPE
    else:
        root = _non_contract_shipment(
            service_code, origin, destination, measured, order_id, options, parcel_reference
        )
        media_type = NCSHIPMENT_MEDIA_TYPE
    xml = _XML_DECLARATION + etree.tostring(root, encoding="UTF-8", pretty_print=True)
    return ShipmentRequest(
        xml=xml, media_type=media_type, contract=canadapost.contract, warnings=destination.warnings
    )


# customer-ref-2 of one parcel of a split order: its number and the order's count ("2/3").
_PARCEL_REFERENCE = re.compile(r"[1-9][0-9]?/[1-9][0-9]?")


# --- checks ---------------------------------------------------------------------------------


def _check_order_id(order_id: str, order: Mapping[str, Any]) -> None:
    if not order_id or clean_text(order_id) != order_id:
        raise ValueError(f"order id {order_id!r} is empty or has stray whitespace")
    in_order = order.get("order_id")
    if in_order is not None and in_order != order_id:
        raise OrderDataError(order_id, "order_id", f"the order object is order {in_order!r}")
    if len(order_id) > REFERENCE_MAX:
        # customer-ref-1 is how a shipment is matched back to its order: it must hold the whole id.
        raise OrderDataError(
            order_id, "order_id", f"longer than the {REFERENCE_MAX} characters of Canada Post's reference"
        )


def _customer_request_id(request_id: str | None) -> str:
    if request_id is None or not request_id or clean_text(request_id) != request_id:
        raise ValueError(
            f"a contract shipment needs a customer-request-id without stray whitespace; got {request_id!r}"
        )
    if len(request_id) > CUSTOMER_REQUEST_ID_MAX:
        raise ValueError(
            f"customer-request-id {request_id!r} is longer than Canada Post's "
            f"{CUSTOMER_REQUEST_ID_MAX} characters"
        )
    return request_id


def _group_id(group_id: str | None) -> str | None:
    if group_id is not None and not GROUP_ID.fullmatch(group_id):
        raise ValueError(
            f"group-id {group_id!r} is not 1 to 32 letters, digits, '.', '_' or '-' (Canada Post's "
            "GroupIDType holds at most 32 characters)"
        )
    return group_id


def _service_code(canadapost: CanadaPostSettings, chosen: str | None) -> str:
    code = clean_text(chosen if chosen is not None else canadapost.service_code)
    if code is None or len(code) > SERVICE_CODE_MAX:
        raise ConfigError(f"{setting_name('FULFIL_CANADAPOST_SERVICE_CODE')} must be 1 to 32 characters")
    if not code.startswith("DOM."):
        # fulfil refuses foreign destinations, and a foreign service needs customs data it never sends.
        raise ConfigError(
            f"{setting_name('FULFIL_CANADAPOST_SERVICE_CODE')} is {code!r}; fulfil ships within Canada "
            "only, so it must be a domestic service (DOM.RP, DOM.EP, DOM.XP, DOM.PC …)"
        )
    return code


def _check_contract_settings(canadapost: CanadaPostSettings) -> None:
    # Settings are checked when loaded; these guard settings built some other way (tests, scripts),
    # since Canada Post's refusal of a malformed value would otherwise surface one order at a time.
    if canadapost.contract_id is not None and not re.fullmatch(r"\d{1,10}", canadapost.contract_id):
        raise ConfigError(f"{setting_name('FULFIL_CANADAPOST_CONTRACT_ID')} must be 1 to 10 digits")
    if canadapost.contract and canadapost.label_format not in LABEL_FORMATS:
        raise ConfigError(
            f"{setting_name('FULFIL_CANADAPOST_LABEL_FORMAT')} is {canadapost.label_format!r}; "
            f"expected {' or '.join(LABEL_FORMATS)}"
        )


# --- documents ------------------------------------------------------------------------------


class _Writer:
    """Elements in one namespace, as the schema's elementFormDefault="qualified" requires."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def root(self, name: str) -> etree._Element:
        return etree.Element(f"{{{self.namespace}}}{name}", nsmap={None: self.namespace})

    def add(self, parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{self.namespace}}}{name}")
        if text is not None:
            element.text = text
        return element

    def add_if(self, parent: etree._Element, name: str, text: str | None) -> None:
        if text is not None:
            self.add(parent, name, text)


def _contract_shipment(
    request_id: str,
    group_id: str | None,
    canadapost: CanadaPostSettings,
    service_code: str,
    origin: SenderAddress,
    destination: Destination,
    parcel: Parcel,
    order_id: str,
    options: Sequence[LabelOption],
    parcel_reference: str | None,
) -> etree._Element:
    assert canadapost.contract_id is not None
    w = _Writer(SHIPMENT_NAMESPACE)
    shipment = w.root("shipment")
    w.add(shipment, "customer-request-id", request_id)
    if group_id is not None:
        # End of day: the label waits in the day's group (created, voidable) until the group is
        # transmitted and its manifest fetched (fulfil manifest transmit).
        w.add(shipment, "group-id", group_id)
    else:
        # transmit-shipment rather than a group: no manifest step to forget, billing on creation.
        w.add(shipment, "transmit-shipment", "true")
    w.add(shipment, "requested-shipping-point", origin.postal_code)
    # The price comes back in the answer that proves the purchase: what each label cost, kept.
    w.add(shipment, "provide-pricing-info", "true")
    spec = w.add(shipment, "delivery-spec")
    w.add(spec, "service-code", service_code)
    _sender(w, spec, origin, with_country=True)
    _destination(w, spec, destination)
    _options(w, spec, options)
    _parcel(w, spec, parcel)
    print_preferences = w.add(spec, "print-preferences")
    w.add(print_preferences, "output-format", canadapost.label_format)
    w.add(print_preferences, "encoding", "PDF")
    _preferences(w, spec)
    _references(w, spec, order_id, parcel_reference)
    settlement = w.add(spec, "settlement-info")
    w.add(settlement, "contract-id", canadapost.contract_id)
    w.add(settlement, "intended-method-of-payment", "Account")
    return shipment


def _non_contract_shipment(
    service_code: str,
    origin: SenderAddress,
    destination: Destination,
    parcel: Parcel,
    order_id: str,
    options: Sequence[LabelOption],
    parcel_reference: str | None,
) -> etree._Element:
    w = _Writer(NCSHIPMENT_NAMESPACE)
    shipment = w.root("non-contract-shipment")
    w.add(shipment, "requested-shipping-point", origin.postal_code)
    spec = w.add(shipment, "delivery-spec")
    w.add(spec, "service-code", service_code)
    _sender(w, spec, origin, with_country=False)
    _destination(w, spec, destination)
    _options(w, spec, options)
    _parcel(w, spec, parcel)
    _preferences(w, spec)
    _references(w, spec, order_id, parcel_reference)
    return shipment


def _sender(w: _Writer, spec: etree._Element, origin: SenderAddress, *, with_country: bool) -> None:
    sender = w.add(spec, "sender")
    w.add_if(sender, "name", origin.name)
    w.add(sender, "company", origin.company)
    w.add(sender, "contact-phone", origin.phone)
    details = w.add(sender, "address-details")
    w.add(details, "address-line-1", origin.address_line_1)
    w.add_if(details, "address-line-2", origin.address_line_2)
    w.add(details, "city", origin.city)
    w.add(details, "prov-state", origin.province)
    # The non-contract sender is a domestic address type, which has no country-code element.
    if with_country:
        w.add(details, "country-code", "CA")
    w.add(details, "postal-zip-code", origin.postal_code)


def _destination(w: _Writer, spec: etree._Element, destination: Destination) -> None:
    element = w.add(spec, "destination")
    w.add_if(element, "name", destination.name)
    w.add_if(element, "company", destination.company)
    w.add_if(element, "additional-address-info", destination.additional_address_info)
    w.add_if(element, "client-voice-number", destination.phone)
    details = w.add(element, "address-details")
    w.add(details, "address-line-1", destination.address_line_1)
    w.add_if(details, "address-line-2", destination.address_line_2)
    w.add(details, "city", destination.city)
    w.add(details, "prov-state", destination.province)
    w.add(details, "country-code", destination.country_code)
    w.add(details, "postal-zip-code", destination.postal_code)


def _options(w: _Writer, spec: etree._Element, options: Sequence[LabelOption]) -> None:
    if not options:
        return
    element = w.add(spec, "options")
    for option in options:
        item = w.add(element, "option")
        w.add(item, "option-code", option.code)
        if option.amount is not None:
            w.add(item, "option-amount", _decimal(option.amount))


def _parcel(w: _Writer, spec: etree._Element, parcel: Parcel) -> None:
    characteristics = w.add(spec, "parcel-characteristics")
    w.add(characteristics, "weight", _decimal(parcel.weight_kg))
    if parcel.dimensions is not None:
        dimensions = w.add(characteristics, "dimensions")
        w.add(dimensions, "length", _decimal(parcel.dimensions.length_cm))
        w.add(dimensions, "width", _decimal(parcel.dimensions.width_cm))
        w.add(dimensions, "height", _decimal(parcel.dimensions.height_cm))


def _preferences(w: _Writer, spec: etree._Element) -> None:
    preferences = w.add(spec, "preferences")
    w.add(preferences, "show-packing-instructions", "false")


def _references(w: _Writer, spec: etree._Element, order_id: str, parcel_reference: str | None) -> None:
    references = w.add(spec, "references")
    w.add(references, "customer-ref-1", order_id)
    if parcel_reference is not None:
        w.add(references, "customer-ref-2", parcel_reference)


def _decimal(value: Decimal) -> str:
    # Fixed-point: str() of a Decimal can use an exponent ("1E+1"), which xsd:decimal refuses.
    return format(value, "f")
