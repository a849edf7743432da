"""Every value fulfil takes from a Canada Post answer is checked before anyone records or uses it.

A value that is not what Canada Post's schema declares (a PIN of ``../../x``, 500 digits, a
newline, a link to another host) makes the whole answer a ResponseFormatError that names the
element and shows the value briefly and safely; the purchase workflow treats that as
indeterminate, to be settled by reconcile, never as a reason to POST again.
"""

from __future__ import annotations

import pytest
from lxml import etree

from fulfil.canadapost.responses import (
    ResponseFormatError,
    parse_shipment_details,
    parse_shipment_info,
    parse_shipment_links,
)
from fulfil.canadapost.schema import NCSHIPMENT_NAMESPACE, SHIPMENT_NAMESPACE

pytestmark = pytest.mark.unit

CP = "https://ct.soa-gw.canadapost.ca"
SHIPMENT = f"{CP}/rs/0002004381/0002004381/shipment/545021584835957806"
V8 = "application/vnd.cpc.shipment-v8+xml"
PDF = "application/pdf"

VALID_PIN = "123456789012"
VALID_ID = "545021584835957806"
ARABIC_INDIC = "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662"  # ١٢٣٤٥٦٧٨٩٠١٢
FULL_WIDTH = "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff10\uff11\uff12"  # １２３…
LARGE = "1" * 1_000_000


def shipment_info(
    *,
    shipment_id: str | None = VALID_ID,
    pin: str | None = VALID_PIN,
    status: str | None = "transmitted",
    links: list[dict[str, str]] | None = None,
    root: str = "shipment-info",
    namespace: str = SHIPMENT_NAMESPACE,
) -> bytes:
    """A shipment-info answer built with lxml, so any text (newlines included) is encoded faithfully."""
    document = etree.Element(f"{{{namespace}}}{root}", nsmap={None: namespace})
    for name, value in (("shipment-id", shipment_id), ("shipment-status", status), ("tracking-pin", pin)):
        if value is not None:
            etree.SubElement(document, f"{{{namespace}}}{name}").text = value
    links_element = etree.SubElement(document, f"{{{namespace}}}links")
    for attributes in links if links is not None else default_links():
        etree.SubElement(links_element, f"{{{namespace}}}link", attributes)
    return etree.tostring(document, xml_declaration=True, encoding="UTF-8")


def default_links(origin: str = CP) -> list[dict[str, str]]:
    shipment = f"{origin}/rs/0002004381/0002004381/shipment/545021584835957806"
    return [
        {"rel": "self", "href": shipment, "media-type": V8},
        {"rel": "details", "href": f"{shipment}/details", "media-type": V8},
        {
            "rel": "label",
            "href": f"{origin}/rs/artifact/6e93d53968881714/10001782951/0",
            "media-type": PDF,
            "index": "0",
        },
    ]


def label_link(**attributes: str) -> list[dict[str, str]]:
    link = {"rel": "label", "href": f"{CP}/rs/artifact/1/2/0", "media-type": PDF, "index": "0"}
    link.update({name.replace("_", "-"): value for name, value in attributes.items()})
    return [link]


def shipments_search(links: list[dict[str, str]], namespace: str = SHIPMENT_NAMESPACE) -> bytes:
    document = etree.Element(f"{{{namespace}}}shipments", nsmap={None: namespace})
    for attributes in links:
        etree.SubElement(document, f"{{{namespace}}}link", attributes)
    return etree.tostring(document)


