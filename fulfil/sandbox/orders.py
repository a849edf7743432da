"""Realistic Best Buy Canada (Mirakl) orders, generated deterministically from a seed.

The objects have the exact shape of Best Buy's OR11 answers (see the redacted real orders in the
shared reference): ``country_iso_code`` null and ``country`` "Canada", province codes in
``state``, postal codes without a space, empty strings rather than nulls for street_2, company
and civility, GST/HST/QST per province, ``fr_CA`` customers with a ``language`` line field of
``FR``, addresses null until the order is accepted and paid, ``can_shop_ship`` true only in
SHIPPING. Addresses are real city / province / postal-district combinations; by default every one
fits Canada Post's limits (lines up to 44 characters, city up to 40, postal code A9A9A9), and
``problems=N`` makes the last N orders deliberately unshippable for failure demos.

Same arguments, same JSON: nothing here reads the clock or iterates over a set.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ORDER_STATES = (
    "STAGING",
    "WAITING_ACCEPTANCE",
    "WAITING_DEBIT",
    "WAITING_DEBIT_PAYMENT",
    "SHIPPING",
    "SHIPPED",
    "TO_COLLECT",
    "RECEIVED",
    "CLOSED",
    "REFUSED",
    "CANCELED",
)
GENERATED_STATES = ("WAITING_ACCEPTANCE", "SHIPPING", "SHIPPED")
PROBLEM_KINDS = ("line_too_long", "bad_postal_code", "missing_street")
# Fixed so that the same seed always gives the same dates.
DEFAULT_START = datetime(2025, 9, 1, 13, 0, 0, tzinfo=UTC)
POSTAL_CODE = re.compile(r"[A-Z]\d[A-Z]\d[A-Z]\d")
# Letters Canada Post uses in the last three characters of a postal code (no D F I O Q U).
LDU_LETTERS = "ABCEGHJKLMNPRSTVWXYZ"


@dataclass(frozen=True)
class Province:
    code: str
    taxes: tuple[tuple[str, float], ...]
    zone_code: str
    zone_label: str
    french_share: float


PROVINCES: dict[str, Province] = {
    "ON": Province("ON", (("GST", 0.0), ("HST", 0.13)), "ONLocal", "Ontario Local", 0.04),
    "QC": Province("QC", (("GST", 0.05), ("QST", 0.09975)), "QCRemote", "Quebec Remote", 0.8),
    "BC": Province("BC", (("GST", 0.05), ("PST", 0.07)), "WCLocal", "Western Canada Local", 0.01),
    "AB": Province("AB", (("GST", 0.05), ("HST", 0.0)), "WCLocal", "Western Canada Local", 0.02),
    "MB": Province("MB", (("GST", 0.05), ("PST", 0.07)), "WCLocal", "Western Canada Local", 0.04),
    "SK": Province("SK", (("GST", 0.05), ("PST", 0.06)), "WCLocal", "Western Canada Local", 0.02),
    "NS": Province("NS", (("GST", 0.0), ("HST", 0.14)), "MRLocal", "Maritime Local", 0.03),
    "NB": Province("NB", (("GST", 0.0), ("HST", 0.15)), "MRLocal", "Maritime Local", 0.3),
    "PE": Province("PE", (("GST", 0.0), ("HST", 0.15)), "MRLocal", "Maritime Local", 0.03),
    "NL": Province("NL", (("GST", 0.0), ("HST", 0.15)), "MRRemote", "Maritime Remote", 0.01),
    "YT": Province("YT", (("GST", 0.05), ("HST", 0.0)), "NORemote", "North Remote", 0.04),
    "NT": Province("NT", (("GST", 0.05), ("HST", 0.0)), "NORemote", "North Remote", 0.03),
    "NU": Province("NU", (("GST", 0.05), ("HST", 0.0)), "NORemote", "North Remote", 0.02),
}

# (city as customers type it, province, forward sortation areas that really serve it, area code)
CITIES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("Toronto", "ON", ("M5V", "M4C", "M6H", "M4Y", "M5A"), "416"),
    ("Ottawa", "ON", ("K1N", "K1S", "K2P", "K1Y"), "613"),
    ("Mississauga", "ON", ("L5B", "L5M", "L4Z"), "905"),
    ("Hamilton", "ON", ("L8P", "L8L", "L9A"), "905"),
    ("London", "ON", ("N6A", "N6G"), "519"),
    ("Kingston", "ON", ("K7L", "K7K"), "613"),
    ("Greater Sudbury", "ON", ("P3E", "P3A"), "705"),
    ("Thunder Bay", "ON", ("P7B", "P7A"), "807"),
    ("Waterloo", "ON", ("N2L", "N2J"), "519"),
    ("Windsor", "ON", ("N9A", "N8X"), "519"),
    ("Montréal", "QC", ("H2X", "H2J", "H3B", "H4A", "H1V"), "514"),
    ("Québec", "QC", ("G1R", "G1K", "G1V"), "418"),
    ("Laval", "QC", ("H7N", "H7T"), "450"),
    ("Gatineau", "QC", ("J8Y", "J8T"), "819"),
    ("Sherbrooke", "QC", ("J1H", "J1E"), "819"),
    ("Trois-Rivières", "QC", ("G9A", "G8Z"), "819"),
    ("Longueuil", "QC", ("J4K", "J4H"), "450"),
    ("Saint-Jérôme", "QC", ("J7Z", "J7Y"), "450"),
    ("Lévis", "QC", ("G6V", "G6W"), "418"),
    ("Rimouski", "QC", ("G5L",), "418"),
    ("Vancouver", "BC", ("V6B", "V5K", "V6K"), "604"),
    ("Victoria", "BC", ("V8W", "V8V"), "250"),
    ("Surrey", "BC", ("V3T", "V3S"), "604"),
    ("Kelowna", "BC", ("V1Y", "V1X"), "250"),
    ("Calgary", "AB", ("T2P", "T3A", "T2E"), "403"),
    ("Edmonton", "AB", ("T5J", "T6E", "T5K"), "780"),
    ("Red Deer", "AB", ("T4N",), "403"),
    ("Winnipeg", "MB", ("R3C", "R2W", "R3M"), "204"),
    ("Brandon", "MB", ("R7A",), "204"),
    ("Regina", "SK", ("S4P", "S4S"), "306"),
    ("Saskatoon", "SK", ("S7K", "S7N"), "306"),
    ("Halifax", "NS", ("B3H", "B3K", "B3J"), "902"),
    ("Dartmouth", "NS", ("B2Y", "B3A"), "902"),
    ("Sydney", "NS", ("B1P",), "902"),
    ("Moncton", "NB", ("E1C", "E1E"), "506"),
    ("Dieppe", "NB", ("E1A",), "506"),
    ("Fredericton", "NB", ("E3B", "E3A"), "506"),
    ("Edmundston", "NB", ("E3V",), "506"),
    ("Charlottetown", "PE", ("C1A", "C1E"), "902"),
    ("St. John's", "NL", ("A1C", "A1B", "A1E"), "709"),
    ("Whitehorse", "YT", ("Y1A",), "867"),
    ("Yellowknife", "NT", ("X1A",), "867"),
    ("Iqaluit", "NU", ("X0A",), "867"),
)

STREETS_EN = (
    "Queen St W",
    "King St E",
    "Main St",
    "Maple Ave",
    "Church St",
    "Victoria St",
    "Wellington St",
    "Park Ave",
    "Lakeshore Rd",
    "Cedar Cres",
    "Birch Crt",
    "Pine Ridge Dr",
    "Water St",
    "Elm Grove Blvd",
    "Heritage Dr NW",
    "Centennial Pkwy N",
)
STREETS_FR = (
    "rue Saint-Denis",
    "rue Sainte-Catherine Est",
    "boulevard René-Lévesque Ouest",
    "avenue du Mont-Royal Est",
    "rue Notre-Dame",
    "chemin Sainte-Foy",
    "rue de l'Église",
    "rue Principale",
    "boulevard des Forges",
    "avenue Cartier",
    "rue Saint-Jean",
    "boulevard Taschereau",
    "côte du Beaver Hall",
    "rue des Érables",
)
FIRST_EN = (
    "Liam", "Olivia", "Noah", "Emma", "Ethan", "Ava", "Priya", "Wei", "Mohammed", "Aisha",
    "Jordan", "Taylor", "Connor", "Siobhan", "Raj", "Mei", "Daniel", "Sarah", "Owen", "Hannah",
)  # fmt: skip
LAST_EN = (
    "Smith", "Brown", "Martin", "Wilson", "MacDonald", "Campbell", "Patel", "Singh", "Chen", "Wong",
    "Li", "Anderson", "Taylor", "Thompson", "Nguyen", "Kaur", "O'Brien", "MacLeod", "Fraser", "Young",
)  # fmt: skip
FIRST_FR = (
    "Émilie", "Jérôme", "Chloé", "François", "Noémie", "Zoé", "Mathéo", "Léa", "Gabriel", "Olivier",
    "Camille", "Élise", "André", "Hélène", "Benoît", "Geneviève", "Maëlle", "Loïc", "Stéphane", "Josée",
)  # fmt: skip
LAST_FR = (
    "Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin", "Lavoie", "Fortin", "Gagné",
    "Ouellet", "Pelletier", "Bélanger", "Lévesque", "Bergeron", "Leblanc", "Paré", "Desjardins",
    "Thériault", "Hébert",
)  # fmt: skip
COMPANIES = ("Dépanneur Côté inc.", "Northern Widgets Ltd.", "Atelier Bélanger", "Maple Leaf Dental")


@dataclass(frozen=True)
class Product:
    offer_sku: str
    product_sku: str
    title: str
    category_code: str
    category_label: str
    price: float


CATALOGUE: tuple[Product, ...] = (
    Product(
        "P52-32-512-FP",
        "19433693",
        'Refurbished (Excellent) - Lenovo ThinkPad P52 15.6" i7-8850H 32GB RAM 512GB SSD',
        "CAT_1002",
        "Laptops",
        699.99,
    ),
    Product(
        "HP450G7-16-256",
        "17205518",
        'Refurbished (Good) - HP ProBook 450 G7 15.6" Core i5 16GB RAM 256GB SSD - Windows 11',
        "CAT_1002",
        "Laptops",
        449.99,
    ),
    Product(
        "WH1000XM4-BLK",
        "14776361",
        "Sony WH-1000XM4 Over-Ear Noise Cancelling Bluetooth Headphones - Black",
        "CAT_7530",
        "Headphones",
        278.0,
    ),
    Product(
        "U2723QE-REF",
        "16481022",
        'Refurbished (Excellent) - Dell UltraSharp 27" 4K USB-C Hub Monitor (U2723QE)',
        "CAT_4210",
        "Monitors",
        459.99,
    ),
    Product(
        "MXM3S-GRAPH",
        "16218741",
        "Logitech MX Master 3S Wireless Performance Mouse - Graphite",
        "CAT_3210",
        "Mice",
        114.99,
    ),
    Product(
        "KIN-NV2-1TB",
        "16377540",
        "Kingston NV2 1TB NVMe PCIe 4.0 Internal Solid State Drive",
        "CAT_3350",
        "Internal Storage",
        79.99,
    ),
    Product(
        "AX3000-RTR",
        "15829003",
        "TP-Link Archer AX55 AX3000 Dual-Band Wi-Fi 6 Router",
        "CAT_3650",
        "Networking",
        129.99,
    ),
    Product(
        "TAB-S6L-64",
        "15401267",
        'Refurbished (Good) - Samsung Galaxy Tab S6 Lite 10.4" 64GB Android Tablet - Oxford Grey',
        "CAT_1101",
        "Tablets",
        249.99,
    ),
)
SELLER_WAREHOUSE = {
    "city": "Mississauga",
    "country_iso_code": "CAN",
    "state": "ON",
    "street_1": "6975 Pacific Circle",
    "street_2": None,
    "zip_code": "L5T2H3",
}


@dataclass(frozen=True)
class GeneratedOrder:
    """A generated order, its customer's address (also when the order does not show it yet), and
    the deliberate problem it carries, if any."""

    order: dict[str, Any]
    shipping_address: dict[str, Any]
    billing_address: dict[str, Any]
    problem: str | None = None


def mirakl_time(moment: datetime, *, millis: bool = False) -> str:
    moment = moment.astimezone(UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_orders(
    n: int,
    seed: int = 1,
    state: str = "SHIPPING",
    *,
    problems: int = 0,
    start: datetime = DEFAULT_START,
) -> list[dict[str, Any]]:
    """N realistic Best Buy Canada orders in ``state``; the last ``problems`` ones cannot be shipped."""
    return [
        generated.order for generated in generate_order_set(n, seed, state, problems=problems, start=start)
    ]


def generate_order_set(
    n: int,
    seed: int = 1,
    state: str = "SHIPPING",
    *,
    problems: int = 0,
    start: datetime = DEFAULT_START,
) -> list[GeneratedOrder]:
    if state not in GENERATED_STATES:
        raise ValueError(f"orders can be generated in {', '.join(GENERATED_STATES)}, not {state!r}")
    if n < 0 or not 0 <= problems <= n:
        raise ValueError("need 0 <= problems <= n")
    rng = random.Random(f"fulfil-sandbox-orders:{seed}")
    commercial_id = 261_200_000 + rng.randrange(0, 40_000)
    line_id = 113_300_000 + rng.randrange(0, 40_000)
    created = start + timedelta(minutes=rng.randrange(0, 90))
    generated: list[GeneratedOrder] = []
    for index in range(n):
        commercial_id += rng.randint(40, 2500)
        created += timedelta(minutes=rng.randint(3, 140), seconds=rng.randint(0, 59))
        problem_index = index - (n - problems)
        problem = PROBLEM_KINDS[problem_index % len(PROBLEM_KINDS)] if problem_index >= 0 else None
        lines = []
        for _ in range(1 if rng.random() < 0.85 else 2):
            line_id += rng.randint(5, 900)
            lines.append((str(line_id), rng.choice(CATALOGUE), 1 if rng.random() < 0.9 else 2))
        generated.append(_build(rng, str(commercial_id), lines, created, state, problem))
    return generated


def random_address(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A shipping address, the matching billing address and the customer's locale."""
    city, province_code, districts, area_code = rng.choice(CITIES)
    province = PROVINCES[province_code]
    french = rng.random() < province.french_share
    firstname = rng.choice(FIRST_FR if french else FIRST_EN)
    lastname = rng.choice(LAST_FR if french else LAST_EN)
    number = rng.randint(1, 4999)
    street = rng.choice(STREETS_FR if province_code == "QC" or french else STREETS_EN)
    street_1, street_2 = f"{number} {street}", ""
    apartment = rng.random()
    if apartment < 0.15:
        street_1 = f"{rng.randint(101, 2508)}-{number} {street}"
    elif apartment < 0.3:
        unit = rng.randint(1, 1204)
        street_2 = f"app. {unit}" if french else rng.choice((f"Apt {unit}", f"Unit {unit}", f"Suite {unit}"))
    postal = rng.choice(districts) + str(rng.randint(0, 9)) + rng.choice(LDU_LETTERS) + str(rng.randint(0, 9))
    phone = f"{area_code}-555-01{rng.randint(0, 99):02d}"
    company = rng.choice(COMPANIES) if rng.random() < 0.08 else ""
    billing = {
        "city": city,
        "civility": "",
        "company": company,
        "company_2": None,
        "country": "Canada",
        "country_iso_code": None,
        "firstname": firstname,
        "lastname": lastname,
        "phone": phone,
        "phone_secondary": "",
        "state": province_code,
        "street_1": street_1,
        "street_2": street_2,
        "zip_code": postal,
    }
    shipping = {"additional_info": "", **billing}
    return shipping, billing, "fr_CA" if french else rng.choice(("en_US", "en_US", "en_CA"))


