"""The real request samples in ../shared: VALID ones are accepted, INVALID ones refused in Canada
Post's format; every answer the sandbox produced validates against the official XSDs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from fulfil.sandbox import Sandbox
from tests.sandbox.conftest import (
    CUSTOMER,
    NCSHIPMENT_MEDIA,
    NCSHIPMENT_NS,
    SHIPMENT_MEDIA,
    SHIPMENT_NS,
    CanadaPost,
    OfficialSchemas,
    contract_request,
    links,
    message_codes,
    parse,
)
from tests.shared_reference import canadapost_samples

# Which service and namespace each request document belongs to.
REQUEST_ROOTS = {
    "shipment": (SHIPMENT_NS, SHIPMENT_MEDIA),
    "non-contract-shipment": (NCSHIPMENT_NS, NCSHIPMENT_MEDIA),
    "shipment-refund-request": (SHIPMENT_NS, SHIPMENT_MEDIA),
}


@dataclass(frozen=True)
class Sample:
    path: Path
    valid: bool
    swap_namespace: bool


def readme_verdicts() -> dict[str, tuple[bool, bool]]:
    """file name -> (valid, needs namespace swap), read from the samples README's tables."""
    verdicts = {}
    for line in (canadapost_samples() / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`")
        verdict = cells[-1]
        valid = re.search(r"\bINVALID\b", verdict) is None and re.search(r"\bVALID\b", verdict) is not None
        verdicts[name] = (valid, "after ns swap" in verdict)
    return verdicts


def request_samples() -> list[Sample]:
    samples = []
    for name, (valid, swap) in sorted(readme_verdicts().items()):
        path = canadapost_samples() / name
        root = etree.parse(str(path)).getroot()
        if etree.QName(root).localname in REQUEST_ROOTS:
            samples.append(Sample(path, valid, swap))
    return samples


def with_namespace(document: bytes, namespace: str) -> bytes:
    """The README's "ns swap": the same elements, moved into the current namespace."""
    root = etree.fromstring(document)
    for element in root.iter():
        if isinstance(element.tag, str):
            element.tag = f"{{{namespace}}}{etree.QName(element).localname}"
    etree.cleanup_namespaces(root, top_nsmap={None: namespace})
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@pytest.mark.unit
def test_the_readme_lists_request_samples_of_both_verdicts() -> None:
    samples = request_samples()
    assert {sample.path.name for sample in samples} >= {
        "contract-create-shipment-request.karrio.xml",
        "contract-create-shipment-request.cp-official-php-sample-v4.xml",
        "ncshipment-create-request.karrio-2023.xml",
        "ncshipment-create-request.activeshipping-v1ns.xml",
    }
    assert {sample.valid for sample in samples} == {True, False}


def send_sample(client: CanadaPost, sample: Sample) -> object:
    document = sample.path.read_bytes()
    root_name = etree.QName(etree.fromstring(document)).localname
    namespace, media = REQUEST_ROOTS[root_name]
    if sample.swap_namespace:
        document = with_namespace(document, namespace)
    headers = {"Content-Type": media, "Accept": media}
    if root_name == "shipment":
        return client.request("POST", f"/rs/{CUSTOMER}/{CUSTOMER}/shipment", data=document, headers=headers)
    if root_name == "non-contract-shipment":
        return client.request("POST", f"/rs/{CUSTOMER}/ncshipment", data=document, headers=headers)
    # A refund needs a shipment in the group flow (a transmitted one can be refunded too).
    created = client.create(contract_request(group_id="refunds"))
    assert created.status_code == 200, created.text
    refund_href = links(created.content)["refund"].get("href")
    return client.request("POST", refund_href, data=document, headers=headers)


@pytest.mark.parametrize("sample", request_samples(), ids=lambda sample: sample.path.name)
def test_sample_requests_are_judged_like_the_official_schema(
    sample: Sample, xsd_sandbox: Sandbox, official: OfficialSchemas
) -> None:
    client = CanadaPost(xsd_sandbox.base_url)
    try:
        answer = send_sample(client, sample)
        assert answer.status_code in ((200,) if sample.valid else (400,)), answer.text
        if not sample.valid:
            assert message_codes(answer) == ["Server"]
            description = parse(answer.content).findtext("{*}message/{*}description")
            assert "cvc-" in description
        for response in client.answers:
            if response.headers.get("Content-Type", "").endswith("+xml"):
                assert official.errors(response.content) is None, response.text
        assert xsd_sandbox.invalid_responses() == []
    finally:
        client.session.close()


def test_every_answer_of_a_full_contract_flow_validates(
    xsd_sandbox: Sandbox, official: OfficialSchemas
) -> None:
    client = CanadaPost(xsd_sandbox.base_url)
    try:
        created = client.create(contract_request(pricing=True))
        created_links = links(created.content)
        client.get(created_links["self"].get("href"))
        client.get(created_links["details"].get("href"))
        client.get(created_links["price"].get("href"))
        client.get(f"/rs/{CUSTOMER}/{CUSTOMER}/shipment?requestId=order-1-a1")
        client.get(f"/rs/{CUSTOMER}/{CUSTOMER}/shipment?requestId=nothing-like-it")
        client.delete(created_links["self"].get("href"))  # 8064: transmitted
        grouped = client.create(contract_request(group_id="20250901", request_id="g-1"))
        client.get(links(grouped.content)["details"].get("href"))
        client.delete(links(grouped.content)["self"].get("href"))
        client.delete(links(grouped.content)["self"].get("href"))  # 404, empty <messages/>
        nc = client.create_nc()
        client.get(links(nc.content)["details"].get("href"), NCSHIPMENT_MEDIA)
        client.get(links(nc.content)["receipt"].get("href"), NCSHIPMENT_MEDIA)
        client.get(f"/rs/{CUSTOMER}/ncshipment?from=200001010000", NCSHIPMENT_MEDIA)
        pin = parse(created.content).findtext("{*}tracking-pin")
        for kind in ("summary", "detail"):
            client.get(f"/vis/track/pin/{pin}/{kind}", "application/vnd.cpc.track-v2+xml")
            client.get(f"/vis/track/pin/0000000000000/{kind}", "application/vnd.cpc.track+xml")
        client.request("GET", f"/rs/{CUSTOMER}/{CUSTOMER}/shipment?requestId=x", auth=("wrong", "pair"))
        statuses = [answer.status_code for answer in client.answers]
        assert statuses.count(200) >= 10
        assert {400, 401, 404} <= set(statuses)
        xml_answers = [
            a for a in client.answers if a.headers.get("Content-Type", "").endswith("+xml") and a.content
        ]
        assert len(xml_answers) >= 15
        for answer in xml_answers:
            assert official.errors(answer.content) is None, answer.text
        assert xsd_sandbox.invalid_responses() == []
    finally:
        client.session.close()


def test_an_invalid_answer_of_the_sandbox_is_a_loud_500(
    xsd_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Break the sandbox on purpose: an answer without the links the schema requires.
    def broken_info(*args: object, **kwargs: object) -> bytes:
        return b'<shipment-info xmlns="http://www.canadapost.ca/ws/shipment-v8"><shipment-id>1</shipment-id></shipment-info>'

    monkeypatch.setattr(xsd_sandbox.canadapost, "_shipment_info", broken_info)
    client = CanadaPost(xsd_sandbox.base_url)
    try:
        answer = client.create()
    finally:
        client.session.close()
    assert answer.status_code == 500
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert "sandbox bug" in answer.text
    assert "official XSD" in answer.text
    assert len(xsd_sandbox.invalid_responses()) == 1
