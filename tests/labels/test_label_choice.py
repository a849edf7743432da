"""What each label is bought as (issue 14): the parcel from the SKUs' profiles, the service from
the first matching rule (a rate quote where the rule asks for one), the options, all stored on the
shipment before the request is sent; the real CLI, a real PostgreSQL, the sandbox over sockets."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from lxml import etree

from fulfil.sandbox.orders import generate_orders
from fulfil.xml_parsing import child_text, find_path, parse_untrusted
from tests.conftest import run_fulfil
from tests.labels.helpers import api_calls, bought_per_order, insert_orders, json_lines, kill_when, shipments
from tests.shared_reference import xsd_dir

FAR = {"state": "BC", "zip_code": "V6B1A1", "city": "Vancouver"}  # the sender is in H (Montréal)


def order(order_id: str, *, lines: list[tuple[str, int]] | None = None, **fields: Any) -> dict[str, Any]:
    """A sandbox order made to measure: its id, lines (SKU, quantity), address and other fields."""
    made = copy.deepcopy(generate_orders(1, seed=11)[0])
    made["order_id"] = order_id
    for line in made["order_lines"]:
        line["order_id"] = order_id
    if lines is not None:
        template = made["order_lines"][0]
        made["order_lines"] = [
            {
                **copy.deepcopy(template),
                "offer_sku": sku,
                "quantity": quantity,
                "order_line_id": f"{order_id}-{i}",
            }
            for i, (sku, quantity) in enumerate(lines, start=1)
        ]
    made["customer"]["shipping_address"].update(fields.pop("address", {}))
    made.update(fields)
    return made


def write_config(tmp_path: Path, env: dict[str, str], text: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    env["FULFIL_CONFIG"] = str(path)


def import_profiles(env: dict[str, str], tmp_path: Path, rows: str) -> None:
    csv = tmp_path / "profiles.csv"
    csv.write_text("sku,weight_kg,length_cm,width_cm,height_cm,box,ships_alone\n" + rows, encoding="utf-8")
    result = run_fulfil("parcels", "import", str(csv), env=env)
    assert result.returncode == 0, result.stderr


def sent_request(db: psycopg.Connection, order_id: str) -> etree._Element:
    calls = [call for call in api_calls(db, "CreateShipment") if call["related_id"] == order_id]
    assert len(calls) == 1, calls
    return parse_untrusted(calls[0]["request_payload"].encode())


def test_a_profiled_order_is_bought_for_its_parcel_and_the_choice_is_kept(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    import_profiles(fulfil_env, tmp_path, "LAPTOP-1,2.35,40,30,8,laptop box,no\nMOUSE-1,0.15,12,8,5,,no\n")
    insert_orders(
        db,
        [
            order("P-1", lines=[("LAPTOP-1", 1), ("MOUSE-1", 2)]),
            order("P-2", lines=[("UNKNOWN-SKU", 1)]),
        ],
    )

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    assert {r["outcome"] for r in records.values()} == {"bought"}
    spec = find_path(sent_request(db, "P-1"), "delivery-spec")
    assert spec is not None
    assert child_text(find_path(spec, "parcel-characteristics"), "weight") == "2.650"
    assert child_text(find_path(spec, "parcel-characteristics", "dimensions"), "length") == "40.0"
    assert child_text(spec, "service-code") == "DOM.EP"
    rows = shipments(db)
    kept = rows["P-1"]["label_choice"]
    assert kept["parcel"]["source"] == "profile"
    assert kept["parcel"]["weight_kg"] == "2.650"
    assert kept["parcel"]["box"] == "laptop box"
    assert rows["P-1"]["service_code"] == "DOM.EP"
    assert rows["P-1"]["service_rule"] is None
    assert records["P-1"]["warnings"] == []
    # No profile: the default parcel, and the result says which SKU had none.
    assert rows["P-2"]["label_choice"]["parcel"]["source"] == "default"
    assert child_text(
        find_path(sent_request(db, "P-2"), "delivery-spec", "parcel-characteristics"), "weight"
    ) == ("1.200")
    assert any("UNKNOWN-SKU" in warning for warning in records["P-2"]["warnings"])

    shown = run_fulfil("orders", "show", "P-1", env=fulfil_env)
    assert shown.returncode == 0, shown.stderr
    assert "2.650 kg" in shown.stdout
    assert "DOM.EP" in shown.stdout


def test_service_and_option_rules_decide_and_every_request_is_schema_valid(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    write_config(
        tmp_path,
        fulfil_env,
        '[[service_rules]]\nname = "west coast"\nprovinces = ["BC"]\nservice = "DOM.XP"\n\n'
        '[[service_rules]]\nname = "heavy"\nmin_weight_kg = 5\nservice = "DOM.RP"\n\n'
        '[[option_rules]]\nname = "valuable"\nmin_order_value = 500\noptions = ["SO", "COV"]\n',
    )
    import_profiles(fulfil_env, tmp_path, "HEAVY-1,7.5,,,,,no\n")
    insert_orders(
        db,
        [
            order("R-1", address=FAR, total_price=120.0),
            order("R-2", lines=[("HEAVY-1", 1)], total_price=80.0),
            order("R-3", total_price=699.99),
        ],
    )

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    rows = shipments(db)
    assert (rows["R-1"]["service_code"], rows["R-1"]["service_rule"]) == ("DOM.XP", "west coast")
    assert (rows["R-2"]["service_code"], rows["R-2"]["service_rule"]) == ("DOM.RP", "heavy")
    assert (rows["R-3"]["service_code"], rows["R-3"]["service_rule"]) == ("DOM.EP", None)
    xsd = etree.XMLSchema(etree.parse(str(xsd_dir() / "shipment.xsd")))
    for order_id in ("R-1", "R-2", "R-3"):
        request = sent_request(db, order_id)
        xsd.assertValid(request)
        assert (
            child_text(find_path(request, "delivery-spec"), "service-code") == rows[order_id]["service_code"]
        )
    options = find_path(sent_request(db, "R-3"), "delivery-spec", "options")
    assert options is not None
    assert [(child_text(o, "option-code"), child_text(o, "option-amount")) for o in options] == [
        ("SO", None),
        ("COV", "699.99"),
    ]
    assert rows["R-3"]["label_choice"]["options"] == [
        {"code": "SO", "amount": None},
        {"code": "COV", "amount": "699.99"},
    ]
    assert find_path(sent_request(db, "R-1"), "delivery-spec", "options") is None


def test_cheapest_meeting_deadline_chooses_differently_for_a_near_and_a_far_deadline(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    write_config(
        tmp_path,
        fulfil_env,
        '[[service_rules]]\nname = "in time"\nservice = "cheapest_meeting_deadline"\ntransit_days = 1\n',
    )
    now = datetime.now(UTC)
    insert_orders(
        db,
        [
            order("D-NEAR", address=FAR, shipping_deadline=(now + timedelta(days=4)).isoformat()),
            order("D-FAR", address=FAR, shipping_deadline=(now + timedelta(days=30)).isoformat()),
        ],
    )

    dry = run_fulfil("labels", "create", "--dry-run", "--json", env=fulfil_env)
    assert dry.returncode == 0, dry.stderr
    planned = {r["order_id"]: r["choice"] for r in json_lines(dry.stdout)}
    assert bought_per_order(sandbox) == {}
    assert len(api_calls(db, "GetRates")) == 2  # the dry run asked, and bought nothing

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    rows = shipments(db)
    near, far = rows["D-NEAR"]["label_choice"], rows["D-FAR"]["label_choice"]
    by_price = sorted(far["quotes"], key=lambda q: Decimal(q["due"]))
    assert far["service_code"] == by_price[0]["service_code"] == "DOM.RP"
    assert near["service_code"] != "DOM.RP"
    # The near order's service is the cheapest of those expected in time.
    # Four days, plus one of transit: Priority (two business days) always arrives in time and
    # Regular Parcel (seven, far away) never does, whatever the weekday.
    arrive_by = (now + timedelta(days=4)).astimezone(ZoneInfo("America/Vancouver")).date() + timedelta(days=1)
    in_time = [q for q in near["quotes"] if q["expected_delivery_date"] <= arrive_by.isoformat()]
    assert in_time
    assert near["service_code"] == min(in_time, key=lambda q: Decimal(q["due"]))["service_code"]
    assert not [w for w in near["warnings"] if "expected" in w]  # in time: no "earliest" warning
    assert rows["D-NEAR"]["service_rule"] == "in time"
    assert planned["D-NEAR"]["service_code"] == near["service_code"]
    assert planned["D-FAR"]["service_code"] == far["service_code"]
    quotes = api_calls(db, "GetRates")
    assert len(quotes) == 4
    assert all(call["is_success"] and call["related_id"] in ("D-NEAR", "D-FAR") for call in quotes)
    assert {call["rate_budget"] for call in quotes} == {"canadapost:D"}


def test_conflicting_options_across_rules_stop_the_run_before_anything_is_bought(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    write_config(
        tmp_path,
        fulfil_env,
        '[[option_rules]]\nname = "signature"\noptions = ["SO"]\n\n'
        '[[option_rules]]\nname = "leave it"\nprovinces = ["BC"]\noptions = ["LAD"]\n',
    )
    insert_orders(db, [order("C-1", address=FAR)])

    result = run_fulfil("labels", "create", env=fulfil_env)

    assert result.returncode == 2, result.stderr
    assert "order C-1" in result.stderr
    assert "'signature' (SO)" in result.stderr
    assert "'leave it' (LAD)" in result.stderr
    assert api_calls(db, "CreateShipment") == []
    assert shipments(db)["C-1"]["status"] == "label_pending"


def test_a_conflict_within_one_rule_is_refused_when_the_file_is_read(
    fulfil_env: dict[str, str], db: psycopg.Connection, tmp_path: Path
) -> None:
    write_config(tmp_path, fulfil_env, '[[option_rules]]\noptions = ["PA18", "PA19"]\n')
    insert_orders(db, [order("C-2")])
    check = run_fulfil("config", "check", env=fulfil_env)
    assert check.returncode == 2
    assert "PA18" in check.stdout + check.stderr
    result = run_fulfil("labels", "create", env=fulfil_env)
    assert result.returncode == 2
    assert "[[option_rules]] 1" in result.stderr
    assert api_calls(db, "CreateShipment") == []


def test_an_order_that_would_need_more_parcels_than_fulfil_buys_is_refused_and_nothing_is_bought(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    # 21 televisions, each shipping alone: 21 labels for one order is a profile mistake far more
    # often than a shipment (tests/labels/test_split_orders.py buys the orders that do split).
    import_profiles(fulfil_env, tmp_path, "TV-55,18.2,140,85,16,tv box,yes\nMUG-1,0.45,12,12,10,small,no\n")
    insert_orders(db, [order("S-1", lines=[("TV-55", 21)]), order("S-2", lines=[("MUG-1", 1)])])

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 3
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    assert records["S-1"]["outcome"] == "failed"
    assert "order S-1: order_lines: needs 21 parcels" in records["S-1"]["error"]
    assert "at most 20 labels" in records["S-1"]["error"]
    assert records["S-2"]["outcome"] == "bought"
    assert bought_per_order(sandbox) == {"S-2": 1}


def test_a_quote_with_no_service_fails_that_order_and_the_others_are_bought(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    write_config(tmp_path, fulfil_env, '[[service_rules]]\nservice = "cheapest_meeting_deadline"\n')
    # A metre cube bills as 166 kg: Canada Post quotes no service for it.
    import_profiles(fulfil_env, tmp_path, "BIG-BOX,2,100,100,100,,no\n")
    insert_orders(db, [order("Q-1", lines=[("BIG-BOX", 1)]), order("Q-2")])

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 3
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    assert records["Q-1"]["outcome"] == "failed"
    assert "order Q-1: rate quote: Canada Post quoted no domestic service" in records["Q-1"]["error"]
    assert records["Q-2"]["outcome"] == "bought"
    assert bought_per_order(sandbox) == {"Q-2": 1}
    assert shipments(db)["Q-1"]["status"] == "label_failed"
    assert len(api_calls(db, "GetRates")) == 2


def test_a_quote_that_cannot_be_sent_buys_nothing_and_the_order_waits(
    fulfil_env: dict[str, str], db: psycopg.Connection, tmp_path: Path
) -> None:
    write_config(tmp_path, fulfil_env, '[[service_rules]]\nservice = "cheapest_meeting_deadline"\n')
    fulfil_env["FULFIL_CANADAPOST_BASE_URL"] = "http://127.0.0.1:9"  # nothing listens: not sent
    insert_orders(db, [order("U-1")])

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 3, result.stderr
    assert "nothing was bought" in result.stderr
    assert api_calls(db, "CreateShipment") == []
    assert shipments(db)["U-1"]["status"] == "label_pending"


def test_labels_quote_lists_every_service_for_every_parcel_and_marks_what_the_rules_buy(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    write_config(
        tmp_path, fulfil_env, '[[service_rules]]\nname = "cheap"\nservice = "cheapest_meeting_deadline"\n'
    )
    import_profiles(fulfil_env, tmp_path, "TV-50,14.2,120,75,14,tv box,yes\nMUG-1,0.45,12,12,10,small,no\n")
    insert_orders(
        db,
        [
            order("Q-ONE", address=FAR, lines=[("MUG-1", 2)], shipping_deadline=None),
            order("Q-TWO", lines=[("TV-50", 1), ("MUG-1", 1)]),
        ],
    )

    result = run_fulfil("labels", "quote", "--order", "Q-ONE", "--order", "Q-TWO", "--json", env=fulfil_env)
    unknown = run_fulfil("labels", "quote", "--order", "NOPE-1", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    rows = json_lines(result.stdout)
    one = [r for r in rows if r["order_id"] == "Q-ONE"]
    assert {r["service_code"] for r in one} == {"DOM.RP", "DOM.EP", "DOM.XP", "DOM.PC"}
    assert [Decimal(r["due"]) for r in one] == sorted(Decimal(r["due"]) for r in one)
    # Price, taxes and the total: the fuel surcharge is the rest.
    assert all(Decimal(r["due"]) > Decimal(r["base"]) + Decimal(r["taxes"]) > Decimal(r["base"]) for r in one)
    assert {(r["parcel"], r["parcels"], r["weight_kg"]) for r in one} == {(1, 1, "0.900")}
    [chosen] = [r for r in one if r["chosen"]]
    assert (chosen["service_code"], chosen["rule"]) == (
        one[0]["service_code"],
        "cheap",
    )  # no deadline: cheapest
    two = [r for r in rows if r["order_id"] == "Q-TWO"]
    assert {(r["parcel"], r["weight_kg"]) for r in two} == {(1, "0.450"), (2, "14.200")}
    # Each parcel is bought on its own: each has the service its own purchase would choose.
    assert sorted(r["parcel"] for r in two if r["chosen"]) == [1, 2]
    assert all(r["outcome"] == "quoted" for r in rows)
    calls = api_calls(db, "GetRates")
    assert [call["related_id"] for call in calls] == ["Q-ONE", "Q-TWO", "Q-TWO"]
    assert api_calls(db, "CreateShipment") == []
    assert shipments(db) == {}
    assert unknown.returncode == 3
    assert "order NOPE-1 is not in the orders table" in unknown.stderr


@pytest.mark.parametrize("contract", [True, False], ids=["contract", "non-contract"])
def test_a_label_costs_what_its_quote_said(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path, contract: bool
) -> None:
    if not contract:
        fulfil_env.pop("FULFIL_CANADAPOST_CONTRACT_ID")
    write_config(
        tmp_path,
        fulfil_env,
        '[[service_rules]]\nservice = "cheapest_meeting_deadline"\n\n'
        '[[option_rules]]\nmin_order_value = 500\noptions = ["SO", "COV"]\n',
    )
    insert_orders(db, [order("B-1", address=FAR, total_price=699.99), order("B-2", total_price=25.0)])

    quoted = run_fulfil("labels", "quote", "--order", "B-1", "--order", "B-2", "--json", env=fulfil_env)
    bought = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert quoted.returncode == 0, quoted.stderr
    assert bought.returncode == 0, bought.stderr
    chosen = {r["order_id"]: r for r in json_lines(quoted.stdout) if r["chosen"]}
    costs = {
        order_id: (service_code, str(due), options)
        for order_id, service_code, due, options in db.execute(
            "SELECT order_id, service_code, due_amount, options FROM label_costs"
        )
    }
    assert set(costs) == {"B-1", "B-2"}
    for order_id in ("B-1", "B-2"):
        service_code, due, _ = costs[order_id]
        assert (service_code, due) == (chosen[order_id]["service_code"], chosen[order_id]["due"])
    assert [option["code"] for option in costs["B-1"][2]] == ["SO", "COV"]  # priced, on the bill too
    assert costs["B-2"][2] == []


def test_a_purchase_whose_rule_needs_a_quote_holds_its_claim_for_the_quote_too(tmp_path: Path) -> None:
    """The claim is held from before the quote to the end of Create Shipment's last attempt: its
    lease covers both calls with all their retries, or another run could take a purchase over
    while it is still on its way out."""
    from fulfil.audit.retry import lease_seconds
    from fulfil.canadapost.client import RETRY_NOT_SENT, RETRY_READS
    from fulfil.config import load_settings
    from fulfil.services import label_workflow, service_budgets
    from tests.conftest import SENDER_ENV

    env = {**SENDER_ENV, "FULFIL_CANADAPOST_USERNAME": "u", "FULFIL_CANADAPOST_PASSWORD": "p"}
    env["FULFIL_CANADAPOST_CUSTOMER_NUMBER"] = "2004381"
    plain = load_settings(env, cwd=tmp_path)
    (tmp_path / "fulfil.toml").write_text('[[service_rules]]\nservice = "cheapest_meeting_deadline"\n')
    quoting = load_settings(env, cwd=tmp_path)
    deadline = plain.http().deadline
    wait = service_budgets(plain, "CanadaPost").max_wait
    purchase = lease_seconds(deadline, RETRY_NOT_SENT, admission_wait=wait)
    quote = lease_seconds(deadline, RETRY_READS, admission_wait=wait)
    assert label_workflow("postgresql:///unused", plain, None).settings.lease_seconds == purchase
    assert label_workflow("postgresql:///unused", quoting, None).settings.lease_seconds == purchase + quote


@pytest.mark.parametrize(
    ("columns", "values"),
    [
        ("service_code", ("USA.EP",)),
        ("service_code", ("dom.ep",)),
        ("service_rule, service_code", ("a\tb", "DOM.EP")),
        ("service_rule, service_code", ("x" * 81, "DOM.EP")),
        ("service_rule", ("a rule without its service",)),
        ("label_choice, service_code", ('"a scalar"', "DOM.EP")),
        ("label_choice, service_code", ('{"service_code": "DOM.EP"}', "DOM.EP")),
        ("label_choice, service_code", ('{"parcel": {}, "service_code": "DOM.XP"}', "DOM.EP")),
    ],
)
def test_the_database_refuses_a_label_choice_that_cannot_be_one(
    db: psycopg.Connection, columns: str, values: tuple[str, ...]
) -> None:
    insert_orders(db, [order("K-1")])
    db.execute(
        "INSERT INTO shipments (order_id, status, cp_request_id) VALUES ('K-1', 'label_pending', 'F1')"
    )
    names = [name.strip() for name in columns.split(",")]
    assignments = ", ".join(
        f"{name} = %s::jsonb" if name == "label_choice" else f"{name} = %s" for name in names
    )
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(f"UPDATE shipments SET {assignments} WHERE order_id = 'K-1'", values)
    good = '{"parcel": {}, "service_code": "DOM.EP"}'
    db.execute(
        "UPDATE shipments SET service_code = 'DOM.EP', service_rule = 'r', label_choice = %s::jsonb "
        "WHERE order_id = 'K-1'",
        (good,),
    )


@pytest.mark.parametrize("fault", ["garbage", "html_200", "http_503", "rate_limit"])
def test_a_quote_answer_that_is_not_one_buys_nothing_and_the_order_waits(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path, fault: str
) -> None:
    write_config(tmp_path, fulfil_env, '[[service_rules]]\nservice = "cheapest_meeting_deadline"\n')
    # A two-second window: a throttled group D pauses two seconds, not Canada Post's minute.
    fulfil_env["FULFIL_CANADAPOST_RATE_D"] = "100000/2"
    insert_orders(db, [order("G-1"), order("G-2")])
    # Every attempt of the read (it is retried: a quote changes nothing) gets the same.
    sandbox.script_faults("canadapost", "GetRates", [fault] * 3)

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 3, result.stderr
    assert "nothing was bought" in result.stderr
    assert "order G-1: rate quote:" in result.stderr
    assert api_calls(db, "CreateShipment") == []
    rows = shipments(db)
    assert rows["G-1"]["status"] == "label_pending"
    assert rows["G-1"]["lease_owner"] is None
    assert bought_per_order(sandbox) == {}

    sandbox.clear_script("canadapost", "GetRates")
    again = run_fulfil("labels", "create", "--json", env=fulfil_env)
    assert again.returncode == 0, again.stderr
    assert bought_per_order(sandbox) == {"G-1": 1, "G-2": 1}


def test_a_run_killed_while_it_waits_for_a_quote_leaves_the_order_to_the_next_which_buys_it_once(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    from fulfil.sandbox import Faults

    write_config(tmp_path, fulfil_env, '[[service_rules]]\nservice = "cheapest_meeting_deadline"\n')
    insert_orders(db, [order("KQ-1")])
    sandbox.set_faults("canadapost", Faults(late_answer_s=20.0))
    sandbox.script_faults("canadapost", "GetRates", ["commit_then_late"] * 3)
    kill_when(["labels", "create"], fulfil_env, lambda: bool(api_calls(db, "GetRates")), "asking for a quote")
    sandbox.set_faults("canadapost", Faults())
    sandbox.clear_script("canadapost", "GetRates")
    killed = shipments(db)["KQ-1"]
    assert killed["status"] == "label_creation_initiated"  # its claim, committed before the quote
    assert api_calls(db, "CreateShipment") == []

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    assert bought_per_order(sandbox) == {"KQ-1": 1}
    assert len(api_calls(db, "CreateShipment")) == 1
    assert shipments(db)["KQ-1"]["label_choice"]["quotes"]  # decided afresh, from a new quote


def test_a_quote_run_counts_orders_not_services() -> None:
    from fulfil.workflows.labels.quote import FAILED, QUOTED, QuoteRow, QuoteRun

    run = QuoteRun([QuoteRow("A", QUOTED), QuoteRow("A", QUOTED), QuoteRow("B", FAILED, error="x")])
    assert run.summary() == "1 of 2 orders quoted; 1 not (named above)"
    assert QuoteRun([QuoteRow("A", QUOTED)] * 4).summary() == "1 of 1 order quoted"


def test_the_dry_run_says_per_order_which_parcel_rule_and_service_it_would_buy(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, tmp_path: Path
) -> None:
    write_config(
        tmp_path,
        fulfil_env,
        '[[service_rules]]\nname = "heavy"\nmin_weight_kg = 5\nservice = "DOM.RP"\n\n'
        '[[option_rules]]\nname = "valuable"\nmin_order_value = 500\noptions = ["SO"]\n',
    )
    import_profiles(fulfil_env, tmp_path, "HEAVY-1,7.5,60,40,30,big box,no\n")
    insert_orders(db, [order("Y-1", lines=[("HEAVY-1", 1)], total_price=650.0), order("Y-2")])

    result = run_fulfil("labels", "create", "--dry-run", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    y1 = lines.index("# order Y-1: would_buy")
    assert (
        lines[y1 + 1]
        == "# parcel: 7.500 kg 60.0 × 40.0 × 30.0 cm, box big box (the parcel profile of SKU HEAVY-1)"
    )
    assert lines[y1 + 2] == "# service: DOM.RP (rule 'heavy')"
    assert lines[y1 + 3] == "# options: SO"
    y2 = lines.index("# order Y-2: would_buy")
    assert lines[y2 + 2] == "# service: DOM.EP (the configured service; no service rule matched)"
    assert lines[y2 + 3].startswith("# warning: order Y-2: no parcel profile for SKU ")
    assert bought_per_order(sandbox) == {}
    assert api_calls(db) == []  # no rule asked for a quote: no HTTP at all
    assert shipments(db) == {}


def test_labels_quote_names_the_order_and_field_it_cannot_quote_and_quotes_the_others(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    insert_orders(
        db,
        [
            order("QB-1", address={"zip_code": "N8X3P"}),
            order("QB-2", lines=[("MUG-1", 0)]),
            order("QB-3"),
        ],
    )

    result = run_fulfil(
        "labels", "quote", "--order", "QB-1", "--order", "QB-2", "--order", "QB-3", "--json", env=fulfil_env
    )

    assert result.returncode == 3
    rows = json_lines(result.stdout)
    failed = {r["order_id"]: r["error"] for r in rows if r["outcome"] == "failed"}
    assert "order QB-1: customer.shipping_address.zip_code" in failed["QB-1"]
    assert "order QB-2: order_lines[0].quantity" in failed["QB-2"]
    assert {r["outcome"] for r in rows if r["order_id"] == "QB-3"} == {"quoted"}
    assert [call["related_id"] for call in api_calls(db, "GetRates")] == ["QB-3"]
    # Under cron (a pipe, no --json): each problem one line on stderr.
    piped = run_fulfil("labels", "quote", "--order", "QB-1", "--order", "QB-3", env=fulfil_env)
    assert piped.returncode == 3
    # Under cron: one `fulfil: error:` line per order that needs a person; a quote is a question,
    # so its answer is on stdout (tab-separated), the order it could not quote among the rows.
    assert [line for line in piped.stderr.splitlines() if "QB-1" in line] == [
        f"fulfil: error: {failed['QB-1']}"
    ]
    header, *table = [line.split("\t") for line in piped.stdout.splitlines()]
    assert header[0] == "order_id"
    assert header[-1] == "error"
    assert [row[-1] for row in table if row[0] == "QB-1"] == [failed["QB-1"]]
    assert len([row for row in table if row[0] == "QB-3"]) >= 2