def details(
    *,
    status: str | None = "transmitted",
    pin: str | None = VALID_PIN,
    request_id: str | None = "fulfil-261250893-A-1",
    ref_1: str | None = "261250893-A",
    shipment_id: str | None = None,
) -> bytes:
    ns = SHIPMENT_NAMESPACE
    document = etree.Element(f"{{{ns}}}shipment-details", nsmap={None: ns})
    for name, value in (
        ("customer-request-id", request_id),
        ("shipment-id", shipment_id),
        ("shipment-status", status),
        ("tracking-pin", pin),
    ):
        if value is not None:
            etree.SubElement(document, f"{{{ns}}}{name}").text = value
    spec = etree.SubElement(etree.SubElement(document, f"{{{ns}}}shipment-detail"), f"{{{ns}}}delivery-spec")
    references = etree.SubElement(spec, f"{{{ns}}}references")
    if ref_1 is not None:
        etree.SubElement(references, f"{{{ns}}}customer-ref-1").text = ref_1
    return etree.tostring(document)


def refused(parse: object, body: bytes, *names: str, **options: object) -> str:
    """The error text, checked to name each of ``names`` and to be short and printable."""
    with pytest.raises(ResponseFormatError) as caught:
        parse(body, **options)  # type: ignore[operator]
    message = str(caught.value)
    for name in names:
        assert name in message, message
    assert len(message) < 400, message
    assert message.isprintable(), message  # no newline, no control or bidi character from the answer
    return message


# --- tracking PIN ---------------------------------------------------------------------------

HOSTILE_PINS = {
    "path traversal": "../../x",
    "path traversal, PIN length": "../../../../x",
    "500 digits": "1" * 500,
    "a megabyte of digits": LARGE,
    "newline inside": "123456\n789012",
    "carriage return inside": "123456\r789012",
    "tab inside": "123456\t789012",
    "spaces inside": "1234 5678 9012",
    "lower-case letters": "lm123456789ca",
    "10 characters": "1" * 10,
    "17 characters": "1" * 17,
    "Arabic-Indic digits": ARABIC_INDIC,
    "full-width digits": FULL_WIDTH,
    "no-break space padding": "\u00a0123456789012",
    "zero-width space": "123456789012\u200b",
    "right-to-left override": "\u202e123456789012",
    "next line (C1 control)": "123456789012\u0085",
    "hyphen": "12345-678901",
    "SQL": "' OR 1=1 --",
    "markup escaped as text": "<script>1</script>",
}


@pytest.mark.parametrize("pin", HOSTILE_PINS.values(), ids=HOSTILE_PINS.keys())
@pytest.mark.parametrize(
    ("root", "namespace"),
    [("shipment-info", SHIPMENT_NAMESPACE), ("non-contract-shipment-info", NCSHIPMENT_NAMESPACE)],
)
def test_hostile_tracking_pins_are_refused(pin: str, root: str, namespace: str) -> None:
    message = refused(
        parse_shipment_info, shipment_info(pin=pin, root=root, namespace=namespace), "<tracking-pin>"
    )
    assert "11 to 16" in message


@pytest.mark.parametrize("pin", HOSTILE_PINS.values(), ids=HOSTILE_PINS.keys())
def test_hostile_tracking_pins_in_details_are_refused(pin: str) -> None:
    refused(parse_shipment_details, details(pin=pin), "<tracking-pin>")


def test_a_huge_value_is_shown_short() -> None:
    message = refused(parse_shipment_info, shipment_info(pin=LARGE), "<tracking-pin>")
    assert "1000000 characters" in message
    assert "1" * 100 not in message


@pytest.mark.parametrize(
    "pin",
    [
        "12345678901",  # 11: the shortest the schema allows
        "1234567890123456",  # 16: the longest; Canada Post's domestic PINs
        VALID_PIN,  # 12
        "LM123456789CA",  # 13: the international (UPU S10) form
        "0000000000000",
    ],
)
def test_valid_tracking_pins(pin: str) -> None:
    assert parse_shipment_info(shipment_info(pin=pin)).tracking_pin == pin
    assert parse_shipment_details(details(pin=pin)).tracking_pin == pin


