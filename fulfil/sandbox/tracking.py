"""Tracking events that unfold on a simulated clock after a label is bought.

A parcel's life follows one of a few scenarios, each a timeline of real Canada Post event codes:

- ``delivered``: 3000 electronic information, 2300 picked up, 0100 processed (twice), 0174 out for
  delivery, 1496 delivered;
- ``attempted``: as far as out for delivery, then 0168 attempted (notice card left), 1701 at a post
  office for pick-up, and 1441 picked up there a simulated day after the attempt;
- ``exception``: 0173 an addressing error (a delay: the expected date moves a day), then back in
  transit (0100), out for delivery and delivered;
- ``returned``: out for delivery, 1415 refused, then two scans whose words say "returned to
  sender" (Canada Post singles a return out by its description, not its code); never delivered;
- ``never_scanned``: the 3000 notice only, forever: a label bought, a parcel never handed over.

Which scenario a parcel follows: the one chosen for its order (customer-ref-1, where fulfil puts
the order id) at run time or in the config, else the config's default, which may be ``mix``: a
stable hash of the PIN picks one, mostly delivered, so a demo shows every kind of parcel.

Event times are on the simulated clock (label time + simulated offset); an event becomes visible
once enough real time has passed: ``offset / time_scale`` seconds. Before the config's
``tracking_no_history_hours`` have passed, Canada Post has no history for the PIN at all (error
004). Answers list events newest first, like Canada Post.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from lxml import etree

from fulfil.sandbox.pdf import service_name
from fulfil.sandbox.state import Shipment

TRACK_NS = "http://www.canadapost.ca/ws/track"
DELIVERED_CODE = "1496"

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
    event_type: str  # the summary's <event-type>; DELIVERED and ATTEMPTED also drive its dates
    # Days this event moves the expected delivery date by (Canada Post's changed-expected-date).
    delay_days: int = 0


def _at_origin(hours: float, code: str, description: str, event_type: str) -> Milestone:
    return Milestone(hours, code, description, False, event_type)


def _at_destination(hours: float, code: str, description: str, event_type: str, delay: int = 0) -> Milestone:
    return Milestone(hours, code, description, True, event_type, delay)


# The first hours every scenario shares: the electronic notice, pick-up, the origin's plant.
_HANDED_OVER: tuple[Milestone, ...] = (
    _at_origin(0.0, "3000", "Order information received by Canada Post", "INFO"),
    _at_origin(6.0, "2300", "Item picked up by Canada Post", "INDUCTION"),
    _at_origin(14.0, "0100", "Item processed at postal facility", "PROCESSING"),
)
_OUT_FOR_DELIVERY: tuple[Milestone, ...] = (
    *_HANDED_OVER,
    _at_destination(30.0, "0100", "Item processed at postal facility", "PROCESSING"),
    _at_destination(44.0, "0174", "Item out for delivery", "OUT_FOR_DELIVERY"),
)
TIMELINE: tuple[Milestone, ...] = (
    *_OUT_FOR_DELIVERY,
    _at_destination(50.0, DELIVERED_CODE, "Item successfully delivered", "DELIVERED"),
)
EXPECTED_TRANSIT_DAYS = 3


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str  # what happens to the parcel, in a line (the serve banner says it)
    timeline: tuple[Milestone, ...]


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("delivered", "picked up, in transit, out for delivery, delivered", TIMELINE),
        Scenario(
            "attempted",
            "a card left at the door, then picked up at the post office a day later",
            (
                *_OUT_FOR_DELIVERY,
                _at_destination(
                    46.0,
                    "0168",
                    "Attempted delivery; customer not at home. Notice card left indicating where "
                    "item can be picked up",
                    "ATTEMPTED",
                ),
                _at_destination(60.0, "1701", "Item available for pick-up at the Post Office", "ATTEMPTED"),
                _at_destination(
                    70.0, "1441", "Item picked up at the Post Office by the recipient", "DELIVERED"
                ),
            ),
        ),
        Scenario(
            "exception",
            "an addressing error delays it a day, then it is delivered",
            (
                *_HANDED_OVER,
                _at_destination(
                    30.0,
                    "0173",
                    "Customer addressing error found; attempting to correct. Possible delay",
                    "DELAYED",
                    delay=1,
                ),
                _at_destination(54.0, "0100", "Item processed at postal facility", "PROCESSING"),
                _at_destination(68.0, "0174", "Item out for delivery", "OUT_FOR_DELIVERY"),
                _at_destination(74.0, DELIVERED_CODE, "Item successfully delivered", "DELIVERED"),
            ),
        ),
        Scenario(
            "returned",
            "refused at the door and returned to sender; never delivered",
            (
                *_OUT_FOR_DELIVERY,
                _at_destination(46.0, "1415", "Item refused by recipient", "ATTEMPTED"),
                # fulfil, like Canada Post's own pages, tells a return by these words.
                _at_destination(50.0, "0100", "Item being returned to sender", "RETURNED"),
                _at_origin(70.0, "0100", "Item returned to sender", "RETURNED"),
            ),
        ),
        Scenario(
            "never_scanned",
            "the electronic notice only: the parcel is never handed over",
            _HANDED_OVER[:1],
        ),
    )
}
DEFAULT_SCENARIO = "delivered"
# Not a scenario: "pick one per parcel from a hash of its PIN".
MIX = "mix"
# Shares of the mix, in percent: mostly delivered, a few of every kind of trouble.
MIX_SHARES: tuple[tuple[str, int], ...] = (
    ("delivered", 70),
    ("attempted", 10),
    ("exception", 10),
    ("returned", 5),
    ("never_scanned", 5),
)


def check_scenario(name: str, *, allow_mix: bool = False) -> str:
    """``name`` if it is a scenario (or ``mix`` where allowed); a ValueError naming the choices if not."""
    if isinstance(name, str) and (name in SCENARIOS or (allow_mix and name == MIX)):
        return name
    choices = [*SCENARIOS, MIX] if allow_mix else list(SCENARIOS)
    raise ValueError(f"unknown tracking scenario {name!r}; scenarios: {', '.join(choices)}")


def parse_scenario_choice(text: str) -> tuple[str, str]:
    """``ORDER=SCENARIO`` (the serve option) as (order id, scenario)."""
    order_id, separator, name = text.rpartition("=")
    if not separator or not order_id.strip() or not name.strip():
        raise ValueError(f"a tracking scenario is given as ORDER=SCENARIO, not {text!r}")
    return order_id.strip(), check_scenario(name.strip())


def mixed_scenario(pin: str) -> str:
    """The mix's scenario for a PIN: the same PIN always gets the same one, on any machine."""
    digest = hashlib.sha256(f"fulfil-sandbox-tracking:{pin}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % 100
    for name, share in MIX_SHARES:
        if point < share:
            return name
        point -= share
    raise AssertionError("the mix's shares add up to 100")


class ScenarioBook:
    """Which scenario each parcel follows: a choice made at run time for its order, else the one
    configured for its order, else the default (a scenario, or ``mix``).

    Run-time choices belong to the sandbox's current world: they are forgotten when the state's
    generation moves on (``Sandbox.reset()``), so a reset returns to exactly the configuration.
    """

    def __init__(self, configured: Mapping[str, str], default: str, generation: Callable[[], int]) -> None:
        self._configured = dict(configured)
        self._default = default
        self._generation = generation
        self._chosen: dict[str, str] = {}
        self._chosen_in = generation()
        self._lock = threading.Lock()

    def choose(self, order_id: str, name: str | None) -> None:
        """From now on the order's parcels follow ``name`` (None: back to the configuration)."""
        if name is not None:
            check_scenario(name)
        with self._lock:
            self._forget_an_old_world()
            if name is None:
                self._chosen.pop(order_id, None)
            else:
                self._chosen[order_id] = name

    def name_for(self, shipment: Shipment) -> str:
        order_id = shipment.customer_ref_1 or ""
        with self._lock:
            self._forget_an_old_world()
            chosen = self._chosen.get(order_id)
        name = chosen or self._configured.get(order_id) or self._default
        return mixed_scenario(shipment.tracking_pin) if name == MIX else name

    def scenario_for(self, shipment: Shipment) -> Scenario:
        return SCENARIOS[self.name_for(shipment)]

    def _forget_an_old_world(self) -> None:
        current = self._generation()
        if current != self._chosen_in:
            self._chosen.clear()
            self._chosen_in = current


@dataclass(frozen=True)
class Event:
    milestone: Milestone
    moment: datetime  # on the simulated clock, UTC
    site: str
    province: str

    def local(self) -> datetime:
        return self.moment.astimezone(ZoneInfo(PROVINCE_ZONES.get(self.province, "America/Toronto")))

    @property
    def delivered(self) -> bool:
        return self.milestone.event_type == "DELIVERED"


def simulated_hours(shipment: Shipment, now: float, time_scale: float) -> float:
    """Simulated hours since the label was bought, at real time ``now``."""
    return max(0.0, now - shipment.created_at) * time_scale / 3600.0


def has_history(shipment: Shipment, now: float, time_scale: float, no_history_hours: float) -> bool:
    """False while Canada Post would still answer 004 (No Pin History) for the PIN."""
    return simulated_hours(shipment, now, time_scale) >= no_history_hours


def events(
    shipment: Shipment, now: float, time_scale: float, scenario: Scenario = SCENARIOS[DEFAULT_SCENARIO]
) -> list[Event]:
    """The events of ``scenario`` visible at real time ``now``, newest first."""
    elapsed = simulated_hours(shipment, now, time_scale)
    start = datetime.fromtimestamp(shipment.created_at, UTC)
    visible = []
    for milestone in scenario.timeline:
        if milestone.hours > elapsed:
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


def _expected_date(shipment: Shipment) -> date:
    start = datetime.fromtimestamp(shipment.created_at, UTC).astimezone(ZoneInfo("America/Toronto"))
    return (start + timedelta(days=EXPECTED_TRANSIT_DAYS)).date()


def expected_delivery(shipment: Shipment) -> str:
    return _expected_date(shipment).isoformat()


def _changed_expectation(shipment: Shipment, visible: list[Event]) -> tuple[str, str]:
    """(changed-expected-date, changed-expected-delivery-reason): empty until a delay is scanned."""
    delays = [event for event in visible if event.milestone.delay_days]
    if not delays:
        return "", ""
    days = sum(event.milestone.delay_days for event in delays)
    return (_expected_date(shipment) + timedelta(days=days)).isoformat(), delays[0].milestone.description


def _signatory(shipment: Shipment) -> str:
    return shipment.destination.get("name", "").split(" ")[-1].upper()


def _add(parent: etree._Element, name: str, text: str | None = "") -> etree._Element:
    element = etree.SubElement(parent, f"{{{TRACK_NS}}}{name}")
    element.text = text or None
    return element


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def detail_document(
    shipment: Shipment,
    now: float,
    time_scale: float,
    customer_number: str,
    *,
    scenario: Scenario = SCENARIOS[DEFAULT_SCENARIO],
) -> bytes:
    visible = events(shipment, now, time_scale, scenario)
    changed_date, changed_reason = _changed_expectation(shipment, visible)
    root = etree.Element(f"{{{TRACK_NS}}}tracking-detail", nsmap={None: TRACK_NS})
    _add(root, "pin", shipment.tracking_pin)
    _add(root, "active-exists", "1")
    _add(root, "archive-exists")
    _add(root, "changed-expected-date", changed_date)
    _add(root, "destination-postal-id", shipment.destination.get("postal_code", ""))
    _add(root, "expected-delivery-date", expected_delivery(shipment))
    _add(root, "changed-expected-delivery-reason", changed_reason)
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
        _add(occurrence, "signatory-name", _signatory(shipment) if event.delivered else "")
        _add(occurrence, "event-site", event.site)
        _add(occurrence, "event-province", event.province)
        _add(occurrence, "event-retail-location-id")
        _add(occurrence, "event-retail-name")
    return _serialize(root)


def summary_document(
    shipment: Shipment, now: float, time_scale: float, *, scenario: Scenario = SCENARIOS[DEFAULT_SCENARIO]
) -> bytes:
    """The one-parcel summary: the latest event, and the dates the events so far settle."""
    visible = events(shipment, now, time_scale, scenario)
    latest = visible[0] if visible else None
    delivered = latest is not None and latest.delivered
    picked_up = [event for event in visible if event.milestone.code == "2300"]
    attempts = [event for event in visible if event.milestone.event_type == "ATTEMPTED"]
    changed_date, _reason = _changed_expectation(shipment, visible)
    root = etree.Element(f"{{{TRACK_NS}}}tracking-summary", nsmap={None: TRACK_NS})
    summary = _add(root, "pin-summary")
    _add(summary, "pin", shipment.tracking_pin)
    _add(summary, "origin-postal-id", shipment.sender.get("postal_code", "")[:3])
    _add(summary, "destination-postal-id", shipment.destination.get("postal_code", "")[:3])
    _add(summary, "destination-province", shipment.destination.get("province", ""))
    _add(summary, "service-name", service_name(shipment.service_code))
    _add(summary, "mailed-on-date", picked_up[0].local().date().isoformat() if picked_up else "")
    # The summary has one expected date: the latest estimate.
    _add(summary, "expected-delivery-date", changed_date or expected_delivery(shipment))
    _add(summary, "actual-delivery-date", latest.local().date().isoformat() if delivered and latest else "")
    _add(summary, "delivery-option-completed-ind", "1" if delivered else "0")
    _add(summary, "event-date-time", latest.local().strftime("%Y%m%d:%H%M%S") if latest else "")
    _add(summary, "event-description", latest.milestone.description if latest else "")
    # The first attempt: the date a card was left, whatever happened after it.
    _add(summary, "attempted-date", attempts[-1].local().date().isoformat() if attempts else "")
    _add(summary, "customer-ref-1", shipment.customer_ref_1)
    _add(summary, "customer-ref-2", shipment.customer_ref_2)
    _add(summary, "return-pin")
    _add(summary, "event-type", latest.milestone.event_type if latest else "")
    _add(summary, "event-location", latest.site if latest else "")
    _add(summary, "signatory-name", _signatory(shipment) if delivered else "")
    return _serialize(root)
