"""The sandbox answers Get Rates over real sockets, as Canada Post does: quotes valid against the
official rating.xsd, priced by billed weight, service and distance, taxed by province, dated from
the sandbox's clock without weekends; Canada Post's errors for what it refuses; throttled in
group D. And fulfil's own client asks for a quote with every call recorded in api_calls."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import requests
from lxml import etree

from fulfil.canadapost.client import CanadaPostClient
from fulfil.canadapost.parcel import parcel_characteristics
from fulfil.canadapost.rates import build_rates_request, parse_price_quotes
from fulfil.sandbox import Sandbox, SandboxConfig, cp_schema
from fulfil.sandbox.throttle import CANADA_POST_ENDPOINT_GROUPS, GroupLimits
from fulfil.services import open_session
from tests.labels.helpers import label_settings
from tests.sandbox.conftest import CP_AUTH, CUSTOMER, MESSAGES_NS, CanadaPost, message_codes, parse
from tests.sandbox.test_cp_schema import mutations
from tests.shared_reference import xsd_dir

RATE_NS = "http://www.canadapost.ca/ws/ship/rate-v4"
RATE_MEDIA = "application/vnd.cpc.ship.rate-v4+xml"
PRICE = "/rs/ship/price"
EASTERN = ZoneInfo("America/Toronto")
FRIDAY = datetime(2025, 10, 17, 10, 30, tzinfo=EASTERN)
SPEED_ORDER = ("DOM.RP", "DOM.EP", "DOM.XP", "DOM.PC")  # slowest and cheapest first
MONTREAL = "H2B1A0"
# From Montréal: the same first letter, the same region (Québec City), a neighbouring region
# (Ottawa), and far (Calgary, Vancouver).
LOCAL, SAME_REGION, NEIGHBOUR, FAR, FARTHEST = "H3Z2Y7", "G1R4P5", "K1A0B1", "T2P1J9", "V6B1A1"


class FakeClock:
    def __init__(self) -> None:
        self.now = FRIDAY.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def module_rates_sandbox(clock: FakeClock) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(seed=23), clock=clock) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(module_rates_sandbox: Sandbox, clock: FakeClock) -> Sandbox:
    """The rating sandbox on a Friday morning (this module's ``canadapost`` and ``fulfil_env`` use it)."""
    clock.now = FRIDAY.timestamp()
    module_rates_sandbox.reset()
    return module_rates_sandbox


@pytest.fixture(scope="module")
def rating_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(xsd_dir() / "rating.xsd")))


@pytest.fixture(scope="module")
def messages_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(xsd_dir() / "messages.xsd")))


def scenario(
    *,
    weight: str = "1.000",
    origin: str = MONTREAL,
    destination: str | None = NEIGHBOUR,
    dimensions: tuple[str, str, str] | None = None,
    options: tuple[tuple[str, str | None], ...] = (),
    customer: str | None = CUSTOMER,
    contract: str | None = "42708517",
    quote_type: str | None = "commercial",
    services: tuple[str, ...] | None = None,
    mailing_date: str | None = None,
    zip_code: str | None = None,
) -> bytes:
    """A Get Rates body, built element by element."""

    def add(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{RATE_NS}}}{tag}")
        element.text = text
        return element

    root = etree.Element(f"{{{RATE_NS}}}mailing-scenario", nsmap={None: RATE_NS})
    if customer is not None:
        add(root, "customer-number", customer)
    if contract is not None:
        add(root, "contract-id", contract)
    if quote_type is not None:
        add(root, "quote-type", quote_type)
    if mailing_date is not None:
        add(root, "expected-mailing-date", mailing_date)
    if options:
        container = add(root, "options")
        for code, amount in options:
            option = add(container, "option")
            add(option, "option-code", code)
            if amount is not None:
                add(option, "option-amount", amount)
    parcel = add(root, "parcel-characteristics")
    add(parcel, "weight", weight)
    if dimensions is not None:
        measured = add(parcel, "dimensions")
        for side, value in zip(("length", "width", "height"), dimensions, strict=True):
            add(measured, side, value)
    if services is not None:
        listed = add(root, "services")
        for code in services:
            add(listed, "service-code", code)
    add(root, "origin-postal-code", origin)
    where = add(root, "destination")
    if zip_code is not None:
        add(add(where, "united-states"), "zip-code", zip_code)
    elif destination is not None:
        add(add(where, "domestic"), "postal-code", destination)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def ask(client: CanadaPost, body: bytes, **headers: str) -> requests.Response:
    sent = {"Content-Type": RATE_MEDIA, "Accept": RATE_MEDIA, **headers}
    return client.request("POST", PRICE, data=body, headers=sent)


