"""Get Rates: the ``<mailing-scenario>`` fulfil sends is valid against the official rating.xsd, for
contract and non-contract settings, and ``parse_price_quotes`` reads the sandbox's answers and
refuses hostile ones, naming the field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from fulfil.canadapost.parcel import Dimensions, Parcel
from fulfil.canadapost.rates import PriceQuote, build_rates_request, parse_price_quotes
from fulfil.canadapost.responses import ResponseFormatError
from fulfil.canadapost.schema import RATE_MEDIA_TYPE, RATE_NAMESPACE
from fulfil.errors import ConfigError
from fulfil.sandbox import canadapost_rates
from fulfil.sandbox.wire import ApiRequest
from fulfil.xml_parsing import child_text, children, find_path, parse_untrusted
from tests.canadapost.factories import contract_settings, non_contract_settings
from tests.shared_reference import xsd_dir

pytestmark = pytest.mark.unit

PARCEL = Parcel(Decimal("1.250"), Dimensions(Decimal("30.0"), Decimal("20.0"), Decimal("10.0")))
FRIDAY = date(2025, 10, 17)


@pytest.fixture(scope="module")
def rating_schema() -> etree.XMLSchema:
    # By file path: rating.xsd pulls in common.xsd (xsd:include) relative to its own location.
    return etree.XMLSchema(etree.parse(str(xsd_dir() / "rating.xsd")))


def valid(schema: etree.XMLSchema, document: bytes) -> bool:
    ok = schema.validate(etree.fromstring(document))
    assert ok, schema.error_log
    return ok


def request(**overrides: object) -> bytes:
    arguments: dict[str, object] = {
        "parcel": PARCEL,
        "origin_postal_code": "H2B 1A0",
        "destination_postal_code": "k1a0b1",
        "canadapost": contract_settings(),
    }
    arguments.update(overrides)
    return build_rates_request(**arguments)  # type: ignore[arg-type]


def sandbox_answer(body: bytes, *, today: date = FRIDAY, language: str = "en-CA") -> bytes:
    """What the sandbox answers this Get Rates body (its handler, called without a socket)."""
    call = ApiRequest(
        method="POST",
        path="/rs/ship/price",
        query={},
        headers={"accept": RATE_MEDIA_TYPE, "content-type": RATE_MEDIA_TYPE, "accept-language": language},
        body=body,
        base_url="https://ct.soa-gw.canadapost.ca",
        received_at=0.0,
    )
    answer = canadapost_rates.get_rates(call, None, "2004381", today)
    assert answer.status == 200, answer.body
    return answer.body


# --- the request ----------------------------------------------------------------------------


def test_a_contract_request_names_the_contract_and_is_valid(rating_schema: etree.XMLSchema) -> None:
    body = request(options=["SO", "COV"])
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert valid(rating_schema, body)
    root = parse_untrusted(body)
    assert etree.QName(root).namespace == RATE_NAMESPACE
    assert etree.QName(root).localname == "mailing-scenario"
    assert child_text(root, "customer-number") == "2004381"
    assert child_text(root, "contract-id") == "0042708517"
    assert child_text(root, "quote-type") == "commercial"
    assert child_text(root, "origin-postal-code") == "H2B1A0"
    assert child_text(find_path(root, "destination", "domestic"), "postal-code") == "K1A0B1"
    parcel = find_path(root, "parcel-characteristics")
    assert parcel is not None
    assert child_text(parcel, "weight") == "1.250"
    dimensions = find_path(parcel, "dimensions")
    assert dimensions is not None
    assert [child_text(dimensions, side) for side in ("length", "width", "height")] == [
        "30.0",
        "20.0",
        "10.0",
    ]
    options = find_path(root, "options")
    assert options is not None
    assert [child_text(option, "option-code") for option in children(options, "option")] == ["SO", "COV"]


def test_a_non_contract_request_asks_for_the_commercial_price_without_a_contract(
    rating_schema: etree.XMLSchema,
) -> None:
    body = request(canadapost=non_contract_settings(), parcel=Parcel(Decimal("0.800"), None))
    assert valid(rating_schema, body)
    root = parse_untrusted(body)
    assert child_text(root, "customer-number") == "2004381"
    assert find_path(root, "contract-id") is None
    # Canada Post's commercial quote: the account's own (Solutions for Small Business) rates, not
    # the counter price a walk-in customer pays.
    assert child_text(root, "quote-type") == "commercial"
    assert find_path(root, "parcel-characteristics", "dimensions") is None
    assert find_path(root, "options") is None


def test_measures_are_written_at_the_schemas_precision(rating_schema: etree.XMLSchema) -> None:
    parcel = Parcel(Decimal("2"), Dimensions(Decimal("1E+1"), Decimal("25.50"), Decimal("5")))
    body = request(parcel=parcel)
    assert valid(rating_schema, body)
    characteristics = find_path(parse_untrusted(body), "parcel-characteristics")
    assert characteristics is not None
    assert child_text(characteristics, "weight") == "2.000"
    dimensions = find_path(characteristics, "dimensions")
    assert dimensions is not None
    assert [child_text(dimensions, side) for side in ("length", "width", "height")] == ["10.0", "25.5", "5.0"]


def test_an_options_amount_is_quoted_so_the_option_is_priced_as_it_will_be_bought(
    rating_schema: etree.XMLSchema,
) -> None:
    small = request(options=["SO", "COV"], option_amounts={"COV": Decimal("100")})
    large = request(options=["SO", "COV"], option_amounts={"COV": Decimal("699.994")})
    assert valid(rating_schema, large)
    options = find_path(parse_untrusted(large), "options")
    assert options is not None
    assert [(child_text(o, "option-code"), child_text(o, "option-amount")) for o in options] == [
        ("SO", None),
        ("COV", "699.99"),
    ]
    cheap, dear = (parse_price_quotes(sandbox_answer(body)) for body in (small, large))
    assert all(a.due < b.due for a, b in zip(cheap, dear, strict=True) if a.service_code != "DOM.RP")
    with pytest.raises(ValueError, match="amount"):
        request(options=["COV"], option_amounts={"COV": Decimal(0)})


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"origin_postal_code": "12345"}, ValueError, "origin postal code"),
        ({"destination_postal_code": "D1A 0B1"}, ValueError, "destination postal code"),
        ({"options": ["so"]}, ValueError, "option code 'so'"),
        ({"options": ["SO", "SO"]}, ValueError, "more than once"),
        ({"options": [f"X{i}" for i in range(21)]}, ValueError, "at most 20"),
        ({"options": "SO"}, TypeError, "not one string"),
        ({"parcel": Parcel(Decimal("30.001"), None)}, ValueError, "weight"),
        ({"parcel": Parcel(Decimal("1.2345"), None)}, ValueError, "weight"),
        (
            {"parcel": Parcel(Decimal(1), Dimensions(Decimal("10.25"), Decimal(1), Decimal(1)))},
            ValueError,
            "length",
        ),
        ({"canadapost": contract_settings(customer_number="20-04381")}, ConfigError, "CUSTOMER_NUMBER"),
        ({"canadapost": contract_settings(contract_id="C42")}, ConfigError, "CONTRACT_ID"),
    ],
)
def test_what_canada_post_would_refuse_is_refused_before_sending(
    overrides: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        request(**overrides)


# --- the sandbox's answers ------------------------------------------------------------------


def test_the_sandboxs_answer_is_valid_and_parses(rating_schema: etree.XMLSchema) -> None:
    answer = sandbox_answer(request(options=["SO"]))
    assert valid(rating_schema, answer)
    quotes = parse_price_quotes(answer)
    assert [quote.service_code for quote in quotes] == ["DOM.RP", "DOM.EP", "DOM.XP", "DOM.PC"]
    expedited = next(quote for quote in quotes if quote.service_code == "DOM.EP")
    assert expedited.service_name == "Expedited Parcel"
    # Montréal to Ottawa: Ontario's HST, no GST or PST.
    assert (expedited.gst, expedited.pst) == (Decimal(0), Decimal(0))
    assert expedited.hst > 0
    assert expedited.due > expedited.base
    assert expedited.guaranteed is False
    assert expedited.expected_transit_days == 3
    # Mailed on a Friday: three business days later is the Wednesday.
    assert expedited.expected_delivery_date == date(2025, 10, 22)
    assert all(isinstance(quote, PriceQuote) for quote in quotes)


def test_french_service_names_come_through_accented() -> None:
    quotes = parse_price_quotes(sandbox_answer(request(), language="fr-CA"))
    assert [quote.service_name for quote in quotes][:2] == ["Colis standard", "Colis accélérés"]


def test_an_answer_without_services_is_an_empty_list(rating_schema: etree.XMLSchema) -> None:
    answer = sandbox_answer(request(parcel=Parcel(Decimal("29.000"), Dimensions(*[Decimal(100)] * 3))))
    assert valid(rating_schema, answer)
    assert parse_price_quotes(answer) == []
    empty = f'<price-quotes xmlns="{RATE_NAMESPACE}"/>'.encode()
    assert parse_price_quotes(empty) == []


# --- hostile answers ------------------------------------------------------------------------


def mutated(change: Callable[[etree._Element], None]) -> bytes:
    """The sandbox's answer with one change made to its first quote."""
    root = etree.fromstring(sandbox_answer(request()))
    change(root.find(f"{{{RATE_NAMESPACE}}}price-quote"))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def set_text(*path: str, value: str) -> Callable[[etree._Element], None]:
    def change(quote: etree._Element) -> None:
        target = quote.find("/".join(f"{{{RATE_NAMESPACE}}}{name}" for name in path))
        assert target is not None, path
        target.text = value

    return change