def _make_problem(shipping: dict[str, Any], problem: str) -> None:
    if problem == "line_too_long":
        shipping["street_1"] = "2350 boulevard du Souvenir-des-Anciens-Combattants Ouest"
    elif problem == "bad_postal_code":
        # Typed one character short, the most common slip in real orders.
        shipping["zip_code"] = shipping["zip_code"][:5]
    elif problem == "missing_street":
        shipping["street_1"] = ""
        shipping["street_2"] = ""


def _money(value: float) -> float:
    return float(round(value + 1e-9, 2))


def _parts(amount: float, *, commissionable: bool) -> dict[str, Any]:
    return {
        "parts": [
            {
                "amount": amount,
                "commissionable": commissionable,
                "debitable_from_customer": True,
                "payable_to_shop": True,
            }
        ]
    }


def _tax_lines(province: Province, base: float) -> list[dict[str, Any]]:
    lines = []
    for code, rate in province.taxes:
        amount = _money(base * rate)
        lines.append(
            {
                "amount": amount,
                "amount_breakdown": _parts(amount, commissionable=False),
                "code": code,
                "tax_calculation_rule": "NONE",
            }
        )
    return lines


def _build(
    rng: random.Random,
    commercial_id: str,
    lines: list[tuple[str, Product, int]],
    created: datetime,
    state: str,
    problem: str | None,
) -> GeneratedOrder:
    shipping, billing, locale = random_address(rng)
    if problem:
        _make_problem(shipping, problem)
    province = PROVINCES[shipping["state"]]
    language = "FR" if locale == "fr_CA" else "EN"
    accepted = created + timedelta(minutes=rng.randint(15, 240), seconds=rng.randint(0, 59))
    debited = accepted + timedelta(
        minutes=rng.randint(5, 12), seconds=rng.randint(0, 59), milliseconds=rng.randint(0, 999)
    )
    shipped = debited + timedelta(hours=rng.randint(2, 30), minutes=rng.randint(0, 59))
    deadline = (created + timedelta(days=8)).replace(hour=6, minute=59, second=59, microsecond=999_000)
    after_acceptance = state in ("SHIPPING", "SHIPPED")
    last_updated = {"WAITING_ACCEPTANCE": created, "SHIPPING": debited, "SHIPPED": shipped}[state]
    tracking = "".join(str(rng.randint(0, 9)) for _ in range(16)) if state == "SHIPPED" else None
    order_lines: list[dict[str, Any]] = []
    for index, (order_line_id, product, quantity) in enumerate(lines, start=1):
        price = _money(product.price * quantity)
        commission = _money(price * 0.08)
        commission_vat = _money(commission * 0.13)
        order_lines.append(
            {
                "can_refund": after_acceptance,
                "cancelations": [],
                "category_code": product.category_code,
                "category_label": product.category_label,
                "commission_fee": commission,
                "commission_rate_vat": 13.0,
                "commission_taxes": [{"amount": commission_vat, "code": "ON_HST", "rate": 13.0}],
                "commission_vat": commission_vat,
                "created_date": mirakl_time(created),
                "debited_date": mirakl_time(debited) if after_acceptance else None,
                "description": None,
                "fees": [],
                "last_updated_date": mirakl_time(last_updated),
                "offer_id": 198_000_000 + int(product.product_sku) % 1_000_000,
                "offer_sku": product.offer_sku,
                "offer_state_code": "11",
                "order_line_additional_fields": [{"code": "language", "type": "STRING", "value": language}],
                "order_line_id": order_line_id,
                "order_line_index": index,
                "order_line_state": state,
                "order_line_state_reason_code": None,
                "order_line_state_reason_label": None,
                "price": price,
                "price_additional_info": None,
                "price_amount_breakdown": _parts(price, commissionable=True),
                "price_unit": _money(product.price),
                "product_medias": [
                    {
                        "media_url": f"/media/product/image/{uuid.UUID(int=rng.getrandbits(128), version=4)}",
                        "mime_type": "JPG",
                        "type": size,
                    }
                    for size in ("LARGE", "MEDIUM", "SMALL")
                ],
                "product_shop_sku": product.offer_sku,
                "product_sku": product.product_sku,
                "product_title": product.title,
                "promotions": [],
                "quantity": quantity,
                "received_date": None,
                "refunds": [],
                "shipped_date": mirakl_time(shipped) if state == "SHIPPED" else None,
                "shipping_from": {"address": dict(SELLER_WAREHOUSE), "warehouse": {"code": "0001"}},
                "shipping_price": 0.0,
                "shipping_price_additional_unit": None,
                "shipping_price_amount_breakdown": _parts(0.0, commissionable=True),
                "shipping_price_unit": None,
                "shipping_taxes": _tax_lines(province, 0.0),
                "taxes": _tax_lines(province, price),
                "total_commission": _money(commission + commission_vat),
                "total_price": price,
            }
        )
    total = _money(sum(line["price"] for line in order_lines))
    order: dict[str, Any] = {
        "acceptance_decision_date": mirakl_time(accepted) if after_acceptance else None,
        "can_cancel": False,
        "can_shop_ship": state == "SHIPPING",
        "channel": None,
        "commercial_id": commercial_id,
        "created_date": mirakl_time(created),
        "currency_iso_code": "CAD",
        "customer": {
            "billing_address": dict(billing) if after_acceptance else None,
            "civility": "",
            "customer_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "firstname": billing["firstname"],
            "lastname": billing["lastname"],
            "locale": locale,
            "shipping_address": dict(shipping) if after_acceptance else None,
        },
        "customer_debited_date": mirakl_time(debited, millis=True) if after_acceptance else None,
        "customer_directly_pays_seller": False,
        "customer_notification_email": f"{rng.getrandbits(64):016x}@us.notification.mirakl.net",
        "delivery_date": {
            "earliest": mirakl_time(deadline + timedelta(days=3)),
            "latest": mirakl_time(deadline + timedelta(days=14)),
        }
        if rng.random() < 0.7
        else None,
        "fulfillment": {"center": {"code": "DEFAULT"}},
        "fully_refunded": False,
        "has_customer_message": False,
        "has_incident": False,
        "has_invoice": False,
        "last_updated_date": mirakl_time(last_updated),
        "leadtime_to_ship": rng.choice((7, 8)),
        "order_additional_fields": [],
        "order_id": f"{commercial_id}-A",
        "order_lines": order_lines,
        "order_refunds": None,
        "order_state": state,
        "order_state_reason_code": None,
        "order_state_reason_label": None,
        "order_tax_mode": "TAX_EXCLUDED",
        "order_taxes": None,
        "paymentType": "",
        "payment_type": "",
        "payment_workflow": "PAY_ON_ACCEPTANCE",
        "price": total,
        "promotions": {"applied_promotions": [], "total_deduced_amount": 0},
        "quote_id": None,
        "references": {"order_reference_for_customer": province.code},
        "shipping_carrier_code": "CPCL" if tracking else None,
        "shipping_carrier_standard_code": "ca-post" if tracking else None,
        "shipping_company": "Canada Post" if tracking else None,
        "shipping_deadline": mirakl_time(deadline, millis=True),
        "shipping_price": 0.0,
        "shipping_pudo_id": None,
        "shipping_tracking": tracking,
        "shipping_tracking_url": f"https://parcelsapp.com/en/tracking/{tracking}" if tracking else None,
        "shipping_type_code": "M",
        "shipping_type_label": "Ground Regular",
        "shipping_type_standard_code": "CU_ADD-STD",
        "shipping_zone_code": province.zone_code,
        "shipping_zone_label": province.zone_label,
        "total_commission": _money(sum(line["total_commission"] for line in order_lines)),
        "total_price": total,
    }
    return GeneratedOrder(order=order, shipping_address=shipping, billing_address=billing, problem=problem)