def quotes_of(answer: requests.Response) -> dict[str, etree._Element]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == RATE_MEDIA
    root = parse(answer.content)
    assert etree.QName(root).namespace == RATE_NS
    return {quote.findtext(f"{{{RATE_NS}}}service-code") or "": quote for quote in root}


def quoted(client: CanadaPost, **kwargs: object) -> dict[str, etree._Element]:
    return quotes_of(ask(client, scenario(**kwargs)))  # type: ignore[arg-type]


def amount(quote: etree._Element, *path: str) -> Decimal:
    return Decimal(quote.findtext("/".join(f"{{{RATE_NS}}}{name}" for name in path)) or "NaN")


def base(quote: etree._Element) -> Decimal:
    return amount(quote, "price-details", "base")


def due(quote: etree._Element) -> Decimal:
    return amount(quote, "price-details", "due")


def days(quote: etree._Element) -> int:
    return int(quote.findtext(f"{{{RATE_NS}}}service-standard/{{{RATE_NS}}}expected-transit-time") or "-1")


def delivery(quote: etree._Element) -> date:
    text = quote.findtext(f"{{{RATE_NS}}}service-standard/{{{RATE_NS}}}expected-delivery-date")
    return date.fromisoformat(text or "")


def rising(values: list[Any]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


def never_falling(values: list[Any]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(values))


# --- answers ----------------------------------------------------------------------------------


def test_every_answer_is_valid_against_the_official_rating_schema(
    canadapost: CanadaPost, rating_schema: etree.XMLSchema
) -> None:
    bodies = [
        scenario(),
        scenario(destination=FARTHEST, dimensions=("60.0", "40", "40.5"), weight="2.500"),
        scenario(options=(("SO", None), ("COV", "750.00")), contract=None),
        scenario(quote_type="counter", customer=None, contract=None, mailing_date="2025-10-18"),
        scenario(services=("DOM.XP", "USA.EP"), destination="X0A0H0"),
        scenario(weight="45.000"),
        scenario(zip_code="90210"),
    ]
    for body in bodies:
        for language in ("en-CA", "fr-CA"):
            answer = ask(canadapost, body, **{"Accept-language": language})
            assert answer.status_code == 200, answer.text
            assert rating_schema.validate(parse(answer.content)), rating_schema.error_log
    # A services list, a parcel too heavy, a destination abroad: what applies, maybe nothing.
    assert [list(quotes_of(ask(canadapost, body))) for body in bodies[-3:]] == [["DOM.XP"], [], []]


def test_one_quote_per_domestic_service_named_in_the_language_asked(canadapost: CanadaPost) -> None:
    english = quoted(canadapost)
    assert list(english) == list(SPEED_ORDER)
    names = {code: quote.findtext(f"{{{RATE_NS}}}service-name") for code, quote in english.items()}
    assert names == {
        "DOM.RP": "Regular Parcel",
        "DOM.EP": "Expedited Parcel",
        "DOM.XP": "Xpresspost",
        "DOM.PC": "Priority",
    }
    french = quotes_of(ask(canadapost, scenario(), **{"Accept-language": "fr-CA"}))
    assert french["DOM.EP"].findtext(f"{{{RATE_NS}}}service-name") == "Colis accélérés"
    link = english["DOM.EP"].find(f"{{{RATE_NS}}}service-link")
    assert link is not None
    assert link.get("href") == f"{canadapost.base_url}/rs/ship/service/DOM.EP?country=CA"
    assert (link.get("rel"), link.get("media-type")) == ("service", RATE_MEDIA)


def test_the_same_question_on_the_same_day_gets_the_same_answer(canadapost: CanadaPost) -> None:
    body = scenario(dimensions=("31.5", "22", "14"), options=(("SO", None),))
    assert ask(canadapost, body).content == ask(canadapost, body).content


# --- the price model -------------------------------------------------------------------------


def test_prices_rise_with_weight(canadapost: CanadaPost) -> None:
    by_weight = [quoted(canadapost, weight=weight) for weight in ("0.500", "2.000", "8.000", "20.000")]
    for code in SPEED_ORDER:
        assert rising([base(quotes[code]) for quotes in by_weight]), code
        assert rising([due(quotes[code]) for quotes in by_weight]), code


def test_a_light_bulky_parcel_is_billed_by_its_volume(canadapost: CanadaPost) -> None:
    unboxed = quoted(canadapost, weight="1.000")
    # 60 × 40 × 40 cm / 6000 = 16 kg of volume.
    bulky = quoted(canadapost, weight="1.000", dimensions=("60", "40", "40"))
    sixteen_kg = quoted(canadapost, weight="16.000")
    small = quoted(canadapost, weight="1.000", dimensions=("10", "10", "10"))
    for code in SPEED_ORDER:
        assert base(bulky[code]) > base(unboxed[code])
        assert base(bulky[code]) == base(sixteen_kg[code])
        assert base(small[code]) == base(unboxed[code])
        assert bulky[code].findtext(f"{{{RATE_NS}}}weight-details/{{{RATE_NS}}}cubed-weight") == "16.000"
        assert small[code].findtext(f"{{{RATE_NS}}}weight-details/{{{RATE_NS}}}cubed-weight") == "0.167"
    # Unmeasured, there is no cubed weight to report.
    assert unboxed["DOM.RP"].find(f"{{{RATE_NS}}}weight-details/{{{RATE_NS}}}cubed-weight") is None


def test_farther_destinations_cost_more_and_take_longer(canadapost: CanadaPost) -> None:
    by_distance = [quoted(canadapost, destination=where) for where in (LOCAL, NEIGHBOUR, FAR)]
    for code in SPEED_ORDER:
        # Base, not due: the destinations' provinces tax differently.
        assert rising([base(quotes[code]) for quotes in by_distance]), code
        assert never_falling([days(quotes[code]) for quotes in by_distance]), code
        assert never_falling([delivery(quotes[code]) for quotes in by_distance]), code
        assert days(by_distance[0][code]) < days(by_distance[-1][code]), code
    assert rising([days(quotes["DOM.RP"]) for quotes in by_distance])
    # Québec City is in Montréal's region: priced and timed like a neighbouring one, not locally.
    same_region = quoted(canadapost, destination=SAME_REGION)
    assert base(same_region["DOM.EP"]) == base(by_distance[1]["DOM.EP"])
    assert base(same_region["DOM.EP"]) > base(by_distance[0]["DOM.EP"])
    # Calgary and Vancouver are both far from Montréal.
    farthest = quoted(canadapost, destination=FARTHEST)
    assert days(farthest["DOM.RP"]) == days(by_distance[2]["DOM.RP"])


def test_faster_services_cost_more_and_arrive_sooner(canadapost: CanadaPost) -> None:
    for where in (LOCAL, NEIGHBOUR, FAR):
        for weight in ("0.250", "5.000"):
            quotes = quoted(canadapost, destination=where, weight=weight)
            in_speed_order = [quotes[code] for code in SPEED_ORDER]
            assert rising([base(quote) for quote in in_speed_order]), (where, weight)
            assert rising([due(quote) for quote in in_speed_order]), (where, weight)
            assert never_falling([days(quote) for quote in reversed(in_speed_order)]), where
            assert never_falling([delivery(quote) for quote in reversed(in_speed_order)]), where
            assert days(quotes["DOM.PC"]) < days(quotes["DOM.RP"]), where
    guaranteed = {
        code: quote.findtext(f"{{{RATE_NS}}}service-standard/{{{RATE_NS}}}guaranteed-delivery")
        for code, quote in quoted(canadapost).items()
    }
    assert guaranteed == {"DOM.RP": "false", "DOM.EP": "false", "DOM.XP": "true", "DOM.PC": "true"}


def test_delivery_dates_count_business_days_from_the_sandbox_clock(
    canadapost: CanadaPost, clock: FakeClock
) -> None:
    # Friday 17 October 2025: one business day is Monday, seven is the Tuesday after next.
    local = quoted(canadapost, destination=LOCAL)
    assert (days(local["DOM.PC"]), delivery(local["DOM.PC"])) == (1, date(2025, 10, 20))
    far = quoted(canadapost, destination=FAR)
    assert (days(far["DOM.RP"]), delivery(far["DOM.RP"])) == (7, date(2025, 10, 28))
    # On the Saturday, the first business day is still the Monday.
    clock.now = datetime(2025, 10, 18, 9, 0, tzinfo=EASTERN).timestamp()
    assert delivery(quoted(canadapost, destination=LOCAL)["DOM.PC"]) == date(2025, 10, 20)
    # Mailing planned for Wednesday: counted from Wednesday; a day already past: from today.
    planned = quoted(canadapost, destination=LOCAL, mailing_date="2025-10-22")
    assert delivery(planned["DOM.PC"]) == date(2025, 10, 23)
    past = quoted(canadapost, destination=LOCAL, mailing_date="2025-10-01")
    assert delivery(past["DOM.PC"]) == date(2025, 10, 20)
    # The sandbox's day is Eastern: 02:00 UTC on Saturday is still Friday evening in Montréal.
    clock.now = datetime.fromisoformat("2025-10-18T02:00:00+00:00").timestamp()
    assert delivery(quoted(canadapost, destination=LOCAL)["DOM.PC"]) == date(2025, 10, 20)
    clock.now = datetime(2025, 10, 20, 9, 0, tzinfo=EASTERN).timestamp()
    assert delivery(quoted(canadapost, destination=LOCAL)["DOM.PC"]) == date(2025, 10, 21)


@pytest.mark.parametrize(
    ("destination", "rates"),
    [
        ("K1A0B1", {"gst": "0", "pst": "0", "hst": "13"}),  # Ontario: HST
        ("H3Z2Y7", {"gst": "5", "pst": "9.975", "hst": "0"}),  # Québec: GST and QST
        ("T2P1J9", {"gst": "5", "pst": "0", "hst": "0"}),  # Alberta: GST only
        ("B3H1Y6", {"gst": "0", "pst": "0", "hst": "14"}),  # Nova Scotia: HST
        ("X0A0H0", {"gst": "5", "pst": "0", "hst": "0"}),  # Nunavut (X0A), GST only
    ],
)
def test_taxes_are_the_destination_provinces(
    canadapost: CanadaPost, destination: str, rates: dict[str, str]
) -> None:
    for quote in quoted(canadapost, destination=destination, options=(("SO", None),)).values():
        details = quote.find(f"{{{RATE_NS}}}price-details")
        assert details is not None
        taxes = {etree.QName(tax).localname: tax for tax in details.find(f"{{{RATE_NS}}}taxes")}
        assert {name: tax.get("percent") for name, tax in taxes.items()} == rates
        options = sum(
            (Decimal(price.text or "0") for price in details.iter(f"{{{RATE_NS}}}option-price")), Decimal(0)
        )
        surcharges = sum(
            (Decimal(cost.text or "0") for cost in details.iter(f"{{{RATE_NS}}}adjustment-cost")), Decimal(0)
        )
        pre_tax = base(quote) + options + surcharges
        for name, tax in taxes.items():
            expected = (pre_tax * Decimal(rates[name]) / 100).quantize(Decimal("0.01"))
            assert abs(Decimal(tax.text or "0") - expected) <= Decimal("0.01"), name
        assert due(quote) == pre_tax + sum((Decimal(tax.text or "0") for tax in taxes.values()), Decimal(0))


def test_a_fuel_surcharge_is_added_to_every_quote(canadapost: CanadaPost) -> None:
    for quote in quoted(canadapost).values():
        adjustment = quote.find(f".//{{{RATE_NS}}}adjustment")
        assert adjustment is not None
        assert adjustment.findtext(f"{{{RATE_NS}}}adjustment-code") == "FUELSC"
        cost = Decimal(adjustment.findtext(f"{{{RATE_NS}}}adjustment-cost") or "0")
        assert cost == (base(quote) * Decimal("0.115")).quantize(Decimal("0.01"))


def test_options_are_priced_when_asked_for(canadapost: CanadaPost) -> None:
    plain = quoted(canadapost)
    signed = quoted(canadapost, options=(("SO", None),))
    covered = quoted(canadapost, options=(("SO", None), ("COV", "500.00")))
    default_cover = quoted(canadapost, options=(("COV", None),))

    def option_prices(quote: etree._Element) -> dict[str, Decimal]:
        return {
            option.findtext(f"{{{RATE_NS}}}option-code") or "": Decimal(
                option.findtext(f"{{{RATE_NS}}}option-price") or "NaN"
            )
            for option in quote.iter(f"{{{RATE_NS}}}option")
        }

    assert all(plain[code].find(f".//{{{RATE_NS}}}options") is None for code in SPEED_ORDER)
    for code in SPEED_ORDER:
        assert option_prices(signed[code]) == {"SO": Decimal("1.75")}
        assert due(signed[code]) > due(plain[code])
        assert base(signed[code]) == base(plain[code])
    # Coverage per 100 dollars beyond what the service includes: none with Regular Parcel, 100
    # dollars with the others.
    assert option_prices(covered["DOM.RP"]) == {"SO": Decimal("1.75"), "COV": Decimal("13.75")}
    assert option_prices(covered["DOM.XP"]) == {"SO": Decimal("1.75"), "COV": Decimal("11.00")}
    assert option_prices(default_cover["DOM.RP"]) == {"COV": Decimal("2.75")}
    assert option_prices(default_cover["DOM.PC"]) == {"COV": Decimal("0.00")}
    qualifier = covered["DOM.EP"].find(f".//{{{RATE_NS}}}qualifier")
    assert qualifier is not None
    assert qualifier.findtext(f"{{{RATE_NS}}}included-amount") == "100.00"


def test_a_contract_pays_less_than_the_list_and_the_counter_more(canadapost: CanadaPost) -> None:
    contract = quoted(canadapost)
    commercial = quoted(canadapost, contract=None)
    counter = quoted(canadapost, contract=None, customer=None, quote_type="counter")
    for code in SPEED_ORDER:
        assert base(contract[code]) < base(commercial[code]) < base(counter[code])


def test_what_no_service_takes_is_an_empty_list(canadapost: CanadaPost) -> None:
    assert quoted(canadapost, weight="30.000") != {}
    assert quoted(canadapost, weight="30.001") == {}
    assert quoted(canadapost, weight="10.000", dimensions=("80", "60", "40")) == {}  # 32 kg of volume
    assert quoted(canadapost, zip_code="90210") == {}
    assert quoted(canadapost, services=("USA.EP",)) == {}
    assert list(quoted(canadapost, services=("DOM.XP", "DOM.RP"))) == ["DOM.RP", "DOM.XP"]


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code", "text"),
    [
        (scenario(destination="K1A 0B1"), 400, "Server", "cvc-pattern-valid"),
        (scenario(destination="k1a0b1"), 400, "Server", "cvc-pattern-valid"),
        (scenario(destination="Z1A0B1"), 400, "Server", "cvc-pattern-valid"),
        (scenario(origin="D2B1A0"), 400, "Server", "origin-postal-code"),
        (scenario(destination=None), 400, "Server", "cvc-complex-type.2.4.b"),
        (scenario(weight="1.2345"), 400, "Server", "cvc-fractionDigits-valid"),
        (scenario(weight="0"), 400, "Server", "cvc-minExclusive-valid"),
        (scenario(quote_type="retail"), 400, "Server", "cvc-enumeration-valid"),
        (scenario(customer=None, contract=None), 400, "Server", "customer-number"),
        (scenario(options=(("XYZ", None),)), 400, "Server", "option-code"),
        (scenario(options=(("SO", None), ("SO", None))), 400, "Server", "more than once"),
        (scenario(customer="1234567"), 403, "AA004", "mail on behalf"),
        (b"<mailing-scenario", 400, "Server", "cvc-xml-wellformed"),
        (
            scenario().replace(RATE_NS.encode(), b"http://www.canadapost.ca/ws/ship/rate-v3"),
            400,
            "Server",
            "cvc-elt.1.a",
        ),
    ],
)
def test_an_invalid_request_gets_canada_posts_error(
    canadapost: CanadaPost,
    messages_schema: etree.XMLSchema,
    body: bytes,
    status: int,
    code: str,
    text: str,
) -> None:
    answer = ask(canadapost, body)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == RATE_MEDIA
    assert message_codes(answer) == [code]
    assert text in (parse(answer.content).findtext(f".//{{{MESSAGES_NS}}}description") or "")
    assert messages_schema.validate(parse(answer.content)), messages_schema.error_log


