from __future__ import annotations

from typing import Any

import pytest

from fulfil.canadapost.destination import Destination, OrderDataError, destination_from_order
from tests.canadapost.factories import ORDER_ID, make_order, real_orders

pytestmark = pytest.mark.unit

ADDRESS = "customer.shipping_address"


def destination(**address: Any) -> Destination:
    return destination_from_order(ORDER_ID, make_order(**address))


def refused(**address: Any) -> OrderDataError:
    with pytest.raises(OrderDataError) as caught:
        destination(**address)
    return caught.value


def test_a_typical_best_buy_address() -> None:
    result = destination()
    assert result == Destination(
        name="Jane Doe",
        company=None,
        additional_address_info=None,
        phone="613-555-0100",
        address_line_1="23 Jardin Private",
        address_line_2=None,
        city="Ottawa",
        province="ON",
        postal_code="K1K4T3",
        country_code="CA",
        warnings=(),
    )


def test_the_error_names_order_and_field_path() -> None:
    error = refused(zip_code="A1A 1A")
    assert str(error) == (
        'order 261250893-A: customer.shipping_address.zip_code: "A1A 1A" is not a Canadian postal code'
    )
    assert isinstance(error, ValueError)
    assert (error.order_id, error.field) == (ORDER_ID, f"{ADDRESS}.zip_code")


# --- country --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "iso"),
    [("Canada", None), ("Canada", "CA"), ("CANADA", "CAN"), (None, "CA"), ("canada", ""), ("CA", None)],
)
def test_canadian_countries(country: str | None, iso: str | None) -> None:
    result = destination(country=country, country_iso_code=iso)
    assert result.country_code == "CA"
    assert result.warnings == ()


def test_no_country_at_all_ships_within_canada_with_a_warning() -> None:
    result = destination(country="", country_iso_code=None)
    assert result.country_code == "CA"
    assert result.warnings == (
        f"order {ORDER_ID}: {ADDRESS}.country: no country given; shipping within Canada",
    )


@pytest.mark.parametrize(
    ("country", "iso", "field", "shown"),
    [
        ("USA", "USA", "country_iso_code", "USA"),
        ("United States", None, "country", "United States"),
        ("Canada", "US", "country_iso_code", "US"),  # contradictory data is not guessed at
        (None, "FRA", "country_iso_code", "FRA"),
    ],
)
def test_foreign_countries_are_refused(country: str | None, iso: str | None, field: str, shown: str) -> None:
    error = refused(country=country, country_iso_code=iso)
    assert (
        str(error)
        == f'order {ORDER_ID}: {ADDRESS}.{field}: "{shown}": fulfil ships to Canadian addresses only'
    )


# --- postal code ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"), [("k1k 4t3", "K1K4T3"), ("K1K-4T3", "K1K4T3"), ("  K1K   4T3 ", "K1K4T3")]
)
def test_postal_code_is_uppercased_without_space(raw: str, expected: str) -> None:
    assert destination(zip_code=raw).postal_code == expected


@pytest.mark.parametrize("raw", ["12345", "W1K4T3", "K1K 4T", "D1K4T3", "K1K4T3X"])
def test_invalid_postal_codes_are_refused(raw: str) -> None:
    error = refused(zip_code=raw)
    assert error.field == f"{ADDRESS}.zip_code"
    assert str(error).startswith(
        f'order {ORDER_ID}: {ADDRESS}.zip_code: "{raw}" is not a Canadian postal code'
    )


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_missing_postal_code_is_refused(raw: str | None) -> None:
    assert str(refused(zip_code=raw)) == (
        f"order {ORDER_ID}: {ADDRESS}.zip_code: missing (a postal code is required)"
    )


