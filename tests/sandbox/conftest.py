"""Fixtures for the sandbox tests: a started Sandbox per module, reset before every test, and small
clients that speak to it over real sockets the way fulfil does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from lxml import etree

from fulfil.sandbox import Sandbox, SandboxConfig
from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from tests.shared_reference import xsd_dir

SHIPMENT_MEDIA = "application/vnd.cpc.shipment-v8+xml"
NCSHIPMENT_MEDIA = "application/vnd.cpc.ncshipment-v4+xml"
TRACK_MEDIA = "application/vnd.cpc.track-v2+xml"
SHIPMENT_NS = "http://www.canadapost.ca/ws/shipment-v8"
NCSHIPMENT_NS = "http://www.canadapost.ca/ws/ncshipment-v4"
MESSAGES_NS = "http://www.canadapost.ca/ws/messages"
CP_AUTH = (
    DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_USERNAME"],
    DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_PASSWORD"],
)
BB_KEY = DEFAULT_CREDENTIALS["FULFIL_BESTBUY_API_KEY"]
CUSTOMER = DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_CUSTOMER_NUMBER"]
SCHEMA_FILES = {
    SHIPMENT_NS: "shipment.xsd",
    NCSHIPMENT_NS: "ncshipment.xsd",
    "http://www.canadapost.ca/ws/track": "track.xsd",
    MESSAGES_NS: "messages.xsd",
}


def contract_request(
    *,
    request_id: str | None = "order-1-a1",
    reference: str | None = "261250893-A",
    name: str = "Émilie Tremblay",
    line_1: str = "4417 rue Saint-Denis",
    line_2: str | None = "app. 3",
    city: str = "Montréal",
    province: str = "QC",
    postal: str = "H2J2L1",
    group_id: str | None = None,
    encoding: str | None = None,
    output_format: str = "4x6",
    pricing: bool = False,
) -> bytes:
    """A valid contract Create Shipment body, built element by element (no sample text copied)."""
    ns = SHIPMENT_NS

    def add(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{ns}}}{tag}")
        element.text = text
        return element

    root = etree.Element(f"{{{ns}}}shipment", nsmap={None: ns})
    if request_id is not None:
        add(root, "customer-request-id", request_id)
    if group_id is not None:
        add(root, "group-id", group_id)
    else:
        add(root, "transmit-shipment", "true")
    add(root, "requested-shipping-point", "L5T2H3")
    if pricing:
        add(root, "provide-pricing-info", "true")
    spec = add(root, "delivery-spec")
    add(spec, "service-code", "DOM.EP")
    sender = add(spec, "sender")
    add(sender, "name", "Shipping Desk")
    add(sender, "company", "Sandbox Electronics")
    add(sender, "contact-phone", "905-555-0100")
    sender_address = add(sender, "address-details")
    add(sender_address, "address-line-1", "6975 Pacific Circle")
    add(sender_address, "city", "Mississauga")
    add(sender_address, "prov-state", "ON")
    add(sender_address, "country-code", "CA")
    add(sender_address, "postal-zip-code", "L5T2H3")
    destination = add(spec, "destination")
    add(destination, "name", name)
    address = add(destination, "address-details")
    add(address, "address-line-1", line_1)
    if line_2:
        add(address, "address-line-2", line_2)
    add(address, "city", city)
    add(address, "prov-state", province)
    add(address, "country-code", "CA")
    add(address, "postal-zip-code", postal)
    parcel = add(spec, "parcel-characteristics")
    add(parcel, "weight", "1.250")
    preferences_print = add(spec, "print-preferences")
    add(preferences_print, "output-format", output_format)
    if encoding:
        add(preferences_print, "encoding", encoding)
    preferences = add(spec, "preferences")
    add(preferences, "show-packing-instructions", "false")
    if reference is not None:
        add(add(spec, "references"), "customer-ref-1", reference)
    settlement = add(spec, "settlement-info")
    add(settlement, "contract-id", "42708517")
    add(settlement, "intended-method-of-payment", "Account")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def nc_request(
    *, reference: str | None = "261250893-A", postal: str = "K1N5T5", name: str = "Liam Fraser"
) -> bytes:
    """A valid non-contract Create Non-Contract Shipment body."""
    ns = NCSHIPMENT_NS

    def add(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{ns}}}{tag}")
        element.text = text
        return element

    root = etree.Element(f"{{{ns}}}non-contract-shipment", nsmap={None: ns})
    spec = add(root, "delivery-spec")
    add(spec, "service-code", "DOM.RP")
    sender = add(spec, "sender")
    add(sender, "company", "Sandbox Electronics")
    add(sender, "contact-phone", "905-555-0100")
    sender_address = add(sender, "address-details")
    add(sender_address, "address-line-1", "6975 Pacific Circle")
    add(sender_address, "city", "Mississauga")
    add(sender_address, "prov-state", "ON")
    add(sender_address, "postal-zip-code", "L5T2H3")
    destination = add(spec, "destination")
    add(destination, "name", name)
    address = add(destination, "address-details")
    add(address, "address-line-1", "120 Wellington St")
    add(address, "city", "Ottawa")
    add(address, "prov-state", "ON")
    add(address, "country-code", "CA")
    add(address, "postal-zip-code", postal)
    add(add(spec, "parcel-characteristics"), "weight", "0.800")
    add(add(spec, "preferences"), "show-packing-instructions", "false")
    if reference is not None:
        add(add(spec, "references"), "customer-ref-1", reference)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def parse(body: bytes) -> etree._Element:
    return etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))


def texts(root: etree._Element, name: str) -> list[str]:
    return [element.text or "" for element in root.iter(f"{{*}}{name}")]


def message_codes(response: requests.Response) -> list[str]:
    root = parse(response.content)
    assert etree.QName(root).namespace == MESSAGES_NS
    assert etree.QName(root).localname == "messages"
    return texts(root, "code")


def links(body: bytes) -> dict[str, etree._Element]:
    return {link.get("rel"): link for link in parse(body).iter("{*}link")}


@dataclass
class CanadaPost:
    """Speaks to the sandbox the way a Canada Post client does; remembers every answer."""

    base_url: str
    session: requests.Session = field(default_factory=requests.Session)
    answers: list[requests.Response] = field(default_factory=list)

    def _keep(self, response: requests.Response) -> requests.Response:
        self.answers.append(response)
        return response

    def request(self, method: str, url: str, **kwargs: object) -> requests.Response:
        kwargs.setdefault("auth", CP_AUTH)
        kwargs.setdefault("timeout", 10)
        full = url if url.startswith("http") else self.base_url + url
        return self._keep(self.session.request(method, full, **kwargs))  # type: ignore[arg-type]

    def create(self, body: bytes | None = None, **kwargs: object) -> requests.Response:
        headers = {"Content-Type": SHIPMENT_MEDIA, "Accept": SHIPMENT_MEDIA}
        return self.request(
            "POST",
            f"/rs/{CUSTOMER}/{CUSTOMER}/shipment",
            data=body if body is not None else contract_request(),
            headers=headers,
            **kwargs,
        )

    def create_nc(self, body: bytes | None = None) -> requests.Response:
        headers = {"Content-Type": NCSHIPMENT_MEDIA, "Accept": NCSHIPMENT_MEDIA}
        return self.request("POST", f"/rs/{CUSTOMER}/ncshipment", data=body or nc_request(), headers=headers)

    def get(self, url: str, media: str = SHIPMENT_MEDIA, **kwargs: object) -> requests.Response:
        return self.request("GET", url, headers={"Accept": media}, **kwargs)

    def delete(self, url: str, media: str = SHIPMENT_MEDIA) -> requests.Response:
        return self.request("DELETE", url, headers={"Accept": media})


@dataclass
class BestBuy:
    base_url: str
    session: requests.Session = field(default_factory=requests.Session)

    def request(self, method: str, path: str, **kwargs: object) -> requests.Response:
        headers = {"Authorization": BB_KEY, "Accept": "application/json"}
        headers.update(kwargs.pop("headers", {}))  # type: ignore[arg-type]
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.base_url + path, headers=headers, **kwargs)  # type: ignore[arg-type]

    def orders(self, **params: object) -> requests.Response:
        return self.request("GET", "/api/orders", params=params)

    def order(self, order_id: str) -> dict[str, object]:
        answer = self.orders(order_ids=order_id)
        assert answer.status_code == 200, answer.text
        return answer.json()["orders"][0]


@pytest.fixture(scope="module")
def module_sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(seed=11, time_scale=3600.0)) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(module_sandbox: Sandbox) -> Sandbox:
    module_sandbox.reset()
    return module_sandbox


@pytest.fixture(scope="module")
def schema_dir() -> Path:
    return xsd_dir()


@pytest.fixture(scope="module")
def module_xsd_sandbox(schema_dir: Path) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(seed=5, xsd_dir=schema_dir)) as sandbox:
        yield sandbox


@pytest.fixture
def xsd_sandbox(module_xsd_sandbox: Sandbox) -> Sandbox:
    module_xsd_sandbox.reset()
    return module_xsd_sandbox


@pytest.fixture
def canadapost(sandbox: Sandbox) -> Iterator[CanadaPost]:
    client = CanadaPost(sandbox.base_url)
    yield client
    client.session.close()


@pytest.fixture
def bestbuy(sandbox: Sandbox) -> Iterator[BestBuy]:
    client = BestBuy(sandbox.base_url)
    yield client
    client.session.close()


class OfficialSchemas:
    """The official XSDs loaded straight with lxml, independently of the sandbox's own loader."""

    def __init__(self, directory: Path) -> None:
        self._schemas = {
            namespace: etree.XMLSchema(etree.parse(str(directory / filename)))
            for namespace, filename in SCHEMA_FILES.items()
        }

    def errors(self, body: bytes) -> str | None:
        root = parse(body)
        namespace = etree.QName(root).namespace
        schema = self._schemas[namespace or ""]
        if schema.validate(root):
            return None
        return str(schema.error_log.last_error)


@pytest.fixture(scope="module")
def official(schema_dir: Path) -> OfficialSchemas:
    return OfficialSchemas(schema_dir)
