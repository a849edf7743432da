from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from lxml import etree

from fulfil.canadapost.destination import OrderDataError
from fulfil.canadapost.schema import (
    NCSHIPMENT_MEDIA_TYPE,
    NCSHIPMENT_NAMESPACE,
    SHIPMENT_MEDIA_TYPE,
    SHIPMENT_NAMESPACE,
)
from fulfil.canadapost.shipment_request import ShipmentRequest, build_shipment_request
from fulfil.errors import ConfigError
from fulfil.xml_parsing import child_text, find_path, local_name, parse_untrusted
from tests.canadapost.factories import (
    ORDER_ID,
    contract_settings,
    make_order,
    non_contract_settings,
    parcel_settings,
    real_orders,
    sender_settings,
)
from tests.canadapost.factories import (
    build_request as build,
)

pytestmark = pytest.mark.unit

REQUEST_ID = "fulfil-261250893-A-1"  # build()'s default


def text_at(root: etree._Element, *path: str) -> str | None:
    *parents, last = path
    parent = find_path(root, *parents) if parents else root
    assert parent is not None, f"no {'/'.join(parents)}"
    return child_text(parent, last)


def child_names(element: etree._Element | None) -> list[str]:
    assert element is not None
    return [local_name(item) for item in element]


# --- contract -------------------------------------------------------------------------------


def test_contract_request_is_valid_shipment_v8(shipment_schema: etree.XMLSchema) -> None:
    request = build()
    assert request.media_type == SHIPMENT_MEDIA_TYPE == "application/vnd.cpc.shipment-v8+xml"
    assert request.contract is True
    assert request.warnings == ()
    assert request.xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<shipment ')
    document = etree.fromstring(request.xml)
    shipment_schema.assertValid(document)
    assert document.tag == f"{{{SHIPMENT_NAMESPACE}}}shipment"


def test_contract_request_values() -> None:
    root = parse_untrusted(build().xml)
    expected = {
        ("customer-request-id",): REQUEST_ID,
        ("transmit-shipment",): "true",
        ("requested-shipping-point",): "H2B1A0",
        ("provide-pricing-info",): "true",
        ("delivery-spec", "service-code"): "DOM.EP",
        ("delivery-spec", "sender", "name"): "Bob Smith",
        ("delivery-spec", "sender", "company"): "Example Co",
        ("delivery-spec", "sender", "contact-phone"): "514-555-0100",
        ("delivery-spec", "sender", "address-details", "address-line-1"): "502 Main St N",
        ("delivery-spec", "sender", "address-details", "city"): "Montréal",
        ("delivery-spec", "sender", "address-details", "prov-state"): "QC",
        ("delivery-spec", "sender", "address-details", "country-code"): "CA",
        ("delivery-spec", "sender", "address-details", "postal-zip-code"): "H2B1A0",
        ("delivery-spec", "destination", "name"): "Jane Doe",
        ("delivery-spec", "destination", "client-voice-number"): "613-555-0100",
        ("delivery-spec", "destination", "address-details", "address-line-1"): "23 Jardin Private",
        ("delivery-spec", "destination", "address-details", "city"): "Ottawa",
        ("delivery-spec", "destination", "address-details", "prov-state"): "ON",
        ("delivery-spec", "destination", "address-details", "country-code"): "CA",
        ("delivery-spec", "destination", "address-details", "postal-zip-code"): "K1K4T3",
        ("delivery-spec", "parcel-characteristics", "weight"): "1.250",
        ("delivery-spec", "parcel-characteristics", "dimensions", "length"): "30.0",
        ("delivery-spec", "parcel-characteristics", "dimensions", "width"): "20.0",
        ("delivery-spec", "parcel-characteristics", "dimensions", "height"): "10.0",
        ("delivery-spec", "print-preferences", "output-format"): "4x6",
        ("delivery-spec", "print-preferences", "encoding"): "PDF",
        ("delivery-spec", "preferences", "show-packing-instructions"): "false",
        ("delivery-spec", "references", "customer-ref-1"): ORDER_ID,
        ("delivery-spec", "settlement-info", "contract-id"): "0042708517",
        ("delivery-spec", "settlement-info", "intended-method-of-payment"): "Account",
    }
    for path, value in expected.items():
        assert text_at(root, *path) == value, "/".join(path)