@pytest.mark.parametrize("padded", [f"  {VALID_PIN}  ", f"\n\t{VALID_PIN}\r\n", f"\n{VALID_PIN}"])
def test_xml_whitespace_around_a_value_is_layout_and_stripped(padded: str) -> None:
    """As child_text always did: pretty-printed answers put newlines around values."""
    info = parse_shipment_info(shipment_info(pin=padded, shipment_id=f" {VALID_ID}\n"))
    assert (info.tracking_pin, info.shipment_id) == (VALID_PIN, VALID_ID)


@pytest.mark.parametrize("empty", ["", "   ", "\n\t"])
@pytest.mark.parametrize("name", ["tracking-pin", "shipment-id"])
def test_an_empty_pin_or_id_is_missing(empty: str, name: str) -> None:
    values = {"pin": empty} if name == "tracking-pin" else {"shipment_id": empty}
    refused(parse_shipment_info, shipment_info(**values), f"has no <{name}>")


def test_a_pin_split_by_a_child_element_is_refused() -> None:
    body = shipment_info().replace(
        f"<tracking-pin>{VALID_PIN}</tracking-pin>".encode(),
        b"<tracking-pin>123456<b/>789012</tracking-pin>",
    )
    refused(parse_shipment_info, body, "<tracking-pin>")


def test_two_different_pins_are_refused() -> None:
    body = shipment_info().replace(
        f"<tracking-pin>{VALID_PIN}</tracking-pin>".encode(),
        b"<tracking-pin>123456789012</tracking-pin><tracking-pin>999999999999</tracking-pin>",
    )
    refused(parse_shipment_info, body, "<tracking-pin>", "2 times")


# --- shipment id ----------------------------------------------------------------------------

HOSTILE_IDS = {
    "path traversal": "../../x",
    "500 digits": "1" * 500,
    "33 digits": "1" * 33,
    "newline inside": "5450215\n84835957806",
    "letters": "abc",
    "hex": "0x1f",
    "negative": "-1",
    "decimal": "1.5",
    "Arabic-Indic digits": ARABIC_INDIC,
    "full-width digits": FULL_WIDTH,
    "no-break space padding": "\u00a0545021584835957806",
    "query string": "1?x=2",
    "slash": "1/refund",
}


@pytest.mark.parametrize("shipment_id", HOSTILE_IDS.values(), ids=HOSTILE_IDS.keys())
@pytest.mark.parametrize(
    ("root", "namespace"),
    [("shipment-info", SHIPMENT_NAMESPACE), ("non-contract-shipment-info", NCSHIPMENT_NAMESPACE)],
)
def test_hostile_shipment_ids_are_refused(shipment_id: str, root: str, namespace: str) -> None:
    body = shipment_info(shipment_id=shipment_id, root=root, namespace=namespace)
    refused(parse_shipment_info, body, "<shipment-id>")


@pytest.mark.parametrize("shipment_id", HOSTILE_IDS.values(), ids=HOSTILE_IDS.keys())
def test_hostile_shipment_ids_in_details_are_refused(shipment_id: str) -> None:
    refused(parse_shipment_details, details(shipment_id=shipment_id), "<shipment-id>")


@pytest.mark.parametrize("shipment_id", ["1", "1" * 32, VALID_ID, "0001"])
def test_valid_shipment_ids(shipment_id: str) -> None:
    assert parse_shipment_info(shipment_info(shipment_id=shipment_id)).shipment_id == shipment_id


# --- shipment status, customer-request-id, customer-ref-1 -----------------------------------

HOSTILE_STATUSES = {
    "15 characters": "t" * 15,
    "a megabyte": "t" * 1_000_000,
    "newline inside": "trans\nmitted",
    "tab inside": "trans\tmitted",
    "right-to-left override": "\u202etransmitted",
    "next line (C1 control)": "created\u0085",
    "delete": "created\x7f",
}


