"""Tracking events that unfold on a simulated clock after a label is bought.

A parcel's life is a fixed timeline of real Canada Post event codes (3000 electronic information,
2300 picked up, 0100 processed, 0174 out for delivery, 1496 delivered). Event times are on the
simulated clock (label time + simulated offset); an event becomes visible once enough real time
has passed: ``offset / time_scale`` seconds. Answers list events newest first, like Canada Post.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from lxml import etree

from fulfil.sandbox.pdf import service_name
from fulfil.sandbox.state import Shipment

TRACK_NS = "http://www.canadapost.ca/ws/track"
DELIVERED_CODE = "1496"

# Where events are scanned decides the time zone Canada Post reports them in.
PROVINCE_ZONES: dict[str, str] = {
    "ON": "America/Toronto",
    "QC": "America/Toronto",
    "BC": "America/Vancouver",
    "AB": "America/Edmonton",
    "MB": "America/Winnipeg",
    "SK": "America/Regina",
    "NS": "America/Halifax",
    "PE": "America/Halifax",
    "NB": "America/Moncton",
    "NL": "America/St_Johns",
    "YT": "America/Whitehorse",
    "NT": "America/Yellowknife",
    "NU": "America/Iqaluit",
}
FRENCH_SERVICE_NAMES: dict[str, str] = {
    "DOM.RP": "Colis standard",
    "DOM.EP": "Colis accélérés",
    "DOM.XP": "Xpresspost",
    "DOM.PC": "Priorité",
}


@dataclass(frozen=True)
class Milestone:
    hours: float  # simulated hours after the label was bought
    code: str
    description: str
    at_destination: bool
    event_type: str


TIMELINE: tuple[Milestone, ...] = (
    Milestone(0.0, "3000", "Order information received by Canada Post", False, "INFO"),
    Milestone(6.0, "2300", "Item picked up by Canada Post", False, "INDUCTION"),
    Milestone(14.0, "0100", "Item processed at postal facility", False, "PROCESSING"),
    Milestone(30.0, "0100", "Item processed at postal facility", True, "PROCESSING"),
    Milestone(44.0, "0174", "Item out for delivery", True, "OUT_FOR_DELIVERY"),
    Milestone(50.0, DELIVERED_CODE, "Item successfully delivered", True, "DELIVERED"),
)
EXPECTED_TRANSIT_DAYS = 3


@dataclass(frozen=True)
class Event:
    milestone: Milestone
    moment: datetime  # on the simulated clock, UTC
    site: str
    province: str

    def local(self) -> datetime:
        return self.moment.astimezone(ZoneInfo(PROVINCE_ZONES.get(self.province, "America/Toronto")))


def events(shipment: Shipment, now: float, time_scale: float) -> list[Event]:
    """The events visible at real time ``now``, newest first."""
    elapsed_simulated_hours = max(0.0, now - shipment.created_at) * time_scale / 3600.0
    start = datetime.fromtimestamp(shipment.created_at, UTC)
    visible = []
    for milestone in TIMELINE:
        if milestone.hours > elapsed_simulated_hours:
            break
        place = shipment.destination if milestone.at_destination else shipment.sender
        visible.append(
            Event(
                milestone=milestone,
                moment=start + timedelta(hours=milestone.hours),
                site=(place.get("city") or "").upper(),
                province=place.get("province") or "",
            )
        )
    visible.reverse()
    return visible


def expected_delivery(shipment: Shipment) -> str:
    start = datetime.fromtimestamp(shipment.created_at, UTC).astimezone(ZoneInfo("America/Toronto"))
    return (start + timedelta(days=EXPECTED_TRANSIT_DAYS)).date().isoformat()


def _add(parent: etree._Element, name: str, text: str | None = "") -> etree._Element:
    element = etree.SubElement(parent, f"{{{TRACK_NS}}}{name}")
    element.text = text or None
    return element


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def detail_document(shipment: Shipment, now: float, time_scale: float, customer_number: str) -> bytes:
    visible = events(shipment, now, time_scale)
    delivered = bool(visible) and visible[0].milestone.code == DELIVERED_CODE
    root = etree.Element(f"{{{TRACK_NS}}}tracking-detail", nsmap={None: TRACK_NS})
    _add(root, "pin", shipment.tracking_pin)
    _add(root, "active-exists", "1")
    _add(root, "archive-exists")
    _add(root, "changed-expected-date")
    _add(root, "destination-postal-id", shipment.destination.get("postal_code", ""))
    _add(root, "expected-delivery-date", expected_delivery(shipment))
    _add(root, "changed-expected-delivery-reason")
    _add(root, "mailed-by-customer-number", customer_number.zfill(10))
    _add(root, "mailed-on-behalf-of-customer-number", customer_number.zfill(10))
    _add(root, "original-pin")
    _add(root, "service-name", service_name(shipment.service_code))
    _add(
        root,
        "service-name-2",
        FRENCH_SERVICE_NAMES.get(shipment.service_code, service_name(shipment.service_code)),
    )
    _add(root, "customer-ref-1", shipment.customer_ref_1)
    _add(root, "customer-ref-2", shipment.customer_ref_2)
    _add(root, "return-pin")
    _add(root, "signature-image-exists", "false")
    _add(root, "suppress-signature", "false")
    _add(root, "delivery-options")
    significant = _add(root, "significant-events")
    for event in visible:
        occurrence = _add(significant, "occurrence")
        local = event.local()
        _add(occurrence, "event-identifier", event.milestone.code)
        _add(occurrence, "event-date", local.date().isoformat())
        _add(occurrence, "event-time", local.strftime("%H:%M:%S"))
        _add(occurrence, "event-time-zone", local.tzname())
        _add(occurrence, "event-description", event.milestone.description)
        signatory = shipment.destination.get("name", "").split(" ")[-1].upper() if delivered else ""
        _add(occurrence, "signatory-name", signatory if event.milestone.code == DELIVERED_CODE else "")
        _add(occurrence, "event-site", event.site)
        _add(occurrence, "event-province", event.province)
        _add(occurrence, "event-retail-location-id")
        _add(occurrence, "event-retail-name")
    return _serialize(root)


def summary_document(shipment: Shipment, now: float, time_scale: float) -> bytes:
    visible = events(shipment, now, time_scale)
    latest = visible[0] if visible else None
    delivered = latest is not None and latest.milestone.code == DELIVERED_CODE
    picked_up = [event for event in visible if event.milestone.code == "2300"]
    root = etree.Element(f"{{{TRACK_NS}}}tracking-summary", nsmap={None: TRACK_NS})
    summary = _add(root, "pin-summary")
    _add(summary, "pin", shipment.tracking_pin)
    _add(summary, "origin-postal-id", shipment.sender.get("postal_code", "")[:3])
    _add(summary, "destination-postal-id", shipment.destination.get("postal_code", "")[:3])
    _add(summary, "destination-province", shipment.destination.get("province", ""))
    _add(summary, "service-name", service_name(shipment.service_code))
    _add(summary, "mailed-on-date", picked_up[0].local().date().isoformat() if picked_up else "")
    _add(summary, "expected-delivery-date", expected_delivery(shipment))
    _add(summary, "actual-delivery-date", latest.local().date().isoformat() if delivered and latest else "")
    _add(summary, "delivery-option-completed-ind", "1" if delivered else "0")
    _add(summary, "event-date-time", latest.local().strftime("%Y%m%d:%H%M%S") if latest else "")
    _add(summary, "event-description", latest.milestone.description if latest else "")
    _add(summary, "attempted-date")
    _add(summary, "customer-ref-1", shipment.customer_ref_1)
    _add(summary, "customer-ref-2", shipment.customer_ref_2)
    _add(summary, "return-pin")
    _add(summary, "event-type", latest.milestone.event_type if latest else "")
    _add(summary, "event-location", latest.site if latest else "")
    signatory = shipment.destination.get("name", "").split(" ")[-1].upper() if delivered else ""
    _add(summary, "signatory-name", signatory)
    return _serialize(root)
