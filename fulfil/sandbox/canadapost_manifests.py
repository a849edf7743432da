"""Transmit Shipments and manifests (``/rs/{mailed-by}/{mobo}/manifest``): the group flow's end of day.

A contract shipment bought with a ``group-id`` stays ``created`` (voidable) until its group is
transmitted. Transmit Shipments (``POST``, a ``<transmit-set>``) takes the shipments of the groups
it names that are still created (not voided, not transmitted, not in ``excluded-shipments``) and
makes manifests of them, one per service code (Canada Post makes manifests "based on
characteristics of the shipments"), answering ``<manifests>`` with a ``rel="manifest"`` link each;
its shipments are ``transmitted`` from then on (a void is refused with 8064). Get Manifest (each
link) answers its PO number and links: self, details, the shipments on it (a Get Shipments search,
``?manifestId=``) and its PDF (an artifact, fetched like a label, see ``CanadaPostService``). Get
Manifests (``?start=YYYYMMDD&end=YYYYMMDD``, the end defaulting to today) lists the manifests made
on those Eastern days; Get Manifest Details its particulars and prices.

A transmit with nothing to transmit is refused, HTTP 400, with the text Canada Post documents
for it ("Group id was not found for transmission; please remove or correct."); the code 9111 and
the status are the sandbox's choice, since Canada Post's pages give the text only.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from lxml import etree

from fulfil.sandbox.canadapost_documents import (
    MANIFEST_MEDIA,
    MANIFEST_NS,
    SHIPMENT_MEDIA,
    address_lines,
    link,
    root_element,
    serialize,
    sub,
)
from fulfil.sandbox.canadapost_requests import CanadaPostError, accepted_media, field_error
from fulfil.sandbox.canadapost_shipments import CanadaPostShipments
from fulfil.sandbox.pdf import ManifestContent, render_manifest_pdf
from fulfil.sandbox.state import Manifest, Shipment
from fulfil.sandbox.wire import ApiRequest, ApiResponse
from fulfil.xml_parsing import child, child_text, children, find_path, parse_untrusted

NOTHING_TO_TRANSMIT = ("9111", "Group id was not found for transmission; please remove or correct.")
PDF_MEDIA = "application/pdf"
CENT = Decimal("0.01")
_DAY = re.compile(r"\d{8}")


class ManifestShipments(CanadaPostShipments):
    # --- Transmit Shipments ----------------------------------------------------------------------

    def transmit_shipments(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        accepted_media(request, (MANIFEST_MEDIA,))
        root = self._request_body(request, MANIFEST_NS, "transmit-set", MANIFEST_MEDIA)
        groups = child(root, "group-ids")
        group_ids = (
            tuple(dict.fromkeys((item.text or "").strip() for item in children(groups, "group-id")))
            if groups is not None
            else ()
        )
        left_out = child(root, "excluded-shipments")
        excluded = (
            tuple((item.text or "").strip() for item in children(left_out, "shipment-id"))
            if left_out is not None
            else ()
        )
        links = self._links(request)
        with self.state.lock:
            ready = [
                shipment
                for group_id in group_ids
                for shipment in self.state.shipments_in_group(group_id)
                if shipment.contract
                and not shipment.voided
                and shipment.status == "created"
                and shipment.shipment_id not in excluded
            ]
            if not ready:
                raise CanadaPostError(400, [NOTHING_TO_TRANSMIT], MANIFEST_MEDIA)
            # A shipment in two of the groups named is transmitted once.
            unique = list({shipment.shipment_id: shipment for shipment in ready}.values())
            by_service: dict[str, list[Shipment]] = {}
            for shipment in unique:
                by_service.setdefault(shipment.service_code, []).append(shipment)
            now = self._eastern_now()
            made = []
            for service_code, shipments in by_service.items():
                manifest = Manifest(
                    manifest_id=self.state.digits(18),
                    po_number="P" + self.state.digits(9),
                    created_at=self.clock(),
                    manifest_date=now.date().isoformat(),
                    manifest_time=f"{now:%H:%M} {now.tzname() or 'EST'}",
                    group_ids=group_ids,
                    shipment_ids=tuple(shipment.shipment_id for shipment in shipments),
                    service_code=service_code,
                    shipping_point=_shipping_point(root, shipments),
                    method_of_payment=child_text(root, "method-of-payment") or "Account",
                    address=_manifest_address(root),
                    artifact_key=self.state.hex_token(16),
                    artifact_id=self.state.digits(11),
                    excluded=excluded,
                    customer_reference=child_text(root, "customer-reference"),
                )
                self.state.add_manifest(manifest, shipments)
                made.append(manifest)
        document = root_element(MANIFEST_NS, "manifests")
        for manifest in made:
            link(document, "manifest", links.manifest(manifest.manifest_id), MANIFEST_MEDIA)
        return ApiResponse(200, serialize(document), MANIFEST_MEDIA)

    # --- reading manifests -------------------------------------------------------------------------

    def get_manifests(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        media = accepted_media(request, (MANIFEST_MEDIA,))
        today = self._eastern_now().date()
        start = _day_parameter(request, "start", None, media)
        end = _day_parameter(request, "end", today, media)
        links = self._links(request)
        document = root_element(MANIFEST_NS, "manifests")
        for manifest in self.state.manifests_between(start.isoformat(), end.isoformat()):
            link(document, "manifest", links.manifest(manifest.manifest_id), MANIFEST_MEDIA)
        return ApiResponse(200, serialize(document), media)

    def _manifest(self, params: dict[str, str]) -> Manifest:
        with self.state.lock:
            manifest = self.state.manifests.get(params["manifest_id"])
        if manifest is None:
            raise CanadaPostError(404, [], MANIFEST_MEDIA)
        return manifest

    def get_manifest(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        media = accepted_media(request, (MANIFEST_MEDIA,))
        manifest = self._manifest(params)
        links = self._links(request)
        document = root_element(MANIFEST_NS, "manifest")
        sub(document, "po-number", manifest.po_number)
        parent = sub(document, "links")
        link(parent, "self", links.manifest(manifest.manifest_id), MANIFEST_MEDIA)
        link(parent, "details", links.manifest(manifest.manifest_id, "/details"), MANIFEST_MEDIA)
        link(parent, "manifestShipments", links.manifest_shipments(manifest.manifest_id), SHIPMENT_MEDIA)
        link(parent, "artifact", links.artifact(manifest.artifact_key, manifest.artifact_id), PDF_MEDIA)
        return ApiResponse(200, serialize(document), media)

    def get_manifest_details(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        media = accepted_media(request, (MANIFEST_MEDIA,))
        manifest = self._manifest(params)
        shipments = self.state.shipments_in_manifest(manifest.manifest_id)
        customer = self.config.customer_number
        document = root_element(MANIFEST_NS, "manifest-details")
        sub(document, "po-number", manifest.po_number)
        sub(document, "final-shipping-point", manifest.shipping_point)
        sub(document, "shipping-point-name", f"SANDBOX DEPOT {manifest.shipping_point}")
        sub(document, "shipping-point-id", f"{sum(map(ord, manifest.shipping_point)) % 10000:04d}")
        sub(document, "mailed-by-customer", customer)
        sub(document, "mailed-on-behalf-of", customer)
        sub(document, "paid-by-customer", customer)
        if manifest.customer_reference:
            sub(document, "customer-ref", manifest.customer_reference)
        sub(document, "manifest-date", manifest.manifest_date)
        sub(document, "manifest-time", manifest.manifest_time)
        contract_id = _contract_id(shipments)
        if contract_id:
            sub(document, "contract-id", contract_id)
        sub(document, "method-of-payment", manifest.method_of_payment)
        _pricing(sub(document, "manifest-pricing-info"), shipments)
        _address(sub(document, "manifest-address"), manifest.address)
        return ApiResponse(200, serialize(document), media)

    def manifest_pdf(self, manifest: Manifest) -> bytes:
        """The manifest's artifact: a real PDF listing every shipment on it."""
        shipments = self.state.shipments_in_manifest(manifest.manifest_id)
        address = manifest.address
        return render_manifest_pdf(
            ManifestContent(
                po_number=manifest.po_number,
                manifest_id=manifest.manifest_id,
                manifest_date=manifest.manifest_date,
                customer_number=self.config.customer_number,
                # The company heads the form, then the contact, as address_lines orders a party.
                address_lines=address_lines(
                    {
                        "name": address.get("company", ""),
                        "company": address.get("name", ""),
                        "line_1": address.get("line_1", ""),
                        "line_2": address.get("line_2", ""),
                        "city": address.get("city", ""),
                        "province": address.get("province", ""),
                        "postal_code": address.get("postal_code", ""),
                        "country": address.get("country", "CA"),
                    }
                ),
                shipping_point=manifest.shipping_point,
                shipments=tuple(
                    (shipment.tracking_pin, shipment.service_code, shipment.customer_ref_1 or "")
                    for shipment in shipments
                ),
            )
        )