@pytest.mark.parametrize("status", HOSTILE_STATUSES.values(), ids=HOSTILE_STATUSES.keys())
def test_hostile_statuses_are_refused(status: str) -> None:
    refused(parse_shipment_info, shipment_info(status=status), "<shipment-status>")
    refused(parse_shipment_details, details(status=status), "<shipment-status>")


@pytest.mark.parametrize("status", ["created", "transmitted", "reconciled", "t" * 14])
def test_valid_statuses(status: str) -> None:
    assert parse_shipment_info(shipment_info(status=status)).status == status
    assert parse_shipment_details(details(status=status)).status == status


HOSTILE_REFERENCES = {
    "36 characters": "r" * 36,
    "a megabyte": "r" * 1_000_000,
    "newline inside": "261250893\n-A",
    "right-to-left override": "261250893-A\u202e",
    "line separator": "261250893\u2028-A",
    "next line (C1 control)": "261250893-A\u0085",
}


@pytest.mark.parametrize("value", HOSTILE_REFERENCES.values(), ids=HOSTILE_REFERENCES.keys())
def test_hostile_customer_request_ids_are_refused(value: str) -> None:
    refused(parse_shipment_details, details(request_id=value), "<customer-request-id>")


@pytest.mark.parametrize("value", HOSTILE_REFERENCES.values(), ids=HOSTILE_REFERENCES.keys())
def test_hostile_customer_references_are_refused(value: str) -> None:
    refused(parse_shipment_details, details(ref_1=value), "<customer-ref-1>")


@pytest.mark.parametrize("value", ["261250893-A", "r" * 35, "Commande 42 / Écho", "a b"])
def test_valid_references(value: str) -> None:
    parsed = parse_shipment_details(details(request_id=value, ref_1=value))
    assert (parsed.customer_request_id, parsed.customer_ref_1) == (value, value)


def test_absent_or_empty_optional_values_are_none() -> None:
    parsed = parse_shipment_details(details(status=None, pin="  ", request_id=None, ref_1=""))
    assert (parsed.status, parsed.tracking_pin, parsed.customer_request_id, parsed.customer_ref_1) == (
        None,
        None,
        None,
        None,
    )


# --- links ----------------------------------------------------------------------------------

HOSTILE_HREFS = {
    "javascript:": "javascript:alert(1)",
    "data:": "data:application/pdf;base64,JVBERi0=",
    "ftp:": "ftp://ct.soa-gw.canadapost.ca/rs/artifact/1",
    "file:": "file:///etc/passwd",
    "scheme-relative //host": "//evil.example/rs/artifact/1",
    "relative path": "/rs/artifact/1/2/0",
    "path traversal": "../../x",
    "no host": "https:///rs/artifact/1",
    "user and password": "https://user:pass@ct.soa-gw.canadapost.ca/rs/artifact/1",
    "user name hiding the host": "https://ct.soa-gw.canadapost.ca@evil.example/rs/artifact/1",
    "backslash": "https://ct.soa-gw.canadapost.ca\\@evil.example/",
    "space": "https://ct.soa-gw.canadapost.ca/rs/artifact/1 2",
    "newline": "https://ct.soa-gw.canadapost.ca/rs/artifact/1\nX-Injected: yes",
    "tab": "https://ct.soa-gw.canadapost.ca/rs/\tartifact",
    "fragment": "https://ct.soa-gw.canadapost.ca/rs/artifact/1#page=2",
    "non-ASCII host": "https://ct.soa-gw.canadapost.c\u0430/rs/artifact/1",  # a Cyrillic a
    "non-ASCII path": "https://ct.soa-gw.canadapost.ca/rs/\u00e9",
    "2049 characters": f"{CP}/" + "a" * (2048 - len(CP)),
    "a megabyte": f"{CP}/" + "a" * 1_000_000,
    "bad port": "https://ct.soa-gw.canadapost.ca:99999/rs",
    "unclosed IPv6": "http://[::1/rs",
}


