"""End-of-day manifests at Canada Post (manifest-v8): the day's group, the Transmit Shipments
request, the manifest answers, and the calls, through the audited HTTP layer.

In end_of_day mode (fulfil.manifest_settings) each contract label is bought into the group of its
Canada Post day, ``fulfil-YYYYMMDD`` (the day in Eastern time, as Canada Post keeps its days):
predictable, so any process on any host names the same group, and at most 15 of the 32
characters GroupIDType allows. Transmit Shipments (``POST …/manifest`` with ``<transmit-set>``)
sends the group, less the shipments fulfil leaves out (``excluded-shipments``), and answers with
a link per manifest it made; Get Manifest (each link, mandatory) gives its PO number and its
links: the manifest PDF (``artifact``, fetched with Get Artifact like a label) and the shipments
on it (``manifestShipments``, a Get Shipments search). Get Manifests (``?start=&end=``, dates)
lists the manifests made on those days: how a transmit whose answer was lost is found again.

Answers are read like every Canada Post answer (fulfil.canadapost.responses): by local name,
every value checked, every link an absolute URL on the configured Canada Post host (anything else
is refused and never followed, so the credentials never leave that host).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, TypeVar
from urllib.parse import quote, urlsplit

from lxml import etree

from fulfil.audit.log import SendGuard
from fulfil.audit.outcome import HttpOutcome
from fulfil.audit.sender import AuditedHttp
from fulfil.canadapost.client import (
    RETRY_LABEL_FETCH,
    RETRY_NOT_SENT,
    RETRY_READS,
    CanadaPostUnavailable,
    auth_error,
    interpret_error,
    label_pdf,
)
from fulfil.canadapost.groups import GROUP_ID
from fulfil.canadapost.responses import (
    ErrorKind,
    Link,
    ResponseFormatError,
    document_root,
    parse_shipment_links,
    shown,
    single_child,
    single_value,
    stored_link,
)
from fulfil.canadapost.schema import PDF_MEDIA_TYPE, SHIPMENT_MEDIA_TYPE
from fulfil.canadapost.sender import SenderAddress
from fulfil.config import CanadaPostSettings
from fulfil.xml_parsing import children

T = TypeVar("T")

MANIFEST_MEDIA_TYPE: Final = "application/vnd.cpc.manifest-v8+xml"
MANIFEST_NAMESPACE: Final = "http://www.canadapost.ca/ws/manifest-v8"
# What a contract label is paid with (the labels' intended-method-of-payment).
METHOD_OF_PAYMENT = "Account"

# manifest.xsd and common.xsd: PoNumberType is [a-zA-Z0-9]{1,10}; a manifest id, like a shipment
# id, is digits (fulfil puts it in file names and messages).
_PO_NUMBER = re.compile(r"[A-Za-z0-9]{1,10}")
_DIGITS_ID = re.compile(r"[0-9]{1,32}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_REL = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")


# --- Transmit Shipments -----------------------------------------------------------------------


@dataclass(frozen=True)
class TransmitRequest:
    xml: bytes  # UTF-8 with XML declaration
    media_type: str


def build_transmit_request(
    group_ids: Sequence[str], sender: SenderAddress, excluded: Sequence[str] = ()
) -> TransmitRequest:
    """``<transmit-set>`` for these groups: the parcels are tendered at the sender's postal code
    (as the labels say: requested-shipping-point, no pickup asked for), paid on account, with
    detailed manifests (every shipment listed) and the sender as the manifest's address;
    ``excluded`` Canada Post shipment ids stay in their group, untransmitted."""
    if not group_ids:
        raise ValueError("a transmit needs at least one group")
    for group_id in group_ids:
        if not GROUP_ID.fullmatch(group_id):
            raise ValueError(f"group-id {group_id!r} is not 1 to 32 letters, digits, '.', '_' or '-'")
    for shipment_id in excluded:
        if not _DIGITS_ID.fullmatch(shipment_id):
            raise ValueError(f"shipment id {shipment_id!r} to exclude is not a Canada Post shipment id")
    ns = MANIFEST_NAMESPACE

    def add(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{ns}}}{name}")
        if text is not None:
            element.text = text
        return element

    root = etree.Element(f"{{{ns}}}transmit-set", nsmap={None: ns})
    groups = add(root, "group-ids")
    for group_id in dict.fromkeys(group_ids):
        add(groups, "group-id", group_id)
    add(root, "requested-shipping-point", sender.postal_code)
    add(root, "detailed-manifests", "true")
    add(root, "method-of-payment", METHOD_OF_PAYMENT)
    address = add(root, "manifest-address")
    add(address, "manifest-company", sender.company)
    if sender.name is not None:
        add(address, "manifest-name", sender.name)
    add(address, "phone-number", sender.phone)
    details = add(address, "address-details")
    add(details, "address-line-1", sender.address_line_1)
    if sender.address_line_2 is not None:
        add(details, "address-line-2", sender.address_line_2)
    add(details, "city", sender.city)
    add(details, "prov-state", sender.province)
    add(details, "country-code", "CA")
    add(details, "postal-zip-code", sender.postal_code)
    if excluded:
        left_out = add(root, "excluded-shipments")
        for shipment_id in dict.fromkeys(excluded):
            add(left_out, "shipment-id", shipment_id)
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return TransmitRequest(xml=xml, media_type=MANIFEST_MEDIA_TYPE)


# --- answers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestLink:
    """A ``<link rel="manifest">`` of Transmit Shipments or Get Manifests: one manifest."""

    manifest_id: str  # Canada Post's id: the last segment of the link
    href: str
    media_type: str | None


@dataclass(frozen=True)
class ManifestInfo:
    """A ``<manifest>`` (Get Manifest): its PO number and its links, by rel."""

    po_number: str
    links: dict[str, Link]

    def href(self, rel: str) -> str | None:
        link = self.links.get(rel)
        return link.href if link is not None else None

    def media_type(self, rel: str) -> str | None:
        link = self.links.get(rel)
        return link.media_type if link is not None else None


def parse_manifest_links(body: bytes | str, *, link_origin: str) -> list[ManifestLink]:
    """A ``<manifests>`` answer (Transmit Shipments, Get Manifests): one entry per manifest link,
    each on ``link_origin`` and ending in the manifest's id. Links of other relations are ignored."""
    root = document_root(body, ("manifests",))
    found: dict[str, ManifestLink] = {}
    for link in _links(children(root, "link"), link_origin):
        if link.rel != "manifest":
            continue
        manifest_id = last_segment_id(link.href, "manifest")
        found.setdefault(manifest_id, ManifestLink(manifest_id, link.href, link.media_type))
    return list(found.values())


