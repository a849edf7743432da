"""Tracking events that progress on the simulated clock, and the label PDF itself."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from fulfil.sandbox import Sandbox, SandboxConfig
from fulfil.sandbox.pdf import LabelContent, render_label_pdf
from tests.sandbox.conftest import (
    TRACK_MEDIA,
    CanadaPost,
    contract_request,
    links,
    message_codes,
    parse,
    texts,
)

START = 1_756_742_400.0  # 2025-09-01 16:00 UTC


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked() -> Iterator[tuple[Sandbox, FakeClock, CanadaPost]]:
    clock = FakeClock()
    with Sandbox(SandboxConfig(time_scale=3600.0), clock=clock) as sandbox:
        client = CanadaPost(sandbox.base_url)
        yield sandbox, clock, client
        client.session.close()


def event_codes(client: CanadaPost, pin: str) -> list[str]:
    answer = client.get(f"/vis/track/pin/{pin}/detail", TRACK_MEDIA)
    assert answer.status_code == 200, answer.text
    return texts(parse(answer.content), "event-identifier")


def test_events_progress_with_scaled_time_newest_first(
    clocked: tuple[Sandbox, FakeClock, CanadaPost],
) -> None:
    _sandbox, clock, client = clocked
    created = client.create(contract_request(reference="261250893-A"))
    pin = parse(created.content).findtext("{*}tracking-pin")
    assert event_codes(client, pin) == ["3000"]
    clock.now += 7  # seven simulated hours at one hour per second
    assert event_codes(client, pin) == ["2300", "3000"]
    clock.now += 40  # 47 hours: out for delivery
    assert event_codes(client, pin) == ["0174", "0100", "0100", "2300", "3000"]
    clock.now += 10  # 57 hours: delivered
    codes = event_codes(client, pin)
    assert codes[0] == "1496"
    assert len(codes) == 6
    detail = parse(client.get(f"/vis/track/pin/{pin}/detail", TRACK_MEDIA).content)
    assert detail.tag == "{http://www.canadapost.ca/ws/track}tracking-detail"
    assert detail.findtext("{*}customer-ref-1") == "261250893-A"
    assert detail.findtext("{*}destination-postal-id") == "H2J2L1"
    first = detail.find("{*}significant-events/{*}occurrence")
    assert first.findtext("{*}event-site") == "MONTRÉAL"
    assert first.findtext("{*}event-province") == "QC"
    assert first.findtext("{*}event-time-zone") in ("EDT", "EST")
    assert first.findtext("{*}signatory-name") == "TREMBLAY"
    dates = [(o.findtext("{*}event-date"), o.findtext("{*}event-time")) for o in detail.iter("{*}occurrence")]
    assert dates == sorted(dates, reverse=True)

    summary = client.get(f"/vis/track/pin/{pin}/summary", TRACK_MEDIA)
    assert summary.status_code == 200
    pin_summary = parse(summary.content).find("{*}pin-summary")
    assert pin_summary.findtext("{*}event-type") == "DELIVERED"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", pin_summary.findtext("{*}actual-delivery-date"))
    assert re.fullmatch(r"\d{8}:\d{6}", pin_summary.findtext("{*}event-date-time"))
    assert pin_summary.findtext("{*}origin-postal-id") == "L5T"


def test_tracking_media_types_and_unknown_pins(clocked: tuple[Sandbox, FakeClock, CanadaPost]) -> None:
    sandbox, _clock, client = clocked
    pin = parse(client.create().content).findtext("{*}tracking-pin")
    older = client.get(f"/vis/track/pin/{pin}/summary", "application/vnd.cpc.track+xml")
    assert older.status_code == 200
    assert older.headers["Content-Type"] == "application/vnd.cpc.track+xml"
    refused = client.get(f"/vis/track/pin/{pin}/summary", "application/xml")
    assert refused.status_code == 406
    for kind in ("summary", "detail"):
        unknown = client.get(f"/vis/track/pin/1234567890123/{kind}", TRACK_MEDIA)
        assert unknown.status_code == 404
        assert message_codes(unknown) == ["004"]
        assert parse(unknown.content).findtext("{*}message/{*}description") == "No Pin History"
    assert (
        client.request(
            "GET", f"/vis/track/pin/{pin}/detail", auth=None, headers={"Accept": TRACK_MEDIA}
        ).status_code
        == 401
    )
    counts = sandbox.state()["requests"]["counts"]
    assert counts["canadapost.TrackingSummary"] == 3
    assert counts["canadapost.TrackingDetail"] == 2


def test_a_voided_shipment_has_no_history(clocked: tuple[Sandbox, FakeClock, CanadaPost]) -> None:
    _sandbox, _clock, client = clocked
    created = client.create(contract_request(group_id="g"))
    pin = parse(created.content).findtext("{*}tracking-pin")
    assert client.delete(links(created.content)["self"].get("href")).status_code == 204
    assert message_codes(client.get(f"/vis/track/pin/{pin}/detail", TRACK_MEDIA)) == ["004"]


def parse_pdf_objects(document: bytes) -> dict[int, bytes]:
    """Follow startxref and the xref table, as a viewer does; every offset must land on its object."""
    assert document.startswith(b"%PDF-1.4\n")
    start = int(re.search(rb"startxref\n(\d+)\n%%EOF\n$", document).group(1))
    assert document[start : start + 5] == b"xref\n"
    header = re.match(rb"xref\n0 (\d+)\n", document[start:])
    count = int(header.group(1))
    table = document[start + header.end() : start + header.end() + 20 * count]
    entries = [table[i : i + 20] for i in range(0, len(table), 20)]
    assert entries[0] == b"0000000000 65535 f \n"
    objects = {}
    for number, entry in enumerate(entries[1:], start=1):
        assert re.fullmatch(rb"\d{10} 00000 n \n", entry), entry
        offset = int(entry[:10])
        assert document[offset:].startswith(b"%d 0 obj\n" % number), number
        objects[number] = document[offset : document.index(b"endobj", offset)]
    trailer = document[start + header.end() + 20 * count :]
    assert trailer.startswith(b"trailer\n<< /Size %d /Root 1 0 R" % count)
    return objects


def label() -> LabelContent:
    return LabelContent(
        tracking_pin="7023210039414604",
        shipment_id="545021584835957806",
        service_code="DOM.EP",
        sender_lines=("Sandbox Electronics", "6975 Pacific Circle", "Mississauga ON L5T 2H3"),
        destination_lines=("Émilie Tremblay", "4417 rue Saint-Denis", "app. 3", "Montréal QC H2J 2L1"),
        reference="261250893-A (x)",
        output_format="4x6",
    )


@pytest.mark.unit
def test_label_pdf_structure_is_exact() -> None:
    document = render_label_pdf(label())
    objects = parse_pdf_objects(document)
    assert b"/MediaBox [0 0 288 432]" in objects[3]
    stream_object = objects[6]
    length = int(re.search(rb"/Length (\d+)", stream_object).group(1))
    stream = stream_object[stream_object.index(b"stream\n") + 7 :]
    assert stream[length:] == b"endstream\n"
    assert b"(PIN 7023210039414604) Tj" in stream
    assert b"(\\311milie Tremblay) Tj" in stream  # É in WinAnsiEncoding
    assert b"(Montr\\351al QC H2J 2L1) Tj" in stream
    assert b"(Ref: 261250893-A \\(x\\)) Tj" in stream  # parentheses escaped
    assert b"/BaseFont /Helvetica" in objects[4]


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler's pdftotext is not installed")
def test_label_pdf_reads_back_with_a_real_pdf_reader(tmp_path: object) -> None:
    path = tmp_path / "label.pdf"  # type: ignore[operator]
    path.write_bytes(render_label_pdf(label()))
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True).stdout
    text = text.decode("utf-8")
    for expected in (
        "PIN 7023210039414604",
        "Émilie Tremblay",
        "Montréal QC H2J 2L1",
        "4417 rue Saint-Denis",
    ):
        assert expected in text


@pytest.mark.skipif(shutil.which("qpdf") is None, reason="qpdf is not installed")
def test_label_pdf_passes_qpdf_check(tmp_path: object) -> None:
    path = tmp_path / "label.pdf"  # type: ignore[operator]
    path.write_bytes(render_label_pdf(label()))
    checked = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No syntax or stream encoding errors" in checked.stdout


def test_fetched_label_shows_pin_and_destination(clocked: tuple[Sandbox, FakeClock, CanadaPost]) -> None:
    sandbox, _clock, client = clocked
    created = client.create(contract_request(output_format="8.5x11"))
    pin = parse(created.content).findtext("{*}tracking-pin")
    fetched = client.get(links(created.content)["label"].get("href"), "application/pdf")
    objects = parse_pdf_objects(fetched.content)
    assert b"/MediaBox [0 0 612 792]" in objects[3]
    stream = objects[6]
    assert f"(PIN {pin}) Tj".encode() in stream
    assert b"(\\311milie Tremblay) Tj" in stream
    assert b"(Montr\\351al QC H2J 2L1) Tj" in stream
    assert sandbox.state()["canadapost"]["shipments"][0]["label_fetches"] == 1