def remove(*path: str) -> Callable[[etree._Element], None]:
    def change(quote: etree._Element) -> None:
        target = quote.find("/".join(f"{{{RATE_NAMESPACE}}}{name}" for name in path))
        assert target is not None, path
        target.getparent().remove(target)

    return change


def duplicate_quote(quote: etree._Element) -> None:
    quote.addnext(etree.fromstring(etree.tostring(quote)))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (set_text("service-code", value="dom.rp"), "<service-code>"),
        (set_text("service-code", value="../../shipment"), "<service-code>"),
        (set_text("service-code", value="DOM." + "X" * 29), "<service-code>"),
        (remove("service-code"), "<service-code>"),
        (set_text("service-name", value="Regular\u202eParcel"), "<service-name>"),
        (set_text("price-details", "base", value="12.345"), "<base>"),
        (set_text("price-details", "base", value="-1.00"), "<base>"),
        (set_text("price-details", "base", value="1e3"), "<base>"),
        (set_text("price-details", "base", value="100000.00"), "<base>"),
        (set_text("price-details", "due", value="12.999"), "<due>"),
        (remove("price-details", "due"), "<due>"),
        (remove("price-details"), "<price-details>"),
        (set_text("price-details", "taxes", "hst", value="NaN"), "<hst>"),
        (
            set_text("service-standard", "expected-delivery-date", value="2025-02-30"),
            "<expected-delivery-date>",
        ),
        (
            set_text("service-standard", "expected-delivery-date", value="next week"),
            "<expected-delivery-date>",
        ),
        (set_text("service-standard", "expected-transit-time", value="-1"), "<expected-transit-time>"),
        (set_text("service-standard", "guaranteed-delivery", value="yes"), "<guaranteed-delivery>"),
        (duplicate_quote, "DOM.RP"),
    ],
)
def test_a_hostile_value_is_refused_naming_the_field(
    change: Callable[[etree._Element], None], field: str
) -> None:
    body = mutated(change)
    with pytest.raises(ResponseFormatError, match=field.replace(".", r"\.")):
        parse_price_quotes(body)


