"""Canada Post's XML answers, parsed into typed values, and what an error answer means.

Answers are read by local element name: Canada Post's namespaces changed between versions (the
old unversioned ``…/ws/shipment`` still appears in its documentation samples) and error bodies
have been seen outside the messages namespace. Elements fulfil does not know are ignored, since
Canada Post adds elements to answers without changing the version.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lxml import etree

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


@dataclass(frozen=True)
class ShipmentDetails:
    shipment_id: str | None
    tracking_pin: str | None
    status: str | None
    customer_request_id: str | None
    customer_ref_1: str | None


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


def parse_shipment_info(body: bytes | str) -> ShipmentInfo:
    """A ``<shipment-info>`` or ``<non-contract-shipment-info>`` answer."""
    root = _root(body, _SHIPMENT_INFO_ROOTS)
    shipment_id = child_text(root, "shipment-id")
    tracking_pin = child_text(root, "tracking-pin")
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
    links_element = child(root, "links")
    all_links = tuple(_links(children(links_element, "link"))) if links_element is not None else ()
    by_rel: dict[str, Link] = {}
    for link in sorted(all_links, key=lambda link: link.index or 0):
        by_rel.setdefault(link.rel, link)
    return ShipmentInfo(
        shipment_id=shipment_id,
        tracking_pin=tracking_pin,
        status=child_text(root, "shipment-status"),
        links=by_rel,
        all_links=all_links,
    )


def parse_shipment_links(body: bytes | str) -> list[Link]:
    """The links of a ``<shipments>`` or ``<non-contract-shipments>`` search answer (may be empty)."""
    root = _root(body, _SHIPMENT_LIST_ROOTS)
    return list(_links(children(root, "link")))


def parse_shipment_details(body: bytes | str) -> ShipmentDetails:
    """A ``<shipment-details>`` or ``<non-contract-shipment-details>`` answer."""
    root = _root(body, _SHIPMENT_DETAILS_ROOTS)
    # Contract details nest the request under shipment-detail; non-contract details do not.
    spec = find_path(root, "shipment-detail", "delivery-spec")
    if spec is None:
        spec = child(root, "delivery-spec")
    references = child(spec, "references") if spec is not None else None
    return ShipmentDetails(
        shipment_id=child_text(root, "shipment-id"),
        tracking_pin=child_text(root, "tracking-pin"),
        status=child_text(root, "shipment-status"),
        customer_request_id=child_text(root, "customer-request-id"),
        customer_ref_1=child_text(references, "customer-ref-1") if references is not None else None,
    )


def parse_messages(body: bytes | str) -> list[CanadaPostMessage]:
    """The messages of a ``<messages>`` error answer, in any namespace (empty for ``<messages/>``)."""
    return _messages(_root(body, ("messages",)))


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


def _is_throttling(message: CanadaPostMessage) -> bool:
    return message.code.strip() == "Server" and "rejected by slm monitor" in message.description.casefold()


def _is_schema_error(message: CanadaPostMessage) -> bool:
    return message.code.strip() == "Server" and re.search(r"\bcvc-", message.description) is not None


def _has_recognised_code(messages: list[CanadaPostMessage]) -> bool:
    return any(_is_throttling(message) or _is_schema_error(message) for message in messages)


# --- reading --------------------------------------------------------------------------------


def _root(body: bytes | str, expected: tuple[str, ...]) -> etree._Element:
    try:
        root = parse_untrusted(body)
    except UntrustedXmlError as exc:
        raise ResponseFormatError(f"Canada Post's answer is not usable XML: {exc}") from None
    name = local_name(root)
    if name in expected:
        return root
    wanted = " or ".join(f"<{item}>" for item in expected)
    if name == "messages":
        shown = "; ".join(f"{m.code}: {m.description}" for m in _messages(root)) or "no message"
        raise ResponseFormatError(f"expected {wanted}, got Canada Post error messages ({shown})")
    raise ResponseFormatError(f"expected {wanted}, got <{name}>")


def _links(elements: Iterable[etree._Element]) -> Iterable[Link]:
    for element in elements:
        rel = (element.get("rel") or "").strip()
        href = (element.get("href") or "").strip()
        if not rel or not href:
            raise ResponseFormatError(f"a <link> without rel or href: rel={rel!r} href={href!r}")
        raw_index = element.get("index")
        index: int | None = None
        if raw_index is not None and raw_index.strip():
            if not raw_index.strip().isdigit():
                raise ResponseFormatError(f"<link rel={rel!r}> has index {raw_index!r}, not a number")
            index = int(raw_index)
        media_type = (element.get("media-type") or "").strip() or None
        yield Link(rel=rel, href=href, media_type=media_type, index=index)


def _messages(root: etree._Element) -> list[CanadaPostMessage]:
    return [
        CanadaPostMessage(
            code=child_text(message, "code") or "",
            description=" ".join((child_text(message, "description") or "").split()),
        )
        for message in children(root, "message")
    ]
