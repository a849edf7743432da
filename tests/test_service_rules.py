"""Service and option rules (fulfil.service_rules): reading the file's tables, matching orders,
cheapest_meeting_deadline, and Canada Post's option conflicts refused before anything is bought."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fulfil.canadapost.destination import OrderDataError
from fulfil.config import load_settings
from fulfil.errors import ConfigError
from fulfil.service_rules import (
    CHEAPEST_MEETING_DEADLINE,
    DEFAULT_TRANSIT_DAYS,
    LabelOption,
    OrderFacts,
    ShippingRules,
    cheapest_meeting_deadline,
    deadline_date,
    order_facts,
    read_shipping_rules,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def facts(**overrides: Any) -> OrderFacts:
    values: dict[str, Any] = {
        "shipping_type": "M",
        "province": "ON",
        "postal_code": "K1A0B1",
        "order_value": Decimal("120.00"),
        "weight_kg": Decimal("1.200"),
        "shipping_deadline": NOW + timedelta(days=4),
    }
    values.update(overrides)
    return OrderFacts(**values)


def rules(**tables: Any) -> ShippingRules:
    return read_shipping_rules("fulfil.toml", tables)


# --- matching --------------------------------------------------------------------------------


def test_the_first_service_rule_that_matches_decides() -> None:
    shipping = rules(
        service_rules=[
            {"name": "west", "provinces": ["bc", "AB"], "service": "DOM.XP"},
            {"name": "heavy", "min_weight_kg": 5, "service": "DOM.RP"},
            {"name": "everything else", "service": "DOM.EP"},
        ]
    )
    assert shipping.service_rule_for(facts(province="BC", weight_kg=Decimal(9)), NOW).name == "west"
    assert shipping.service_rule_for(facts(weight_kg=Decimal(9)), NOW).name == "heavy"
    assert shipping.service_rule_for(facts(), NOW).name == "everything else"


def test_without_a_matching_rule_the_configured_service_stays() -> None:
    shipping = rules(service_rules=[{"shipping_types": ["X"], "service": "DOM.PC"}])
    assert shipping.service_rule_for(facts(), NOW) is None
    assert rules().service_rule_for(facts(), NOW) is None


@pytest.mark.parametrize(
    ("condition", "matching", "other"),
    [
        ({"shipping_types": ["M"]}, {}, {"shipping_type": "E"}),
        ({"shipping_types": ["M"]}, {}, {"shipping_type": None}),
        ({"postal_prefixes": ["k1", "H"]}, {"postal_code": "H2X1Y4"}, {"postal_code": "M5V2T6"}),
        ({"min_order_value": 100}, {}, {"order_value": Decimal("99.99")}),
        ({"min_order_value": 100}, {}, {"order_value": None}),
        ({"max_order_value": 500}, {}, {"order_value": Decimal(500)}),
        ({"min_weight_kg": 1, "max_weight_kg": 2}, {}, {"weight_kg": Decimal(2)}),
        ({"deadline_within_days": 1}, {"shipping_deadline": NOW + timedelta(hours=20)}, {}),
        ({"deadline_within_days": 1}, {"shipping_deadline": NOW}, {"shipping_deadline": None}),
    ],
)
def test_each_condition_matches_and_refuses(
    condition: dict[str, Any], matching: dict[str, Any], other: dict[str, Any]
) -> None:
    shipping = rules(service_rules=[{"name": "the rule", "service": "DOM.XP", **condition}])
    assert shipping.service_rule_for(facts(**matching), NOW) is not None
    assert shipping.service_rule_for(facts(**other), NOW) is None


def test_option_rules_add_up_once_each_and_coverage_is_the_order_value() -> None:
    shipping = rules(
        option_rules=[
            {"name": "signature over 500", "min_order_value": 500, "options": ["SO", "COV"]},
            {"name": "cover everything", "options": ["cov"]},
        ]
    )
    assert shipping.options_for("A-1", facts(order_value=Decimal("699.994")), NOW) == (
        LabelOption("SO"),
        LabelOption("COV", Decimal("699.99")),
    )
    assert shipping.options_for("A-1", facts(), NOW) == (LabelOption("COV", Decimal("120.00")),)


def test_coverage_for_an_order_without_a_value_fails_that_order() -> None:
    shipping = rules(option_rules=[{"options": ["COV"]}])
    with pytest.raises(OrderDataError, match="total_price"):
        shipping.options_for("A-1", facts(order_value=None), NOW)


def test_options_that_conflict_across_rules_are_a_configuration_error_for_the_order() -> None:
    shipping = rules(
        option_rules=[
            {"name": "signature", "min_order_value": 100, "options": ["SO"]},
            {"name": "leave it", "provinces": ["ON"], "options": ["LAD"]},
        ]
    )
    with pytest.raises(ConfigError, match=r"order A-1: .*'signature' \(SO\).*'leave it' \(LAD\)"):
        shipping.options_for("A-1", facts(), NOW)
    # Only one of them applies to an order elsewhere: no conflict.
    assert shipping.options_for("A-2", facts(province="QC"), NOW) == (LabelOption("SO"),)


# --- reading the file ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"service_rules": {"service": "DOM.RP"}}, "array of tables"),
        ({"service_rules": [{"provinces": ["ON"]}]}, "service: is required"),
        ({"service_rules": [{"service": "USA.EP"}]}, "not a domestic service code"),
        ({"service_rules": [{"service": "DOM.RP", "province": ["ON"]}]}, "unknown key 'province'"),
        ({"service_rules": [{"service": "DOM.RP", "provinces": ["ZZ"]}]}, "'ZZ' is not province codes"),
        ({"service_rules": [{"service": "DOM.RP", "provinces": []}]}, "non-empty list"),
        ({"service_rules": [{"service": "DOM.RP", "postal_prefixes": ["1A"]}]}, "postal code beginnings"),
        ({"service_rules": [{"service": "DOM.RP", "min_order_value": "lots"}]}, "not a number"),
        ({"service_rules": [{"service": "DOM.RP", "min_order_value": True}]}, "must be a number"),
        (
            {"service_rules": [{"service": "DOM.RP", "min_weight_kg": 3, "max_weight_kg": 2}]},
            "no order could",
        ),
        ({"service_rules": [{"service": "DOM.RP", "transit_days": 2}]}, "only means something"),
        ({"service_rules": [{"service": CHEAPEST_MEETING_DEADLINE, "transit_days": -1}]}, "whole number"),
        ({"service_rules": [{"service": "DOM.RP", "deadline_within_days": 1.5}]}, "whole number"),
        ({"service_rules": [{"service": "DOM.RP", "name": "two\nlines"}]}, "one line"),
        ({"service_rules": [{"service": "DOM.RP", "name": "del\x7f"}]}, "one line"),
        ({"service_rules": [{"service": "DOM.RP", "name": "bidi\u202e"}]}, "one line"),
        ({"service_rules": [{"service": "DOM.RP", "name": "x" * 81}]}, "at most 80"),
        ({"option_rules": [{"name": "x"}]}, "options: is required"),
        ({"option_rules": [{"options": ["D2PO"]}]}, "shipping_pudo_id"),
        ({"option_rules": [{"options": ["COD"]}]}, "collect-on-delivery"),
        ({"option_rules": [{"options": ["XYZ"]}]}, "not an option fulfil knows"),
        ({"option_rules": [{"options": ["SO", "so"]}]}, "names an option twice"),
        ({"option_rules": [{"options": ["PA18", "PA19"]}]}, "refuses PA18"),
        ({"option_rules": [{"options": ["LAD", "DNS"]}]}, "refuses LAD"),
    ],
)
def test_a_rule_fulfil_cannot_use_is_refused_naming_the_rule_and_key(
    tables: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=r"fulfil\.toml") as refused:
        rules(**tables)
    assert message in str(refused.value)


def test_rules_come_from_the_config_file_and_config_check_reads_them(tmp_path: Path) -> None:
    (tmp_path / "fulfil.toml").write_text(
        '[canadapost]\nservice_code = "DOM.EP"\n\n'
        '[[service_rules]]\nname = "due soon"\ndeadline_within_days = 1\n'
        f'service = "{CHEAPEST_MEETING_DEADLINE}"\ntransit_days = 2\n\n'
        '[[service_rules]]\nname = "Quebec"\nprovinces = ["QC"]\nservice = "dom.xp"\n\n'
        '[[option_rules]]\nname = "signature"\nmin_order_value = 500\noptions = ["SO"]\n',
        encoding="utf-8",
    )
    shipping = load_settings({}, cwd=tmp_path).shipping_rules()
    assert [(rule.name, rule.service, rule.transit_days) for rule in shipping.service_rules] == [
        ("due soon", CHEAPEST_MEETING_DEADLINE, 2),
        ("Quebec", "DOM.XP", DEFAULT_TRANSIT_DAYS),
    ]
    assert shipping.needs_quotes
    assert [rule.options for rule in shipping.option_rules] == [("SO",)]

    (tmp_path / "fulfil.toml").write_text('[[option_rules]]\noptions = ["SO", "LAD"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[\[option_rules\]\] 1"):
        load_settings({}, cwd=tmp_path).shipping_rules()


# --- cheapest_meeting_deadline ---------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    service_code: str
    due: Decimal
    expected_delivery_date: date | None


QUOTES = (
    Quote("DOM.RP", Decimal("14.20"), date(2026, 12, 9)),
    Quote("DOM.EP", Decimal("17.80"), date(2026, 12, 7)),
    Quote("DOM.XP", Decimal("24.10"), date(2026, 12, 3)),
    Quote("DOM.PC", Decimal("39.90"), date(2026, 12, 2)),
)


def test_a_far_deadline_gets_the_cheapest_and_a_near_one_a_faster_service() -> None:
    far = datetime(2026, 12, 8, 7, 59, tzinfo=UTC)  # the end of 7 December in Vancouver
    near = datetime(2026, 12, 2, 7, 59, tzinfo=UTC)  # the end of 1 December in Vancouver
    picked_far = cheapest_meeting_deadline(QUOTES, far, 3)
    picked_near = cheapest_meeting_deadline(QUOTES, near, 2)
    assert picked_far is not None
    assert picked_far.service_code == "DOM.RP"
    assert picked_far.warning is None
    assert picked_near is not None
    assert picked_near.service_code == "DOM.XP"
    assert picked_near.warning is None
    assert "expected by 2026-12-03" in picked_near.reason


def test_when_no_service_is_in_time_the_earliest_is_bought_with_a_warning() -> None:
    picked = cheapest_meeting_deadline(QUOTES, datetime(2026, 11, 28, 7, 59, tzinfo=UTC), 1)
    assert picked is not None
    assert picked.service_code == "DOM.PC"
    assert picked.warning is not None
    assert "no quoted service is expected by 2026-11-28" in picked.warning


def test_no_deadline_gets_the_cheapest_and_no_quote_gets_nothing() -> None:
    picked = cheapest_meeting_deadline(QUOTES, None, 3)
    assert picked is not None
    assert picked.service_code == "DOM.RP"
    assert cheapest_meeting_deadline([], NOW, 3) is None
    assert cheapest_meeting_deadline([Quote("USA.EP", Decimal(1), None)], NOW, 3) is None


def test_a_deadline_is_read_on_best_buys_pacific_day() -> None:
    assert deadline_date(datetime(2025, 9, 6, 6, 59, 59, 999000, tzinfo=UTC)) == date(2025, 9, 5)


# --- an order's facts ------------------------------------------------------------------------


def test_facts_of_an_order_with_unusable_values_are_unknown_not_guessed() -> None:
    order = {"shipping_type_code": "M\n", "total_price": "NaN", "shipping_deadline": "tomorrow"}
    read = order_facts(order, province="ON", postal_code="K1A 0B1", weight_kg=Decimal(1))
    assert (read.shipping_type, read.order_value, read.shipping_deadline) == (None, None, None)
    assert read.postal_code == "K1A0B1"
    good = order_facts(
        {"shipping_type_code": "M", "total_price": 699.99, "shipping_deadline": "2025-09-06T06:59:59.999Z"},
        province="ON",
        postal_code="K1A0B1",
        weight_kg=Decimal(1),
    )
    assert good.order_value == Decimal("699.99")
    assert good.shipping_deadline == datetime(2025, 9, 6, 6, 59, 59, 999000, tzinfo=UTC)