def test_contract_request_keeps_canada_posts_documented_order() -> None:
    root = parse_untrusted(build(make_order(street_2="Apt 4", company="Acme", additional_info="Buzz 4")).xml)
    assert child_names(root) == [
        "customer-request-id",
        "transmit-shipment",
        "requested-shipping-point",
        "provide-pricing-info",
        "delivery-spec",
    ]
    spec = find_path(root, "delivery-spec")
    assert child_names(spec) == [
        "service-code",
        "sender",
        "destination",
        "parcel-characteristics",
        "print-preferences",
        "preferences",
        "references",
        "settlement-info",
    ]
    assert child_names(find_path(root, "delivery-spec", "sender")) == [
        "name",
        "company",
        "contact-phone",
        "address-details",
    ]
    assert child_names(find_path(root, "delivery-spec", "destination")) == [
        "name",
        "company",
        "additional-address-info",
        "client-voice-number",
        "address-details",
    ]
    assert child_names(find_path(root, "delivery-spec", "destination", "address-details")) == [
        "address-line-1",
        "address-line-2",
        "city",
        "prov-state",
        "country-code",
        "postal-zip-code",
    ]
    assert child_names(find_path(root, "delivery-spec", "settlement-info")) == [
        "contract-id",
        "intended-method-of-payment",
    ]


def test_letter_label_format(shipment_schema: etree.XMLSchema) -> None:
    request = build(canadapost=contract_settings(label_format="8.5x11"))
    root = parse_untrusted(request.xml)
    assert text_at(root, "delivery-spec", "print-preferences", "output-format") == "8.5x11"
    shipment_schema.assertValid(etree.fromstring(request.xml))


@pytest.mark.parametrize("request_id", [None, "", " padded ", "x" * 36])
def test_contract_request_needs_a_usable_request_id(request_id: str | None) -> None:
    with pytest.raises(ValueError, match="customer-request-id"):
        build(request_id=request_id)


def test_request_id_of_35_characters(shipment_schema: etree.XMLSchema) -> None:
    request = build(request_id="r" * 35)
    shipment_schema.assertValid(etree.fromstring(request.xml))


# --- end of day: the day's group instead of transmit-shipment ---------------------------------


def build_grouped(group_id: str | None, canadapost: Any = None) -> ShipmentRequest:
    order = make_order()
    return build_shipment_request(
        order_id=order["order_id"],
        order=order,
        canadapost=canadapost or contract_settings(),
        sender=sender_settings(),
        parcel=parcel_settings(),
        request_id=REQUEST_ID if canadapost is None or canadapost.contract else None,
        group_id=group_id,
    )


def test_end_of_day_request_carries_the_group_instead_of_transmit_shipment(
    shipment_schema: etree.XMLSchema,
) -> None:
    request = build_grouped("fulfil-20261202")
    shipment_schema.assertValid(etree.fromstring(request.xml))
    root = parse_untrusted(request.xml)
    assert child_names(root)[:3] == ["customer-request-id", "group-id", "requested-shipping-point"]
    assert text_at(root, "group-id") == "fulfil-20261202"
    assert find_path(root, "transmit-shipment") is None
    # Without a group: as before, transmitted when bought.
    assert text_at(parse_untrusted(build_grouped(None).xml), "transmit-shipment") == "true"


def test_a_group_of_32_characters_is_canada_posts_longest(shipment_schema: etree.XMLSchema) -> None:
    shipment_schema.assertValid(etree.fromstring(build_grouped("g" * 32).xml))


@pytest.mark.parametrize("group_id", ["", "g" * 33, "with space", "../x", "ﬁ"])
def test_a_group_id_canada_post_or_a_url_cannot_hold_is_refused(group_id: str) -> None:
    with pytest.raises(ValueError, match="group-id"):
        build_grouped(group_id)


def test_a_non_contract_label_has_no_group() -> None:
    with pytest.raises(ValueError, match="non-contract"):
        build_grouped("fulfil-20261202", canadapost=non_contract_settings())


# --- non-contract ---------------------------------------------------------------------------


def test_non_contract_request_is_valid_ncshipment_v4(ncshipment_schema: etree.XMLSchema) -> None:
    request = build(canadapost=non_contract_settings(), request_id=None)
    assert request.media_type == NCSHIPMENT_MEDIA_TYPE == "application/vnd.cpc.ncshipment-v4+xml"
    assert request.contract is False
    document = etree.fromstring(request.xml)
    ncshipment_schema.assertValid(document)
    assert document.tag == f"{{{NCSHIPMENT_NAMESPACE}}}non-contract-shipment"


