"""Canada Post's tracking details (``GET …/vis/track/pin/{pin}/detail``, track.xsd), parsed into a
normalised carrier status and the parcel's events.

Answers have been seen in both the ``…/ws/track`` and ``…/ws/track-v2`` namespaces (and in none),
so elements are matched by local name. Error ``004`` ("No Pin History") is what Canada Post says of
a label no scan has reached yet: a new label, not a failure (``NO_HISTORY``).

There is no delivered flag in the answer: the status comes from the event codes, by the table below
(Canada Post's code tables are not published in a machine-readable form; the groups follow the
codes two independent integrations use, karrio's and active_shipping's, checked against the
samples in ``../shared/reference/canadapost/samples/tracking-*``). The status is that of the newest
event whose code says something about where the parcel is; a code that only adds information (a
signature image recorded) says nothing, and a code not in the table is ``unknown`` with its
description kept, never guessed. Delivered is final: once an event says delivered, the parcel is
delivered whatever comes after it.

Every value is checked before it is stored or shown: the PIN against the one asked for, event
codes as digits, dates and times as such, free text bounded and printable.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from lxml import etree

from fulfil.canadapost.responses import (
    TRACKING_PIN,
    ResponseFormatError,
    displayable,
    document_root,
    messages_in,
    shown,
    single_child,
    single_value,
)
from fulfil.xml_parsing import children, local_name


class CarrierStatus(enum.StrEnum):
    PRE_TRANSIT = "pre_transit"  # a label, no scan yet (or only the electronic notice)
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_ATTEMPTED = "delivery_attempted"  # includes: waiting at a post office for pick-up
    EXCEPTION = "exception"  # held, delayed, damaged, an address problem
    RETURNED = "returned"  # on its way back to the sender
    DELIVERED = "delivered"
    UNKNOWN = "unknown"  # the newest event's code is not in the table


def _codes(*items: int | tuple[int, int]) -> frozenset[int]:
    found: set[int] = set()
    for item in items:
        if isinstance(item, tuple):
            found.update(range(item[0], item[1] + 1))
        else:
            found.add(item)
    return frozenset(found)


# Event codes by the status they mean (as integers: Canada Post writes "0174" and "174" alike).
EVENT_STATUSES: dict[CarrierStatus, frozenset[int]] = {
    CarrierStatus.DELIVERED: _codes(1408, 1409, (1421, 1434), 1441, 1442, (1496, 1499)),
    CarrierStatus.OUT_FOR_DELIVERY: _codes(174, 500),
    CarrierStatus.DELIVERY_ATTEMPTED: _codes(
        # nobody home, business closed, refused at the door: a card left
        (167, 169),
        179,
        (181, 184),
        190,
        (1415, 1420),
        (1481, 1483),
        (1491, 1493),
        # waiting for the customer at a post office or parcel locker
        118,
        156,
        1407,
        1410,
        (1435, 1438),
        1479,
        1488,
        1701,
        2410,
    ),
    CarrierStatus.EXCEPTION: _codes(
        # held (customs, duties, documents)
        117,
        120,
        121,
        125,
        127,
        810,
        1411,
        1414,
        1443,
        1484,
        1487,
        1494,
        2411,
        2414,
        4700,
        # delayed (weather, a wrong or incomplete address)
        (159, 166),
        172,
        173,
        2412,
        # damaged, missorted, lost, vehicle trouble, address not found, access refused
        119,
        (122, 124),
        126,
        (128, 155),
        157,
        158,
        180,
        (185, 189),
        1100,
        1413,
        1440,
        1450,
        1485,
        1486,
        1489,
        1490,
        2600,
        2802,
        3001,
        4650,
    ),
    CarrierStatus.IN_TRANSIT: _codes(
        # picked up, accepted at a post office, processed, in transit between facilities
        (100, 107),
        170,
        171,
        175,
        176,
        (1400, 1405),
        2300,
        3002,
    ),
    CarrierStatus.PRE_TRANSIT: _codes(3000),
}
# Codes that add information without saying where the parcel is.
INFORMATIONAL_CODES = _codes(20, 21)
# A return is told by its words: the code tables fulfil has do not single the codes out.
_RETURN_WORDS = re.compile(r"\breturn(?:ed|ing)? to (?:the )?sender\b|\bbeing returned\b", re.IGNORECASE)

_STATUS_OF_CODE: dict[int, CarrierStatus] = {
    code: status for status, codes in EVENT_STATUSES.items() for code in codes
}

# The zones Canada Post names (event-time-zone), as offsets from UTC.
ZONE_OFFSETS: dict[str, timedelta] = {
    "NST": timedelta(hours=-3, minutes=-30),
    "NDT": timedelta(hours=-2, minutes=-30),
    "AST": timedelta(hours=-4),
    "ADT": timedelta(hours=-3),
    "EST": timedelta(hours=-5),
    "EDT": timedelta(hours=-4),
    "CST": timedelta(hours=-6),
    "CDT": timedelta(hours=-5),
    "MST": timedelta(hours=-7),
    "MDT": timedelta(hours=-6),
    "PST": timedelta(hours=-8),
    "PDT": timedelta(hours=-7),
    "UTC": timedelta(0),
    "GMT": timedelta(0),
}
# For a zone Canada Post does not name: the province's.
PROVINCE_ZONES: dict[str, str] = {
    "NL": "America/St_Johns",
    "NS": "America/Halifax",
    "PE": "America/Halifax",
    "NB": "America/Moncton",
    "QC": "America/Toronto",
    "ON": "America/Toronto",
    "MB": "America/Winnipeg",
    "SK": "America/Regina",
    "AB": "America/Edmonton",
    "BC": "America/Vancouver",
    "YT": "America/Whitehorse",
    "NT": "America/Yellowknife",
    "NU": "America/Iqaluit",
}

_EVENT_CODE = re.compile(r"[0-9]{1,5}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}(?::[0-9]{2})?")
_ZONE = re.compile(r"[A-Z]{1,5}")
_PROVINCE = re.compile(r"[A-Z]{2}")
_MAX_DESCRIPTION = 200
_MAX_PLACE = 100
_MAX_EVENTS = 500  # track.xsd does not bound them; a parcel has tens


@dataclass(frozen=True)
class TrackingEvent:
    code: str  # as Canada Post wrote it ("0174")
    occurred_at: datetime  # with the offset of the zone the scan was made in
    time_zone: str | None  # as Canada Post named it ("EST")
    description: str
    site: str | None
    province: str | None
    signatory: str | None
    status: CarrierStatus | None  # what the code means; None: informational

    @property
    def key(self) -> tuple[str, datetime, str]:
        """What makes an event the same event in two answers: its code, its moment and its place."""
        return (str(int(self.code)), self.occurred_at, self.site or "")


@dataclass(frozen=True)
class TrackingDetail:
    pin: str
    status: CarrierStatus
    expected_delivery: date | None  # the changed date when Canada Post moved it
    events: tuple[TrackingEvent, ...]  # newest first

    @property
    def last_event(self) -> TrackingEvent | None:
        return self.events[0] if self.events else None

    @property
    def delivered_at(self) -> datetime | None:
        for event in self.events:
            if event.status is CarrierStatus.DELIVERED:
                return event.occurred_at
        return None


def status_of_code(code: str, description: str = "") -> CarrierStatus | None:
    """What an event code means (None: it adds information only)."""
    if _RETURN_WORDS.search(description):
        return CarrierStatus.RETURNED
    number = int(code)
    if number in INFORMATIONAL_CODES:
        return None
    return _STATUS_OF_CODE.get(number, CarrierStatus.UNKNOWN)


def status_of_events(events: tuple[TrackingEvent, ...]) -> CarrierStatus:
    """The parcel's status from its events, newest first (delivered is final)."""
    if any(event.status is CarrierStatus.DELIVERED for event in events):
        return CarrierStatus.DELIVERED
    for event in events:
        if event.status is not None:
            return event.status
    return CarrierStatus.PRE_TRANSIT