def parse_manifest(body: bytes | str, *, link_origin: str) -> ManifestInfo:
    """A ``<manifest>`` answer (Get Manifest): its PO number and links, every link on
    ``link_origin``; without a PO number, an artifact (the PDF) or a manifestShipments link it is
    not a manifest fulfil can hand over or account for: ResponseFormatError."""
    root = document_root(body, ("manifest",))
    po_number = single_value(root, "po-number")
    if po_number is None:
        raise ResponseFormatError("<manifest> has no <po-number>")
    if not _PO_NUMBER.fullmatch(po_number):
        raise ResponseFormatError(
            f"<po-number> {shown(po_number)} in <manifest> is not a PO number (1 to 10 letters or digits)"
        )
    links_element = single_child(root, "links")
    links: dict[str, Link] = {}
    if links_element is not None:
        for link in _links(children(links_element, "link"), link_origin):
            links.setdefault(link.rel, link)
    for needed in ("artifact", "manifestShipments"):
        if needed not in links:
            raise ResponseFormatError(f"<manifest> {po_number} has no <link rel={needed!r}>")
    return ManifestInfo(po_number=po_number, links=links)


def shipment_ids_of(body: bytes | str, *, link_origin: str) -> list[str]:
    """The Canada Post shipment ids of a ``<shipments>`` search answer (``?groupId=``,
    ``?manifestId=``), in the order listed, each from its link's last segment."""
    ids = [
        last_segment_id(link.href, "shipment")
        for link in parse_shipment_links(body, link_origin=link_origin)
        if link.rel == "shipment"
    ]
    return list(dict.fromkeys(ids))


def last_segment_id(href: str, collection: str) -> str:
    """The id a link ends with, ``…/<collection>/<id>``: digits, or ResponseFormatError."""
    segments = urlsplit(href).path.rstrip("/").split("/")
    if len(segments) < 2 or segments[-2] != collection or not _DIGITS_ID.fullmatch(segments[-1]):
        raise ResponseFormatError(
            f"link {shown(href)} does not end in /{collection}/ and a Canada Post id (1 to 32 digits)"
        )
    return segments[-1]


def _links(elements: Sequence[etree._Element], link_origin: str) -> list[Link]:
    links = []
    for element in elements:
        rel = (element.get("rel") or "").strip()
        href = (element.get("href") or "").strip()
        if not rel or not href or not _REL.fullmatch(rel):
            raise ResponseFormatError(
                f"a <link> without a usable rel or href (rel {shown(rel)}, href of {len(href)} characters)"
            )
        name = f"<link rel={rel!r}>"
        stored_link(name, href, link_origin=link_origin)
        media_type = (element.get("media-type") or "").strip() or None
        if media_type is not None and not _MEDIA_TYPE.fullmatch(media_type):
            raise ResponseFormatError(f"{name} has media-type {shown(media_type)}, not a media type")
        links.append(Link(rel=rel, href=href, media_type=media_type, index=None))
    return links


# --- the calls --------------------------------------------------------------------------------


