"""The manifest messages on their own: the day's group, the Transmit Shipments request (valid
against manifest.xsd, and judged by the sandbox's own rules as the XSD judges it), Canada Post's
real manifest answers parsed (../shared samples), hostile answers refused, the setting, and the
throttle group of every manifest call. No database, no server."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from lxml import etree

from fulfil.canadapost.groups import canada_post_day, day_group_id
from fulfil.canadapost.manifests import (
    MANIFEST_NAMESPACE,
    build_transmit_request,
    parse_manifest,
    parse_manifest_links,
    shipment_ids_of,
)
from fulfil.canadapost.responses import ResponseFormatError
from fulfil.canadapost.sender import sender_address
from fulfil.canadapost.throttle_groups import CANADA_POST_ENDPOINT_GROUPS
from fulfil.config import load_settings
from fulfil.errors import ConfigError
from fulfil.manifest_settings import ManifestMode, check_manifest_mode, manifest_mode
from fulfil.sandbox import cp_schema
from tests.canadapost.factories import sender_settings
from tests.conftest import REPOSITORY
from tests.sandbox.test_canadapost_samples import with_namespace
from tests.shared_reference import canadapost_samples, xsd_dir

pytestmark = pytest.mark.unit

CANADA_POST = "https://ct.soa-gw.canadapost.ca"
GROUP = "fulfil-20261202"


@pytest.fixture(scope="module")
def manifest_schema() -> etree.XMLSchema:
    # By path: manifest.xsd pulls in common.xsd (xsd:redefine) relative to its own location.
    return etree.XMLSchema(etree.parse(str(xsd_dir() / "manifest.xsd")))


def own_verdict(root: etree._Element) -> str | None:
    try:
        cp_schema.validate(root, MANIFEST_NAMESPACE, "transmit-set")
    except cp_schema.SchemaViolation as violation:
        return str(violation)
    return None


def transmit_set(excluded: tuple[str, ...] = ("545021584835957806",), **sender: str | None) -> etree._Element:
    request = build_transmit_request([GROUP], sender_address(sender_settings(**sender)), excluded)
    return etree.fromstring(request.xml)


# --- the day's group --------------------------------------------------------------------------------


def test_the_days_group_is_named_by_canada_posts_eastern_day() -> None:
    assert day_group_id(date(2026, 1, 5)) == "fulfil-20260105"
    # 03:00 UTC is still the evening before in Toronto (EST, UTC-5), and 03:30 UTC in summer (EDT).
    assert canada_post_day(datetime(2026, 12, 2, 3, 0, tzinfo=UTC)) == date(2026, 12, 1)
    assert canada_post_day(datetime(2026, 7, 2, 3, 30, tzinfo=UTC)) == date(2026, 7, 1)
    assert canada_post_day(datetime(2026, 12, 2, 5, 0, tzinfo=UTC)) == date(2026, 12, 2)
    # GroupIDType: a normalizedString of 1 to 32 characters.
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,32}", day_group_id(date(9999, 12, 31)))


# --- Transmit Shipments -----------------------------------------------------------------------------


def test_the_transmit_request_is_valid_manifest_v8(manifest_schema: etree.XMLSchema) -> None:
    for root in (
        transmit_set(),
        transmit_set(excluded=(), name=None, address_line_2="Suite 200"),
    ):
        manifest_schema.assertValid(root)
        assert own_verdict(root) is None
    root = transmit_set()
    ns = f"{{{MANIFEST_NAMESPACE}}}"
    assert root.tag == f"{ns}transmit-set"
    assert root.findtext(f"{ns}group-ids/{ns}group-id") == GROUP
    assert root.findtext(f"{ns}requested-shipping-point") == "H2B1A0"
    assert root.findtext(f"{ns}detailed-manifests") == "true"
    assert root.findtext(f"{ns}method-of-payment") == "Account"
    assert root.findtext(f"{ns}manifest-address/{ns}manifest-company") == "Example Co"
    assert root.findtext(f"{ns}manifest-address/{ns}address-details/{ns}postal-zip-code") == "H2B1A0"
    assert [e.text for e in root.iterfind(f"{ns}excluded-shipments/{ns}shipment-id")] == [
        "545021584835957806"
    ]
    # No pickup is asked for: the parcels are tendered where the labels say, as they are bought.
    assert root.find(f"{ns}cpc-pickup-indicator") is None


@pytest.mark.parametrize(
    ("groups", "excluded"),
    [([], ()), (["with space"], ()), (["g" * 33], ()), ([GROUP], ("../1",))],
    ids=["no group", "space", "too long", "bad shipment id"],
)
def test_a_transmit_request_canada_post_would_refuse_is_never_built(
    groups: list[str], excluded: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match=r"group|shipment id"):
        build_transmit_request(groups, sender_address(sender_settings()), excluded)


def test_the_shared_sample_request_is_valid_to_the_xsd_and_to_the_sandbox(
    manifest_schema: etree.XMLSchema,
) -> None:
    text = (canadapost_samples() / "transmit-set-request.karrio.xml").read_text(encoding="utf-8")
    root = etree.fromstring(text.replace("[GROUP_IDS]", GROUP).encode())
    manifest_schema.assertValid(root)
    assert own_verdict(root) is None


def _set(path: str, value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        found = root.find(path, {"m": MANIFEST_NAMESPACE})
        assert found is not None, path
        found.text = value

    return change


def _drop(path: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        found = root.find(path, {"m": MANIFEST_NAMESPACE})
        assert found is not None, path
        found.getparent().remove(found)

    return change


def _add(parent: str, name: str, value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        found = root if parent == "." else root.find(parent, {"m": MANIFEST_NAMESPACE})
        assert found is not None, parent
        etree.SubElement(found, f"{{{MANIFEST_NAMESPACE}}}{name}").text = value

    return change


MUTATIONS: dict[str, Callable[[etree._Element], None]] = {
    "no method-of-payment": _drop("m:method-of-payment"),
    "no detailed-manifests": _drop("m:detailed-manifests"),
    "no group-ids": _drop("m:group-ids"),
    "no manifest-address": _drop("m:manifest-address"),
    "no phone-number": _drop("m:manifest-address/m:phone-number"),
    "no postal code": _drop("m:manifest-address/m:address-details/m:postal-zip-code"),
    "empty group-ids": _drop("m:group-ids/m:group-id"),
    "group id of 33": _set("m:group-ids/m:group-id", "g" * 33),
    "group id of 32": _set("m:group-ids/m:group-id", "g" * 32),
    "postal code with a space": _set("m:requested-shipping-point", "H2B 1A0"),
    "a ZIP code in the address": _set("m:manifest-address/m:address-details/m:postal-zip-code", "12345-6789"),
    "province of 3": _set("m:manifest-address/m:address-details/m:prov-state", "QUE"),
    "country MX": _set("m:manifest-address/m:address-details/m:country-code", "MX"),
    "company of 45": _set("m:manifest-address/m:manifest-company", "c" * 45),
    "detailed-manifests yes": _set("m:detailed-manifests", "yes"),
    "method of payment of 16": _set("m:method-of-payment", "m" * 16),
    "shipment id of 33": _set("m:excluded-shipments/m:shipment-id", "1" * 33),
    "pickup true": _add(".", "cpc-pickup-indicator", "true"),
    "pickup false": _add(".", "cpc-pickup-indicator", "false"),
    "customer-reference of 12": _add(".", "customer-reference", "r" * 12),
    "customer-reference of 13": _add(".", "customer-reference", "r" * 13),
    "two detailed-manifests": _add(".", "detailed-manifests", "true"),
    "an unknown element": _add(".", "rush", "true"),
    "a second group": _add("m:group-ids", "group-id", "fulfil-20261201"),
    "a second excluded shipment": _add("m:excluded-shipments", "shipment-id", "1"),
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=list(MUTATIONS))
def test_the_sandboxs_rules_judge_a_transmit_set_as_the_xsd_does(
    mutation: str, manifest_schema: etree.XMLSchema
) -> None:
    root = copy.deepcopy(transmit_set())
    MUTATIONS[mutation](root)
    xsd_valid = manifest_schema.validate(root)
    verdict = own_verdict(root)
    assert (verdict is None) == xsd_valid, (mutation, verdict, manifest_schema.error_log.last_error)


# --- answers ----------------------------------------------------------------------------------------


def test_the_shared_transmit_answer_is_parsed() -> None:
    # The sample has no namespace (karrio's) and karrio's dummy host https://XX.
    body = (canadapost_samples() / "transmit-shipments-response-manifests.karrio.xml").read_bytes()
    for document in (body, with_namespace(body, MANIFEST_NAMESPACE)):
        links = parse_manifest_links(document, link_origin="https://XX")
        assert [link.manifest_id for link in links] == ["444444444444", "333333333333"]
        assert links[0].href == "https://XX/1111111111/222222222/manifest/444444444444"
        assert links[0].media_type == "application/vnd.cpc.manifest-v8+xml"
    with pytest.raises(ResponseFormatError, match="not to"):
        parse_manifest_links(body, link_origin=CANADA_POST)  # a link elsewhere is never followed


def test_the_shared_manifest_answer_is_parsed(manifest_schema: etree.XMLSchema) -> None:
    body = (canadapost_samples() / "get-manifest-response.karrio.xml").read_bytes()
    manifest_schema.assertValid(etree.fromstring(body))
    info = parse_manifest(body, link_origin=CANADA_POST)
    assert info.po_number == "P123456789"
    base = f"{CANADA_POST}/rs/0002004381/0002004381"
    assert info.href("self") == f"{base}/manifest/732071711235567991"
    assert info.href("details") == f"{base}/manifest/732071711235567991/details"
    assert info.href("manifestShipments") == f"{base}/shipment?manifestId=732071711235567991"
    assert info.media_type("manifestShipments") == "application/vnd.cpc.shipment-v8+xml"
    assert info.href("artifact") == f"{CANADA_POST}/rs/artifact/6e93d53968881714/10005457526/0"
    assert info.media_type("artifact") == "application/pdf"


def test_a_shipments_listing_gives_shipment_ids_and_refuses_anything_else() -> None:
    shipment = "application/vnd.cpc.shipment-v8+xml"
    base = f"{CANADA_POST}/rs/0002004381/0002004381/shipment"
    listing = (
        f'<shipments xmlns="http://www.canadapost.ca/ws/shipment-v8">'
        f'<link rel="shipment" href="{base}/545021584835957806" media-type="{shipment}"/>'
        f'<link rel="shipment" href="{base}/340531309186521749" media-type="{shipment}"/></shipments>'
    )
    assert shipment_ids_of(listing, link_origin=CANADA_POST) == ["545021584835957806", "340531309186521749"]
    # The shared sample's hrefs still hold the reporter's {{placeholders}}: not a shipment id.
    sample = (canadapost_samples() / "get-shipments-by-trackingpin-response.karrio-issue731.xml").read_text()
    with pytest.raises(ResponseFormatError, match="Canada Post id"):
        shipment_ids_of(sample, link_origin="https://soa-gw.canadapost.ca")


SHIPMENTS_LINK = (
    f'<link rel="manifestShipments" href="{CANADA_POST}/rs/1/1/shipment?manifestId=1" '
    'media-type="application/vnd.cpc.shipment-v8+xml"/>'
)
MANIFEST = (
    f'<manifest xmlns="{MANIFEST_NAMESPACE}"><po-number>{{po}}</po-number><links>{SHIPMENTS_LINK}'
    '<link rel="artifact" href="{artifact}" media-type="{media}"/></links></manifest>'
)


@pytest.mark.parametrize(
    ("po", "artifact", "media", "expected"),
    [
        ("../x", f"{CANADA_POST}/rs/artifact/a/1/0", "application/pdf", "not a PO number"),
        ("P12345678901", f"{CANADA_POST}/rs/artifact/a/1/0", "application/pdf", "not a PO number"),
        ("P1", "https://evil.example/rs/artifact/a/1/0", "application/pdf", "not to"),
        ("P1", "http://ct.soa-gw.canadapost.ca/rs/artifact/a/1/0", "application/pdf", "not to"),
        ("P1", f"{CANADA_POST}/rs/artifact/a/1/0#frag", "application/pdf", "fragment"),
        ("P1", f"{CANADA_POST}/rs/artifact/a/1/0", "pdf please", "not a media type"),
    ],
    ids=["path in po", "po too long", "foreign host", "another scheme", "fragment", "media type"],
)
def test_a_hostile_manifest_answer_is_refused(po: str, artifact: str, media: str, expected: str) -> None:
    with pytest.raises(ResponseFormatError, match=expected):
        parse_manifest(MANIFEST.format(po=po, artifact=artifact, media=media), link_origin=CANADA_POST)


def test_a_manifest_without_its_pdf_or_an_error_for_an_answer_is_refused() -> None:
    without_pdf = f'<manifest xmlns="{MANIFEST_NAMESPACE}"><po-number>P1</po-number><links/></manifest>'
    with pytest.raises(ResponseFormatError, match="artifact"):
        parse_manifest(without_pdf, link_origin=CANADA_POST)
    error = (
        '<messages xmlns="http://www.canadapost.ca/ws/messages"><message><code>9111</code>'
        "<description>Group id was not found</description></message></messages>"
    )
    with pytest.raises(ResponseFormatError, match="9111"):
        parse_manifest_links(error, link_origin=CANADA_POST)
    with pytest.raises(ResponseFormatError, match="does not end in /manifest/"):
        parse_manifest_links(
            f'<manifests><link rel="manifest" href="{CANADA_POST}/rs/1/1/elsewhere/x" media-type="a/b"/>'
            "</manifests>",
            link_origin=CANADA_POST,
        )


# --- the setting ------------------------------------------------------------------------------------


def test_the_setting_defaults_to_auto_and_reads_end_of_day(tmp_path: Path) -> None:
    assert manifest_mode(load_settings({}, tmp_path)) is ManifestMode.AUTO
    told = load_settings({"FULFIL_CANADAPOST_MANIFEST": " end_of_day "}, tmp_path)
    assert manifest_mode(told) is ManifestMode.END_OF_DAY
    assert manifest_mode(load_settings({"FULFIL_CANADAPOST_MANIFEST": ""}, tmp_path)) is ManifestMode.AUTO
    with pytest.raises(ConfigError, match="FULFIL_CANADAPOST_MANIFEST"):
        manifest_mode(load_settings({"FULFIL_CANADAPOST_MANIFEST": "nightly"}, tmp_path))


def test_the_setting_comes_from_the_config_file_too(tmp_path: Path) -> None:
    (tmp_path / "fulfil.toml").write_text('[canadapost]\nmanifest = "end_of_day"\n', encoding="utf-8")
    assert manifest_mode(load_settings({}, tmp_path)) is ManifestMode.END_OF_DAY


def test_end_of_day_is_for_contract_shipping() -> None:
    check_manifest_mode(ManifestMode.END_OF_DAY, contract=True)
    check_manifest_mode(ManifestMode.AUTO, contract=False)
    with pytest.raises(ConfigError, match="contract"):
        check_manifest_mode(ManifestMode.END_OF_DAY, contract=False)


# --- throttle groups --------------------------------------------------------------------------------


def test_every_manifest_call_is_in_a_throttle_group() -> None:
    """Like tests/test_rate_budgets.py's check of client.py, for the module that makes these calls."""
    source = (REPOSITORY / "fulfil" / "canadapost" / "manifests.py").read_text(encoding="utf-8")
    called = set(re.findall(r'"((?:Get|Transmit)[A-Za-z]+)"', source))
    assert {"TransmitShipments", "GetManifests", "GetManifest", "GetShipments", "GetArtifact"} <= called
    groups = {endpoint: CANADA_POST_ENDPOINT_GROUPS[endpoint] for endpoint in called}
    assert groups["TransmitShipments"] == groups["GetManifests"] == groups["GetManifest"] == "C"
    assert groups["GetArtifact"] == "A"
    assert CANADA_POST_ENDPOINT_GROUPS["GetManifestDetails"] == "C"