@pytest.mark.parametrize("href", HOSTILE_HREFS.values(), ids=HOSTILE_HREFS.keys())
def test_hostile_link_hrefs_are_refused(href: str) -> None:
    refused(parse_shipment_info, shipment_info(links=label_link(href=href)), "<link rel='label'>", "href")
    search = shipments_search([{"rel": "shipment", "href": href, "media-type": V8}])
    refused(parse_shipment_links, search, "<link rel='shipment'>", "href")


def test_refused_hrefs_never_show_a_password() -> None:
    href = "https://cp-user:s3cret-Passw0rd@ct.soa-gw.canadapost.ca/rs/artifact/1"
    message = refused(parse_shipment_info, shipment_info(links=label_link(href=href)), "href")
    assert "s3cret" not in message


@pytest.mark.parametrize(
    "href",
    [
        f"{CP}/" + "a" * (2047 - len(CP)),  # 2048 characters
        "https://CT.SOA-GW.CANADAPOST.CA/rs/artifact/1/2/0",
        f"{CP}:443/rs/artifact/1/2/0",
        f"{CP}/rs/0002004381/0002004381/shipment?groupId=123456",
        "https://soa-gw.canadapost.ca/rs/{{cust}}/{{cust}}/shipment/{{id}}",  # as in a stored sample
        "http://127.0.0.1:38123/rs/artifact/abc/1/0",  # the sandbox
        "http://[::1]:38123/rs/artifact/abc/1/0",
    ],
)
def test_valid_hrefs(href: str) -> None:
    assert parse_shipment_info(shipment_info(links=label_link(href=href))).links["label"].href == href


HOSTILE_RELS = {
    "empty": "",
    "space": "la bel",
    "newline": "label\nX-Injected: yes",
    "65 characters": "l" * 65,
    "markup": "<script>",
    "path traversal": "../../x",
    "non-ASCII": "l\u0430bel",
}


@pytest.mark.parametrize("rel", HOSTILE_RELS.values(), ids=HOSTILE_RELS.keys())
def test_hostile_link_rels_are_refused(rel: str) -> None:
    refused(parse_shipment_info, shipment_info(links=label_link(rel=rel)), "<link", "rel")


@pytest.mark.parametrize("rel", ["self", "details", "label", "manifestShipments", "l" * 64, "x-future_1.2"])
def test_valid_link_rels(rel: str) -> None:
    assert rel in parse_shipment_info(shipment_info(links=label_link(rel=rel))).links


HOSTILE_MEDIA_TYPES = {
    "header injection": "application/pdf\r\nX-Injected: yes",
    "no subtype": "application/",
    "no slash": "pdf",
    "two slashes": "application/pdf/x",
    "parameters": "text/html; charset=utf-8",
    "space inside": "application /pdf",
    "non-ASCII": "application/p\u0501f",
    "no-break space": "application/pdf\u00a0",
    "too long": "application/" + "x" * 200,
}


@pytest.mark.parametrize("media_type", HOSTILE_MEDIA_TYPES.values(), ids=HOSTILE_MEDIA_TYPES.keys())
def test_hostile_media_types_are_refused(media_type: str) -> None:
    body = shipment_info(links=label_link(media_type=media_type))
    refused(parse_shipment_info, body, "<link rel='label'>", "media-type")


@pytest.mark.parametrize(
    "media_type",
    [PDF, V8, "application/vnd.cpc.ncshipment-v4+xml", "application/vnd.cpc.shipment+xml", "application/zpl"],
)
def test_valid_media_types(media_type: str) -> None:
    link = parse_shipment_info(shipment_info(links=label_link(media_type=media_type))).links["label"]
    assert link.media_type == media_type


def test_a_link_without_media_type_is_still_read() -> None:
    link = {"rel": "label", "href": f"{CP}/rs/artifact/1/2/0"}
    assert parse_shipment_info(shipment_info(links=[link])).links["label"].media_type is None


