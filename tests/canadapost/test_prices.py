"""A label's price read from the documents Canada Post serves apart from the purchase answer: a
contract shipment's price document (<shipment-price> on its own) and a non-contract label's
receipt. The shared samples (checked against the official XSDs as well), then hostile variants:
each refused naming the field and the document, never a price made up."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lxml import etree

from fulfil.canadapost.prices import parse_price_document, parse_receipt, parse_shipment_price
from fulfil.canadapost.responses import ResponseFormatError
from tests.shared_reference import canadapost_samples

pytestmark = pytest.mark.unit

RECEIPT_SAMPLE = "ncshipment-receipt-response.activeshipping.xml"
# Canada Post publishes no sample of the price document on its own; it is the <shipment-price> of
# a Create Shipment answer (shipment.xsd declares both with the one ShipmentPriceType).
PRICED_ANSWER = "contract-create-shipment-response-transmitted.karrio.xml"
SHIPMENT_NS = "http://www.canadapost.ca/ws/shipment-v8"
NCSHIPMENT_NS = "http://www.canadapost.ca/ws/ncshipment-v4"
ENTITY_EXPANSION = (
    '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY a "dollars"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
)


def receipt_text() -> str:
    return (canadapost_samples() / RECEIPT_SAMPLE).read_text(encoding="utf-8")


def price_document_text() -> str:
    answer = etree.fromstring((canadapost_samples() / PRICED_ANSWER).read_bytes())
    price = answer.find(f"{{{SHIPMENT_NS}}}shipment-price")
    assert price is not None
    return etree.tostring(price, encoding="unicode")


def with_namespace(text: str, root: str, namespace: str) -> bytes:
    return text.replace(f"<{root}>", f'<{root} xmlns="{namespace}">', 1).encode("utf-8")


def test_the_receipt_sample_is_read_to_the_cent(ncshipment_schema: etree.XMLSchema) -> None:
    # The sample has no namespace; with ncshipment-v4's it is valid against the official schema.
    assert ncshipment_schema.validate(
        etree.fromstring(with_namespace(receipt_text(), "non-contract-shipment-receipt", NCSHIPMENT_NS))
    )
    price = parse_receipt(receipt_text())
    assert price.service_code == "DOM.EP"
    assert (price.base, price.pre_tax, price.gst, price.pst, price.hst) == (
        Decimal("18.10"),
        Decimal("19.46"),
        Decimal("0.00"),
        Decimal("0.00"),
        Decimal("2.53"),
    )
    assert [(c.code, c.amount) for c in price.options] == [("DC", Decimal("0"))]
    assert [(c.code, c.amount) for c in price.adjustments] == [("FUELSC", Decimal("1.36"))]
    # Due is what the card was charged (here also the pre-tax amount plus the taxes).
    assert price.due == Decimal("21.99") == price.pre_tax + price.taxes


def test_the_receipt_in_its_namespace_reads_the_same() -> None:
    namespaced = with_namespace(receipt_text(), "non-contract-shipment-receipt", NCSHIPMENT_NS)
    assert parse_receipt(namespaced) == parse_receipt(receipt_text())


def test_the_price_document_is_read_to_the_cent(shipment_schema: etree.XMLSchema) -> None:
    document = price_document_text()
    assert shipment_schema.validate(etree.fromstring(document))
    price = parse_price_document(document)
    assert price == parse_shipment_price((canadapost_samples() / PRICED_ANSWER).read_bytes())
    assert (price.base, price.pre_tax, price.hst, price.due) == (
        Decimal("25.07"),
        Decimal("27.95"),
        Decimal("3.63"),
        Decimal("31.58"),
    )


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("<base-amount>18.10</base-amount>", "", "<non-contract-shipment-receipt> has no <base-amount>"),
        ("<pre-tax-amount>19.46</pre-tax-amount>", "", "has no <pre-tax-amount>"),
        # A receipt's due may be its lines' sum: a missing tax is never taken as no tax.
        ("<hst-amount>2.53</hst-amount>", "", "has no <hst-amount>"),
        ("<base-amount>18.10</base-amount>", "<base-amount>-18.10</base-amount>", "<base-amount>.*negative"),
        ("<gst-amount>0.00</gst-amount>", "<gst-amount>0.001</gst-amount>", "<gst-amount>"),
        ("<base-amount>18.10</base-amount>", "<base-amount>1e3</base-amount>", "<base-amount>"),
        ("<base-amount>18.10</base-amount>", "<base-amount>NaN</base-amount>", "<base-amount>"),
        (
            "<base-amount>18.10</base-amount>",
            "<base-amount>18.10</base-amount><base-amount>1.00</base-amount>",
            "<base-amount> appears 2 times",
        ),
        ("<service-code>DOM.EP</service-code>", "<service-code>DOM EP;</service-code>", "<service-code>"),
        (
            "<charge-amount>21.99</charge-amount>",
            "<charge-amount>21.99 CAD</charge-amount>",
            "<charge-amount>",
        ),
        ("<charge-amount>21.99</charge-amount>", "<charge-amount>-21.99</charge-amount>", "<charge-amount>"),
        (
            "<adjustment-amount>1.36</adjustment-amount>",
            "",
            "<adjustment> has no <adjustment-amount>",
        ),
        (
            "<adjustment-code>FUELSC</adjustment-code>",
            "<adjustment-code></adjustment-code>",
            "<adjustment-code>",
        ),
    ],
)
def test_a_receipt_that_cannot_be_read_is_refused_naming_the_field(old: str, new: str, said: str) -> None:
    text = receipt_text()
    assert old in text
    with pytest.raises(ResponseFormatError, match=said):
        parse_receipt(text.replace(old, new))


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("<due-amount>31.58</due-amount>", "", "<shipment-price> has no <due-amount>"),
        ("<base-amount>25.07</base-amount>", "", "has no <base-amount>"),
        ("<base-amount>25.07</base-amount>", "<base-amount>-25.07</base-amount>", "<base-amount>.*negative"),
        ("<due-amount>31.58</due-amount>", "<due-amount>31.589</due-amount>", "<due-amount>"),
        (
            "<pre-tax-amount>27.95</pre-tax-amount>",
            "<pre-tax-amount><b>1</b></pre-tax-amount>",
            "holds elements",
        ),
    ],
)
def test_a_price_document_that_cannot_be_read_is_refused_naming_the_field(
    old: str, new: str, said: str
) -> None:
    text = price_document_text()
    assert old in text
    with pytest.raises(ResponseFormatError, match=said):
        parse_price_document(text.replace(old, new))


def test_a_receipt_without_a_card_block_is_due_its_lines() -> None:
    text = receipt_text()
    start, end = text.index("<cc-receipt-details>"), text.index("</cc-receipt-details>")
    text = text[:start] + text[end + len("</cc-receipt-details>") :]
    assert parse_receipt(text).due == Decimal("21.99")


def test_a_charge_in_another_currency_is_not_added_to_dollars() -> None:
    text = receipt_text().replace(
        "<charge-amount>21.99</charge-amount>", "<charge-amount>16.50</charge-amount>"
    )
    assert parse_receipt(text).due == Decimal("16.50")
    in_us_dollars = text.replace("<currency>CAD</currency>", "<currency>USD</currency>")
    assert parse_receipt(in_us_dollars).due == Decimal("21.99")


GARBAGE = [
    b"",
    b"\x00\xff\xfe garbage",
    b"<non-contract-shipment-receipt><base-amount>18.10</base-amount>",  # truncated
    b"<html><body>502 Bad Gateway</body></html>",
]


@pytest.mark.parametrize("body", GARBAGE, ids=["empty", "binary", "truncated", "html"])
def test_garbage_is_refused(body: bytes) -> None:
    with pytest.raises(ResponseFormatError):
        parse_receipt(body)
    with pytest.raises(ResponseFormatError):
        parse_price_document(body)


def test_the_wrong_document_is_refused_naming_the_one_expected() -> None:
    with pytest.raises(
        ResponseFormatError, match="expected <non-contract-shipment-receipt>, got <shipment-price>"
    ):
        parse_receipt(price_document_text())
    with pytest.raises(
        ResponseFormatError, match="expected <shipment-price>, got <non-contract-shipment-receipt>"
    ):
        parse_price_document(receipt_text())
    # A Create Shipment answer is not the price document, even though it holds one.
    with pytest.raises(ResponseFormatError, match="expected <shipment-price>, got <shipment-info>"):
        parse_price_document((canadapost_samples() / PRICED_ANSWER).read_bytes())
    error = (canadapost_samples() / "error-auth-E002.karrio.xml").read_bytes()
    with pytest.raises(ResponseFormatError, match="Canada Post error messages"):
        parse_receipt(error)


def test_an_entity_expansion_attempt_is_refused() -> None:
    receipt = ENTITY_EXPANSION.replace("<!DOCTYPE r", "<!DOCTYPE non-contract-shipment-receipt") + (
        receipt_text().replace("<service-code>DOM.EP</service-code>", "<service-code>&b;</service-code>")
    )
    with pytest.raises(ResponseFormatError, match="not usable XML"):
        parse_receipt(receipt)
    document = ENTITY_EXPANSION.replace("<!DOCTYPE r", "<!DOCTYPE shipment-price") + (
        price_document_text().replace(
            "<service-code>DOM.EP</service-code>", "<service-code>&b;</service-code>"
        )
    )
    with pytest.raises(ResponseFormatError, match="not usable XML"):
        parse_price_document(document)
