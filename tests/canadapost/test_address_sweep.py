"""A property-style sweep: many generated, awkward addresses, each either refused for a reason an
independent check agrees with, or turned into requests that validate and lose nothing.

The generator is seeded, so the sweep is the same on every run.
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from lxml import etree

from fulfil.canadapost.destination import OrderDataError
from fulfil.canadapost.shipment_request import ShipmentRequest, build_shipment_request
from fulfil.xml_parsing import child_text, find_path, parse_untrusted
from tests.canadapost.factories import (
    contract_settings,
    make_order,
    non_contract_settings,
    parcel_settings,
    sender_settings,
)

pytestmark = pytest.mark.unit

ADDRESS = "customer.shipping_address"
ORDERS = 400

STREETS = [
    "Rue de l'Église",
    "Chemin de la Côte-Sainte-Catherine",
    "Boulevard René-Lévesque Ouest",
    "Smith & Wesson Road",
    "<Main> Street",
    "Avenue des Érables",
    "Rang Saint-Joseph",
    "Montée du Moulin",
    "Highway 401 Service Road East",
    "Boulevard de Maisonneuve Ouest",
    "Promenade Sussex",
    'Queen\'s "Quay" West',
]
APARTMENTS = [
    "Apt 5",
    "Unit 1203",
    "Appartement 12B",
    "Suite #300",
    "Bureau 200 & 201",
    "App. <4>",
    "RR 2",
    "Appartement 1203, Tour Nord, entrée par la ruelle",
]
CITIES = [
    "Montréal",
    "Trois-Rivières",
    "Saint-Jean-sur-Richelieu",
    "Lac-Mégantic",
    "St. John's",
    "Île-Perrot",
    "Saint-Louis-du-Ha! Ha!",
    "Notre-Dame-des-Sept-Douleurs",
    "Sainte-Anne-de-la-Pérade & Batiscan-Champlain",  # 45 characters
]
PROVINCES = [
    ("ON", "K1A0B1"),
    ("on", "M5V 3L9"),
    ("Ontario", "l4c-9t3"),
    ("Québec", "H2B 1A0"),
    ("QUEBEC", "g1r4p5"),
    ("QC", "J8Y 6T3"),
    ("Nouvelle-Écosse", "B3H 1A1"),
    ("British Columbia", "V6B 4Y8"),
    ("Terre-Neuve-et-Labrador", "A1C 5M2"),
    ("Nunavut", "X0A 0H0"),
    ("Yukon", "Y1A 2C6"),
    ("Alberta", "T2P 2Z5"),
]
BAD_POSTAL_CODES = ["12345", "K1A 0B", "W1A 0B1", "DDD DDD", ""]
FIRST_NAMES = ["Zoë", "Marie-Ève", "Jean-François-Xavier-Alexandre", "O'Neil", "", "Émile", "Ægir"]
LAST_NAMES = ["Tremblay", "Côté-Desrosiers-Beauchemin-Gagnon-Lefebvre", "D'Amour & Fils", "<Lee>", "Nguyễn"]
COMPANIES = ["", "", "Acme & Co", "Les Entreprises Générales de Construction du Québec Ltée", "<Tags> Inc"]
INFOS = [
    "",
    "",
    "Buzzer 1203",
    "Sonnez à l'arrière & attendez",
    "Leave it by the side door, behind the blue bins",
]
PHONES = ["555-555-0100", "(514) 555-0100 poste 12", "+1 613 555 0100", "", "n/a", "613.555.0100 x9"]
SPACES = [" ", " ", " ", "  ", "\t", "\u00a0"]


def messy(rng: random.Random, text: str) -> str:
    """The text as people type it: doubled spaces, tabs, padding."""
    words = text.split(" ")
    joined = "".join(word + rng.choice(SPACES) for word in words).rstrip()
    return rng.choice(["", " ", "  "]) + joined + rng.choice(["", " ", "\n"])


def generated_address(rng: random.Random) -> dict[str, Any]:
    street = f"{rng.randint(1, 99999)} {rng.choice(STREETS)}"
    street_2 = ""
    # Independent choices, so that a long street_1 also meets a street_2 that is already taken.
    if rng.random() < 0.3:
        street_2 = rng.choice(APARTMENTS)
    roll = rng.random()
    if roll < 0.3:
        street = f"{street} {rng.choice(APARTMENTS)}"
    elif roll < 0.5:
        street = f"{street} {rng.choice(STREETS)} {rng.choice(APARTMENTS)}"
    province, postal_code = rng.choice(PROVINCES)
    if rng.random() < 0.08:
        postal_code = rng.choice(BAD_POSTAL_CODES)
    return {
        "firstname": messy(rng, rng.choice(FIRST_NAMES)),
        "lastname": messy(rng, rng.choice(LAST_NAMES)),
        "company": rng.choice(COMPANIES),
        "street_1": messy(rng, street),
        "street_2": messy(rng, street_2) if street_2 else rng.choice(["", None, "  "]),
        "city": messy(rng, rng.choice(CITIES)),
        "state": province,
        "zip_code": postal_code,
        "additional_info": rng.choice(INFOS),
        "phone": rng.choice(PHONES),
        "country": rng.choice(["Canada", "Canada", "CANADA", None]),
        "country_iso_code": rng.choice([None, None, "CA", "CAN"]),
    }


# --- an independent account of what must be refused ----------------------------------------


def words(text: str | None) -> list[str]:
    return (text or "").replace("\u00a0", " ").split()


def fits_on_two_lines(street_words: list[str], limit: int = 44) -> bool:
    for cut in range(len(street_words) - 1, 0, -1):
        head = " ".join(street_words[:cut]).rstrip(",;")
        if len(head) <= limit:
            return len(" ".join(street_words[cut:]).lstrip(",;")) <= limit
    return False


def expected_refusals(address: dict[str, Any]) -> set[str]:
    refusals: set[str] = set()
    if not re.fullmatch(
        r"[ABCEGHJ-NPRSTVXY]\d[A-Z]\d[A-Z]\d", re.sub(r"[\s-]", "", address["zip_code"]).upper()
    ):
        refusals.add("zip_code")
    if len(" ".join(words(address["city"]))) > 40:
        refusals.add("city")
    street_1, street_2 = words(address["street_1"]), words(address["street_2"])
    if len(" ".join(street_2)) > 44:
        refusals.add("street_2")
    if len(" ".join(street_1)) > 44 and (street_2 or not fits_on_two_lines(street_1)):
        refusals.add("street_1")
    if len(" ".join(words(address["additional_info"]))) > 44:
        refusals.add("additional_info")
    return {f"{ADDRESS}.{field}" for field in refusals}


def attempt(order_id: str, order: dict[str, Any]) -> tuple[ShipmentRequest, ShipmentRequest] | OrderDataError:
    """The contract and non-contract requests for the order, or the reason it was refused."""
    try:
        contract, non_contract = (
            build_shipment_request(
                order_id=order_id,
                order=order,
                canadapost=canadapost,
                sender=sender_settings(),
                parcel=parcel_settings(),
                request_id=f"fulfil-{order_id}",
            )
            for canadapost in (contract_settings(), non_contract_settings())
        )
    except OrderDataError as error:
        return error
    return contract, non_contract


def test_generated_addresses(shipment_schema: etree.XMLSchema, ncshipment_schema: etree.XMLSchema) -> None:
    rng = random.Random(20250829)
    built = refused = split_streets = shortened = 0
    refused_fields: set[str] = set()
    for number in range(ORDERS):
        order_id = f"{261000000 + number}-A"
        address = generated_address(rng)
        order = make_order(order_id, **address)
        expected = expected_refusals(address)
        outcome = attempt(order_id, order)
        if isinstance(outcome, OrderDataError):
            refused += 1
            assert outcome.field in expected, (address, str(outcome))
            refused_fields.add(outcome.field)
            assert str(outcome).startswith(f"order {order_id}: {outcome.field}: ")
            continue
        assert not expected, (address, expected)
        built += 1
        contract, non_contract = outcome
        shipment_schema.assertValid(etree.fromstring(contract.xml))
        ncshipment_schema.assertValid(etree.fromstring(non_contract.xml))
        assert contract.warnings == non_contract.warnings

        destination = find_path(parse_untrusted(contract.xml), "delivery-spec", "destination")
        assert destination is not None
        details = find_path(destination, "address-details")
        assert details is not None
        # Nothing of the street is lost, whichever way it was laid over the two lines.
        sent = words(child_text(details, "address-line-1")) + words(child_text(details, "address-line-2"))
        given = words(address["street_1"]) + words(address["street_2"])
        assert [word.rstrip(",;") for word in sent] == [word.rstrip(",;") for word in given]
        if child_text(details, "address-line-2") and not words(address["street_2"]):
            split_streets += 1
        assert child_text(details, "city") == " ".join(words(address["city"]))
        info = " ".join(words(address["additional_info"])) or None
        assert child_text(destination, "additional-address-info") == info
        # Names and companies may be shortened, but never silently.
        name = child_text(destination, "name") or ""
        full_name = " ".join(words(address["firstname"]) + words(address["lastname"]))
        company = child_text(destination, "company")
        if name != full_name or (company or "") != " ".join(words(address["company"])):
            shortened += 1
            assert any(".firstname:" in w or ".lastname:" in w or ".company:" in w for w in contract.warnings)
        for warning in contract.warnings:
            assert warning.startswith(f"order {order_id}: {ADDRESS}.")
    # The sweep is only worth something if it walks through every kind of outcome.
    assert built > ORDERS // 3
    assert refused > ORDERS // 10
    assert split_streets > 10
    assert shortened > 10
    assert refused_fields == {
        f"{ADDRESS}.{field}" for field in ("zip_code", "city", "street_1", "street_2", "additional_info")
    }
