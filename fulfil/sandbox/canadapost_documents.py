"""The documents the Canada Post sandbox writes: XML answers, the links in them, ``<messages>``.

Every answer is XML in the service's namespace with the declaration Canada Post sends; links are
``<link rel href media-type [index]/>`` pointing back at the address the client used, with the
customer number padded to 10 digits; errors are ``<messages>`` with Canada Post's codes. A
label's price (in a Create Shipment answer, its price document, its receipt) comes from
``label_price``, so the three agree to the cent. Nothing
here reads the sandbox's state or decides anything: handlers pass a ``Shipment`` and get bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from lxml import etree

from fulfil.sandbox import cp_schema, tracking
from fulfil.sandbox.faults import FaultKind
from fulfil.sandbox.orders import POSTAL_CODE, PROVINCES
from fulfil.sandbox.state import Shipment
from fulfil.sandbox.wire import ApiResponse
from fulfil.xml_parsing import child, child_text, find_path, parse_untrusted

SHIPMENT_NS = cp_schema.SHIPMENT_NS
NCSHIPMENT_NS = cp_schema.NCSHIPMENT_NS
MANIFEST_NS = cp_schema.MANIFEST_NS
MESSAGES_NS = "http://www.canadapost.ca/ws/messages"
SHIPMENT_MEDIA = "application/vnd.cpc.shipment-v8+xml"
NCSHIPMENT_MEDIA = "application/vnd.cpc.ncshipment-v4+xml"
MANIFEST_MEDIA = "application/vnd.cpc.manifest-v8+xml"
TRACK_MEDIA_TYPES = ("application/vnd.cpc.track-v2+xml", "application/vnd.cpc.track+xml")
LABEL_MEDIA = {"PDF": "application/pdf", "ZPL": "application/zpl"}
# The throttle answer's HTTP status is undocumented; clients must match the description text.
RATE_LIMIT_STATUS = 503
RATE_LIMIT_DESCRIPTION = "Rejected by SLM Monitor"
# Where a request names no valid shipping point and the sender's postal code is not one either.
DEFAULT_SHIPPING_POINT = "K1G1C0"
CENT = Decimal("0.01")
# Canada Post's receipts give the card's authorisation time in Eastern time, with its offset.
EASTERN = ZoneInfo("America/Toronto")


# --- messages ------------------------------------------------------------------------------


def messages_document(messages: list[tuple[str, str]]) -> bytes:
    root = etree.Element(f"{{{MESSAGES_NS}}}messages", nsmap={None: MESSAGES_NS})
    for code, description in messages:
        message = etree.SubElement(root, f"{{{MESSAGES_NS}}}message")
        etree.SubElement(message, f"{{{MESSAGES_NS}}}code").text = code
        etree.SubElement(message, f"{{{MESSAGES_NS}}}description").text = description
    return serialize(root)


def error_response(status: int, messages: list[tuple[str, str]], media_type: str) -> ApiResponse:
    return ApiResponse(status, messages_document(messages), media_type)


def refusal(kind: FaultKind, media_type: str) -> ApiResponse:
    """A fault that stops the request before Canada Post performs it, in Canada Post's format."""
    if kind is FaultKind.RATE_LIMIT:
        return error_response(RATE_LIMIT_STATUS, [("Server", RATE_LIMIT_DESCRIPTION)], media_type)
    status = {FaultKind.HTTP_500: 500, FaultKind.HTTP_502: 502, FaultKind.HTTP_503: 503}[kind]
    description = {
        500: "An internal error has occurred. Please try again later.",
        502: "The service is temporarily unavailable (bad gateway). Please try again later.",
        503: "The service is temporarily unavailable. Please try again later.",
    }[status]
    return error_response(status, [("Server", description)], media_type)


# --- building XML --------------------------------------------------------------------------


def root_element(namespace: str, name: str) -> etree._Element:
    return etree.Element(f"{{{namespace}}}{name}", nsmap={None: namespace})


def sub(parent: etree._Element, name: str, text: str | None = None, **attributes: str) -> etree._Element:
    """A child in its parent's namespace, which is the namespace of the whole answer."""
    namespace = etree.QName(parent).namespace
    element = etree.SubElement(parent, f"{{{namespace}}}{name}", attributes)
    if text is not None:
        element.text = text
    return element