# --- reading the request ---------------------------------------------------------------------------


def _day_parameter(request: ApiRequest, name: str, default: date | None, media: str) -> date:
    raw = request.param(name)
    if raw is None or raw == "":
        if default is None:
            raise field_error(request, f"the query parameter {name} (YYYYMMDD) is required.", media)
        return default
    try:
        if not _DAY.fullmatch(raw):
            raise ValueError(raw)
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError:
        raise field_error(
            request, f"the query parameter {name} must be a date YYYYMMDD, not '{raw}'.", media
        ) from None


def _shipping_point(root: etree._Element, shipments: list[Shipment]) -> str:
    requested = child_text(root, "requested-shipping-point")
    if requested:
        return requested
    return shipments[0].sender.get("postal_code", "") or "K1G1C0"


def _manifest_address(root: etree._Element) -> dict[str, str]:
    address = child(root, "manifest-address")
    details = child(address, "address-details") if address is not None else None

    def text(parent: etree._Element | None, name: str) -> str:
        return (child_text(parent, name) or "") if parent is not None else ""

    return {
        "company": text(address, "manifest-company"),
        "name": text(address, "manifest-name"),
        "phone": text(address, "phone-number"),
        "line_1": text(details, "address-line-1"),
        "line_2": text(details, "address-line-2"),
        "city": text(details, "city"),
        "province": text(details, "prov-state"),
        "country": text(details, "country-code"),
        "postal_code": text(details, "postal-zip-code"),
    }