def no_pin_history(body: bytes | str | None) -> bool:
    """True for Canada Post's error 004: no scan has reached this PIN yet."""
    messages = messages_in(body)
    if not messages:
        return False
    return all(message.code == "004" for message in messages)


def parse_tracking_detail(body: bytes | str, *, pin: str) -> TrackingDetail:
    """The answer to Get Tracking Details for ``pin``. Raises ResponseFormatError, naming the
    element, for an answer that is not one or holds a value fulfil cannot trust."""
    root = document_root(body, ("tracking-detail",))
    answered_pin = single_value(root, "pin")
    if answered_pin is None or not TRACKING_PIN.fullmatch(answered_pin):
        raise ResponseFormatError(
            f"<pin> {shown(answered_pin or '')} in <tracking-detail> is not a Canada Post tracking PIN"
        )
    if answered_pin != pin:
        raise ResponseFormatError(f"<tracking-detail> is for PIN {answered_pin}, not for {pin}")
    expected = _date(root, "changed-expected-date") or _date(root, "expected-delivery-date")
    significant = single_child(root, "significant-events")
    occurrences = children(significant, "occurrence") if significant is not None else []
    if len(occurrences) > _MAX_EVENTS:
        raise ResponseFormatError(
            f"<significant-events> holds {len(occurrences)} events; fulfil reads at most {_MAX_EVENTS}"
        )
    events = tuple(_event(occurrence, index) for index, occurrence in enumerate(occurrences, start=1))
    # Newest first, as Canada Post lists them; an answer out of order is put in order.
    events = tuple(sorted(events, key=lambda event: event.occurred_at, reverse=True))
    return TrackingDetail(answered_pin, status_of_events(events), expected, events)