def test_headers_and_credentials_are_checked_as_for_every_call(canadapost: CanadaPost) -> None:
    body = scenario()
    assert ask(canadapost, body, **{"Content-Type": "application/xml"}).status_code == 415
    assert ask(canadapost, body, Accept="*/*").status_code == 406
    unauthenticated = canadapost.request(
        "POST", PRICE, data=body, headers={"Content-Type": RATE_MEDIA, "Accept": RATE_MEDIA}, auth=None
    )
    assert (unauthenticated.status_code, message_codes(unauthenticated)) == (401, ["E002"])
    assert canadapost.get(PRICE, RATE_MEDIA).status_code == 405


def test_the_built_in_rules_agree_with_rating_xsd_on_mutations(rating_schema: etree.XMLSchema) -> None:
    rich = etree.fromstring(
        scenario(
            dimensions=("30.5", "20", "10.0"),
            options=(("COV", "100.00"), ("SO", None)),
            services=("DOM.EP", "DOM.XP"),
            mailing_date="2025-10-20",
        )
    )
    promo = etree.SubElement(rich, f"{{{RATE_NS}}}promo-code")
    promo.text = "SAVE10"
    parcel = rich.find(f"{{{RATE_NS}}}parcel-characteristics")
    assert parcel is not None
    etree.SubElement(parcel, f"{{{RATE_NS}}}oversized").text = "false"
    international = etree.fromstring(scenario(destination=None))
    abroad = etree.SubElement(
        etree.SubElement(international.find(f"{{{RATE_NS}}}destination"), f"{{{RATE_NS}}}international"),
        f"{{{RATE_NS}}}country-code",
    )
    abroad.text = "FR"
    checked = 0
    disagreements = []
    for root in (rich, international, etree.fromstring(scenario(zip_code="90210-1234"))):
        assert rating_schema.validate(root), rating_schema.error_log
        for label, in_memory in mutations(copy.deepcopy(root)):
            mutant = etree.fromstring(etree.tostring(in_memory))
            official_ok = rating_schema.validate(mutant)
            try:
                cp_schema.validate(mutant, RATE_NS, "mailing-scenario")
                own: str | None = None
            except cp_schema.SchemaViolation as violation:
                own = str(violation)
            checked += 1
            if official_ok != (own is None):
                disagreements.append(f"{label}: official={rating_schema.error_log.last_error} own={own}")
    assert checked > 300
    assert disagreements == []


