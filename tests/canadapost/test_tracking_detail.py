"""Canada Post's tracking details parsed: the shared samples, the sandbox's answers, every namespace
seen, error 004, the status table, and every value an answer could get wrong."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from fulfil.canadapost.responses import ResponseFormatError
from fulfil.canadapost.tracking import (
    EVENT_STATUSES,
    CarrierStatus,
    no_pin_history,
    parse_tracking_detail,
    status_of_code,
)
from fulfil.sandbox import tracking as sandbox_tracking
from fulfil.sandbox.state import Shipment
from tests.shared_reference import canadapost_samples

pytestmark = pytest.mark.unit

PIN = "7023210039414604"


def detail(
    events: str, *, pin: str = PIN, namespace: str = "http://www.canadapost.ca/ws/track", extra: str = ""
) -> bytes:
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    return (
        f"<tracking-detail{xmlns}><pin>{pin}</pin><expected-delivery-date>2026-12-04</expected-delivery-date>"
        f"{extra}<significant-events>{events}</significant-events></tracking-detail>"
    ).encode()


def occurrence(
    code: str,
    *,
    on: str = "2026-12-02",
    at: str = "10:15:00",
    zone: str = "EST",
    description: str = "Item processed",
    site: str = "OTTAWA",
    province: str = "ON",
) -> str:
    return (
        f"<occurrence><event-identifier>{code}</event-identifier><event-date>{on}</event-date>"
        f"<event-time>{at}</event-time><event-time-zone>{zone}</event-time-zone>"
        f"<event-description>{description}</event-description><signatory-name/>"
        f"<event-site>{site}</event-site><event-province>{province}</event-province></occurrence>"
    )


def pin_of(body: bytes) -> str:
    found = re.search(rb"<pin>(\w+)</pin>", body)
    assert found is not None
    return found.group(1).decode()


# --- the shared samples ------------------------------------------------------------------------


def test_every_shared_tracking_detail_sample_parses() -> None:
    samples = sorted(canadapost_samples().glob("tracking-details-*.xml"))
    assert len(samples) >= 3
    for sample in samples:
        body = sample.read_bytes()
        parsed = parse_tracking_detail(body, pin=pin_of(body))
        assert parsed.events, sample.name
        # Newest first, each with the offset of the zone it was scanned in.
        assert list(parsed.events) == sorted(parsed.events, key=lambda e: e.occurred_at, reverse=True)
        assert all(event.occurred_at.utcoffset() is not None for event in parsed.events)


def test_the_delivered_sample_is_delivered_at_its_scan() -> None:
    body = (canadapost_samples() / "tracking-details-response-delivered.activeshipping.xml").read_bytes()
    parsed = parse_tracking_detail(body, pin="1371134583769923")
    assert parsed.status is CarrierStatus.DELIVERED
    assert parsed.delivered_at == datetime(2011, 2, 3, 11, 59, 59, tzinfo=timezone(timedelta(hours=-5)))
    # The changed expected date wins over the first one.
    assert str(parsed.expected_delivery) == "2011-02-11"
    assert parsed.last_event is not None
    assert parsed.last_event.code == "1496"


def test_the_undelivered_sample_is_out_for_delivery() -> None:
    body = (canadapost_samples() / "tracking-details-response-undelivered.activeshipping.xml").read_bytes()
    parsed = parse_tracking_detail(body, pin="1371134583769923")
    assert parsed.status is CarrierStatus.OUT_FOR_DELIVERY
    assert parsed.delivered_at is None


def test_a_sample_without_a_namespace_parses_and_a_signature_event_does_not_hide_delivery() -> None:
    body = (canadapost_samples() / "tracking-details-response.karrio.xml").read_bytes()
    parsed = parse_tracking_detail(body, pin="7023210039414604")
    assert parsed.last_event is not None
    assert parsed.last_event.code == "20"
    assert parsed.last_event.status is None
    assert parsed.status is CarrierStatus.DELIVERED


@pytest.mark.parametrize("name", ["error-tracking-004-no-pin-history.activeshipping.xml",
                                  "error-tracking-004-no-pin-history.karrio.xml"])  # fmt: skip
def test_error_004_in_either_namespace_is_no_history_yet(name: str) -> None:
    assert no_pin_history((canadapost_samples() / name).read_bytes())


def test_other_errors_are_not_no_history() -> None:
    assert not no_pin_history(
        b"<messages><message><code>E002</code><description>AAA</description></message></messages>"
    )
    assert not no_pin_history(b"not xml")
    assert not no_pin_history(None)


# --- namespaces and the sandbox --------------------------------------------------------------


@pytest.mark.parametrize(
    "namespace", ["http://www.canadapost.ca/ws/track", "http://www.canadapost.ca/ws/track-v2", ""]
)
def test_every_namespace_seen_parses_alike(namespace: str) -> None:
    parsed = parse_tracking_detail(detail(occurrence("0174"), namespace=namespace), pin=PIN)
    assert parsed.status is CarrierStatus.OUT_FOR_DELIVERY


def test_the_sandboxs_answers_parse_through_the_whole_timeline() -> None:
    created = time.time()
    shipment = Shipment(
        shipment_id="1",
        tracking_pin=PIN,
        contract=True,
        status="transmitted",
        created_at=created,
        request_xml=b"",
        label_key="k",
        artifact_id="a",
        service_code="DOM.EP",
        output_format="4x6",
        encoding="PDF",
        sender={"city": "Ottawa", "province": "ON", "postal_code": "K1A0A9"},
        destination={"city": "Vancouver", "province": "BC", "postal_code": "V6B1A1", "name": "Ana Lee"},
    )
    seen = []
    for hours in (0, 7, 15, 31, 45, 51):
        now = created + hours * 3600
        body = sandbox_tracking.detail_document(shipment, now, 1.0, "1234567")
        seen.append(parse_tracking_detail(body, pin=PIN).status)
    assert seen == [
        CarrierStatus.PRE_TRANSIT,
        CarrierStatus.IN_TRANSIT,
        CarrierStatus.IN_TRANSIT,
        CarrierStatus.IN_TRANSIT,
        CarrierStatus.OUT_FOR_DELIVERY,
        CarrierStatus.DELIVERED,
    ]
    delivered = parse_tracking_detail(
        sandbox_tracking.detail_document(shipment, created + 51 * 3600, 1.0, "1"), pin=PIN
    )
    # Scanned in Vancouver: Pacific time, and the same moment as the sandbox's clock says.
    assert delivered.delivered_at is not None
    assert delivered.delivered_at.utcoffset() in (timedelta(hours=-8), timedelta(hours=-7))
    assert abs(
        delivered.delivered_at - datetime.fromtimestamp(created, UTC) - timedelta(hours=50)
    ) < timedelta(seconds=1)


# --- the status table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("1496", CarrierStatus.DELIVERED),
        ("1408", CarrierStatus.DELIVERED),
        ("1421", CarrierStatus.DELIVERED),
        ("1434", CarrierStatus.DELIVERED),
        ("1442", CarrierStatus.DELIVERED),
        ("1499", CarrierStatus.DELIVERED),
        ("0174", CarrierStatus.OUT_FOR_DELIVERY),
        ("174", CarrierStatus.OUT_FOR_DELIVERY),
        ("0168", CarrierStatus.DELIVERY_ATTEMPTED),
        ("1435", CarrierStatus.DELIVERY_ATTEMPTED),
        ("0159", CarrierStatus.EXCEPTION),
        ("1484", CarrierStatus.EXCEPTION),
        ("0100", CarrierStatus.IN_TRANSIT),
        ("2300", CarrierStatus.IN_TRANSIT),
        ("3000", CarrierStatus.PRE_TRANSIT),
        ("9876", CarrierStatus.UNKNOWN),
    ],
)
def test_codes_mean_their_status(code: str, status: CarrierStatus) -> None:
    assert status_of_code(code) is status


def test_no_code_means_two_statuses() -> None:
    groups = list(EVENT_STATUSES.values())
    for index, codes in enumerate(groups):
        for other in groups[index + 1 :]:
            assert not codes & other


def test_the_delivered_codes_are_the_documented_ones() -> None:
    documented = {1408, 1409, *range(1421, 1435), 1441, 1442, *range(1496, 1500)}
    assert EVENT_STATUSES[CarrierStatus.DELIVERED] == documented


def test_a_return_is_told_by_its_words_whatever_the_code() -> None:
    assert status_of_code("1500", "Item being returned to sender") is CarrierStatus.RETURNED
    assert status_of_code("0100", "Item returned to sender") is CarrierStatus.RETURNED


def test_the_newest_event_that_says_where_the_parcel_is_decides() -> None:
    events = (
        occurrence("20", at="12:00:00", description="Signature image recorded")
        + occurrence("0168", at="11:00:00", description="Attempted delivery; notice card left")
        + occurrence("0174", at="08:00:00")
    )
    assert parse_tracking_detail(detail(events), pin=PIN).status is CarrierStatus.DELIVERY_ATTEMPTED


def test_delivered_is_final_whatever_comes_after() -> None:
    events = occurrence("0100", at="15:00:00") + occurrence("1496", at="11:00:00", description="Delivered")
    assert parse_tracking_detail(detail(events), pin=PIN).status is CarrierStatus.DELIVERED


def test_no_events_is_pre_transit_and_an_unknown_newest_code_is_unknown() -> None:
    assert parse_tracking_detail(detail(""), pin=PIN).status is CarrierStatus.PRE_TRANSIT
    events = occurrence("7777", at="12:00:00", description="Something new") + occurrence(
        "0100", at="08:00:00"
    )
    parsed = parse_tracking_detail(detail(events), pin=PIN)
    assert parsed.status is CarrierStatus.UNKNOWN
    assert parsed.last_event is not None
    assert parsed.last_event.description == "Something new"


def test_events_out_of_order_are_put_newest_first() -> None:
    events = occurrence("0100", at="08:00:00") + occurrence("0174", at="12:00:00")
    parsed = parse_tracking_detail(detail(events), pin=PIN)
    assert [event.code for event in parsed.events] == ["0174", "0100"]


# --- times -------------------------------------------------------------------------------------


def test_an_event_time_carries_the_offset_of_its_zone() -> None:
    parsed = parse_tracking_detail(
        detail(occurrence("0100", at="10:15:00", zone="NDT", province="NL")), pin=PIN
    )
    moment = parsed.events[0].occurred_at
    assert moment.utcoffset() == timedelta(hours=-2, minutes=-30)
    assert moment.astimezone(UTC) == datetime(2026, 12, 2, 12, 45, tzinfo=UTC)


def test_a_zone_canada_post_does_not_name_falls_back_to_the_province() -> None:
    parsed = parse_tracking_detail(detail(occurrence("0100", zone="HNP", province="BC")), pin=PIN)
    assert parsed.events[0].occurred_at.utcoffset() == timedelta(hours=-8)  # December: PST


def test_the_same_event_has_the_same_key_whatever_zeros_its_code_has() -> None:
    first = parse_tracking_detail(detail(occurrence("0174")), pin=PIN).events[0]
    second = parse_tracking_detail(detail(occurrence("174")), pin=PIN).events[0]
    assert first.key == second.key


# --- values refused ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (detail("", pin="123"), "<pin>"),
        (detail("", pin="../../etc"), "<pin>"),
        (detail("", pin="1111111111111111"), "not for 7023210039414604"),
        (detail(occurrence("01x4")), "<event-identifier>"),
        (detail(occurrence("0174", on="2026-13-40")), "<event-date>"),
        (detail(occurrence("0174", on="yesterday")), "<event-date>"),
        (detail(occurrence("0174", at="25:99")), "<event-time>"),
        (detail(occurrence("0174", zone="XYZ", province="ZZ")), "time zone"),
        (detail(occurrence("0174", zone="a b")), "<event-time-zone>"),
        (detail(occurrence("0174", province="Ontario")), "<event-province>"),
        (detail("", extra="<expected-delivery-date>2026-12-05</expected-delivery-date>"), "appears 2 times"),
        (detail(occurrence("0174") * 501), "at most 500"),
        (b"<shipment-info/>", "expected <tracking-detail>"),
        (b"<tracking-detail", "not usable XML"),
        (b'<!DOCTYPE x [<!ENTITY e "x">]><tracking-detail/>', "not usable XML"),
    ],
)
def test_an_answer_fulfil_cannot_trust_is_refused_naming_the_field(body: bytes, named: str) -> None:
    with pytest.raises(ResponseFormatError, match=re.escape(named)):
        parse_tracking_detail(body, pin=PIN)


def test_free_text_is_bounded_and_printable() -> None:
    description = "Item\u202e processed " + "x" * 500
    parsed = parse_tracking_detail(detail(occurrence("0100", description=description)), pin=PIN)
    text = parsed.events[0].description
    assert "\u202e" not in text
    assert text.isprintable()
    assert len(text) <= 200 + len("\\u202e") + len("…")
