"""The sandbox's Get Shipment Price and Get Non-Contract Shipment Receipt: reached by the links its
Create Shipment answers give, priced as those answers price a label, valid against the official
schemas, 404 for what is not there, and faults scriptable like every other endpoint."""

from __future__ import annotations

from decimal import Decimal

from fulfil.canadapost.prices import parse_price_document, parse_receipt, parse_shipment_price
from fulfil.sandbox import Sandbox
from tests.sandbox.conftest import (
    CUSTOMER,
    NCSHIPMENT_MEDIA,
    SHIPMENT_MEDIA,
    CanadaPost,
    OfficialSchemas,
    contract_request,
    links,
    message_codes,
    parse,
    texts,
)


def test_the_price_document_is_the_answers_price(canadapost: CanadaPost) -> None:
    created = canadapost.create(contract_request(pricing=True))
    assert created.status_code == 200, created.text
    answer_price = parse_shipment_price(created.content)
    price_link = links(created.content)["price"]
    assert price_link.get("media-type") == SHIPMENT_MEDIA
    document = canadapost.get(price_link.get("href"))
    assert document.status_code == 200, document.text
    assert document.headers["Content-Type"] == SHIPMENT_MEDIA
    assert parse(document.content).tag == "{http://www.canadapost.ca/ws/shipment-v8}shipment-price"
    assert parse_price_document(document.content) == answer_price
    # The same document at every read: it is the label's price, not a new quote.
    assert canadapost.get(price_link.get("href")).content == document.content


def test_the_receipt_holds_the_price_and_what_the_card_was_charged(canadapost: CanadaPost) -> None:
    created = canadapost.create_nc()
    assert created.status_code == 200, created.text
    receipt_link = links(created.content)["receipt"]
    assert receipt_link.get("media-type") == NCSHIPMENT_MEDIA
    receipt = canadapost.get(receipt_link.get("href"), NCSHIPMENT_MEDIA)
    assert receipt.status_code == 200, receipt.text
    assert receipt.headers["Content-Type"] == NCSHIPMENT_MEDIA
    root = parse(receipt.content)
    assert root.tag == "{http://www.canadapost.ca/ws/ncshipment-v4}non-contract-shipment-receipt"
    assert texts(root, "mailed-by-customer") == [CUSTOMER.zfill(10)]
    price = parse_receipt(receipt.content)
    assert price.service_code == "DOM.RP"
    assert price.base > 0
    assert price.due == price.pre_tax + price.taxes == Decimal(texts(root, "charge-amount")[0])
    assert canadapost.get(receipt_link.get("href"), NCSHIPMENT_MEDIA).content == receipt.content


def test_both_documents_are_valid_against_the_official_schemas(
    xsd_sandbox: Sandbox, official: OfficialSchemas
) -> None:
    client = CanadaPost(xsd_sandbox.base_url)
    try:
        grouped = client.create(contract_request(group_id="20250901"))
        document = client.get(links(grouped.content)["price"].get("href"))
        created = client.create_nc()
        receipt = client.get(links(created.content)["receipt"].get("href"), NCSHIPMENT_MEDIA)
        for answer in (grouped, document, created, receipt):
            assert answer.status_code == 200, answer.text
            assert official.errors(answer.content) is None, answer.text
        assert xsd_sandbox.invalid_responses() == []
    finally:
        client.session.close()


def test_what_is_not_there_is_404(canadapost: CanadaPost) -> None:
    contract = links(canadapost.create().content)
    non_contract = links(canadapost.create_nc().content)
    contract_id = contract["self"].get("href").rsplit("/", 1)[1]
    nc_id = non_contract["self"].get("href").rsplit("/", 1)[1]
    # Each kind at the other's address, and a shipment never sold.
    assert canadapost.get(f"/rs/{CUSTOMER}/{CUSTOMER}/shipment/{nc_id}/price").status_code == 404
    assert (
        canadapost.get(f"/rs/{CUSTOMER}/ncshipment/{contract_id}/receipt", NCSHIPMENT_MEDIA).status_code
        == 404
    )
    assert canadapost.get(f"/rs/{CUSTOMER}/{CUSTOMER}/shipment/123456789012345678/price").status_code == 404
    # A voided contract shipment is gone (it was never charged).
    grouped = links(canadapost.create(contract_request(group_id="20250901", request_id="g-1")).content)
    assert canadapost.delete(grouped["self"].get("href")).status_code == 204
    gone = canadapost.get(grouped["price"].get("href"))
    assert gone.status_code == 404
    assert message_codes(gone) == []


def test_the_media_type_and_the_credentials_are_checked(canadapost: CanadaPost) -> None:
    price = links(canadapost.create().content)["price"].get("href")
    receipt = links(canadapost.create_nc().content)["receipt"].get("href")
    assert canadapost.get(price, "*/*").status_code == 406
    assert canadapost.get(receipt, SHIPMENT_MEDIA).status_code == 406
    refused = canadapost.get(receipt, NCSHIPMENT_MEDIA, auth=("wrong", "pair"))
    assert refused.status_code == 401
    assert message_codes(refused) == ["E002"]


def test_faults_are_scriptable_for_both(sandbox: Sandbox, canadapost: CanadaPost) -> None:
    price = links(canadapost.create().content)["price"].get("href")
    receipt = links(canadapost.create_nc().content)["receipt"].get("href")
    sandbox.script_faults("canadapost", "GetShipmentPrice", ["http_503", "garbage", "none"])
    sandbox.script_faults("canadapost", "GetNCShipmentReceipt", ["rate_limit"])
    assert canadapost.get(price).status_code == 503
    garbled = canadapost.get(price)
    assert garbled.status_code == 200
    assert garbled.content != canadapost.get(price).content
    throttled = canadapost.get(receipt, NCSHIPMENT_MEDIA)
    assert "Rejected by SLM Monitor" in throttled.text
    assert canadapost.get(receipt, NCSHIPMENT_MEDIA).status_code == 200