def _event(occurrence: etree._Element, index: int) -> TrackingEvent:
    where = f"event {index}"
    code = single_value(occurrence, "event-identifier")
    if code is None or not _EVENT_CODE.fullmatch(code):
        raise ResponseFormatError(
            f"<event-identifier> {shown(code or '')} of {where} is not an event code (1 to 5 digits)"
        )
    description = " ".join((single_value(occurrence, "event-description") or "").split())
    description = displayable(description, _MAX_DESCRIPTION)
    province = _matching(occurrence, "event-province", _PROVINCE, where, "a province code")
    zone = _matching(occurrence, "event-time-zone", _ZONE, where, "a time zone abbreviation")
    on = _date(occurrence, "event-date", where)
    if on is None:
        raise ResponseFormatError(f"{where} has no <event-date>")
    at = _time(occurrence, "event-time", where)
    return TrackingEvent(
        code=code,
        occurred_at=_moment(on, at, zone, province, where),
        time_zone=zone,
        description=description,
        site=_text(occurrence, "event-site", _MAX_PLACE),
        province=province,
        signatory=_text(occurrence, "signatory-name", _MAX_PLACE),
        status=status_of_code(code, description),
    )


def _moment(on: date, at: time, zone: str | None, province: str | None, where: str) -> datetime:
    naive = datetime.combine(on, at)
    if zone is not None and zone in ZONE_OFFSETS:
        return naive.replace(tzinfo=timezone(ZONE_OFFSETS[zone], zone))
    if province is not None and province in PROVINCE_ZONES:
        return naive.replace(tzinfo=ZoneInfo(PROVINCE_ZONES[province]))
    named = f"time zone {zone!a}" if zone else "no time zone"
    raise ResponseFormatError(f"{where} has {named} fulfil knows, and no province to take one from")


def _matching(
    parent: etree._Element, name: str, pattern: re.Pattern[str], where: str, what: str
) -> str | None:
    value = single_value(parent, name)
    if value is not None and not pattern.fullmatch(value):
        raise ResponseFormatError(f"<{name}> {shown(value)} of {where} is not {what}")
    return value


def _date(parent: etree._Element, name: str, where: str | None = None) -> date | None:
    value = single_value(parent, name)
    if value is None:
        return None
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        place = where or f"<{local_name(parent)}>"
        raise ResponseFormatError(f"<{name}> {shown(value)} of {place} is not a date (YYYY-MM-DD)") from None


def _time(parent: etree._Element, name: str, where: str) -> time:
    value = single_value(parent, name)
    if value is None:
        return time(0, 0)  # a scan with a date only: the start of its day
    try:
        if not _TIME.fullmatch(value):
            raise ValueError(value)
        return time.fromisoformat(value)
    except ValueError:
        raise ResponseFormatError(f"<{name}> {shown(value)} of {where} is not a time (HH:MM:SS)") from None


def _text(parent: etree._Element, name: str, max_length: int) -> str | None:
    value = single_value(parent, name)
    if value is None:
        return None
    return displayable(" ".join(value.split()), max_length) or None