HOSTILE_INDEXES = {
    "word": "first",
    "negative": "-1",
    "decimal": "1.0",
    "superscript two": "\u00b2",  # str.isdigit() says yes, int() says no
    "Arabic-Indic three": "\u0663",
    "500 digits": "1" * 500,
    "space inside": "1 2",
}


@pytest.mark.parametrize("index", HOSTILE_INDEXES.values(), ids=HOSTILE_INDEXES.keys())
def test_hostile_link_indexes_are_refused(index: str) -> None:
    refused(parse_shipment_info, shipment_info(links=label_link(index=index)), "<link rel='label'>", "index")


# --- links on Canada Post's origin only ----------------------------------------------------

FOREIGN = {
    "another host": ("https://evil.example/rs/artifact/1/2/0", "evil.example"),
    "look-alike": ("https://ct.soa-gw.canadapost.ca.evil.example/rs/1", "canadapost.ca.evil.example"),
    "production instead of test": ("https://soa-gw.canadapost.ca/rs/artifact/1", "soa-gw.canadapost.ca"),
    "plain http": ("http://ct.soa-gw.canadapost.ca/rs/artifact/1", "http://ct.soa-gw.canadapost.ca:80"),
    "another port": ("https://ct.soa-gw.canadapost.ca:8443/rs/artifact/1", "ct.soa-gw.canadapost.ca:8443"),
    "an address": ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
}


@pytest.mark.parametrize(("href", "host"), FOREIGN.values(), ids=FOREIGN.keys())
def test_links_to_another_origin_are_refused_when_the_origin_is_given(href: str, host: str) -> None:
    links = [*default_links(), {"rel": "label", "href": href, "media-type": PDF, "index": "1"}]
    refused(parse_shipment_info, shipment_info(links=links), "<link rel='label'>", host, link_origin=CP)
    search = shipments_search([{"rel": "shipment", "href": href, "media-type": V8}])
    refused(parse_shipment_links, search, "<link rel='shipment'>", host, link_origin=CP)
    # Without an origin to hold them to, the same links are well-formed and read.
    assert parse_shipment_links(search)[0].href == href


@pytest.mark.parametrize(
    "origin",
    [
        CP,
        f"{CP}:443",
        "HTTPS://CT.SOA-GW.CANADAPOST.CA",
        f"{CP}/rs/ignored/path",
        "https://ct.soa-gw.canadapost.ca:443/",
    ],
)
def test_links_on_the_given_origin_are_read(origin: str) -> None:
    links = [
        *default_links(),
        {"rel": "receipt", "href": "https://CT.soa-gw.canadapost.ca:443/r", "media-type": V8},
    ]
    info = parse_shipment_info(shipment_info(links=links), link_origin=origin)
    assert [link.rel for link in info.all_links] == ["self", "details", "label", "receipt"]
    search = shipments_search([{"rel": "shipment", "href": SHIPMENT, "media-type": V8}])
    assert [link.href for link in parse_shipment_links(search, link_origin=origin)] == [SHIPMENT]


def test_sandbox_links_on_the_sandbox_origin() -> None:
    sandbox = "http://127.0.0.1:38123"
    info = parse_shipment_info(shipment_info(links=default_links(sandbox)), link_origin=sandbox)
    assert info.links["label"].href.startswith(f"{sandbox}/rs/artifact/")
    refused(
        parse_shipment_info,
        shipment_info(links=default_links(sandbox)),
        "127.0.0.1:38123",
        link_origin="http://127.0.0.1:38124",
    )


def test_an_unusable_link_origin_is_a_programming_error_not_a_bad_answer() -> None:
    """The origin comes from fulfil's configuration: it must not pass for an indeterminate answer."""
    with pytest.raises(ValueError, match="link_origin is not a usable") as caught:
        parse_shipment_info(shipment_info(), link_origin="ct.soa-gw.canadapost.ca")
    assert not isinstance(caught.value, ResponseFormatError)
