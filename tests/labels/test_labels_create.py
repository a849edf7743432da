"""`fulfil labels create` end to end: the real CLI, a real PostgreSQL, the sandbox over sockets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from lxml import etree

from fulfil.sandbox.orders import generate_orders
from fulfil.xml_parsing import child_text, find_path, parse_untrusted
from tests.conftest import run_fulfil
from tests.labels.helpers import (
    api_calls,
    assert_valid_label,
    bought_per_order,
    insert_orders,
    json_lines,
    seed_orders,
    shipments,
)
from tests.local_http import Reply, scripted
from tests.shared_reference import canadapost_samples, xsd_dir


def schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(xsd_dir() / name)))


@pytest.mark.parametrize("contract", [True, False], ids=["contract", "non-contract"])
def test_happy_path_buys_one_label_per_order_and_downloads_it(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any, contract: bool
) -> None:
    if not contract:
        fulfil_env.pop("FULFIL_CANADAPOST_CONTRACT_ID")
    order_ids = seed_orders(db, 6)

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    assert set(records) == set(order_ids)
    assert {r["outcome"] for r in records.values()} == {"bought"}
    assert bought_per_order(sandbox) == dict.fromkeys(order_ids, 1)
    rows = shipments(db)
    for order_id in order_ids:
        assert_valid_label(rows[order_id])
        assert rows[order_id]["cp_mode"] == ("contract" if contract else "noncontract")
        assert records[order_id]["tracking_pin"] == rows[order_id]["tracking_pin"]
        assert Path(rows[order_id]["label_pdf_path"]).parent == Path(fulfil_env["FULFIL_LABELS_DIR"])
    # Every body sent validates against Canada Post's own schema.
    creates = api_calls(db, "CreateShipment" if contract else "CreateNCShipment")
    assert len(creates) == len(order_ids)
    xsd = schema("shipment.xsd" if contract else "ncshipment.xsd")
    for call in creates:
        xsd.assertValid(etree.fromstring(call["request_payload"].encode()))
        assert call["is_success"] is True
        assert call["run_id"] is not None
    assert len(api_calls(db, "GetArtifact")) == len(order_ids)
    counts = sandbox.state()["requests"]["counts"]
    assert counts.get("canadapost.CreateShipment" if contract else "canadapost.CreateNCShipment") == 6

    again = run_fulfil("labels", "create", "--json", env=fulfil_env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    assert bought_per_order(sandbox) == dict.fromkeys(order_ids, 1)


def test_quiet_on_success_when_not_on_a_terminal(fulfil_env: dict[str, str], db: psycopg.Connection) -> None:
    seed_orders(db, 2)
    result = run_fulfil("labels", "create", env=fulfil_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == ""


def test_definitive_failures_name_order_and_field_and_the_others_proceed(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = generate_orders(6, seed=11)
    too_long, bad_postal, no_street = (o["customer"]["shipping_address"] for o in orders[3:])
    too_long["street_1"] = "2350 boulevard du Souvenir-des-Anciens-Combattants Ouest"
    too_long["street_2"] = "Bureau 200"  # line 2 is taken: the overflow has nowhere to go
    bad_postal["zip_code"] = bad_postal["zip_code"][:5]
    no_street["street_1"] = ""
    no_street["street_2"] = ""
    order_ids = insert_orders(db, orders)
    good, bad = order_ids[:3], order_ids[3:]

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 3, result.stderr
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    assert {records[o]["outcome"] for o in good} == {"bought"}
    rows = shipments(db)
    for order_id in bad:
        assert records[order_id]["outcome"] == "failed"
        assert rows[order_id]["status"] == "label_failed"
        assert rows[order_id]["last_error"] == records[order_id]["error"]
    assert records[bad[0]]["error"].startswith(f"order {bad[0]}: customer.shipping_address.street_")
    assert records[bad[1]]["error"].startswith(f"order {bad[1]}: customer.shipping_address.zip_code: ")
    assert records[bad[2]]["error"].startswith(f"order {bad[2]}: customer.shipping_address.street_1: ")
    assert bought_per_order(sandbox) == dict.fromkeys(good, 1)
    # Nothing was sent for the refused orders.
    assert {c["related_id"] for c in api_calls(db, "CreateShipment")} == set(good)

    # A second run does not try them again while their data is unchanged …
    again = run_fulfil("labels", "create", "--json", env=fulfil_env)
    assert again.returncode == 0, again.stderr
    assert json_lines(again.stdout) == []
    # … and does once the seller fixed the address.
    fixed = next(o for o in orders if o["order_id"] == bad[1])
    fixed["customer"]["shipping_address"]["zip_code"] = "K1A0B1"
    fixed["customer"]["shipping_address"]["state"] = "ON"
    fixed["customer"]["shipping_address"]["street_1"] = "24 Sussex Dr"
    db.execute(
        "UPDATE orders SET raw_order_data = %s WHERE order_id = %s",
        (psycopg.types.json.Jsonb(fixed), bad[1]),
    )
    third = run_fulfil("labels", "create", "--json", env=fulfil_env)
    assert [r["order_id"] for r in json_lines(third.stdout)] == [bad[1]]
    assert bought_per_order(sandbox)[bad[1]] == 1


def test_canada_post_refusal_is_recorded_with_its_code(
    fulfil_env: dict[str, str], db: psycopg.Connection
) -> None:
    # A real Canada Post refusal (several messages), served over a real socket.
    refusal = (canadapost_samples() / "error-multiple-messages.t3rminus-pr6.xml").read_bytes()
    [order_id] = seed_orders(db, 1)
    with scripted(Reply(400, refusal, {"Content-Type": "application/vnd.cpc.shipment-v8+xml"})) as server:
        fulfil_env["FULFIL_CANADAPOST_BASE_URL"] = server.url
        result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 3
    [record] = json_lines(result.stdout)
    assert record["outcome"] == "failed"
    assert record["error"].startswith(f"order {order_id}: Canada Post HTTP 400: 2695 ")
    row = shipments(db)[order_id]
    assert row["status"] == "label_failed"
    assert row["last_error_code"] == "2695"
    assert len(server.received) == 1  # refused means not bought: nothing to look up


def test_refused_credentials_stop_the_run_at_the_first_answer(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    fulfil_env["FULFIL_CANADAPOST_PASSWORD"] = "wrong-password-123"
    seed_orders(db, 5)

    result = run_fulfil("labels", "create", env=fulfil_env)

    assert result.returncode == 2
    assert "Canada Post refused the credentials" in result.stderr
    assert "FULFIL_CANADAPOST_PASSWORD" in result.stderr
    assert "wrong-password-123" not in result.stderr
    assert len(api_calls(db, "CreateShipment")) == 1
    assert {row["status"] for row in shipments(db).values()} == {"label_pending"}
    assert bought_per_order(sandbox) == {}


def test_dry_run_sends_nothing_and_writes_nothing(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = generate_orders(3, seed=2)
    orders[2]["customer"]["shipping_address"]["zip_code"] = "12345"
    order_ids = insert_orders(db, orders)

    result = run_fulfil("labels", "create", "--dry-run", "--json", env=fulfil_env)

    assert result.returncode == 3  # one order cannot be shipped
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    assert [records[o]["outcome"] for o in order_ids] == ["would_buy", "would_buy", "failed"]
    shipment_xsd = schema("shipment.xsd")
    for order_id in order_ids[:2]:
        shipment_xsd.assertValid(etree.fromstring(records[order_id]["request"].encode()))
    assert shipments(db) == {}
    assert api_calls(db) == []
    assert sandbox.state()["requests"]["counts"] == {}


def test_order_option_limit_and_stdin(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = seed_orders(db, 5)

    one = run_fulfil("labels", "create", "--json", "--order", order_ids[3], env=fulfil_env)
    assert [r["order_id"] for r in json_lines(one.stdout)] == [order_ids[3]]

    limited = run_fulfil("labels", "create", "--json", "--limit", "2", env=fulfil_env)
    assert [r["order_id"] for r in json_lines(limited.stdout)] == order_ids[:2]  # oldest first

    piped = run_fulfil(
        "labels", "create", "--json", "--order", "-", env=fulfil_env, input_text=f"{order_ids[4]}\n\n"
    )
    assert [r["order_id"] for r in json_lines(piped.stdout)] == [order_ids[4]]
    assert set(bought_per_order(sandbox)) == {order_ids[i] for i in (0, 1, 3, 4)}


def test_an_order_no_longer_accepted_gets_no_label(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = seed_orders(db, 2)
    db.execute("UPDATE orders SET status = 'canceled' WHERE order_id = %s", (order_ids[0],))
    result = run_fulfil("labels", "create", "--json", env=fulfil_env)
    assert result.returncode == 0
    assert bought_per_order(sandbox) == {order_ids[1]: 1}


def test_names_and_addresses_with_accents_and_markup_round_trip(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [order] = generate_orders(1, seed=3)
    address = order["customer"]["shipping_address"]
    address.update(
        firstname="Zoë-Émilie",
        lastname="O'Brien <Ltd> & Fils",
        street_1="12 rue de l'Église",
        street_2="App. 3 « arrière »",
        city="Trois-Rivières",
        state="QC",
        zip_code="g9a5h7",
    )
    insert_orders(db, [order])

    result = run_fulfil("labels", "create", "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    [call] = api_calls(db, "CreateShipment")
    sent = parse_untrusted(call["request_payload"].encode("utf-8"))
    destination = find_path(sent, "delivery-spec", "destination")
    assert destination is not None
    assert child_text(destination, "name") == "Zoë-Émilie O'Brien <Ltd> & Fils"
    details = find_path(destination, "address-details")
    assert details is not None
    assert child_text(details, "address-line-1") == "12 rue de l'Église"
    assert child_text(details, "address-line-2") == "App. 3 « arrière »"
    assert child_text(details, "city") == "Trois-Rivières"
    assert child_text(details, "postal-zip-code") == "G9A5H7"
    assert b"&amp;" in call["request_payload"].encode() or "&amp;" in call["request_payload"]
    assert_valid_label(shipments(db)[order["order_id"]])


def test_order_ids_become_safe_file_names(fulfil_env: dict[str, str], db: psycopg.Connection) -> None:
    [order] = generate_orders(1, seed=5)
    order["order_id"] = "../../etc/passwd-A"
    insert_orders(db, [order])
    result = run_fulfil("labels", "create", "--json", env=fulfil_env)
    assert result.returncode == 0, result.stderr
    path = Path(shipments(db)[order["order_id"]]["label_pdf_path"])
    assert path.parent == Path(fulfil_env["FULFIL_LABELS_DIR"])
    assert ".." not in path.name
    assert "/" not in path.name


def test_selection_is_an_index_lookup(db: psycopg.Connection) -> None:
    from fulfil.db import query

    db.execute(
        "INSERT INTO orders (order_id, status, raw_order_data) "
        "SELECT 'S-' || g, 'shipped', '{}' FROM generate_series(1, 20000) g"
    )
    db.execute(
        "INSERT INTO orders (order_id, status, raw_order_data) SELECT 'A-' || g, 'accepted', '{}' "
        "FROM generate_series(1, 20) g"
    )
    db.execute("ANALYZE orders")
    db.execute("ANALYZE shipments")
    plan = "\n".join(
        row[0]
        for row in db.execute(
            "EXPLAIN " + query("shipments", "create_pending_shipments"), {"order_ids": None, "limit": None}
        ).fetchall()
    )
    assert "orders_accepted_created_idx" in plan, plan
    assert "Seq Scan on orders" not in plan, plan


def test_orders_asked_for_by_id_are_never_passed_over_in_silence(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    order_ids = seed_orders(db, 3)
    db.execute("UPDATE orders SET status = 'canceled' WHERE order_id = %s", (order_ids[2],))
    assert run_fulfil("labels", "create", "--order", order_ids[0], env=fulfil_env).returncode == 0

    result = run_fulfil(
        "labels",
        "create",
        "--json",
        "--order",
        "-",
        env=fulfil_env,
        input_text="\n".join([*order_ids, "nope-1"]),
    )

    assert result.returncode == 3
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    assert records[order_ids[0]]["outcome"] == "skipped"  # already has its label: nothing to do
    assert records[order_ids[1]]["outcome"] == "bought"
    assert records[order_ids[2]]["outcome"] == "not_eligible"
    assert "is canceled, not accepted" in records[order_ids[2]]["error"]
    assert records["nope-1"]["outcome"] == "not_eligible"
    assert "not in the orders table" in records["nope-1"]["error"]
    assert bought_per_order(sandbox) == {order_ids[0]: 1, order_ids[1]: 1}