def test_a_quote_with_a_value_twice_is_refused() -> None:
    def twice(quote: etree._Element) -> None:
        details = quote.find(f"{{{RATE_NAMESPACE}}}price-details")
        assert details is not None
        due = details.find(f"{{{RATE_NAMESPACE}}}due")
        assert due is not None
        due.addnext(etree.fromstring(etree.tostring(due)))

    with pytest.raises(ResponseFormatError, match="<due> appears 2 times"):
        parse_price_quotes(mutated(twice))


def test_entity_declarations_are_refused_unexpanded() -> None:
    hostile = (
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE price-quotes [<!ENTITY a "1111111111"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY file SYSTEM "file:///etc/passwd">]>\n'
        f'<price-quotes xmlns="{RATE_NAMESPACE}"><price-quote><service-code>DOM.RP</service-code>'
        "<service-name>&file;</service-name><price-details><base>&b;</base><due>1.00</due>"
        "</price-details></price-quote></price-quotes>"
    ).encode()
    with pytest.raises(ResponseFormatError, match="DOCTYPE"):
        parse_price_quotes(hostile)


def test_an_error_answer_or_another_document_is_not_a_quote() -> None:
    messages = (
        b'<messages xmlns="http://www.canadapost.ca/ws/messages"><message><code>AA004</code>'
        b"<description>You cannot mail on behalf of the requested customer.</description>"
        b"</message></messages>"
    )
    with pytest.raises(ResponseFormatError, match="AA004"):
        parse_price_quotes(messages)
    with pytest.raises(ResponseFormatError, match="expected <price-quotes>"):
        parse_price_quotes(b'<shipment-info xmlns="http://www.canadapost.ca/ws/shipment-v8"/>')
    with pytest.raises(ResponseFormatError, match="not usable XML"):
        parse_price_quotes(b"<html><body>502 Bad Gateway")