# --- province -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "zip_code", "expected"),
    [
        ("ON", "K1K4T3", "ON"),
        ("on", "K1K4T3", "ON"),
        ("Ontario", "K1K4T3", "ON"),
        ("Québec", "H2B1A0", "QC"),
        ("QUEBEC", "H2B1A0", "QC"),
        ("Nouvelle-Écosse", "B3H1A1", "NS"),
        ("Nunavut", "X0A0H0", "NU"),
        ("Northwest Territories", "X1A2N5", "NT"),
    ],
)
def test_provinces(state: str, zip_code: str, expected: str) -> None:
    result = destination(state=state, zip_code=zip_code)
    assert result.province == expected
    assert result.warnings == ()


def test_province_not_matching_the_postal_code_is_a_warning() -> None:
    # Canada Post sorts on the postal code; the label still goes out, but someone should look.
    result = destination(state="QC", zip_code="K1K4T3")
    assert result.province == "QC"
    assert result.warnings == (
        f"order {ORDER_ID}: {ADDRESS}.state: QC does not match postal code K1K4T3, which belongs to ON",
    )


@pytest.mark.parametrize("state", [None, "", " "])
def test_missing_province_is_refused(state: str | None) -> None:
    assert str(refused(state=state)) == (
        f"order {ORDER_ID}: {ADDRESS}.state: missing (a province or territory is required)"
    )


@pytest.mark.parametrize("state", ["Ontari", "NY", "XX"])
def test_unknown_province_is_refused(state: str) -> None:
    assert str(refused(state=state)) == (
        f'order {ORDER_ID}: {ADDRESS}.state: "{state}" is not a Canadian province or territory'
    )


# --- street lines ---------------------------------------------------------------------------


def test_whitespace_is_collapsed_and_stripped() -> None:
    result = destination(street_1="  23   Jardin\tPrivate ", street_2="\n Apt  4 ", city=" Ottawa  ")
    assert (result.address_line_1, result.address_line_2, result.city) == (
        "23 Jardin Private",
        "Apt 4",
        "Ottawa",
    )


def test_empty_and_whitespace_only_values_are_absent() -> None:
    result = destination(street_2="   ", company="", additional_info=" ", phone="")
    assert result.address_line_2 is None
    assert result.company is None
    assert result.additional_address_info is None
    assert result.phone is None


def test_street_1_of_exactly_44_characters_fits() -> None:
    street = "1234 " + "x" * 39
    assert len(street) == 44
    result = destination(street_1=street)
    assert (result.address_line_1, result.address_line_2, result.warnings) == (street, None, ())


def test_long_street_1_continues_on_line_2_when_it_is_free() -> None:
    street = "4000 Boulevard de Maisonneuve Ouest Appartement 1203"
    result = destination(street_1=street, street_2="")
    assert result.address_line_1 == "4000 Boulevard de Maisonneuve Ouest"
    assert result.address_line_2 == "Appartement 1203"
    assert f"{result.address_line_1} {result.address_line_2}" == street
    assert result.warnings == (
        f"order {ORDER_ID}: {ADDRESS}.street_1: too long for one line; "
        "continued on address line 2 as 'Appartement 1203'",
    )


def test_long_street_1_with_street_2_taken_is_refused() -> None:
    street = "4000 Boulevard de Maisonneuve Ouest Appartement 1203"
    error = refused(street_1=street, street_2="Tour B")
    assert error.field == f"{ADDRESS}.street_1"
    assert str(error) == (
        f"order {ORDER_ID}: {ADDRESS}.street_1: 52 characters, more than the 44 Canada Post accepts, "
        f"and street_2 is taken: {street!r}"
    )


def test_street_1_too_long_even_for_two_lines_is_refused() -> None:
    street = " ".join(["Boulevard"] * 10)  # 99 characters
    error = refused(street_1=street)
    assert error.field == f"{ADDRESS}.street_1"
    assert "even split over two lines" in str(error)


def test_street_1_without_a_word_boundary_is_refused() -> None:
    error = refused(street_1="x" * 50)
    assert error.field == f"{ADDRESS}.street_1"


def test_street_2_too_long_is_refused() -> None:
    error = refused(street_2="Appartement 1203, Tour Nord, entrée par la ruelle")
    assert error.field == f"{ADDRESS}.street_2"
    assert str(error).startswith(f"order {ORDER_ID}: {ADDRESS}.street_2: 49 characters, more than the 44")