def link(parent: etree._Element, rel: str, href: str, media_type: str, index: int | None = None) -> None:
    """A ``<link rel href media-type [index]/>`` as Canada Post writes them in every answer."""
    attributes = {"rel": rel, "href": href, "media-type": media_type}
    if index is not None:
        attributes["index"] = str(index)
    sub(parent, "link", **attributes)


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def copy_element(element: etree._Element) -> etree._Element:
    # A deep copy keeps the element's namespace, which is the answer's namespace too.
    return etree.fromstring(etree.tostring(element))


# --- links ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """Where an answer's links point: back at the address the client used, customer padded."""

    base_url: str  # scheme://host:port as the client addressed the sandbox
    customer: str  # the customer number padded to 10 digits, as Canada Post writes it

    def shipment(self, shipment: Shipment, suffix: str = "") -> str:
        """The shipment's own URL (``suffix`` "/details", "/refund"), contract or non-contract."""
        kind = f"{self.customer}/shipment" if shipment.contract else "ncshipment"
        return f"{self.base_url}/rs/{self.customer}/{kind}/{shipment.shipment_id}{suffix}"

    def group(self, group_id: str) -> str:
        return f"{self.base_url}/rs/{self.customer}/{self.customer}/shipment?groupId={group_id}"

    def label(self, shipment: Shipment) -> str:
        return f"{self.base_url}/rs/artifact/{shipment.label_key}/{shipment.artifact_id}/0"

    def manifest(self, manifest_id: str, suffix: str = "") -> str:
        """A manifest's own URL (``suffix`` "/details")."""
        return f"{self.base_url}/rs/{self.customer}/{self.customer}/manifest/{manifest_id}{suffix}"

    def manifest_shipments(self, manifest_id: str) -> str:
        return f"{self.base_url}/rs/{self.customer}/{self.customer}/shipment?manifestId={manifest_id}"

    def artifact(self, artifact_key: str, artifact_id: str) -> str:
        return f"{self.base_url}/rs/artifact/{artifact_key}/{artifact_id}/0"


def label_media(shipment: Shipment) -> str:
    return LABEL_MEDIA.get(shipment.encoding, "application/pdf")


# --- answers -------------------------------------------------------------------------------


def shipment_list(namespace: str, name: str, found: list[Shipment], links: Links, media_type: str) -> bytes:
    """The answer to a search: one ``shipment`` link per shipment found."""
    root = root_element(namespace, name)
    for shipment in found:
        link(root, "shipment", links.shipment(shipment), media_type)
    return serialize(root)


def shipment_info(shipment: Shipment, links: Links, *, priced: bool = False) -> bytes:
    root = root_element(SHIPMENT_NS, "shipment-info")
    sub(root, "shipment-id", shipment.shipment_id)
    sub(root, "shipment-status", shipment.status)
    sub(root, "tracking-pin", shipment.tracking_pin)
    if priced:
        _add_price(root, shipment)
    parent = sub(root, "links")
    link(parent, "self", links.shipment(shipment), SHIPMENT_MEDIA)
    link(parent, "details", links.shipment(shipment, "/details"), SHIPMENT_MEDIA)
    if shipment.group_id:
        link(parent, "group", links.group(shipment.group_id), SHIPMENT_MEDIA)
    # Canada Post links every contract shipment to its price document (Get Shipment Price).
    link(parent, "price", links.shipment(shipment, "/price"), SHIPMENT_MEDIA)
    link(parent, "refund", links.shipment(shipment, "/refund"), SHIPMENT_MEDIA)
    link(parent, "label", links.label(shipment), label_media(shipment), index=0)
    return serialize(root)


def non_contract_shipment_info(shipment: Shipment, links: Links) -> bytes:
    root = root_element(NCSHIPMENT_NS, "non-contract-shipment-info")
    sub(root, "shipment-id", shipment.shipment_id)
    sub(root, "tracking-pin", shipment.tracking_pin)
    parent = sub(root, "links")
    link(parent, "self", links.shipment(shipment), NCSHIPMENT_MEDIA)
    link(parent, "details", links.shipment(shipment, "/details"), NCSHIPMENT_MEDIA)
    # The card payment's receipt, where a non-contract label's price is.
    link(parent, "receipt", links.shipment(shipment, "/receipt"), NCSHIPMENT_MEDIA)
    link(parent, "refund", links.shipment(shipment, "/refund"), NCSHIPMENT_MEDIA)
    link(parent, "label", links.label(shipment), "application/pdf", index=0)
    return serialize(root)