def test_non_contract_request_leaves_out_what_the_schema_has_no_place_for() -> None:
    root = parse_untrusted(build(canadapost=non_contract_settings(), request_id="ignored").xml)
    assert child_names(root) == ["requested-shipping-point", "delivery-spec"]
    assert child_names(find_path(root, "delivery-spec")) == [
        "service-code",
        "sender",
        "destination",
        "parcel-characteristics",
        "preferences",
        "references",
    ]
    sender_details = find_path(root, "delivery-spec", "sender", "address-details")
    assert child_names(sender_details) == ["address-line-1", "city", "prov-state", "postal-zip-code"]
    assert text_at(root, "delivery-spec", "references", "customer-ref-1") == ORDER_ID
    assert b"ignored" not in build(canadapost=non_contract_settings(), request_id="ignored").xml


def test_schemas_catch_what_the_builder_must_avoid(
    shipment_schema: etree.XMLSchema, ncshipment_schema: etree.XMLSchema
) -> None:
    """The validation the other tests rely on does refuse the mistakes it is there to catch."""
    contract = etree.fromstring(build().xml)
    name = contract.find(f".//{{{SHIPMENT_NAMESPACE}}}destination/{{{SHIPMENT_NAMESPACE}}}name")
    assert name is not None
    name.text = "N" * 45
    assert not shipment_schema.validate(contract)

    spaced = etree.fromstring(build().xml)
    point = spaced.find(f"{{{SHIPMENT_NAMESPACE}}}requested-shipping-point")
    assert point is not None
    point.text = "H2B 1A0"
    assert not shipment_schema.validate(spaced)

    non_contract = etree.fromstring(build(canadapost=non_contract_settings()).xml)
    details = non_contract.find(
        f".//{{{NCSHIPMENT_NAMESPACE}}}sender/{{{NCSHIPMENT_NAMESPACE}}}address-details"
    )
    assert details is not None
    etree.SubElement(details, f"{{{NCSHIPMENT_NAMESPACE}}}country-code").text = "CA"
    assert not ncshipment_schema.validate(non_contract)


# --- real orders ----------------------------------------------------------------------------


def test_every_real_order_ready_to_ship_makes_valid_requests(
    shipment_schema: etree.XMLSchema, ncshipment_schema: etree.XMLSchema
) -> None:
    orders = real_orders("SHIPPING", "SHIPPED")
    assert len(orders) >= 7
    for order in orders:
        order_id = order["order_id"]
        contract = build(order, request_id=f"fulfil-{order_id}")
        shipment_schema.assertValid(etree.fromstring(contract.xml))
        non_contract = build(order, canadapost=non_contract_settings(), request_id=None)
        ncshipment_schema.assertValid(etree.fromstring(non_contract.xml))
        root = parse_untrusted(contract.xml)
        assert text_at(root, "delivery-spec", "references", "customer-ref-1") == order_id
        address = order["customer"]["shipping_address"]
        destination = find_path(root, "delivery-spec", "destination", "address-details")
        assert destination is not None
        assert child_text(destination, "prov-state") == address["state"]
        assert child_text(destination, "country-code") == "CA"


def test_real_order_waiting_acceptance_cannot_ship() -> None:
    order = real_orders("WAITING_ACCEPTANCE")[0]
    with pytest.raises(OrderDataError, match=r"customer\.shipping_address: missing"):
        build(order)


# --- special characters ---------------------------------------------------------------------


