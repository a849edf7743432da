"""The sandbox's Transmit Shipments and manifests over real sockets, as Canada Post documents them:
what it transmits and leaves out, its refusals in Canada Post's format, and every answer valid
against the official manifest.xsd (and messages.xsd)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from lxml import etree

from fulfil.canadapost.groups import canada_post_day
from fulfil.canadapost.manifests import MANIFEST_MEDIA_TYPE, build_transmit_request
from fulfil.canadapost.sender import sender_address
from fulfil.label_files import looks_like_pdf
from tests.canadapost.factories import sender_settings
from tests.sandbox.conftest import CP_AUTH, CUSTOMER, SHIPMENT_MEDIA, contract_request
from tests.shared_reference import xsd_dir

GROUP = "fulfil-20261202"
BASE_PATH = f"/rs/{CUSTOMER}/{CUSTOMER}"


@pytest.fixture
def client(sandbox: Any) -> Iterator[requests.Session]:
    session = requests.Session()
    session.auth = CP_AUTH
    yield session
    session.close()


@pytest.fixture(scope="module")
def official() -> dict[str, etree.XMLSchema]:
    directory = xsd_dir()
    return {
        "http://www.canadapost.ca/ws/manifest-v8": etree.XMLSchema(
            etree.parse(str(directory / "manifest.xsd"))
        ),
        "http://www.canadapost.ca/ws/messages": etree.XMLSchema(etree.parse(str(directory / "messages.xsd"))),
    }


def valid(official: dict[str, etree.XMLSchema], body: bytes) -> etree._Element:
    root = etree.fromstring(body)
    official[etree.QName(root).namespace or ""].assertValid(root)
    return root


def buy(
    client: requests.Session,
    sandbox: Any,
    request_id: str,
    *,
    group: str | None = GROUP,
    service: str = "DOM.EP",
) -> str:
    body = contract_request(request_id=request_id, group_id=group).replace(b"DOM.EP", service.encode())
    answer = client.post(
        f"{sandbox.base_url}{BASE_PATH}/shipment",
        data=body,
        headers={"Content-Type": SHIPMENT_MEDIA, "Accept": SHIPMENT_MEDIA},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    return str(etree.fromstring(answer.content).findtext("{*}shipment-id"))


def transmit(
    client: requests.Session, sandbox: Any, excluded: tuple[str, ...] = (), body: bytes | None = None
) -> requests.Response:
    if body is None:
        body = build_transmit_request([GROUP], sender_address(sender_settings()), excluded).xml
    return client.post(
        f"{sandbox.base_url}{BASE_PATH}/manifest",
        data=body,
        headers={"Content-Type": MANIFEST_MEDIA_TYPE, "Accept": MANIFEST_MEDIA_TYPE},
        timeout=5,
    )


def get(
    client: requests.Session, url: str, accept: str = MANIFEST_MEDIA_TYPE, **params: str
) -> requests.Response:
    return client.get(url, headers={"Accept": accept}, params=params, timeout=5)


def test_a_transmit_makes_a_manifest_per_service_and_transmits_what_it_holds(
    client: requests.Session, sandbox: Any, official: dict[str, etree.XMLSchema]
) -> None:
    kept = buy(client, sandbox, "m-1")
    left_out = buy(client, sandbox, "m-2")
    faster = buy(client, sandbox, "m-3", service="DOM.XP")
    elsewhere = buy(client, sandbox, "m-4", group="fulfil-20261201")
    at_once = buy(client, sandbox, "m-5", group=None)

    answer = transmit(client, sandbox, excluded=(left_out,))

    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith(MANIFEST_MEDIA_TYPE)
    links = valid(official, answer.content).findall("{*}link")
    assert [link.get("rel") for link in links] == ["manifest", "manifest"]
    shipments = sandbox.sandbox_state.shipments
    assert shipments[kept].status == shipments[faster].status == "transmitted"
    assert shipments[left_out].status == shipments[elsewhere].status == "created"
    assert shipments[at_once].manifest_id is None
    made = sandbox.manifests()
    assert sorted(tuple(m["shipment_ids"]) for m in made) == sorted([(kept,), (faster,)])
    assert all(m["excluded"] == [left_out] for m in made)
    for link in links:
        manifest = get(client, link.get("href"))
        assert manifest.status_code == 200
        root = valid(official, manifest.content)
        hrefs = {item.get("rel"): item.get("href") for item in root.iterfind("{*}links/{*}link")}
        assert set(hrefs) == {"self", "details", "manifestShipments", "artifact"}
        listed = get(client, hrefs["manifestShipments"], SHIPMENT_MEDIA)
        assert listed.status_code == 200
        assert len(etree.fromstring(listed.content).findall("{*}link")) == 1
        details = get(client, hrefs["details"])
        assert details.status_code == 200
        detail_root = valid(official, details.content)
        assert detail_root.findtext("{*}po-number") == root.findtext("{*}po-number")
        assert detail_root.findtext("{*}manifest-date") == canada_post_day().isoformat()
        pdf = get(client, hrefs["artifact"], "application/pdf")
        assert pdf.status_code == 200
        assert pdf.headers["Content-Type"] == "application/pdf"
        assert looks_like_pdf(pdf.content)
        assert root.findtext("{*}po-number").encode() in pdf.content
    # Transmitted: a void is refused (refund instead); the label left out is still voidable.
    assert (
        client.delete(
            f"{sandbox.base_url}{BASE_PATH}/shipment/{kept}", headers={"Accept": SHIPMENT_MEDIA}
        ).status_code
        == 400
    )
    assert (
        client.delete(
            f"{sandbox.base_url}{BASE_PATH}/shipment/{left_out}", headers={"Accept": SHIPMENT_MEDIA}
        ).status_code
        == 204
    )
    assert sandbox.invalid_responses() == []


def test_a_transmit_with_nothing_to_transmit_is_refused(
    client: requests.Session, sandbox: Any, official: dict[str, etree.XMLSchema]
) -> None:
    answer = transmit(client, sandbox)
    assert answer.status_code == 400
    root = valid(official, answer.content)
    assert root.findtext("{*}message/{*}code") == "9111"
    assert "Group id was not found for transmission" in root.findtext("{*}message/{*}description")
    shipment = buy(client, sandbox, "n-1")
    assert transmit(client, sandbox, excluded=(shipment,)).status_code == 400
    assert transmit(client, sandbox).status_code == 200
    assert transmit(client, sandbox).status_code == 400  # transmitted already: nothing left


def test_a_transmit_set_is_checked_like_every_request(client: requests.Session, sandbox: Any) -> None:
    body = build_transmit_request([GROUP], sender_address(sender_settings())).xml
    broken = body.replace(b"<method-of-payment>Account</method-of-payment>", b"")
    answer = transmit(client, sandbox, body=broken)
    assert answer.status_code == 400
    assert "cvc-complex-type.2.4.b" in answer.text
    assert "method-of-payment" in answer.text
    wrong_type = client.post(
        f"{sandbox.base_url}{BASE_PATH}/manifest",
        data=body,
        headers={"Content-Type": SHIPMENT_MEDIA, "Accept": MANIFEST_MEDIA_TYPE},
        timeout=5,
    )
    assert wrong_type.status_code == 415
    anything = get(client, f"{sandbox.base_url}{BASE_PATH}/manifest", "*/*", start="20260101")
    assert anything.status_code == 406


def test_manifests_are_listed_by_day(
    client: requests.Session, sandbox: Any, official: dict[str, etree.XMLSchema]
) -> None:
    buy(client, sandbox, "d-1")
    assert transmit(client, sandbox).status_code == 200
    today = canada_post_day()
    url = f"{sandbox.base_url}{BASE_PATH}/manifest"

    def listed(**params: str) -> int:
        answer = get(client, url, **params)
        assert answer.status_code == 200, answer.text
        return len(valid(official, answer.content).findall("{*}link"))

    assert listed(start=f"{today:%Y%m%d}") == 1  # end: today
    assert listed(start=f"{today:%Y%m%d}", end=f"{today:%Y%m%d}") == 1
    assert listed(start=f"{today - timedelta(days=3):%Y%m%d}", end=f"{today - timedelta(days=1):%Y%m%d}") == 0
    assert get(client, url).status_code == 400  # start is required
    assert get(client, url, start="2026-12-01").status_code == 400
    assert get(client, url, start="20260230").status_code == 400  # no such day
    unknown = get(client, f"{url}/123456789")
    assert unknown.status_code == 404