@pytest.mark.parametrize("street", [None, "", "  "])
def test_missing_street_is_refused(street: str | None) -> None:
    assert str(refused(street_1=street, street_2="Apt 4")) == (
        f"order {ORDER_ID}: {ADDRESS}.street_1: missing (a street address is required)"
    )


# --- city -----------------------------------------------------------------------------------


@pytest.mark.parametrize("city", [None, "", "\t"])
def test_missing_city_is_refused(city: str | None) -> None:
    assert str(refused(city=city)) == f"order {ORDER_ID}: {ADDRESS}.city: missing (the city is required)"


def test_city_of_40_characters_fits_and_41_is_refused() -> None:
    assert destination(city="C" * 40).city == "C" * 40
    error = refused(city="Saint-Louis-du-Ha! Ha! de Témiscouata Est")
    assert error.field == f"{ADDRESS}.city"
    assert "41 characters, more than the 40 Canada Post accepts" in str(error)


# --- names and company ----------------------------------------------------------------------


def test_names_come_from_the_shipping_address() -> None:
    assert destination(firstname="Marie-Ève", lastname="Tremblay").name == "Marie-Ève Tremblay"


def test_only_a_last_name() -> None:
    assert destination(firstname="", lastname="Tremblay").name == "Tremblay"


def test_buyer_name_is_the_fallback_when_the_address_has_none() -> None:
    result = destination(firstname=None, lastname="")
    assert result.name == "Buyer Person"
    assert result.warnings == (
        f"order {ORDER_ID}: {ADDRESS}.lastname: no recipient name; the buyer's name is used",
    )


def test_long_name_shortens_the_first_name_to_an_initial() -> None:
    result = destination(firstname="Marie-Ève-Geneviève", lastname="Tremblay-Desrosiers-Beauchemin")
    assert result.name == "M. Tremblay-Desrosiers-Beauchemin"
    assert result.warnings == (
        f"order {ORDER_ID}: {ADDRESS}.firstname: name 'Marie-Ève-Geneviève Tremblay-Desrosiers-Beauchemin' "
        "is longer than 44 characters; shortened to 'M. Tremblay-Desrosiers-Beauchemin'",
    )


def test_very_long_last_name_is_cut_at_a_word() -> None:
    result = destination(firstname="Jean", lastname="de la Fontaine de Montmorency Laval Beauharnois")
    assert result.name == "J. de la Fontaine de Montmorency Laval"
    assert len(result.name) <= 44
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith(f"order {ORDER_ID}: {ADDRESS}.lastname: name ")


def test_no_name_but_a_company_is_enough() -> None:
    customer_less = make_order(firstname="", lastname="", company="Acme Inc")
    customer_less["customer"]["firstname"] = None
    customer_less["customer"]["lastname"] = None
    result = destination_from_order(ORDER_ID, customer_less)
    assert (result.name, result.company) == (None, "Acme Inc")


def test_no_name_but_a_company_2_is_enough() -> None:
    order = make_order(firstname="", lastname="", company="", company_2="Receiving Dock")
    order["customer"]["firstname"] = order["customer"]["lastname"] = None
    result = destination_from_order(ORDER_ID, order)
    assert (result.name, result.company) == (None, "Receiving Dock")


def test_no_name_and_no_company_is_refused() -> None:
    order = make_order(firstname="", lastname="")
    order["customer"]["firstname"] = ""
    order["customer"]["lastname"] = None
    with pytest.raises(OrderDataError) as caught:
        destination_from_order(ORDER_ID, order)
    assert str(caught.value) == (
        f"order {ORDER_ID}: {ADDRESS}.lastname: missing (no recipient name or company)"
    )


def test_company_and_company_2_are_both_kept() -> None:
    assert destination(company="Acme Inc", company_2="Receiving").company == "Acme Inc, Receiving"
    assert destination(company="", company_2="Receiving").company == "Receiving"


