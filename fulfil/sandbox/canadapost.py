"""The Canada Post REST/XML services, as fulfil calls them: shipping, labels, tracking.

Wire behaviour follows the reference brief: HTTP Basic auth against the configured key pair
(``E002`` otherwise), the mailed-by customer number in the path (zero padding tolerated, links
padded to 10 digits), exact versioned media types in ``Accept``/``Content-Type`` (``*/*`` is
refused), XML in the service's namespace, errors as ``<messages>`` with Canada Post's codes, and
field errors as code ``Server`` with a ``cvc-…`` description and HTTP 400. Like the real service,
creating a shipment is not idempotent: the same request twice buys two labels.

HTTP statuses Canada Post does not document are the sandbox's choice: 401 for E002, 403 for
AA003/AA004, 406 for an unacceptable ``Accept``, 415 for a wrong ``Content-Type``, 404 for 004.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from lxml import etree

from fulfil.sandbox import cp_schema, tracking
from fulfil.sandbox.config import SandboxConfig
from fulfil.sandbox.faults import FaultKind, FaultPlan
from fulfil.sandbox.orders import PROVINCES
from fulfil.sandbox.pdf import LabelContent, render_label_pdf, render_label_zpl
from fulfil.sandbox.state import SandboxState, Shipment
from fulfil.sandbox.wire import ApiRequest, ApiResponse, Route, media_types
from fulfil.sandbox.xsd import OfficialSchemas, XsdError
from fulfil.xml_parsing import UntrustedXmlError, child, child_text, find_path, parse_untrusted

SHIPMENT_NS = cp_schema.SHIPMENT_NS
NCSHIPMENT_NS = cp_schema.NCSHIPMENT_NS
MESSAGES_NS = "http://www.canadapost.ca/ws/messages"
SHIPMENT_MEDIA = "application/vnd.cpc.shipment-v8+xml"
NCSHIPMENT_MEDIA = "application/vnd.cpc.ncshipment-v4+xml"
TRACK_MEDIA_TYPES = ("application/vnd.cpc.track-v2+xml", "application/vnd.cpc.track+xml")
LABEL_MEDIA = {"PDF": "application/pdf", "ZPL": "application/zpl"}
EASTERN = ZoneInfo("America/Toronto")
CANADIAN_PROVINCES = tuple(PROVINCES)
CA_POSTAL_CODE = re.compile(r"[A-Z]\d[A-Z]\d[A-Z]\d")
# The throttle answer's HTTP status is undocumented; clients must match the description text.
RATE_LIMIT_STATUS = 503
RATE_LIMIT_DESCRIPTION = "Rejected by SLM Monitor"

AA003_TEXT = (
    'The API key in the "Authorization" header does not match the mailed-by customer number in the request.'
)
VOID_TRANSMITTED_TEXT = (
    "A Shipment can only be void if it is in a PROCESSED or PRINTED state. "
    "If it has been transmitted, a Refund request should be submitted."
)
REFUND_REPEATED_TEXT = (
    "A refund has already been requested for this shipment. "
    "Note that refund requests may take a few days to be processed."
)


class CanadaPostError(Exception):
    def __init__(self, status: int, messages: list[tuple[str, str]], media_type: str) -> None:
        super().__init__(messages[0][1] if messages else f"HTTP {status}")
        self.status = status
        self.messages = messages
        self.media_type = media_type


def field_error(request: ApiRequest, description: str, media_type: str) -> CanadaPostError:
    """Schema and field errors: code Server, the request path, a cvc-style text, HTTP 400."""
    return CanadaPostError(400, [("Server", f"{request.path}: {description}")], media_type)


def messages_document(messages: list[tuple[str, str]]) -> bytes:
    root = etree.Element(f"{{{MESSAGES_NS}}}messages", nsmap={None: MESSAGES_NS})
    for code, description in messages:
        message = etree.SubElement(root, f"{{{MESSAGES_NS}}}message")
        etree.SubElement(message, f"{{{MESSAGES_NS}}}code").text = code
        etree.SubElement(message, f"{{{MESSAGES_NS}}}description").text = description
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


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


def _sub(parent: etree._Element, name: str, text: str | None = None, **attributes: str) -> etree._Element:
    namespace = etree.QName(parent).namespace
    element = etree.SubElement(parent, f"{{{namespace}}}{name}", attributes)
    if text is not None:
        element.text = text
    return element


def _link(parent: etree._Element, rel: str, href: str, media_type: str, index: int | None = None) -> None:
    """A ``<link rel href media-type [index]/>`` as Canada Post writes them in every answer."""
    attributes = {"rel": rel, "href": href, "media-type": media_type}
    if index is not None:
        attributes["index"] = str(index)
    _sub(parent, "link", **attributes)


def _root(namespace: str, name: str) -> etree._Element:
    return etree.Element(f"{{{namespace}}}{name}", nsmap={None: namespace})


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


class CanadaPostService:
    service = "canadapost"

    def __init__(
        self,
        config: SandboxConfig,
        state: SandboxState,
        faults: FaultPlan,
        schemas: OfficialSchemas | None,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.faults = faults
        self.state = state
        self.schemas = schemas
        self.clock = clock
        self.padded_customer = config.customer_number.zfill(10)

    # --- routing -----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        number = r"(?P<mailed_by>[^/]+)"
        contract = rf"/rs/{number}/(?P<mobo>[^/]+)/shipment"
        non_contract = rf"/rs/{number}/ncshipment"
        identifier = r"(?P<shipment_id>[^/]+)"
        table: list[tuple[str, str, str, Callable[[ApiRequest, dict[str, str]], ApiResponse]]] = [
            (
                "GET",
                r"/(?:e?rs)/artifact/(?P<key>[^/]+)/(?P<artifact>[^/]+)/(?P<page>[^/]+)",
                "GetArtifact",
                self.get_artifact,
            ),
            ("POST", contract, "CreateShipment", self.create_shipment),
            ("GET", contract, "GetShipments", self.get_shipments),
            ("GET", rf"{contract}/{identifier}", "GetShipment", self.get_shipment),
            ("DELETE", rf"{contract}/{identifier}", "VoidShipment", self.void_shipment),
            ("GET", rf"{contract}/{identifier}/details", "GetShipmentDetails", self.get_shipment_details),
            ("POST", rf"{contract}/{identifier}/refund", "RefundShipment", self.refund_shipment),
            ("POST", non_contract, "CreateNCShipment", self.create_nc_shipment),
            ("GET", non_contract, "GetNCShipments", self.get_nc_shipments),
            ("GET", rf"{non_contract}/{identifier}", "GetNCShipment", self.get_nc_shipment),
            (
                "GET",
                rf"{non_contract}/{identifier}/details",
                "GetNCShipmentDetails",
                self.get_nc_shipment_details,
            ),
            ("POST", rf"{non_contract}/{identifier}/refund", "RefundNCShipment", self.refund_nc_shipment),
            ("GET", r"/vis/track/pin/(?P<pin>[^/]+)/summary", "TrackingSummary", self.tracking_summary),
            ("GET", r"/vis/track/pin/(?P<pin>[^/]+)/detail", "TrackingDetail", self.tracking_detail),
        ]
        return [
            Route(method, re.compile(pattern), endpoint, self._guard(handler))
            for method, pattern, endpoint, handler in table
        ]

    def owns(self, path: str) -> bool:
        return path.startswith(("/rs/", "/ers/", "/vis/"))

    def not_found(self, request: ApiRequest) -> ApiResponse:
        return error_response(404, [], "application/xml")

    def method_not_allowed(self, request: ApiRequest, allowed: tuple[str, ...]) -> ApiResponse:
        response = error_response(
            405,
            [("Server", f"HTTP method {request.method} is not supported by this resource.")],
            "application/xml",
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response

    def refusal(self, kind: FaultKind, request: ApiRequest) -> ApiResponse:
        return refusal(kind, self._media_for_path(request.path))

    def _media_for_path(self, path: str) -> str:
        if "/ncshipment" in path:
            return NCSHIPMENT_MEDIA
        if path.startswith("/vis/"):
            return TRACK_MEDIA_TYPES[0]
        return SHIPMENT_MEDIA

    def _guard(
        self, handler: Callable[[ApiRequest, dict[str, str]], ApiResponse]
    ) -> Callable[[ApiRequest, dict[str, str]], ApiResponse]:
        def guarded(request: ApiRequest, params: dict[str, str]) -> ApiResponse:
            try:
                self._authenticate(request)
                self._check_customer(params)
                return handler(request, params)
            except CanadaPostError as error:
                return error_response(error.status, error.messages, error.media_type)

        return guarded

    # --- checks shared by every call ---------------------------------------------------------

    def _authenticate(self, request: ApiRequest) -> None:
        media = self._media_for_path(request.path)
        failure = CanadaPostError(401, [("E002", "AAA Authentication Failure")], media)
        header = request.header("Authorization") or ""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise failure
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise failure from None
        username, separator, password = decoded.partition(":")
        expected_user = self.config.canadapost_username.encode()
        expected_password = self.config.canadapost_password.encode()
        # Both comparisons always run, so the answer time does not tell which half was wrong.
        user_ok = hmac.compare_digest(username.encode(), expected_user)
        password_ok = hmac.compare_digest(password.encode(), expected_password)
        if not (separator and user_ok and password_ok):
            raise failure

    def _same_customer(self, number: str) -> bool:
        return number.isdigit() and len(number) <= 10 and int(number) == int(self.config.customer_number)

    def _check_customer(self, params: dict[str, str]) -> None:
        mailed_by = params.get("mailed_by")
        if mailed_by is not None and not self._same_customer(mailed_by):
            raise CanadaPostError(403, [("AA003", AA003_TEXT)], SHIPMENT_MEDIA)
        mobo = params.get("mobo")
        if mobo is not None and not self._same_customer(mobo):
            raise CanadaPostError(
                403, [("AA004", "You cannot mail on behalf of the requested customer.")], SHIPMENT_MEDIA
            )

    def _accept(self, request: ApiRequest, allowed: tuple[str, ...]) -> str:
        """The media type to answer in; refuses a missing, wildcard or foreign Accept header."""
        for media_type in media_types(request.header("Accept")):
            if media_type in allowed:
                return media_type
        shown = request.header("Accept") or "(none)"
        raise CanadaPostError(
            406,
            [("Server", f"{request.path}: Accept header '{shown}' is not supported; use '{allowed[0]}'.")],
            allowed[0] if allowed[0].startswith("application/vnd.cpc.") else "application/xml",
        )

    def _content_type(self, request: ApiRequest, expected: str) -> None:
        received = media_types(request.header("Content-Type"))
        if received != [expected]:
            shown = request.header("Content-Type") or "(none)"
            raise CanadaPostError(
                415,
                [("Server", f"{request.path}: Content-Type '{shown}' is not supported; use '{expected}'.")],
                expected,
            )

    def _parse_body(self, request: ApiRequest, namespace: str, root_name: str, media: str) -> etree._Element:
        try:
            root = parse_untrusted(request.body)
        except UntrustedXmlError as error:
            raise field_error(request, f"cvc-xml-wellformed: {error}", media) from None
        try:
            cp_schema.validate(root, namespace, root_name)
        except cp_schema.SchemaViolation as violation:
            raise field_error(request, str(violation), media) from None
        if self.schemas is not None:
            try:
                self.schemas.validate(root)
            except XsdError as error:
                raise field_error(request, f"cvc-schema-valid: {error}", media) from None
        return root

    def _field_rules(self, request: ApiRequest, root: etree._Element, media: str) -> None:
        """Rules Canada Post applies beyond its published schema, reported the same way."""
        destination = find_path(root, "delivery-spec", "destination", "address-details")
        sender = find_path(root, "delivery-spec", "sender", "address-details")
        for label, address in (("destination", destination), ("sender", sender)):
            if address is None:
                continue
            country = (child_text(address, "country-code") or "CA").upper()
            if country != "CA":
                continue
            missing = [
                name
                for name in ("address-line-1", "city", "prov-state", "postal-zip-code")
                if not child_text(address, name)
            ]
            if missing:
                names = ", ".join(f'"{etree.QName(address).namespace}":{name}' for name in missing)
                raise field_error(
                    request,
                    f"cvc-complex-type.2.4.b: The content of element 'address-details' ({label}) is not "
                    f"complete. One of '{{{names}}}' is expected.",
                    media,
                )
            postal = child(address, "postal-zip-code")
            postal_text = postal.text if postal is not None and postal.text else ""
            if not CA_POSTAL_CODE.fullmatch(postal_text):
                raise field_error(
                    request,
                    f"cvc-pattern-valid: Value '{postal_text}' is not facet-valid with respect to pattern "
                    f"'[A-Z]\\d[A-Z]\\d[A-Z]\\d' for type 'PostalCodeType' ({label}).",
                    media,
                )
            province = child_text(address, "prov-state") or ""
            if province not in CANADIAN_PROVINCES:
                raise field_error(
                    request,
                    f"cvc-enumeration-valid: Value '{province}' is not facet-valid with respect to "
                    f"enumeration '[{', '.join(CANADIAN_PROVINCES)}]' ({label} prov-state).",
                    media,
                )

    # --- shipments ---------------------------------------------------------------------------

    def _links_base(self, request: ApiRequest) -> str:
        return request.base_url

    def _contract_href(self, request: ApiRequest, shipment: Shipment, suffix: str = "") -> str:
        customer = self.padded_customer
        return f"{self._links_base(request)}/rs/{customer}/{customer}/shipment/{shipment.shipment_id}{suffix}"

    def _nc_href(self, request: ApiRequest, shipment: Shipment, suffix: str = "") -> str:
        return (
            f"{self._links_base(request)}/rs/{self.padded_customer}/ncshipment/{shipment.shipment_id}{suffix}"
        )

    def _label_href(self, request: ApiRequest, shipment: Shipment) -> str:
        return f"{self._links_base(request)}/rs/artifact/{shipment.label_key}/{shipment.artifact_id}/0"

    def _new_shipment(self, root: etree._Element, body: bytes, *, contract: bool) -> Shipment:
        spec = child(root, "delivery-spec")
        assert spec is not None  # the schema check guarantees it
        references = child(spec, "references")
        group_id = child_text(root, "group-id") if contract else None
        encoding = find_path(spec, "print-preferences", "encoding")
        output_format = find_path(spec, "print-preferences", "output-format")
        with self.state.lock:
            while True:
                pin = self.state.digits(16 if contract else 12)
                if self.state.shipment_by_pin(pin) is None and all(
                    existing.tracking_pin != pin for existing in self.state.shipments.values()
                ):
                    break
            shipment = Shipment(
                shipment_id=self.state.digits(18),
                tracking_pin=pin,
                contract=contract,
                status="created" if group_id else "transmitted",
                created_at=self.clock(),
                request_xml=body,
                label_key=self.state.hex_token(16),
                artifact_id=self.state.digits(11),
                service_code=child_text(spec, "service-code") or "",
                output_format=(output_format.text or "").strip() if output_format is not None else "8.5x11",
                encoding=(encoding.text or "PDF").strip() if encoding is not None else "PDF",
                sender=_party(child(spec, "sender")),
                destination=_party(child(spec, "destination")),
                customer_request_id=child_text(root, "customer-request-id") if contract else None,
                customer_ref_1=child_text(references, "customer-ref-1") if references is not None else None,
                customer_ref_2=child_text(references, "customer-ref-2") if references is not None else None,
                group_id=group_id,
            )
            self.state.shipments[shipment.shipment_id] = shipment
        return shipment

    def create_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        media = self._accept(request, (SHIPMENT_MEDIA,))
        self._content_type(request, SHIPMENT_MEDIA)
        root = self._parse_body(request, SHIPMENT_NS, "shipment", media)
        self._field_rules(request, root, media)
        shipment = self._new_shipment(root, request.body, contract=True)
        priced = child(root, "provide-pricing-info") is not None
        return ApiResponse(200, self._shipment_info(request, shipment, priced=priced), SHIPMENT_MEDIA)

    def _contract_shipment(self, params: dict[str, str]) -> Shipment:
        with self.state.lock:
            shipment = self.state.shipments.get(params["shipment_id"])
            if shipment is None or not shipment.contract or shipment.voided:
                # Canada Post answers an unknown or voided shipment with an empty <messages/>.
                raise CanadaPostError(404, [], SHIPMENT_MEDIA)
            return shipment

    def _nc_shipment(self, params: dict[str, str]) -> Shipment:
        with self.state.lock:
            shipment = self.state.shipments.get(params["shipment_id"])
            if shipment is None or shipment.contract:
                raise CanadaPostError(404, [], NCSHIPMENT_MEDIA)
            return shipment

    def _shipment_info(self, request: ApiRequest, shipment: Shipment, *, priced: bool = False) -> bytes:
        root = _root(SHIPMENT_NS, "shipment-info")
        _sub(root, "shipment-id", shipment.shipment_id)
        _sub(root, "shipment-status", shipment.status)
        _sub(root, "tracking-pin", shipment.tracking_pin)
        if priced:
            self._add_price(root, shipment)
        links = _sub(root, "links")
        _link(links, "self", self._contract_href(request, shipment), SHIPMENT_MEDIA)
        _link(links, "details", self._contract_href(request, shipment, "/details"), SHIPMENT_MEDIA)
        if shipment.group_id:
            customer = self.padded_customer
            group_href = (
                f"{self._links_base(request)}/rs/{customer}/{customer}/shipment?groupId={shipment.group_id}"
            )
            _link(links, "group", group_href, SHIPMENT_MEDIA)
        _link(links, "refund", self._contract_href(request, shipment, "/refund"), SHIPMENT_MEDIA)
        label_media = LABEL_MEDIA.get(shipment.encoding, "application/pdf")
        _link(links, "label", self._label_href(request, shipment), label_media, index=0)
        return _serialize(root)

    def _add_price(self, root: etree._Element, shipment: Shipment) -> None:
        spec = child(parse_untrusted(shipment.request_xml), "delivery-spec")
        weight_text = find_path(spec, "parcel-characteristics", "weight") if spec is not None else None
        weight = Decimal((weight_text.text or "1").strip()) if weight_text is not None else Decimal(1)
        base = (Decimal("9.75") + weight * Decimal("1.85")).quantize(Decimal("0.01"), ROUND_HALF_UP)
        fuel = (base * Decimal("0.115")).quantize(Decimal("0.01"), ROUND_HALF_UP)
        pre_tax = base + fuel
        province = PROVINCES.get(shipment.destination.get("province", ""), PROVINCES["ON"])
        rates = dict(province.taxes)
        gst = (pre_tax * Decimal(str(rates.get("GST", 0)))).quantize(Decimal("0.01"), ROUND_HALF_UP)
        hst = (pre_tax * Decimal(str(rates.get("HST", 0)))).quantize(Decimal("0.01"), ROUND_HALF_UP)
        pst = (pre_tax * Decimal(str(rates.get("QST", rates.get("PST", 0))))).quantize(
            Decimal("0.01"), ROUND_HALF_UP
        )
        price = _sub(root, "shipment-price")
        _sub(price, "service-code", shipment.service_code)
        _sub(price, "base-amount", str(base))
        adjustments = _sub(price, "adjustments")
        adjustment = _sub(adjustments, "adjustment")
        _sub(adjustment, "adjustment-code", "FUELSC")
        _sub(adjustment, "adjustment-amount", str(fuel))
        _sub(price, "pre-tax-amount", str(pre_tax))
        _sub(price, "gst-amount", str(gst))
        _sub(price, "pst-amount", str(pst))
        _sub(price, "hst-amount", str(hst))
        _sub(price, "due-amount", str(pre_tax + gst + pst + hst))
        standard = _sub(price, "service-standard")
        _sub(standard, "am-delivery", "false")
        _sub(
            standard,
            "guaranteed-delivery",
            "true" if shipment.service_code in ("DOM.XP", "DOM.PC") else "false",
        )
        _sub(standard, "expected-transmit-time", "1")
        _sub(standard, "expected-delivery-date", tracking.expected_delivery(shipment))
        _sub(price, "rated-weight", f"{weight:.3f}")

    def get_shipments(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        media = self._accept(request, (SHIPMENT_MEDIA,))
        criteria = {
            "requestId": lambda s, v: s.customer_request_id == v,
            "trackingPIN": lambda s, v: s.tracking_pin == v,
            "groupId": lambda s, v: s.group_id == v,
        }
        chosen = [(name, request.param(name)) for name in criteria if request.param(name) is not None]
        if not chosen:
            raise field_error(
                request, "one of the query parameters requestId, trackingPIN or groupId is required.", media
            )
        name, value = chosen[0]
        with self.state.lock:
            found = [
                s
                for s in self.state.shipments.values()
                if s.contract and not s.voided and criteria[name](s, value)
            ]
        root = _root(SHIPMENT_NS, "shipments")
        for shipment in found:
            _link(root, "shipment", self._contract_href(request, shipment), SHIPMENT_MEDIA)
        return ApiResponse(200, _serialize(root), SHIPMENT_MEDIA)

    def get_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        self._accept(request, (SHIPMENT_MEDIA,))
        shipment = self._contract_shipment(params)
        return ApiResponse(200, self._shipment_info(request, shipment), SHIPMENT_MEDIA)

    def get_shipment_details(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        self._accept(request, (SHIPMENT_MEDIA,))
        shipment = self._contract_shipment(params)
        original = parse_untrusted(shipment.request_xml)
        root = _root(SHIPMENT_NS, "shipment-details")
        if shipment.customer_request_id:
            _sub(root, "customer-request-id", shipment.customer_request_id)
        _sub(root, "shipment-status", shipment.status)
        _sub(root, "final-shipping-point", _shipping_point(original, shipment))
        _sub(root, "tracking-pin", shipment.tracking_pin)
        detail = _sub(root, "shipment-detail")
        if shipment.group_id:
            _sub(detail, "group-id", shipment.group_id)
        else:
            _sub(detail, "transmit-shipment", "true")
        for name in ("quickship-label-requested", "expected-mailing-date", "delivery-spec", "return-spec"):
            element = child(original, name)
            if element is not None:
                detail.append(_copy(element))
        if shipment.refund_ticket:
            info = _sub(detail, "refund-request-info")
            _sub(info, "service-ticket-date", shipment.refund_ticket[1])
            _sub(info, "service-ticket-id", shipment.refund_ticket[0])
        return ApiResponse(200, _serialize(root), SHIPMENT_MEDIA)

    def void_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        self._accept(request, (SHIPMENT_MEDIA,))
        with self.state.lock:
            shipment = self._contract_shipment(params)
            if shipment.status == "transmitted":
                raise CanadaPostError(400, [("8064", VOID_TRANSMITTED_TEXT)], SHIPMENT_MEDIA)
            shipment.voided = True
        return ApiResponse(204)

    def _refund(self, request: ApiRequest, shipment: Shipment, namespace: str, media: str) -> ApiResponse:
        self._accept(request, (media,))
        self._content_type(request, media)
        root_name = (
            "shipment-refund-request" if namespace == SHIPMENT_NS else "non-contract-shipment-refund-request"
        )
        self._parse_body(request, namespace, root_name, media)
        with self.state.lock:
            if shipment.refund_ticket is not None:
                raise CanadaPostError(409, [("7292", REFUND_REPEATED_TEXT)], media)
            ticket_date = datetime.fromtimestamp(self.clock(), EASTERN).date().isoformat()
            shipment.refund_ticket = (self.state.digits(10), ticket_date)
        root = _root(namespace, root_name + "-info")
        _sub(root, "service-ticket-date", shipment.refund_ticket[1])
        _sub(root, "service-ticket-id", shipment.refund_ticket[0])
        return ApiResponse(200, _serialize(root), media)

    def refund_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        return self._refund(request, self._contract_shipment(params), SHIPMENT_NS, SHIPMENT_MEDIA)

    def refund_nc_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        return self._refund(request, self._nc_shipment(params), NCSHIPMENT_NS, NCSHIPMENT_MEDIA)

    # --- non-contract shipments ---------------------------------------------------------------

    def create_nc_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        media = self._accept(request, (NCSHIPMENT_MEDIA,))
        self._content_type(request, NCSHIPMENT_MEDIA)
        root = self._parse_body(request, NCSHIPMENT_NS, "non-contract-shipment", media)
        self._field_rules(request, root, media)
        shipment = self._new_shipment(root, request.body, contract=False)
        return ApiResponse(200, self._nc_info(request, shipment), NCSHIPMENT_MEDIA)

    def _nc_info(self, request: ApiRequest, shipment: Shipment) -> bytes:
        root = _root(NCSHIPMENT_NS, "non-contract-shipment-info")
        _sub(root, "shipment-id", shipment.shipment_id)
        _sub(root, "tracking-pin", shipment.tracking_pin)
        links = _sub(root, "links")
        _link(links, "self", self._nc_href(request, shipment), NCSHIPMENT_MEDIA)
        _link(links, "details", self._nc_href(request, shipment, "/details"), NCSHIPMENT_MEDIA)
        _link(links, "refund", self._nc_href(request, shipment, "/refund"), NCSHIPMENT_MEDIA)
        _link(links, "label", self._label_href(request, shipment), "application/pdf", index=0)
        return _serialize(root)

    def get_nc_shipments(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        media = self._accept(request, (NCSHIPMENT_MEDIA,))
        pin = request.param("trackingPIN")
        with self.state.lock:
            candidates = [s for s in self.state.shipments.values() if not s.contract]
        if pin is not None:
            found = [s for s in candidates if s.tracking_pin == pin]
        else:
            start = request.param("from")
            if start is None:
                raise field_error(request, "the query parameter 'from' (YYYYMMDDHHMM) is required.", media)
            lower = self._eastern_minute(request, "from", start, media)
            end = request.param("to")
            upper = (
                self._eastern_minute(request, "to", end, media)
                if end is not None
                else datetime.fromtimestamp(self.clock(), EASTERN).replace(second=0, microsecond=0)
            )
            found = []
            for shipment in candidates:
                minute = datetime.fromtimestamp(shipment.created_at, EASTERN).replace(second=0, microsecond=0)
                if lower <= minute <= upper:
                    found.append(shipment)
        root = _root(NCSHIPMENT_NS, "non-contract-shipments")
        for shipment in found:
            _link(root, "shipment", self._nc_href(request, shipment), NCSHIPMENT_MEDIA)
        return ApiResponse(200, _serialize(root), NCSHIPMENT_MEDIA)

    def _eastern_minute(self, request: ApiRequest, name: str, value: str, media: str) -> datetime:
        try:
            if not re.fullmatch(r"\d{12}", value):
                raise ValueError(value)
            return datetime.strptime(value, "%Y%m%d%H%M").replace(tzinfo=EASTERN)
        except ValueError:
            raise field_error(
                request,
                f"cvc-pattern-valid: Value '{value}' of '{name}' is not facet-valid with respect to pattern "
                "'YYYYMMDDHHMM'.",
                media,
            ) from None

    def get_nc_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        self._accept(request, (NCSHIPMENT_MEDIA,))
        shipment = self._nc_shipment(params)
        return ApiResponse(200, self._nc_info(request, shipment), NCSHIPMENT_MEDIA)

    def get_nc_shipment_details(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        self._accept(request, (NCSHIPMENT_MEDIA,))
        shipment = self._nc_shipment(params)
        original = parse_untrusted(shipment.request_xml)
        root = _root(NCSHIPMENT_NS, "non-contract-shipment-details")
        _sub(root, "final-shipping-point", _shipping_point(original, shipment))
        _sub(root, "tracking-pin", shipment.tracking_pin)
        spec = child(original, "delivery-spec")
        if spec is not None:
            root.append(_copy(spec))
        if shipment.refund_ticket:
            info = _sub(root, "refund-request-info")
            _sub(info, "service-ticket-date", shipment.refund_ticket[1])
            _sub(info, "service-ticket-id", shipment.refund_ticket[0])
        return ApiResponse(200, _serialize(root), NCSHIPMENT_MEDIA)

    # --- labels ------------------------------------------------------------------------------

    def get_artifact(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        with self.state.lock:
            shipment = next(
                (
                    s
                    for s in self.state.shipments.values()
                    if s.label_key == params["key"] and s.artifact_id == params["artifact"] and not s.voided
                ),
                None,
            )
            if shipment is None or params["page"] != "0":
                raise CanadaPostError(404, [], "application/xml")
            media = LABEL_MEDIA.get(shipment.encoding, "application/pdf")
            self._accept(request, (media,))
            shipment.label_fetches += 1
            scripted_not_ready = request.fault is not None and request.fault.kind is FaultKind.LABEL_NOT_READY
            not_ready_fetches = self.faults.faults(self.service).label_not_ready_fetches
            not_ready = scripted_not_ready or shipment.label_fetches <= not_ready_fetches
        if not_ready:
            # Canada Post's own answer while the label is still being rendered: 202, no body.
            return ApiResponse(202)
        label = LabelContent(
            tracking_pin=shipment.tracking_pin,
            shipment_id=shipment.shipment_id,
            service_code=shipment.service_code,
            sender_lines=_address_lines(shipment.sender),
            destination_lines=_address_lines(shipment.destination),
            reference=shipment.customer_ref_1,
            output_format=shipment.output_format,
        )
        body = render_label_zpl(label) if shipment.encoding == "ZPL" else render_label_pdf(label)
        return ApiResponse(200, body, media)

    # --- tracking ----------------------------------------------------------------------------

    def _tracked(self, request: ApiRequest, params: dict[str, str]) -> tuple[Shipment, str]:
        media = self._accept(request, TRACK_MEDIA_TYPES)
        shipment = self.state.shipment_by_pin(params["pin"])
        if shipment is None:
            raise CanadaPostError(404, [("004", "No Pin History")], media)
        return shipment, media

    def tracking_summary(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        shipment, media = self._tracked(request, params)
        body = tracking.summary_document(shipment, self.clock(), self.config.time_scale)
        return ApiResponse(200, body, media)

    def tracking_detail(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        shipment, media = self._tracked(request, params)
        body = tracking.detail_document(
            shipment, self.clock(), self.config.time_scale, self.config.customer_number
        )
        return ApiResponse(200, body, media)


def _party(element: etree._Element | None) -> dict[str, str]:
    if element is None:
        return {}
    address = child(element, "address-details")

    def text(parent: etree._Element | None, name: str) -> str:
        return (child_text(parent, name) or "") if parent is not None else ""

    return {
        "name": text(element, "name"),
        "company": text(element, "company"),
        "line_1": text(address, "address-line-1"),
        "line_2": text(address, "address-line-2"),
        "city": text(address, "city"),
        "province": text(address, "prov-state"),
        "postal_code": text(address, "postal-zip-code"),
        "country": text(address, "country-code") or "CA",
    }


def _address_lines(party: dict[str, str]) -> tuple[str, ...]:
    lines = [
        party.get("name", ""),
        party.get("company", ""),
        party.get("line_1", ""),
        party.get("line_2", ""),
    ]
    postal = party.get("postal_code", "")
    if CA_POSTAL_CODE.fullmatch(postal):
        postal = f"{postal[:3]} {postal[3:]}"
    lines.append(
        " ".join(part for part in (party.get("city", ""), party.get("province", ""), postal) if part)
    )
    if party.get("country", "CA").upper() != "CA":
        lines.append(party["country"].upper())
    return tuple(line for line in lines if line)


def _shipping_point(original: etree._Element, shipment: Shipment) -> str:
    requested = child_text(original, "requested-shipping-point")
    if requested and CA_POSTAL_CODE.fullmatch(requested):
        return requested
    postal = shipment.sender.get("postal_code", "")
    return postal if CA_POSTAL_CODE.fullmatch(postal) else "K1G1C0"


def _copy(element: etree._Element) -> etree._Element:
    # A deep copy keeps the element's namespace, which is the answer's namespace too.
    return etree.fromstring(etree.tostring(element))