def shipment_details(shipment: Shipment) -> bytes:
    """The contract details: the request as received, echoed, with what Canada Post added."""
    original = parse_untrusted(shipment.request_xml)
    root = root_element(SHIPMENT_NS, "shipment-details")
    if shipment.customer_request_id:
        sub(root, "customer-request-id", shipment.customer_request_id)
    sub(root, "shipment-status", shipment.status)
    sub(root, "final-shipping-point", shipping_point(original, shipment))
    sub(root, "tracking-pin", shipment.tracking_pin)
    detail = sub(root, "shipment-detail")
    if shipment.group_id:
        sub(detail, "group-id", shipment.group_id)
    else:
        sub(detail, "transmit-shipment", "true")
    for name in ("quickship-label-requested", "expected-mailing-date", "delivery-spec", "return-spec"):
        element = child(original, name)
        if element is not None:
            detail.append(copy_element(element))
    _add_refund_request_info(detail, shipment)
    return serialize(root)


def non_contract_shipment_details(shipment: Shipment) -> bytes:
    original = parse_untrusted(shipment.request_xml)
    root = root_element(NCSHIPMENT_NS, "non-contract-shipment-details")
    sub(root, "final-shipping-point", shipping_point(original, shipment))
    sub(root, "tracking-pin", shipment.tracking_pin)
    spec = child(original, "delivery-spec")
    if spec is not None:
        root.append(copy_element(spec))
    _add_refund_request_info(root, shipment)
    return serialize(root)


def refund_info(namespace: str, name: str, ticket: tuple[str, str]) -> bytes:
    """``<…-refund-request-info>``: the service ticket a refund request was given."""
    ticket_id, ticket_date = ticket
    root = root_element(namespace, name)
    sub(root, "service-ticket-date", ticket_date)
    sub(root, "service-ticket-id", ticket_id)
    return serialize(root)


def _add_refund_request_info(parent: etree._Element, shipment: Shipment) -> None:
    if shipment.refund_ticket:
        ticket_id, ticket_date = shipment.refund_ticket
        info = sub(parent, "refund-request-info")
        sub(info, "service-ticket-date", ticket_date)
        sub(info, "service-ticket-id", ticket_id)


@dataclass(frozen=True)
class SandboxPrice:
    """What the sandbox charges for a label: what its Get Rates quotes for the service bought, on
    the day it was bought (fulfil.sandbox.canadapost_rates: billed weight, zone, service, options,
    fuel, the destination province's taxes). The same for the price in a Create Shipment answer,
    the price document and the non-contract receipt, so each of them gives every label the same
    figures, and a seller who quoted first is charged what was quoted."""

    weight: Decimal
    base: Decimal
    fuel: Decimal
    pre_tax: Decimal
    gst: Decimal
    pst: Decimal
    hst: Decimal
    options: tuple[tuple[str, Decimal], ...] = ()  # (option-code, option-price)

    @property
    def due(self) -> Decimal:
        return self.pre_tax + self.gst + self.pst + self.hst


