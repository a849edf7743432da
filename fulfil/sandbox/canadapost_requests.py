"""What an incoming Canada Post request must look like before the sandbox acts on it.

HTTP Basic auth against the configured key pair (``E002`` otherwise); the mailed-by and
mailed-on-behalf-of customer numbers in the path equal to ours (zero padding tolerated); exact
versioned media types in ``Accept`` and ``Content-Type`` (``*/*`` is refused); a well-formed body
in the service's namespace that passes the schema (the built-in one, and the official XSDs when
configured); and the rules Canada Post applies beyond its schema. A failed check raises
``CanadaPostError``, which the service answers as ``<messages>``: field errors as code
``Server`` with a ``cvc-…`` description and HTTP 400, like the real service.

HTTP statuses Canada Post does not document are the sandbox's choice: 401 for E002, 403 for
AA003/AA004, 406 for an unacceptable ``Accept``, 415 for a wrong ``Content-Type``.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from lxml import etree

from fulfil.sandbox import cp_schema
from fulfil.sandbox.canadapost_documents import (
    MANIFEST_MEDIA,
    NCSHIPMENT_MEDIA,
    SHIPMENT_MEDIA,
    TRACK_MEDIA_TYPES,
)
from fulfil.sandbox.orders import POSTAL_CODE, PROVINCES
from fulfil.sandbox.wire import ApiRequest, media_types
from fulfil.sandbox.xsd import OfficialSchemas, XsdError
from fulfil.xml_parsing import UntrustedXmlError, child, child_text, find_path, parse_untrusted

CANADIAN_PROVINCES = tuple(PROVINCES)
AA003_TEXT = (
    'The API key in the "Authorization" header does not match the mailed-by customer number in the request.'
)
AA004_TEXT = "You cannot mail on behalf of the requested customer."


class CanadaPostError(Exception):
    """A request Canada Post refuses: the HTTP status, its ``<messages>``, the answer's media type."""

    def __init__(self, status: int, messages: list[tuple[str, str]], media_type: str) -> None:
        super().__init__(messages[0][1] if messages else f"HTTP {status}")
        self.status = status
        self.messages = messages
        self.media_type = media_type


def field_error(request: ApiRequest, description: str, media_type: str) -> CanadaPostError:
    """Schema and field errors: code Server, the request path, a cvc-style text, HTTP 400."""
    return CanadaPostError(400, [("Server", f"{request.path}: {description}")], media_type)


def media_for_path(path: str) -> str:
    """The media type of the service a path belongs to, for errors raised before Accept is read."""
    if "/ncshipment" in path:
        return NCSHIPMENT_MEDIA
    if "/manifest" in path:
        return MANIFEST_MEDIA
    if path.startswith("/vis/"):
        return TRACK_MEDIA_TYPES[0]
    if path.startswith("/rs/ship/price"):
        from fulfil.sandbox.canadapost_rates import RATE_MEDIA

        return RATE_MEDIA
    return SHIPMENT_MEDIA


def authenticate(request: ApiRequest, username: str, password: str) -> None:
    failure = CanadaPostError(401, [("E002", "AAA Authentication Failure")], media_for_path(request.path))
    header = request.header("Authorization") or ""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise failure
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise failure from None
    given_user, separator, given_password = decoded.partition(":")
    # Both comparisons always run, so the answer time does not tell which half was wrong.
    user_ok = hmac.compare_digest(given_user.encode(), username.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    if not (separator and user_ok and password_ok):
        raise failure


def check_customer(params: dict[str, str], customer_number: str) -> None:
    """The customer numbers in the path (mailed-by, mobo) must be ours; zero padding is tolerated."""

    def same_customer(number: str) -> bool:
        return number.isdigit() and len(number) <= 10 and int(number) == int(customer_number)

    mailed_by = params.get("mailed_by")
    if mailed_by is not None and not same_customer(mailed_by):
        raise CanadaPostError(403, [("AA003", AA003_TEXT)], SHIPMENT_MEDIA)
    mobo = params.get("mobo")
    if mobo is not None and not same_customer(mobo):
        raise CanadaPostError(403, [("AA004", AA004_TEXT)], SHIPMENT_MEDIA)


def accepted_media(request: ApiRequest, allowed: tuple[str, ...]) -> str:
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


def check_content_type(request: ApiRequest, expected: str) -> None:
    received = media_types(request.header("Content-Type"))
    if received != [expected]:
        shown = request.header("Content-Type") or "(none)"
        raise CanadaPostError(
            415,
            [("Server", f"{request.path}: Content-Type '{shown}' is not supported; use '{expected}'.")],
            expected,
        )


def parse_body(
    request: ApiRequest, namespace: str, root_name: str, media: str, schemas: OfficialSchemas | None
) -> etree._Element:
    """The body as XML that is well formed, the expected document and valid against the schemas."""
    try:
        root = parse_untrusted(request.body)
    except UntrustedXmlError as error:
        raise field_error(request, f"cvc-xml-wellformed: {error}", media) from None
    try:
        cp_schema.validate(root, namespace, root_name)
    except cp_schema.SchemaViolation as violation:
        raise field_error(request, str(violation), media) from None
    if schemas is not None:
        try:
            schemas.validate(root)
        except XsdError as error:
            raise field_error(request, f"cvc-schema-valid: {error}", media) from None
    return root


def check_fields(request: ApiRequest, root: etree._Element, media: str) -> None:
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
        if not POSTAL_CODE.fullmatch(postal_text):
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


def party(element: etree._Element | None) -> dict[str, str]:
    """A ``sender`` or ``destination`` of a request, as the shipment record keeps it."""
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
