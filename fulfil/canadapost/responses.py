"""Canada Post's XML answers, parsed into typed values, and what an error answer means.

Answers are read by local element name: Canada Post's namespaces changed between versions (the
old unversioned ``…/ws/shipment`` still appears in its documentation samples) and error bodies
have been seen outside the messages namespace. Elements fulfil does not know are ignored, since
Canada Post adds elements to answers without changing the version.

Every value fulfil takes from an answer is checked against what the schema declares (tightened
where fulfil relies on more, see ``# --- values``) before anyone records or uses it: an answer
with a PIN of ``../../x`` or a link to another host is a ResponseFormatError, never a label.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import parse_qs, urlsplit

from lxml import etree

from fulfil.canadapost.groups import GROUP_ID
from fulfil.url_origin import origin_of
from fulfil.xml_parsing import (
    UntrustedXmlError,
    child,
    child_text,
    children,
    find_path,
    local_name,
    parse_untrusted,
)


class ResponseFormatError(ValueError):
    """An answer is not the document expected, or lacks a value fulfil cannot go on without."""


@dataclass(frozen=True)
class Link:
    rel: str
    href: str
    media_type: str | None
    index: int | None


@dataclass(frozen=True)
class ShipmentInfo:
    """The answer to Create Shipment (and Get Shipment): what a bought label must be recorded as."""

    shipment_id: str
    tracking_pin: str
    status: str | None  # contract only: "created", "transmitted" …
    links: dict[str, Link]  # by rel; for a repeated rel (several label pages) the lowest index
    all_links: tuple[Link, ...] = field(default=())

    @property
    def label_links(self) -> tuple[Link, ...]:
        """Every label page, in index order."""
        labels = [link for link in self.all_links if link.rel == "label"]
        return tuple(sorted(labels, key=lambda link: link.index or 0))

    @property
    def group_id(self) -> str | None:
        """The group Canada Post put the label in (its rel="group" link, ``…?groupId=``), when it
        names one a group id can be; None otherwise (a label not bought into a group)."""
        link = self.links.get("group")
        if link is None:
            return None
        values = parse_qs(urlsplit(link.href).query).get("groupId", [])
        if len(values) == 1 and GROUP_ID.fullmatch(values[0]):
            return values[0]
        return None


@dataclass(frozen=True)
class RefundTicket:
    """The service ticket Canada Post gave a refund request (``<…refund-request-info>``)."""

    ticket_id: str
    ticket_date: date


@dataclass(frozen=True)
class ShipmentDetails:
    shipment_id: str | None
    tracking_pin: str | None
    status: str | None
    customer_request_id: str | None
    customer_ref_1: str | None
    # A refund was requested for the shipment (its ticket), or None.
    refund_request: RefundTicket | None = None
    # Which parcel of a split order it is ("2/3"), or None.
    customer_ref_2: str | None = None


@dataclass(frozen=True)
class CanadaPostMessage:
    code: str
    description: str


class ErrorKind(enum.Enum):
    AUTH = "auth"  # credentials or customer number refused: stop the run, fix the configuration
    RATE_LIMITED = "rate_limited"  # throttled for up to a minute: wait, then try again
    INVALID_REQUEST = "invalid_request"  # refused for its content: retrying cannot help, fix the data
    NOT_FOUND = "not_found"  # no such shipment, or already voided, or an expired link
    SERVER = "server"  # Canada Post failed: the request may or may not have taken effect
    UNKNOWN = "unknown"


_SHIPMENT_INFO_ROOTS = ("shipment-info", "non-contract-shipment-info")
_SHIPMENT_LIST_ROOTS = ("shipments", "non-contract-shipments")
_SHIPMENT_DETAILS_ROOTS = ("shipment-details", "non-contract-shipment-details")
_REFUND_INFO_ROOTS = ("shipment-refund-request-info", "non-contract-shipment-refund-request-info")


def parse_shipment_info(body: bytes | str, *, link_origin: str | None = None) -> ShipmentInfo:
    """A ``<shipment-info>`` or ``<non-contract-shipment-info>`` answer.

    With ``link_origin`` (an origin, or any URL on it such as the configured base URL), a link
    to any other scheme, host or port makes the answer a ResponseFormatError.
    """
    origin = _link_origin(link_origin)
    root = document_root(body, _SHIPMENT_INFO_ROOTS)
    shipment_id = _shipment_id(root)
    tracking_pin = _tracking_pin(root)
    if shipment_id is None or tracking_pin is None:
        missing = " and no ".join(
            f"<{name}>"
            for name, value in (("shipment-id", shipment_id), ("tracking-pin", tracking_pin))
            if not value
        )
        raise ResponseFormatError(
            f"<{local_name(root)}> has no {missing}; a label cannot be recorded without both "
            "(the shipment id voids or refunds it, the PIN tracks it)"
        )
    links_element = single_child(root, "links")
    all_links = tuple(_links(children(links_element, "link"), origin)) if links_element is not None else ()
    by_rel: dict[str, Link] = {}
    for link in sorted(all_links, key=lambda link: link.index or 0):
        by_rel.setdefault(link.rel, link)
    return ShipmentInfo(
        shipment_id=shipment_id,
        tracking_pin=tracking_pin,
        status=_printable(root, "shipment-status", _MAX_STATUS_LENGTH),
        links=by_rel,
        all_links=all_links,
    )


def parse_shipment_links(body: bytes | str, *, link_origin: str | None = None) -> list[Link]:
    """The links of a ``<shipments>`` or ``<non-contract-shipments>`` search answer (may be empty).

    ``link_origin`` holds every link to one origin, as for ``parse_shipment_info``.
    """
    origin = _link_origin(link_origin)
    root = document_root(body, _SHIPMENT_LIST_ROOTS)
    return list(_links(children(root, "link"), origin))


def parse_shipment_details(body: bytes | str) -> ShipmentDetails:
    """A ``<shipment-details>`` or ``<non-contract-shipment-details>`` answer."""
    root = document_root(body, _SHIPMENT_DETAILS_ROOTS)
    # Contract details nest the request under shipment-detail; non-contract details do not.
    spec = find_path(root, "shipment-detail", "delivery-spec")
    if spec is None:
        spec = child(root, "delivery-spec")
    references = child(spec, "references") if spec is not None else None
    # Contract details hold the refund request under shipment-detail; non-contract at the root.
    detail = single_child(root, "shipment-detail")
    refund = single_child(detail, "refund-request-info") if detail is not None else None
    if refund is None:
        refund = single_child(root, "refund-request-info")
    return ShipmentDetails(
        shipment_id=_shipment_id(root),
        tracking_pin=_tracking_pin(root),
        status=_printable(root, "shipment-status", _MAX_STATUS_LENGTH),
        customer_request_id=_printable(root, "customer-request-id", _MAX_REFERENCE_LENGTH),
        customer_ref_1=(
            _printable(references, "customer-ref-1", _MAX_REFERENCE_LENGTH)
            if references is not None
            else None
        ),
        refund_request=_refund_ticket(refund) if refund is not None else None,
        customer_ref_2=(
            _printable(references, "customer-ref-2", _MAX_REFERENCE_LENGTH)
            if references is not None
            else None
        ),
    )


def parse_refund_request_info(body: bytes | str) -> RefundTicket:
    """A ``<shipment-refund-request-info>`` or ``<non-contract-shipment-refund-request-info>``
    answer: the service ticket of the refund request, both values checked."""
    return _refund_ticket(document_root(body, _REFUND_INFO_ROOTS))


def stored_link(name: str, href: str, *, link_origin: str) -> str:
    """A link fulfil recorded from an earlier answer (a shipment's self link), checked again as an
    answer's links are before credentials follow it: an absolute http(s) URL on ``link_origin``
    (an origin, or any URL on it), without a fragment. ResponseFormatError otherwise."""
    origin = _link_origin(link_origin)
    href_origin = _href_origin(name, href)
    if href_origin != origin:
        raise ResponseFormatError(
            f"{name} points to {href_origin}, not to {origin}, the configured Canada Post host; "
            "credentials never follow a link elsewhere"
        )
    return href


def parse_messages(body: bytes | str) -> list[CanadaPostMessage]:
    """The messages of a ``<messages>`` error answer, in any namespace (empty for ``<messages/>``)."""
    return _messages(document_root(body, ("messages",)))


def messages_in(body: bytes | str | None) -> list[CanadaPostMessage] | None:
    """The messages when the body is a ``<messages>`` document; None for anything else.

    For error answers, whose body may as well be a proxy's HTML page or nothing at all.
    """
    if body is None:
        return None
    try:
        root = parse_untrusted(body)
    except UntrustedXmlError:
        return None
    return _messages(root) if local_name(root) == "messages" else None


def classify_error(status_code: int | None, messages: Iterable[CanadaPostMessage] | None) -> ErrorKind:
    """What a failed call means, from its HTTP status and Canada Post's messages.

    The text is what counts for code ``Server``: Canada Post uses it both for throttling ("Rejected
    by SLM Monitor") and for schema errors (a ``cvc-…`` description).
    """
    found = list(messages or ())
    codes = {message.code.strip().upper() for message in found}
    if codes & _AUTH_CODES or (status_code in (401, 403) and not _has_recognised_code(found)):
        return ErrorKind.AUTH
    if status_code == 429 or any(_is_throttling(message) for message in found):
        return ErrorKind.RATE_LIMITED
    if any(_is_schema_error(message) for message in found):
        return ErrorKind.INVALID_REQUEST
    if status_code == 404:
        return ErrorKind.NOT_FOUND
    if status_code is not None and 500 <= status_code <= 599:
        return ErrorKind.SERVER
    # 408 says the request never fully arrived: not a verdict on its content.
    if status_code is not None and 400 <= status_code <= 499 and status_code != 408:
        return ErrorKind.INVALID_REQUEST
    if status_code is None and any(message.code.strip() not in ("", "Server") for message in found):
        return ErrorKind.INVALID_REQUEST
    return ErrorKind.UNKNOWN


# E002: "AAA Authentication Failure"; AA001-AA004: key deactivated, development key used in
# production (or the reverse), key not the mailed-by customer's, no right to mail on behalf of.
_AUTH_CODES = frozenset({"E002", "AA001", "AA002", "AA003", "AA004"})


def is_throttled_answer(body: bytes | str | None) -> bool:
    """True when the body is Canada Post's throttle refusal ("Rejected by SLM Monitor"): the call
    was refused at the gateway, before anything was performed."""
    return any(_is_throttling(message) for message in messages_in(body) or ())


def _is_throttling(message: CanadaPostMessage) -> bool:
    return message.code.strip() == "Server" and "rejected by slm monitor" in message.description.casefold()


def _is_schema_error(message: CanadaPostMessage) -> bool:
    return message.code.strip() == "Server" and re.search(r"\bcvc-", message.description) is not None


def _has_recognised_code(messages: list[CanadaPostMessage]) -> bool:
    return any(_is_throttling(message) or _is_schema_error(message) for message in messages)


# --- reading --------------------------------------------------------------------------------


def document_root(body: bytes | str, expected: tuple[str, ...]) -> etree._Element:
    try:
        root = parse_untrusted(body)
    except UntrustedXmlError as exc:
        raise ResponseFormatError(f"Canada Post's answer is not usable XML: {exc}") from None
    name = local_name(root)
    if name in expected:
        return root
    wanted = " or ".join(f"<{item}>" for item in expected)
    if name == "messages":
        said = "; ".join(f"{m.code}: {m.description}" for m in _messages(root)) or "no message"
        if len(said) > _MAX_SHOWN_MESSAGES:
            said = f"{said[:_MAX_SHOWN_MESSAGES]}…"
        raise ResponseFormatError(f"expected {wanted}, got Canada Post error messages ({said})")
    shown_name = name if len(name) <= _SHOWN_LENGTH and name.isascii() else shown(name)
    raise ResponseFormatError(f"expected {wanted}, got <{shown_name}>")


def _messages(root: etree._Element) -> list[CanadaPostMessage]:
    return [
        CanadaPostMessage(
            code=displayable(child_text(message, "code") or "", _MAX_CODE_LENGTH),
            description=displayable(
                " ".join((child_text(message, "description") or "").split()), _MAX_DESCRIPTION_LENGTH
            ),
        )
        for message in children(root, "message")
    ]


# --- values ---------------------------------------------------------------------------------
#
# What Canada Post's schemas declare (shipment.xsd v8 and ncshipment.xsd v4 agree), and what
# fulfil accepts. All are xsd:normalizedString unless said otherwise; XML whitespace around a
# value is layout (pretty-printed answers), stripped as child_text always did; inside, refused.
#
# - tracking-pin, TrackingPINType: 11 to 16 characters, no pattern. fulfil also requires digits
#   and capital letters (issue 9): Canada Post's PINs are 12 or 16 digits, or the international
#   S10 form (two letters, nine digits, "CA"); a PIN is pushed to Best Buy and shown to buyers.
# - shipment-id, ShipmentIDType: at most 32 characters, no pattern. Every id Canada Post hands
#   out is digits (18 in the samples), and fulfil puts it into URLs and void/refund requests, so
#   digits only, 1 to 32.
# - shipment-status, ShipmentStatusType: at most 14 ("transmitted", "reconciled" …).
# - customer-request-id, CustomerRequestIdType, and customer-ref-1: at most 35.
# - link (common.xsd LinkType): href xsd:anyURI, rel RelType (an unrestricted xsd:string),
#   media-type required, index xsd:nonNegativeInteger. fulfil follows hrefs with credentials, so
#   they must be absolute http(s) URLs that fulfil.url_origin accepts, without a fragment;
#   media-type, optional as fulfil always read it, is sent back as an Accept header.

XML_WHITESPACE = " \t\r\n"
TRACKING_PIN = re.compile(r"[0-9A-Z]{11,16}")
_SHIPMENT_ID = re.compile(r"[0-9]{1,32}")
_MAX_STATUS_LENGTH = 14
_MAX_REFERENCE_LENGTH = 35
_REL = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
# RFC 6838 restricted names, without parameters: Canada Post names bare types.
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_INDEX = re.compile(r"[0-9]{1,6}")
# service-ticket-id is an xsd:normalizedString; Canada Post's are letters and digits
# ("GT12345678RT"). fulfil stores and shows it, so: a short token, nothing else.
_TICKET_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,39}")
# service-ticket-date, xsd:date: the day, with an optional zone (which the day itself ignores).
_XSD_DATE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:Z|[+-][0-9]{2}:[0-9]{2})?")
MAX_HREF_LENGTH = 2048

# How much of a refused value an error shows (a value can be megabytes), and of error answers.
_SHOWN_LENGTH = 40
_MAX_SHOWN_MESSAGES = 600
_MAX_CODE_LENGTH = 40
_MAX_DESCRIPTION_LENGTH = 1000


def single_child(parent: etree._Element, name: str) -> etree._Element | None:
    """The one child with this local name; the schemas allow each at most once (xsd:all)."""
    found = children(parent, name)
    if len(found) > 1:
        raise ResponseFormatError(
            f"<{name}> appears {len(found)} times in <{local_name(parent)}>; the schema allows it once"
        )
    return found[0] if found else None


def single_value(parent: etree._Element, name: str) -> str | None:
    """The text of the single ``<name>`` child, stripped of XML whitespace; None when absent or empty."""
    element = single_child(parent, name)
    if element is None:
        return None
    if len(element):
        raise ResponseFormatError(f"<{name}> in <{local_name(parent)}> holds elements, not a value")
    return (element.text or "").strip(XML_WHITESPACE) or None


def _tracking_pin(root: etree._Element) -> str | None:
    pin = single_value(root, "tracking-pin")
    if pin is not None and not TRACKING_PIN.fullmatch(pin):
        raise ResponseFormatError(
            f"<tracking-pin> {shown(pin)} in <{local_name(root)}> is not a Canada Post tracking PIN "
            "(11 to 16 characters, digits and capital letters)"
        )
    return pin


def _shipment_id(root: etree._Element) -> str | None:
    shipment_id = single_value(root, "shipment-id")
    if shipment_id is not None and not _SHIPMENT_ID.fullmatch(shipment_id):
        raise ResponseFormatError(
            f"<shipment-id> {shown(shipment_id)} in <{local_name(root)}> is not a Canada Post shipment id "
            "(1 to 32 digits)"
        )
    return shipment_id


def _refund_ticket(element: etree._Element) -> RefundTicket:
    where = local_name(element)
    ticket_id = single_value(element, "service-ticket-id")
    raw_date = single_value(element, "service-ticket-date")
    if ticket_id is None or raw_date is None:
        missing = "<service-ticket-id>" if ticket_id is None else "<service-ticket-date>"
        raise ResponseFormatError(f"<{where}> has no {missing}; a refund request's ticket needs both")
    if not _TICKET_ID.fullmatch(ticket_id):
        raise ResponseFormatError(
            f"<service-ticket-id> {shown(ticket_id)} in <{where}> is not a service ticket id "
            "(1 to 40 letters, digits, '.', '_' or '-')"
        )
    match = _XSD_DATE.fullmatch(raw_date)
    try:
        if match is None:
            raise ValueError(raw_date)
        ticket_date = date.fromisoformat(match.group(1))
    except ValueError:
        raise ResponseFormatError(
            f"<service-ticket-date> {shown(raw_date)} in <{where}> is not a date (YYYY-MM-DD)"
        ) from None
    return RefundTicket(ticket_id=ticket_id, ticket_date=ticket_date)


def _printable(parent: etree._Element, name: str, max_length: int) -> str | None:
    value = single_value(parent, name)
    if value is not None and (len(value) > max_length or not value.isprintable()):
        raise ResponseFormatError(
            f"<{name}> {shown(value)} in <{local_name(parent)}> is not a value of at most {max_length} "
            "printable characters on one line"
        )
    return value


def _link_origin(link_origin: str | None) -> str | None:
    if link_origin is None:
        return None
    try:
        return origin_of(link_origin)
    except ValueError as exc:
        # fulfil's own configuration, not the answer: not a ResponseFormatError, and not echoed
        # (a base URL may hold a password).
        raise ValueError(f"link_origin is not a usable http(s) origin: {exc}") from None


def _links(elements: Iterable[etree._Element], origin: str | None) -> Iterable[Link]:
    for element in elements:
        yield _link(element, origin)


def _link(element: etree._Element, origin: str | None) -> Link:
    rel = _attribute(element, "rel")
    href = _attribute(element, "href")
    if not rel or not href:
        raise ResponseFormatError(
            f"a <link> without rel or href: rel={shown(rel)} href={shown(_without_userinfo(href))}"
        )
    if not _REL.fullmatch(rel):
        raise ResponseFormatError(
            f"a <link> whose rel {shown(rel)} is not a link relation "
            "(a letter, then up to 63 letters, digits, '.', '_' or '-')"
        )
    name = f"<link rel={rel!r}>"
    href_origin = _href_origin(name, href)
    if origin is not None and href_origin != origin:
        raise ResponseFormatError(
            f"{name} points to {href_origin}, not to {origin} where Canada Post was called; "
            "a link elsewhere is never followed"
        )
    media_type = _attribute(element, "media-type") or None
    if media_type is not None and not _MEDIA_TYPE.fullmatch(media_type):
        raise ResponseFormatError(
            f"{name} has media-type {shown(media_type)}, not a media type (type/subtype)"
        )
    raw_index = _attribute(element, "index")
    index: int | None = None
    if raw_index:
        if not _INDEX.fullmatch(raw_index):
            raise ResponseFormatError(f"{name} has index {shown(raw_index)}, not a number of up to 6 digits")
        index = int(raw_index)
    return Link(rel=rel, href=href, media_type=media_type, index=index)


def _attribute(element: etree._Element, name: str) -> str:
    return (element.get(name) or "").strip(XML_WHITESPACE)


def _href_origin(name: str, href: str) -> str:
    if len(href) > MAX_HREF_LENGTH:
        raise ResponseFormatError(f"{name} has an href of {len(href)} characters, over {MAX_HREF_LENGTH}")
    try:
        href_origin = origin_of(href)
    except ValueError as exc:
        raise ResponseFormatError(
            f"{name} href {shown(_without_userinfo(href))} is not a usable link: {exc}"
        ) from None
    if "#" in href:
        raise ResponseFormatError(
            f"{name} href {shown(href)} has a fragment (#…), which Canada Post's links never have"
        )
    return href_origin


def _without_userinfo(href: str) -> str:
    """The href with any user:password@ masked, so a refused link never shows a password."""
    return re.sub(r"(?<=://)[^/?#]*@", "***@", href, count=1)


def shown(value: str) -> str:
    """A value for an error message: quoted, escaped to ASCII (no control or bidi characters), short."""
    length = "1 character" if len(value) == 1 else f"{len(value)} characters"
    if len(value) <= _SHOWN_LENGTH:
        return f"{value!a} ({length})"
    return f"{value[:_SHOWN_LENGTH]!a}… ({length})"


def displayable(text: str, max_length: int) -> str:
    """Canada Post's own words, kept readable but bounded and without invisible or control characters."""
    if len(text) > max_length:
        text = f"{text[:max_length]}…"
    if text.isprintable():
        return text
    return "".join(character if character.isprintable() else ascii(character)[1:-1] for character in text)