def test_special_characters_round_trip(
    shipment_schema: etree.XMLSchema, ncshipment_schema: etree.XMLSchema
) -> None:
    order = make_order(
        firstname="Zoë",
        lastname="O'Brien-Lévesque",
        company='Smith & Sons <Québec> "Ltée"',
        street_1="1234 Rue de l'Église & Côte-des-Neiges",
        street_2="Appt. <5> ]]> & co",
        city="Trois-Rivières",
        state="Québec",
        zip_code="g9a 5h7",
        additional_info="Sonnez à l'arrière & attendez",
    )
    for canadapost in (contract_settings(), non_contract_settings()):
        request = build(order, canadapost=canadapost)
        assert b"&amp;" in request.xml
        assert b"&lt;" in request.xml
        assert "Trois-Rivières".encode() in request.xml  # UTF-8, not character references
        schema = shipment_schema if canadapost.contract else ncshipment_schema
        schema.assertValid(etree.fromstring(request.xml))
        destination = find_path(parse_untrusted(request.xml), "delivery-spec", "destination")
        assert destination is not None
        assert child_text(destination, "name") == "Zoë O'Brien-Lévesque"
        assert child_text(destination, "company") == 'Smith & Sons <Québec> "Ltée"'
        assert child_text(destination, "additional-address-info") == "Sonnez à l'arrière & attendez"
        details = find_path(destination, "address-details")
        assert details is not None
        assert child_text(details, "address-line-1") == "1234 Rue de l'Église & Côte-des-Neiges"
        assert child_text(details, "address-line-2") == "Appt. <5> ]]> & co"
        assert child_text(details, "city") == "Trois-Rivières"
        assert child_text(details, "prov-state") == "QC"
        assert child_text(details, "postal-zip-code") == "G9A5H7"


def test_control_characters_never_reach_the_xml(shipment_schema: etree.XMLSchema) -> None:
    request = build(make_order(street_1="23\x00Jardin\x0bPrivate", city="Ott\u200bawa"))
    shipment_schema.assertValid(etree.fromstring(request.xml))
    details = find_path(parse_untrusted(request.xml), "delivery-spec", "destination", "address-details")
    assert details is not None
    assert child_text(details, "address-line-1") == "23 Jardin Private"
    assert child_text(details, "city") == "Ottawa"


def test_warnings_are_passed_on() -> None:
    request = build(make_order(street_1="4000 Boulevard de Maisonneuve Ouest Appartement 1203"))
    assert len(request.warnings) == 1
    assert request.warnings[0].startswith(f"order {ORDER_ID}: customer.shipping_address.street_1: ")
    details = find_path(parse_untrusted(request.xml), "delivery-spec", "destination", "address-details")
    assert details is not None
    assert child_text(details, "address-line-2") == "Appartement 1203"


# --- the order as a whole -------------------------------------------------------------------


def test_order_id_must_match_the_order_object() -> None:
    with pytest.raises(OrderDataError) as caught:
        build(make_order(), order_id="999999999-A")
    assert str(caught.value) == "order 999999999-A: order_id: the order object is order '261250893-A'"


def test_order_id_too_long_for_the_reference_is_refused() -> None:
    long_id = "1" * 34 + "-A"
    with pytest.raises(OrderDataError) as caught:
        build(make_order(order_id=long_id))
    assert str(caught.value) == (
        f"order {long_id}: order_id: longer than the 35 characters of Canada Post's reference"
    )