def _contract_id(shipments: list[Shipment]) -> str | None:
    for shipment in shipments:
        found = find_path(
            parse_untrusted(shipment.request_xml), "delivery-spec", "settlement-info", "contract-id"
        )
        if found is not None and found.text and found.text.strip():
            return found.text.strip()
    return None


# --- writing the answers ---------------------------------------------------------------------------


def _weight(shipment: Shipment) -> Decimal:
    found = find_path(
        parse_untrusted(shipment.request_xml), "delivery-spec", "parcel-characteristics", "weight"
    )
    return Decimal((found.text or "1").strip()) if found is not None else Decimal(1)


def _pricing(parent: etree._Element, shipments: list[Shipment]) -> None:
    base = sum(
        (
            (Decimal("9.75") + _weight(shipment) * Decimal("1.85")).quantize(CENT, ROUND_HALF_UP)
            for shipment in shipments
        ),
        Decimal(0),
    )
    discount = -(base * Decimal("0.03")).quantize(CENT, ROUND_HALF_UP)
    surcharges = (base * Decimal("0.115")).quantize(CENT, ROUND_HALF_UP)
    pre_tax = base + discount + surcharges
    gst = (pre_tax * Decimal("0.05")).quantize(CENT, ROUND_HALF_UP)
    sub(parent, "base-cost", str(base))
    sub(parent, "automation-discount", str(discount))
    sub(parent, "options-and-surcharges", str(surcharges))
    sub(parent, "gst", str(gst))
    sub(parent, "pst", "0.00")
    sub(parent, "hst", "0.00")
    sub(parent, "total-due-cpc", str(pre_tax + gst))


def _address(parent: etree._Element, address: dict[str, str]) -> None:
    sub(parent, "manifest-company", address.get("company") or "Sandbox")
    if address.get("name"):
        sub(parent, "manifest-name", address["name"])
    sub(parent, "phone-number", address.get("phone", ""))
    details = sub(parent, "address-details")
    sub(details, "address-line-1", address.get("line_1") or "-")
    if address.get("line_2"):
        sub(details, "address-line-2", address["line_2"])
    sub(details, "city", address.get("city") or "-")
    sub(details, "prov-state", address.get("province") or "ON")
    if address.get("country"):
        sub(details, "country-code", address["country"])
    sub(details, "postal-zip-code", address.get("postal_code") or "K1G1C0")