# --- the throttle -----------------------------------------------------------------------------


def test_get_rates_is_throttled_in_group_d(
    sandbox: Sandbox, canadapost: CanadaPost, clock: FakeClock
) -> None:
    assert CANADA_POST_ENDPOINT_GROUPS["GetRates"] == "D"
    sandbox.set_canadapost_limits(GroupLimits(limits={"D": 2}))
    body = scenario()
    assert [ask(canadapost, body).status_code for _ in range(2)] == [200, 200]
    refused = ask(canadapost, body)
    assert refused.status_code == 503
    assert message_codes(refused) == ["Server"]
    assert parse(refused.content).findtext(f".//{{{MESSAGES_NS}}}description") == "Rejected by SLM Monitor"
    # Other groups are not touched by D's block.
    assert canadapost.get(f"/rs/{CUSTOMER}/{CUSTOMER}/shipment?requestId=x").status_code == 200
    [event] = sandbox.throttle_report()["rejections"]
    assert (event["endpoint"], event["group"]) == ("GetRates", "D")
    clock.now += 60
    assert ask(canadapost, body).status_code == 200


# --- through fulfil's client ------------------------------------------------------------------


def test_fulfils_client_gets_rates_and_every_call_is_recorded(
    fulfil_env: dict[str, str], database_url: str, db: psycopg.Connection, sandbox: Sandbox
) -> None:
    settings = label_settings(fulfil_env)
    body = build_rates_request(
        parcel=parcel_characteristics(settings.parcel()),
        origin_postal_code=settings.sender().postal_code,
        destination_postal_code="K1K 4T3",
        canadapost=settings.canadapost(),
        options=["SO"],
    )
    with open_session(database_url, settings, "rates quote") as session:
        client = CanadaPostClient(settings.canadapost(), session.canadapost_http())
        outcome = client.get_rates("261250893-A", body)
    assert outcome.ok, outcome.describe()
    quotes = parse_price_quotes(outcome.body)
    assert [quote.service_code for quote in quotes] == list(SPEED_ORDER)
    assert all(quote.due > quote.base > 0 for quote in quotes)
    assert all(quote.expected_delivery_date is not None for quote in quotes)
    [
        (
            service,
            endpoint,
            related_id,
            method,
            url,
            status,
            success,
            payload,
            response,
            headers,
            budget,
            done,
        )
    ] = db.execute(
        "SELECT service, endpoint, related_id, method, url, status_code, is_success, request_payload, "
        "response_body, request_headers, rate_budget, finished_at IS NOT NULL FROM api_calls"
    ).fetchall()
    assert (service, endpoint, related_id, method) == ("CanadaPost", "GetRates", "261250893-A", "POST")
    assert url == f"{sandbox.base_url}/rs/ship/price"
    assert (status, success, budget, done) == (200, True, "canadapost:D", True)
    assert "<mailing-scenario" in payload
    assert "<option-code>SO</option-code>" in payload
    assert "<price-quotes" in response
    assert "DOM.PC" in response
    assert headers["Content-Type"] == headers["Accept"] == RATE_MEDIA
    assert CP_AUTH[1] not in str(headers)
    [logged] = [entry for entry in sandbox.request_log() if entry.get("endpoint") == "GetRates"]
    assert logged["method"] == "POST"