def label_price(shipment: Shipment) -> SandboxPrice:
    from fulfil.sandbox.canadapost_rates import Scenario, rate

    spec = child(parse_untrusted(shipment.request_xml), "delivery-spec")
    weight = _decimal_at(spec, "parcel-characteristics", "weight") or Decimal(1)
    measures = [
        _decimal_at(spec, "parcel-characteristics", "dimensions", side)
        for side in ("length", "width", "height")
    ]
    options: dict[str, Decimal | None] = {}
    listed = find_path(spec, "options") if spec is not None else None
    for option in listed if listed is not None else ():
        code = child_text(option, "option-code")
        if code:
            amount = child_text(option, "option-amount")
            options[code] = Decimal(amount) if amount else None
    origin = shipment.sender.get("postal_code", "").replace(" ", "").upper()
    destination = shipment.destination.get("postal_code", "").replace(" ", "").upper()
    scenario = Scenario(
        weight=weight,
        dimensions=_dimensions(measures),
        origin=origin,
        destination=destination if POSTAL_CODE.fullmatch(destination) else None,
        quote_type="commercial",
        contract=shipment.contract,
        options=options,
        services=(shipment.service_code,),
        mailing_date=datetime.fromtimestamp(shipment.created_at, EASTERN).date(),
        french=False,
    )
    quotes = rate(scenario) if POSTAL_CODE.fullmatch(origin) else []
    if not quotes:
        return _flat_price(shipment, weight)
    quote = quotes[0]
    taxes = {kind: amount for kind, _, amount in quote.taxes}
    pre_tax = quote.base + sum((option.price for option in quote.options), Decimal(0)) + quote.fuel
    return SandboxPrice(
        weight=max(weight, quote.cubed_weight or weight),
        base=quote.base,
        fuel=quote.fuel,
        pre_tax=pre_tax,
        gst=taxes.get("gst", Decimal(0)),
        pst=taxes.get("pst", Decimal(0)),
        hst=taxes.get("hst", Decimal(0)),
        options=tuple((option.code, option.price) for option in quote.options),
    )


def _dimensions(measures: list[Decimal | None]) -> tuple[Decimal, Decimal, Decimal] | None:
    length, width, height = measures
    if length is None or width is None or height is None:
        return None
    return length, width, height


def _add_priced_options(parent: etree._Element, amounts: SandboxPrice) -> None:
    if not amounts.options:
        return
    priced = sub(parent, "priced-options")
    for code, price in amounts.options:
        option = sub(priced, "priced-option")
        sub(option, "option-code", code)
        sub(option, "option-price", str(price))


def _decimal_at(spec: etree._Element | None, *path: str) -> Decimal | None:
    found = find_path(spec, *path) if spec is not None else None
    text = (found.text or "").strip() if found is not None else ""
    return Decimal(text) if text else None


def _flat_price(shipment: Shipment, weight: Decimal) -> SandboxPrice:
    """A label no quote covers (a service the sandbox does not rate): a flat price by weight."""
    base = (Decimal("9.75") + weight * Decimal("1.85")).quantize(CENT, ROUND_HALF_UP)
    fuel = (base * Decimal("0.115")).quantize(CENT, ROUND_HALF_UP)
    pre_tax = base + fuel
    province = PROVINCES.get(shipment.destination.get("province", ""), PROVINCES["ON"])
    rates = dict(province.taxes)
    return SandboxPrice(
        weight=weight,
        base=base,
        fuel=fuel,
        pre_tax=pre_tax,
        gst=_tax(pre_tax, rates.get("GST", 0)),
        pst=_tax(pre_tax, rates.get("QST", rates.get("PST", 0))),
        hst=_tax(pre_tax, rates.get("HST", 0)),
    )


def _add_price(root: etree._Element, shipment: Shipment) -> None:
    _fill_price(sub(root, "shipment-price"), shipment)


def shipment_price(shipment: Shipment) -> bytes:
    """Get Shipment Price: the contract label's ``<shipment-price>`` on its own."""
    root = root_element(SHIPMENT_NS, "shipment-price")
    _fill_price(root, shipment)
    return serialize(root)


def _fill_price(price: etree._Element, shipment: Shipment) -> None:
    amounts = label_price(shipment)
    sub(price, "service-code", shipment.service_code)
    sub(price, "base-amount", str(amounts.base))
    _add_priced_options(price, amounts)
    _add_fuel_surcharge(price, amounts)
    sub(price, "pre-tax-amount", str(amounts.pre_tax))
    sub(price, "gst-amount", str(amounts.gst))
    sub(price, "pst-amount", str(amounts.pst))
    sub(price, "hst-amount", str(amounts.hst))
    sub(price, "due-amount", str(amounts.due))
    standard = sub(price, "service-standard")
    sub(standard, "am-delivery", "false")
    sub(standard, "guaranteed-delivery", _guaranteed(shipment))
    sub(standard, "expected-transmit-time", "1")
    sub(standard, "expected-delivery-date", tracking.expected_delivery(shipment))
    sub(price, "rated-weight", f"{amounts.weight:.3f}")