def test_foreign_service_codes_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"FULFIL_CANADAPOST_SERVICE_CODE \(or \[canadapost\] service_code"):
        build(canadapost=contract_settings(service_code="USA.EP"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"contract_id": "42-7085"}, r"FULFIL_CANADAPOST_CONTRACT_ID \(or \[canadapost\] contract_id"),
        ({"label_format": "paper"}, r"FULFIL_CANADAPOST_LABEL_FORMAT .* is 'paper'; expected 8.5x11 or 4x6"),
    ],
)
def test_malformed_canada_post_settings(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(canadapost=contract_settings(**overrides))


# --- parcel ---------------------------------------------------------------------------------


def parcel_text(request: ShipmentRequest) -> dict[str, str | None]:
    characteristics = find_path(parse_untrusted(request.xml), "delivery-spec", "parcel-characteristics")
    assert characteristics is not None
    dimensions = find_path(characteristics, "dimensions")
    values = {"weight": child_text(characteristics, "weight")}
    if dimensions is not None:
        values.update({name: child_text(dimensions, name) for name in ("length", "width", "height")})
    return values


def test_weight_to_the_gram_and_dimensions_to_the_millimetre(shipment_schema: etree.XMLSchema) -> None:
    parcel = parcel_settings(
        weight_kg=Decimal("2.34567"),
        length_cm=Decimal("10.05"),
        width_cm=Decimal("1E+1"),
        height_cm=Decimal("7"),
    )
    request = build(parcel=parcel)
    assert parcel_text(request) == {"weight": "2.346", "length": "10.1", "width": "10.0", "height": "7.0"}
    shipment_schema.assertValid(etree.fromstring(request.xml))


def test_no_dimensions_when_none_are_set(ncshipment_schema: etree.XMLSchema) -> None:
    parcel = parcel_settings(length_cm=None, width_cm=None, height_cm=None, weight_kg=Decimal("30"))
    request = build(parcel=parcel, canadapost=non_contract_settings())
    assert parcel_text(request) == {"weight": "30.000"}
    ncshipment_schema.assertValid(etree.fromstring(request.xml))


def test_partial_dimensions_are_a_configuration_error() -> None:
    with pytest.raises(ConfigError) as caught:
        build(parcel=parcel_settings(width_cm=None))
    assert str(caught.value) == (
        "parcel dimensions are partly set: also set FULFIL_PARCEL_WIDTH_CM "
        "(or [parcel] width_cm in the config file), or unset all three"
    )


@pytest.mark.parametrize("weight", ["0.0004", "30.0006", "31"])
def test_weight_out_of_range_is_a_configuration_error(weight: str) -> None:
    with pytest.raises(
        ConfigError, match=r"FULFIL_PARCEL_WEIGHT_KG \(or \[parcel\] weight_kg in the config file\)"
    ):
        build(parcel=parcel_settings(weight_kg=Decimal(weight)))


@pytest.mark.parametrize("length", ["0.04", "999.96", "1000"])
def test_dimension_out_of_range_is_a_configuration_error(length: str) -> None:
    with pytest.raises(ConfigError, match=r"FULFIL_PARCEL_LENGTH_CM \(or \[parcel\] length_cm"):
        build(parcel=parcel_settings(length_cm=Decimal(length)))


# --- sender ---------------------------------------------------------------------------------


def test_sender_values_are_normalised(ncshipment_schema: etree.XMLSchema) -> None:
    sender = sender_settings(
        postal_code=" h2b-1a0 ",
        province="Québec",
        phone="+1 (514) 555-0100 x 7",
        name="  ",
        city=" Montréal ",
    )
    request = build(sender=sender, canadapost=non_contract_settings())
    ncshipment_schema.assertValid(etree.fromstring(request.xml))
    root = parse_untrusted(request.xml)
    sender_element = find_path(root, "delivery-spec", "sender")
    assert sender_element is not None
    assert child_text(sender_element, "name") is None
    assert child_text(sender_element, "contact-phone") == "514-555-0100 ext 7"
    assert text_at(root, "requested-shipping-point") == "H2B1A0"
    assert text_at(root, "delivery-spec", "sender", "address-details", "prov-state") == "QC"
    assert text_at(root, "delivery-spec", "sender", "address-details", "city") == "Montréal"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"postal_code": "90210"},
            "FULFIL_SENDER_POSTAL_CODE (or [sender] postal_code in the config file) is '90210'; "
            "expected a Canadian postal code such as K1A 0B1",
        ),
        (
            {"province": "Nowhere"},
            "FULFIL_SENDER_PROVINCE (or [sender] province in the config file) is 'Nowhere'; "
            "expected a Canadian province or territory code such as ON",
        ),
        ({"phone": "none"}, "FULFIL_SENDER_PHONE (or [sender] phone in the config file) is 'none'; "),
        (
            {"company": "C" * 45},
            "FULFIL_SENDER_COMPANY (or [sender] company in the config file) is 45 characters long; "
            "Canada Post accepts at most 44",
        ),
        ({"company": "  "}, "FULFIL_SENDER_COMPANY (or [sender] company in the config file) is not set"),
        ({"name": "N" * 45}, "FULFIL_SENDER_NAME (or [sender] name in the config file) is 45 characters"),
        (
            {"address_line_1": "A" * 45},
            "FULFIL_SENDER_ADDRESS_LINE_1 (or [sender] address_line_1 in the config file) is 45 characters",
        ),
        (
            {"address_line_2": "A" * 45},
            "FULFIL_SENDER_ADDRESS_LINE_2 (or [sender] address_line_2 in the config file) is 45 characters",
        ),
        ({"city": "C" * 41}, "FULFIL_SENDER_CITY (or [sender] city in the config file) is 41 characters"),
    ],
)
def test_bad_sender_settings_are_configuration_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(sender=sender_settings(**overrides))
    assert str(caught.value).startswith(message)