def test_long_company_is_shortened_with_a_warning() -> None:
    company = "Les Entreprises Générales de Construction du Québec Limitée"
    result = destination(company=company)
    assert result.company == "Les Entreprises Générales de Construction du"
    assert result.warnings == (
        f"order {ORDER_ID}: {ADDRESS}.company: company {company!r} is longer than 44 characters; "
        "shortened to 'Les Entreprises Générales de Construction du'",
    )


# --- phone and additional info --------------------------------------------------------------


def test_phone_is_normalised_with_its_extension() -> None:
    assert destination(phone="(613) 555-0100 ext. 42").phone == "613-555-0100 ext 42"


def test_secondary_phone_is_used_when_the_first_is_empty() -> None:
    assert destination(phone="", phone_secondary="613 555 0199").phone == "613-555-0199"


def test_unusable_phone_is_left_off_with_a_warning() -> None:
    result = destination(phone="call me")
    assert result.phone is None
    assert result.warnings == (
        f"order {ORDER_ID}: {ADDRESS}.phone: 'call me' is not a usable phone number; left off the label",
    )


def test_phone_given_as_a_number() -> None:
    assert destination(phone=6135550100).phone == "613-555-0100"


def test_additional_info_becomes_additional_address_info() -> None:
    assert destination(additional_info="  Buzzer  1203 ").additional_address_info == "Buzzer 1203"


def test_additional_info_over_44_characters_is_refused() -> None:
    info = "Leave at the side door, behind the blue recycling bin"
    error = refused(additional_info=info)
    assert error.field == f"{ADDRESS}.additional_info"
    assert str(error) == (
        f"order {ORDER_ID}: {ADDRESS}.additional_info: 53 characters, more than the 44 "
        f"Canada Post accepts: {info!r}"
    )


# --- shape of the order ---------------------------------------------------------------------


def test_null_shipping_address_before_acceptance_is_refused() -> None:
    order = make_order()
    order["customer"]["shipping_address"] = None
    with pytest.raises(OrderDataError) as caught:
        destination_from_order(ORDER_ID, order)
    assert str(caught.value).startswith(f"order {ORDER_ID}: {ADDRESS}: missing")


def test_real_orders_waiting_acceptance_have_no_address_yet() -> None:
    orders = real_orders("WAITING_ACCEPTANCE")
    assert orders
    for order in orders:
        with pytest.raises(OrderDataError) as caught:
            destination_from_order(order["order_id"], order)
        assert caught.value.field == ADDRESS
        assert str(caught.value).startswith(f"order {order['order_id']}: {ADDRESS}: missing")


def test_missing_customer_is_refused() -> None:
    with pytest.raises(OrderDataError) as caught:
        destination_from_order(ORDER_ID, {"order_id": ORDER_ID})
    assert str(caught.value) == f"order {ORDER_ID}: customer: missing"


def test_wrong_types_are_refused_with_the_field() -> None:
    error = refused(city=["Ottawa"])
    assert str(error) == f"order {ORDER_ID}: {ADDRESS}.city: expected text, found list"
    order = make_order()
    order["customer"]["shipping_address"] = "23 Jardin Private, Ottawa"
    with pytest.raises(OrderDataError) as caught:
        destination_from_order(ORDER_ID, order)
    assert str(caught.value) == f"order {ORDER_ID}: {ADDRESS}: expected an object, found str"


def test_real_orders_ready_to_ship() -> None:
    orders = real_orders("SHIPPING", "SHIPPED")
    assert len(orders) >= 7
    for order in orders:
        result = destination_from_order(order["order_id"], order)
        address = order["customer"]["shipping_address"]
        assert result.country_code == "CA"  # country_iso_code is null in every one of them
        assert address["country_iso_code"] is None
        assert result.province == address["state"]
        assert result.postal_code == address["zip_code"]
        assert result.address_line_1 == address["street_1"]
        assert result.address_line_2 is None  # street_2 is ""
        assert result.company is None  # company is ""
        assert result.phone == "555-555-0100"
        assert result.name == f"{address['firstname']} {address['lastname']}"