def non_contract_receipt(shipment: Shipment, customer: str) -> bytes:
    """Get Non-Contract Shipment Receipt: what the label cost and the card payment that paid it
    (``customer``: the mailed-by customer number, padded as Canada Post writes it). The card block
    is made up but fixed per label (its authorisation code from the shipment id, its time the
    purchase's), so every read of one receipt is the same document."""
    amounts = label_price(shipment)
    original = parse_untrusted(shipment.request_xml)
    root = root_element(NCSHIPMENT_NS, "non-contract-shipment-receipt")
    point = shipping_point(original, shipment)
    sub(root, "final-shipping-point", point)
    sub(root, "shipping-point-name", f"SANDBOX DEPOT {point}")
    sub(root, "shipping-point-id", point[-4:])
    sub(root, "mailed-by-customer", customer)
    sub(root, "service-code", shipment.service_code)
    sub(root, "rated-weight", f"{amounts.weight:.3f}")
    sub(root, "base-amount", str(amounts.base))
    sub(root, "pre-tax-amount", str(amounts.pre_tax))
    sub(root, "gst-amount", str(amounts.gst))
    sub(root, "pst-amount", str(amounts.pst))
    sub(root, "hst-amount", str(amounts.hst))
    _add_priced_options(root, amounts)
    _add_fuel_surcharge(root, amounts)
    card = sub(root, "cc-receipt-details")
    sub(card, "merchant-name", "Canada Post Corporation")
    sub(card, "merchant-url", "www.canadapost.ca")
    sub(card, "name-on-card", "Sandbox Seller")
    sub(card, "auth-code", shipment.shipment_id[-6:])
    paid_at = datetime.fromtimestamp(shipment.created_at, EASTERN).replace(microsecond=0)
    sub(card, "auth-timestamp", paid_at.isoformat())
    sub(card, "card-type", "VIS")
    sub(card, "charge-amount", str(amounts.due))
    sub(card, "currency", "CAD")
    sub(card, "transaction-type", "Sale")
    standard = sub(root, "service-standard")
    sub(standard, "am-delivery", "false")
    sub(standard, "guaranteed-delivery", _guaranteed(shipment))
    sub(standard, "expected-transit-time", "1")
    sub(standard, "expected-delivery-date", tracking.expected_delivery(shipment))
    return serialize(root)


def _add_fuel_surcharge(parent: etree._Element, amounts: SandboxPrice) -> None:
    adjustments = sub(parent, "adjustments")
    adjustment = sub(adjustments, "adjustment")
    sub(adjustment, "adjustment-code", "FUELSC")
    sub(adjustment, "adjustment-amount", str(amounts.fuel))


def _guaranteed(shipment: Shipment) -> str:
    return "true" if shipment.service_code in ("DOM.XP", "DOM.PC") else "false"


def _tax(pre_tax: Decimal, rate: float) -> Decimal:
    return (pre_tax * Decimal(str(rate))).quantize(CENT, ROUND_HALF_UP)


# --- what answers and labels show of a request ---------------------------------------------


def address_lines(party: dict[str, str]) -> tuple[str, ...]:
    """A party as the label prints it: name, company, street, "City PROV A9A 9A9", country."""
    lines = [
        party.get("name", ""),
        party.get("company", ""),
        party.get("line_1", ""),
        party.get("line_2", ""),
    ]
    postal = party.get("postal_code", "")
    if POSTAL_CODE.fullmatch(postal):
        postal = f"{postal[:3]} {postal[3:]}"
    lines.append(
        " ".join(part for part in (party.get("city", ""), party.get("province", ""), postal) if part)
    )
    if party.get("country", "CA").upper() != "CA":
        lines.append(party["country"].upper())
    return tuple(line for line in lines if line)


def shipping_point(original: etree._Element, shipment: Shipment) -> str:
    requested = child_text(original, "requested-shipping-point")
    if requested and POSTAL_CODE.fullmatch(requested):
        return requested
    postal = shipment.sender.get("postal_code", "")
    return postal if POSTAL_CODE.fullmatch(postal) else DEFAULT_SHIPPING_POINT
