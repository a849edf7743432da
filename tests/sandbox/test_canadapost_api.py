"""Canada Post endpoints over real sockets: shipping, recovery look-ups, void rules, refunds,
labels, and every error a client must handle (auth, customer number, media types, validation)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fulfil.sandbox import Sandbox
from tests.sandbox.conftest import (
    CUSTOMER,
    NCSHIPMENT_MEDIA,
    SHIPMENT_MEDIA,
    CanadaPost,
    contract_request,
    links,
    message_codes,
    nc_request,
    parse,
    texts,
)

CONTRACT = f"/rs/{CUSTOMER}/{CUSTOMER}/shipment"
PADDED = CUSTOMER.zfill(10)


def test_create_shipment_answers_shipment_info_with_links(canadapost: CanadaPost, sandbox: Sandbox) -> None:
    answer = canadapost.create()
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == SHIPMENT_MEDIA
    root = parse(answer.content)
    assert root.tag == "{http://www.canadapost.ca/ws/shipment-v8}shipment-info"
    shipment_id = root.findtext("{*}shipment-id")
    assert re.fullmatch(r"\d{18}", shipment_id)
    assert root.findtext("{*}shipment-status") == "transmitted"
    assert re.fullmatch(r"\d{16}", root.findtext("{*}tracking-pin"))
    found = links(answer.content)
    assert set(found) == {"self", "details", "price", "refund", "label"}
    assert found["price"].get("href") == found["self"].get("href") + "/price"
    assert found["self"].get("href") == f"{sandbox.base_url}/rs/{PADDED}/{PADDED}/shipment/{shipment_id}"
    assert found["details"].get("href").endswith(f"/shipment/{shipment_id}/details")
    assert found["label"].get("media-type") == "application/pdf"
    assert found["label"].get("index") == "0"
    assert re.fullmatch(
        rf"{re.escape(sandbox.base_url)}/rs/artifact/[0-9a-f]{{16}}/\d{{11}}/0", found["label"].get("href")
    )
    assert sandbox.state()["canadapost"]["labels_bought"] == 1


def test_the_same_request_twice_buys_two_labels(canadapost: CanadaPost, sandbox: Sandbox) -> None:
    body = contract_request(request_id="order-261250893-a1", reference="261250893-A")
    first, second = canadapost.create(body), canadapost.create(body)
    assert first.status_code == second.status_code == 200
    ids = {parse(answer.content).findtext("{*}shipment-id") for answer in (first, second)}
    pins = {parse(answer.content).findtext("{*}tracking-pin") for answer in (first, second)}
    assert len(ids) == len(pins) == 2
    state = sandbox.state()
    assert state["canadapost"]["labels_bought"] == 2
    assert state["requests"]["counts"]["canadapost.CreateShipment"] == 2
    assert sandbox.labels_bought_per_order() == {"261250893-A": 2}
    found = canadapost.get(f"{CONTRACT}?requestId=order-261250893-a1")
    assert found.status_code == 200
    assert len(parse(found.content).findall("{*}link")) == 2
    assert [s["customer_request_id"] for s in state["canadapost"]["shipments"]] == ["order-261250893-a1"] * 2


def test_recovery_lookups_by_request_id_pin_and_group(canadapost: CanadaPost) -> None:
    created = canadapost.create(contract_request(request_id="req-7", group_id="20250901"))
    assert parse(created.content).findtext("{*}shipment-status") == "created"
    assert "group" in links(created.content)
    self_href = links(created.content)["self"].get("href")
    pin = parse(created.content).findtext("{*}tracking-pin")
    for query in ("requestId=req-7", f"trackingPIN={pin}", "groupId=20250901"):
        answer = canadapost.get(f"{CONTRACT}?{query}")
        assert answer.status_code == 200
        found = parse(answer.content).findall("{*}link")
        assert [(link.get("rel"), link.get("href")) for link in found] == [("shipment", self_href)]
    empty = canadapost.get(f"{CONTRACT}?requestId=req-unknown")
    assert empty.status_code == 200
    assert parse(empty.content).tag.endswith("}shipments")
    assert len(parse(empty.content)) == 0
    missing_query = canadapost.get(CONTRACT)
    assert missing_query.status_code == 400
    assert message_codes(missing_query) == ["Server"]


def test_get_shipment_and_details_echo_the_references(canadapost: CanadaPost) -> None:
    created = canadapost.create(contract_request(reference="261250893-A"))
    found = links(created.content)
    info = canadapost.get(found["self"].get("href"))
    assert info.status_code == 200
    assert parse(info.content).findtext("{*}tracking-pin") == parse(created.content).findtext(
        "{*}tracking-pin"
    )
    details = canadapost.get(found["details"].get("href"))
    assert details.status_code == 200
    root = parse(details.content)
    assert root.tag.endswith("}shipment-details")
    assert root.findtext("{*}shipment-status") == "transmitted"
    assert root.findtext("{*}customer-request-id") == "order-1-a1"
    assert texts(root, "customer-ref-1") == ["261250893-A"]
    assert texts(root, "name")[-1] == "Émilie Tremblay"
    assert root.find("{*}shipment-detail/{*}transmit-shipment").text == "true"


def test_void_rules(canadapost: CanadaPost, sandbox: Sandbox) -> None:
    transmitted = canadapost.create()
    refused = canadapost.delete(links(transmitted.content)["self"].get("href"))
    assert refused.status_code == 400
    assert message_codes(refused) == ["8064"]

    grouped = canadapost.create(contract_request(group_id="batch-1", request_id="req-void", reference="R-9"))
    self_href = links(grouped.content)["self"].get("href")
    assert sandbox.state()["canadapost"]["labels_bought"] == 2
    voided = canadapost.delete(self_href)
    assert voided.status_code == 204
    assert voided.content == b""
    assert sandbox.state()["canadapost"]["labels_bought"] == 1
    assert sandbox.labels_bought_per_order() == {"261250893-A": 1}
    for again in (canadapost.delete(self_href), canadapost.get(self_href)):
        assert again.status_code == 404
        assert message_codes(again) == []  # an empty <messages/>, like Canada Post
    listed = canadapost.get(f"{CONTRACT}?requestId=req-void")
    assert parse(listed.content).findall("{*}link") == []
    unknown = canadapost.delete(f"{CONTRACT}/123456789012345678")
    assert unknown.status_code == 404
    assert message_codes(unknown) == []
    summary = {s["shipment_id"]: s["voided"] for s in sandbox.state()["canadapost"]["shipments"]}
    assert sorted(summary.values()) == [False, True]


def test_refund_once_then_7292(canadapost: CanadaPost, sandbox: Sandbox) -> None:
    created = canadapost.create()
    refund_href = links(created.content)["refund"].get("href")
    body = (
        b'<shipment-refund-request xmlns="http://www.canadapost.ca/ws/shipment-v8">'
        b"<email>ops@example.ca</email></shipment-refund-request>"
    )
    headers = {"Content-Type": SHIPMENT_MEDIA, "Accept": SHIPMENT_MEDIA}
    first = canadapost.request("POST", refund_href, data=body, headers=headers)
    assert first.status_code == 200, first.text
    assert re.fullmatch(r"\d{10}", parse(first.content).findtext("{*}service-ticket-id"))
    second = canadapost.request("POST", refund_href, data=body, headers=headers)
    assert second.status_code == 409
    assert message_codes(second) == ["7292"]
    assert sandbox.state()["canadapost"]["shipments"][0]["refund_requested"] is True


@pytest.mark.parametrize(
    "auth", [None, ("sandbox", "wrong-password"), ("someone", "sandbox-not-a-real-key"), ("", "")]
)
def test_bad_credentials_get_e002(
    canadapost: CanadaPost, sandbox: Sandbox, auth: tuple[str, str] | None
) -> None:
    answer = canadapost.request(
        "POST",
        CONTRACT,
        data=contract_request(),
        headers={"Content-Type": SHIPMENT_MEDIA, "Accept": SHIPMENT_MEDIA},
        auth=auth,
    )
    assert answer.status_code == 401
    assert message_codes(answer) == ["E002"]
    assert parse(answer.content).findtext("{*}message/{*}description") == "AAA Authentication Failure"
    assert sandbox.state()["canadapost"]["labels_bought"] == 0


def test_bearer_or_garbled_authorization_is_refused(canadapost: CanadaPost) -> None:
    for header in ("Bearer abc", "Basic !!!notbase64", "Basic " + "c2FuZGJveA=="):
        headers = {"Accept": SHIPMENT_MEDIA, "Authorization": header}
        answer = canadapost.request("GET", f"{CONTRACT}?requestId=x", auth=None, headers=headers)
        assert answer.status_code == 401
        assert message_codes(answer) == ["E002"]


def test_customer_number_in_the_path(canadapost: CanadaPost, sandbox: Sandbox) -> None:
    padded = canadapost.request(
        "POST",
        f"/rs/{PADDED}/{PADDED}/shipment",
        data=contract_request(),
        headers={"Content-Type": SHIPMENT_MEDIA, "Accept": SHIPMENT_MEDIA},
    )
    assert padded.status_code == 200
    other = canadapost.get(f"/rs/1234567/{CUSTOMER}/shipment?requestId=x")
    assert other.status_code == 403
    assert message_codes(other) == ["AA003"]
    other_mobo = canadapost.get(f"/rs/{CUSTOMER}/7654321/shipment?requestId=x")
    assert other_mobo.status_code == 403
    assert message_codes(other_mobo) == ["AA004"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": SHIPMENT_MEDIA, "Accept": "*/*"}, 406),
        ({"Content-Type": SHIPMENT_MEDIA}, 406),
        ({"Content-Type": SHIPMENT_MEDIA, "Accept": "application/vnd.cpc.shipment-v7+xml"}, 406),
        ({"Content-Type": "application/xml", "Accept": SHIPMENT_MEDIA}, 415),
        ({"Content-Type": NCSHIPMENT_MEDIA, "Accept": SHIPMENT_MEDIA}, 415),
        ({"Content-Type": SHIPMENT_MEDIA + "; charset=UTF-8", "Accept": SHIPMENT_MEDIA}, 200),
    ],
)
def test_media_types_are_checked(canadapost: CanadaPost, headers: dict[str, str], status: int) -> None:
    answer = canadapost.request("POST", CONTRACT, data=contract_request(), headers={"Accept": "", **headers})
    assert answer.status_code == status, answer.text
    if status != 200:
        assert message_codes(answer) == ["Server"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (contract_request(postal="H2J 2L1"), "cvc-pattern-valid"),
        (contract_request(postal="h2j2l1"), "cvc-pattern-valid"),
        (
            contract_request(line_1="2350 boulevard du Souvenir-des-Anciens-Combattants Ouest"),
            "cvc-maxLength-valid",
        ),
        (contract_request(city="Saint-Louis-du-Ha! Ha! de Témiscouata-sur-le-Lac"), "cvc-maxLength-valid"),
        (contract_request(province="Quebec"), "cvc-enumeration-valid"),
        (contract_request(line_1=""), "cvc-minLength-valid"),
        (contract_request(request_id="x" * 36), "cvc-maxLength-valid"),
        (b"<shipment", "cvc-xml-wellformed"),
        (b"", "cvc-xml-wellformed"),
        (b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "b">]><shipment/>', "DOCTYPE"),
    ],
)
def test_field_errors_are_server_cvc_400(
    canadapost: CanadaPost, sandbox: Sandbox, body: bytes, fragment: str
) -> None:
    answer = canadapost.create(body)
    assert answer.status_code == 400
    assert message_codes(answer) == ["Server"]
    description = parse(answer.content).findtext("{*}message/{*}description")
    assert description.startswith(f"{CONTRACT}: ")
    assert fragment in description
    assert sandbox.state()["canadapost"]["labels_bought"] == 0


def test_missing_street_for_a_canadian_destination_is_refused(canadapost: CanadaPost) -> None:
    body = contract_request().replace(b"<address-line-1>4417 rue Saint-Denis</address-line-1>", b"")
    answer = canadapost.create(body)
    assert answer.status_code == 400
    assert "address-line-1" in parse(answer.content).findtext("{*}message/{*}description")


def test_non_contract_shipment_and_recovery_by_eastern_time(canadapost: CanadaPost, sandbox: Sandbox) -> None:
    created = canadapost.create_nc(nc_request(reference="261252961-A"))
    assert created.status_code == 200, created.text
    assert created.headers["Content-Type"] == NCSHIPMENT_MEDIA
    root = parse(created.content)
    assert root.tag == "{http://www.canadapost.ca/ws/ncshipment-v4}non-contract-shipment-info"
    pin = root.findtext("{*}tracking-pin")
    assert re.fullmatch(r"\d{12}", pin)
    found = links(created.content)
    assert set(found) == {"self", "details", "receipt", "refund", "label"}
    assert found["self"].get("href").startswith(f"{sandbox.base_url}/rs/{PADDED}/ncshipment/")
    assert found["receipt"].get("href") == found["self"].get("href") + "/receipt"
    details = canadapost.get(found["details"].get("href"), NCSHIPMENT_MEDIA)
    assert texts(parse(details.content), "customer-ref-1") == ["261252961-A"]
    assert (
        parse(canadapost.get(found["self"].get("href"), NCSHIPMENT_MEDIA).content).findtext("{*}tracking-pin")
        == pin
    )

    eastern = datetime.now(ZoneInfo("America/Toronto"))
    start = (eastern - timedelta(minutes=5)).strftime("%Y%m%d%H%M")
    end = (eastern + timedelta(minutes=5)).strftime("%Y%m%d%H%M")
    yesterday = (eastern - timedelta(days=1)).strftime("%Y%m%d%H%M")
    listing = f"/rs/{CUSTOMER}/ncshipment"
    for query, expected in (
        (f"from={start}&to={end}", 1),
        (f"from={start}", 1),  # "to" defaults to now
        (f"from={yesterday}&to={yesterday}", 0),
        (f"trackingPIN={pin}", 1),
        ("trackingPIN=999999999999", 0),
    ):
        answer = canadapost.get(f"{listing}?{query}", NCSHIPMENT_MEDIA)
        assert answer.status_code == 200, (query, answer.text)
        assert len(parse(answer.content).findall("{*}link")) == expected, query
    for bad in ("from=2025-09-01", "to=202509010000", ""):
        refused = canadapost.get(f"{listing}?{bad}", NCSHIPMENT_MEDIA)
        assert refused.status_code == 400
        assert message_codes(refused) == ["Server"]
    state = sandbox.state()["canadapost"]["shipments"]
    assert [(s["contract"], s["customer_request_id"], s["customer_ref_1"]) for s in state] == [
        (False, None, "261252961-A")
    ]


def test_label_artifact(canadapost: CanadaPost, sandbox: Sandbox) -> None:
    created = canadapost.create()
    label = links(created.content)["label"].get("href")
    refused = canadapost.get(label, SHIPMENT_MEDIA)
    assert refused.status_code == 406
    assert message_codes(refused) == ["Server"]
    fetched = canadapost.get(label, "application/pdf")
    assert fetched.status_code == 200
    assert fetched.headers["Content-Type"] == "application/pdf"
    assert fetched.content.startswith(b"%PDF-1.4")
    assert fetched.content.rstrip().endswith(b"%%EOF")
    again = canadapost.get(label, "application/pdf")
    assert again.content == fetched.content  # a reprint is the same label
    assert sandbox.state()["canadapost"]["shipments"][0]["label_fetches"] == 2  # the 406 fetched nothing
    assert canadapost.get(label.replace("/0", "/1"), "application/pdf").status_code == 404
    assert canadapost.get(label.rsplit("/", 2)[0] + "/1/0", "application/pdf").status_code == 404


def test_zpl_labels_are_offered_as_zpl(canadapost: CanadaPost) -> None:
    created = canadapost.create(contract_request(encoding="ZPL"))
    link = links(created.content)["label"]
    assert link.get("media-type") == "application/zpl"
    fetched = canadapost.get(link.get("href"), "application/zpl")
    assert fetched.status_code == 200
    assert fetched.content.startswith(b"^XA")


def test_voided_label_is_gone(canadapost: CanadaPost) -> None:
    created = canadapost.create(contract_request(group_id="g"))
    label = links(created.content)["label"].get("href")
    assert canadapost.delete(links(created.content)["self"].get("href")).status_code == 204
    assert canadapost.get(label, "application/pdf").status_code == 404


def test_unknown_paths_and_methods(canadapost: CanadaPost, sandbox: Sandbox) -> None:
    assert canadapost.request("PUT", CONTRACT, headers={"Accept": SHIPMENT_MEDIA}).status_code == 405
    assert canadapost.get(f"/rs/{CUSTOMER}/{CUSTOMER}/nothing").status_code == 404
    assert canadapost.get("/elsewhere").status_code == 404
    counts = sandbox.state()["requests"]["counts"]
    assert counts == {}  # unmatched requests are logged but not counted as any endpoint