def with_extra_line(order: dict[str, Any], offer_sku: str, quantity: int = 1) -> dict[str, Any]:
    """``order`` with one more line of a catalogue product (``offer_sku``), its totals to match: a
    copy, made without drawing on any order generator's randomness, so every other order of a
    generated set stays as it was (the demo makes one order a monitor and what came with it)."""
    import copy

    product = next(item for item in CATALOGUE if item.offer_sku == offer_sku)
    made = copy.deepcopy(order)
    first = made["order_lines"][0]
    price = _money(product.price * quantity)
    commission = _money(price * 0.08)
    commission_vat = _money(commission * 0.13)
    line = {
        **copy.deepcopy(first),
        "category_code": product.category_code,
        "category_label": product.category_label,
        "commission_fee": commission,
        "commission_taxes": [{"amount": commission_vat, "code": "ON_HST", "rate": 13.0}],
        "commission_vat": commission_vat,
        "offer_id": 198_000_000 + int(product.product_sku) % 1_000_000,
        "offer_sku": product.offer_sku,
        "order_line_id": str(max(int(item["order_line_id"]) for item in made["order_lines"]) + 1),
        "order_line_index": len(made["order_lines"]) + 1,
        "price": price,
        "price_amount_breakdown": _parts(price, commissionable=True),
        "price_unit": _money(product.price),
        "product_shop_sku": product.offer_sku,
        "product_sku": product.product_sku,
        "product_title": product.title,
        "quantity": quantity,
        "total_commission": _money(commission + commission_vat),
        "total_price": price,
    }
    made["order_lines"].append(line)
    total = _money(sum(item["price"] for item in made["order_lines"]))
    made["price"] = made["total_price"] = total
    made["total_commission"] = _money(sum(item["total_commission"] for item in made["order_lines"]))
    return made


def address_fits_canada_post(address: dict[str, Any]) -> bool:
    """True when the address can go into a Canada Post request unchanged."""
    street_1 = address.get("street_1") or ""
    return (
        0 < len(street_1) <= 44
        and len(address.get("street_2") or "") <= 44
        and 0 < len(address.get("city") or "") <= 40
        and bool(POSTAL_CODE.fullmatch(address.get("zip_code") or ""))
        and len(f"{address.get('firstname', '')} {address.get('lastname', '')}".strip()) <= 44
    )