class ManifestClient:
    """Canada Post's manifest calls for one customer number, over the AuditedHttp every Canada
    Post call goes through (its budgets: transmit and manifests are group C, the PDF group A).
    Each call's api_calls row names the group it is about (``related_id``)."""

    def __init__(self, settings: CanadaPostSettings, http: AuditedHttp) -> None:
        self.settings = settings
        self.http = http
        number = settings.customer_number
        self._manifest_base = f"{settings.base_url}/rs/{number}/{number}/manifest"
        self._shipment_base = f"{settings.base_url}/rs/{number}/{number}/shipment"

    @staticmethod
    def _headers(media_type: str, *, body: bool = False) -> dict[str, str]:
        headers = {"Accept": media_type, "Accept-language": "en-CA"}
        if body:
            headers["Content-Type"] = media_type
        return headers

    def transmit(self, group_id: str, request: TransmitRequest, *, guard: SendGuard) -> HttpOutcome:
        """POST Transmit Shipments, sent again only when an attempt provably sent nothing (or was
        refused at the door): a transmit whose answer is lost is looked up, never re-sent.
        ``guard`` runs in the transaction that records each attempt: a transmit another run took
        over is never sent by this one (``LeaseLost``)."""
        return self.http.send(
            "POST",
            self._manifest_base,
            endpoint="TransmitShipments",
            related_id=group_id,
            headers=self._headers(request.media_type, body=True),
            data=request.xml,
            retry=RETRY_NOT_SENT,
            guard=guard,
        )

    def manifest_links_of(self, body: bytes | str) -> list[ManifestLink]:
        return parse_manifest_links(body, link_origin=self.http.origin)

    def group_shipment_ids(self, group_id: str) -> list[str]:
        """The shipments Canada Post holds in the group (Get Shipments ``?groupId=``)."""
        outcome = self._read(
            self._shipment_base, "GetShipments", group_id, SHIPMENT_MEDIA_TYPE, {"groupId": group_id}
        )
        return self._parse(lambda body: shipment_ids_of(body, link_origin=self.http.origin), outcome)

    def manifests_between(self, group_id: str, start: date, end: date) -> list[ManifestLink]:
        """The manifests made from ``start`` to ``end`` (Canada Post's days), Get Manifests."""
        outcome = self._read(
            self._manifest_base,
            "GetManifests",
            group_id,
            MANIFEST_MEDIA_TYPE,
            {"start": f"{start:%Y%m%d}", "end": f"{end:%Y%m%d}"},
        )
        return self._parse(self.manifest_links_of, outcome)

    def manifest(self, group_id: str, href: str, media_type: str | None) -> ManifestInfo:
        """Get Manifest: what Canada Post asks every transmit to be followed by."""
        link = self._own_link(href)
        outcome = self._read(link, "GetManifest", group_id, media_type or MANIFEST_MEDIA_TYPE)
        return self._parse(lambda body: parse_manifest(body, link_origin=self.http.origin), outcome)

    def shipment_ids_at(self, group_id: str, href: str, media_type: str | None) -> list[str]:
        """The shipments a search link lists (a manifest's manifestShipments: Get Shipments)."""
        outcome = self._read(
            self._own_link(href), "GetShipments", group_id, media_type or SHIPMENT_MEDIA_TYPE
        )
        return self._parse(lambda body: shipment_ids_of(body, link_origin=self.http.origin), outcome)

    def fetch_artifact(self, group_id: str, href: str, media_type: str | None) -> HttpOutcome:
        """The manifest's PDF (Get Artifact): only a 200 with a complete PDF is success; a 202
        (not rendered yet) is asked again with growing waits."""
        return self.http.send(
            "GET",
            self._own_link(href),
            endpoint="GetArtifact",
            related_id=group_id,
            headers={"Accept": media_type or PDF_MEDIA_TYPE},
            retry=RETRY_LABEL_FETCH,
            expect=label_pdf,
        )

    def manifest_url(self, manifest_id: str) -> str:
        """A manifest's own URL, built as Canada Post's links are (for a manifest recorded by id)."""
        return f"{self._manifest_base}/{quote(manifest_id, safe='')}"

    def _own_link(self, href: str) -> str:
        try:
            return stored_link("a manifest link", href, link_origin=self.http.origin)
        except ResponseFormatError as exc:
            raise CanadaPostUnavailable(str(exc)) from None

    def _read(
        self,
        url: str,
        endpoint: str,
        group_id: str,
        media_type: str,
        params: dict[str, str] | None = None,
    ) -> HttpOutcome:
        outcome = self.http.send(
            "GET",
            url,
            endpoint=endpoint,
            related_id=group_id,
            headers=self._headers(media_type),
            params=params,
            retry=RETRY_READS,
        )
        if outcome.ok:
            return outcome
        error = interpret_error(outcome)
        if error.kind is ErrorKind.AUTH:
            raise auth_error(error)
        raise CanadaPostUnavailable(f"{endpoint} for {group_id}: {error.description}")

    @staticmethod
    def _parse(parser: Callable[[bytes], T], outcome: HttpOutcome) -> T:
        try:
            return parser(outcome.body)
        except ResponseFormatError as exc:
            raise CanadaPostUnavailable(f"unusable answer from Canada Post ({outcome.url}): {exc}") from None
