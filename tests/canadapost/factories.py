"""Orders and settings for the Canada Post tests, shaped like real Best Buy (Mirakl OR11) data."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

from fulfil.canadapost.shipment_request import ShipmentRequest, build_shipment_request
from fulfil.config import CanadaPostSettings, ParcelSettings, SenderSettings
from tests.shared_reference import mirakl_samples

ORDER_ID = "261250893-A"

# The shape of a real SHIPPING order's shipping address, with plausible values in place of the
# redaction placeholders.
_ADDRESS: dict[str, Any] = {
    "additional_info": "",
    "city": "Ottawa",
    "civility": "",
    "company": "",
    "company_2": None,
    "country": "Canada",
    "country_iso_code": None,
    "firstname": "Jane",
    "lastname": "Doe",
    "phone": "613-555-0100",
    "phone_secondary": "",
    "state": "ON",
    "street_1": "23 Jardin Private",
    "street_2": "",
    "zip_code": "K1K4T3",
}


def make_order(order_id: str = ORDER_ID, **address: Any) -> dict[str, Any]:
    """An order whose shipping address is the default one with these fields replaced."""
    shipping_address = {**_ADDRESS, **address}
    return {
        "order_id": order_id,
        "order_state": "SHIPPING",
        "customer": {
            "customer_id": "00000000-0000-0000-0000-000000000000",
            "firstname": "Buyer",
            "lastname": "Person",
            "locale": "en_US",
            "shipping_address": shipping_address,
            "billing_address": copy.deepcopy(shipping_address),
        },
    }


def real_orders(*states: str) -> list[dict[str, Any]]:
    """The real (redacted) Best Buy Canada orders in these states."""
    orders: list[dict[str, Any]] = []
    for path in sorted(mirakl_samples().glob("bestbuy-ca.OR11-orders.*.redacted.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        listed = document["orders"] if isinstance(document, dict) else document
        orders.extend(order for order in listed if order["order_state"] in states)
    return orders


def contract_settings(**overrides: Any) -> CanadaPostSettings:
    values: dict[str, Any] = {
        "env": "development",
        "base_url": "https://ct.soa-gw.canadapost.ca",
        "username": "user",
        "password": "secret",
        "customer_number": "2004381",
        "contract_id": "0042708517",
        "service_code": "DOM.EP",
        "label_format": "4x6",
    }
    return CanadaPostSettings(**{**values, **overrides})


def non_contract_settings(**overrides: Any) -> CanadaPostSettings:
    return contract_settings(contract_id=None, **overrides)


def sender_settings(**overrides: Any) -> SenderSettings:
    values: dict[str, Any] = {
        "name": "Bob Smith",
        "company": "Example Co",
        "phone": "514-555-0100",
        "address_line_1": "502 Main St N",
        "address_line_2": None,
        "city": "Montréal",
        "province": "QC",
        "postal_code": "H2B 1A0",
    }
    return SenderSettings(**{**values, **overrides})


def parcel_settings(**overrides: Any) -> ParcelSettings:
    values: dict[str, Any] = {
        "weight_kg": Decimal("1.25"),
        "length_cm": Decimal("30"),
        "width_cm": Decimal("20"),
        "height_cm": Decimal("10"),
    }
    return ParcelSettings(**{**values, **overrides})


def build_request(
    order: dict[str, Any] | None = None,
    *,
    canadapost: CanadaPostSettings | None = None,
    sender: SenderSettings | None = None,
    parcel: ParcelSettings | None = None,
    request_id: str | None = "fulfil-261250893-A-1",
    order_id: str | None = None,
) -> ShipmentRequest:
    """The request for an order (the default one unless given) with default settings."""
    order = make_order() if order is None else order
    return build_shipment_request(
        order_id=order_id or order["order_id"],
        order=order,
        canadapost=canadapost or contract_settings(),
        sender=sender or sender_settings(),
        parcel=parcel or parcel_settings(),
        request_id=request_id,
    )
