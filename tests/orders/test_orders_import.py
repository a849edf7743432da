"""`fulfil orders import`: real Best Buy order files, JSON lines, malformed objects, re-imports."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from tests.conftest import run_fulfil
from tests.orders.helpers import (
    ORDER_SAMPLES,
    OTHER_SAMPLES,
    json_lines,
    orders_table,
    sample_orders,
    sample_path,
)
from tests.shared_reference import mirakl_samples


@pytest.fixture
def env(cli_env: dict[str, str], database_url: str) -> dict[str, str]:
    return {**cli_env, "FULFIL_DATABASE_URL": database_url}


def test_every_sample_file_is_accounted_for() -> None:
    assert {p.name for p in mirakl_samples().glob("*.json")} == set(ORDER_SAMPLES) | set(OTHER_SAMPLES)


@pytest.mark.parametrize("name", sorted(ORDER_SAMPLES))
def test_each_real_sample_file_imports_and_reimports_as_unchanged(
    env: dict[str, str], db: psycopg.Connection, name: str
) -> None:
    expected = sample_orders(name)

    result = run_fulfil("orders", "import", str(sample_path(name)), "--json", env=env)

    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert [(r["order_id"], r["outcome"], r["previous_status"]) for r in records] == [
        (o["order_id"], "new", None) for o in expected
    ]
    table = orders_table(db)
    assert set(table) == {o["order_id"] for o in expected}
    for order in expected:
        row = table[order["order_id"]]
        assert row["status"] == ORDER_SAMPLES[name]
        assert row["raw_order_data"] == order
        assert row["created_at"] == datetime.fromisoformat(order["created_date"].replace("Z", "+00:00"))

    again = run_fulfil("orders", "import", str(sample_path(name)), "--json", env=env)

    assert again.returncode == 0, again.stderr
    assert {r["outcome"] for r in json_lines(again.stdout)} == {"unchanged"}
    assert orders_table(db) == table


def test_an_order_only_moves_forward_through_its_life(env: dict[str, str], db: psycopg.Connection) -> None:
    # The same three real orders, before acceptance and after shipping.
    before = str(sample_path("bestbuy-ca.OR11-orders.WAITING_ACCEPTANCE.redacted.json"))
    after = str(sample_path("bestbuy-ca.OR11-orders.SHIPPED.redacted.json"))
    assert run_fulfil("orders", "import", before, env=env).returncode == 0

    forward = run_fulfil("orders", "import", after, "--json", env=env)

    assert forward.returncode == 0, forward.stderr
    assert {(r["outcome"], r["previous_status"], r["status"]) for r in json_lines(forward.stdout)} == {
        ("updated", "waiting_acceptance", "shipped")
    }
    shipped = orders_table(db)

    backward = run_fulfil("orders", "import", before, "--json", env=env)

    assert backward.returncode == 0, backward.stderr
    records = json_lines(backward.stdout)
    assert {(r["outcome"], r["status"]) for r in records} == {("unchanged", "shipped")}
    assert {r["reason"] for r in records} == {"older than the copy already stored (last_updated_date)"}
    assert orders_table(db) == shipped


def test_a_locally_shipped_order_stays_shipped(env: dict[str, str], db: psycopg.Connection) -> None:
    path = str(sample_path("bestbuy-ca.OR11-orders.SHIPPING.redacted.json"))
    assert run_fulfil("orders", "import", path, env=env).returncode == 0
    # fulfil shipped one (tracking push), and one was cancelled meanwhile (a later pull).
    shipped_id, canceled_id = (o["order_id"] for o in sample_orders(Path(path).name)[:2])
    db.execute("UPDATE orders SET status = 'shipped' WHERE order_id = %s", (shipped_id,))
    db.execute("UPDATE orders SET status = 'canceled' WHERE order_id = %s", (canceled_id,))
    before = orders_table(db)

    result = run_fulfil("orders", "import", path, "--json", env=env)

    assert result.returncode == 0, result.stderr
    records = {r["order_id"]: r for r in json_lines(result.stdout)}
    assert records[shipped_id]["reason"] == "stays shipped: Best Buy's SHIPPING would move it back"
    assert records[canceled_id]["reason"] == "stays canceled: Best Buy's SHIPPING would move it back"
    assert {r["outcome"] for r in records.values()} == {"unchanged"}
    assert orders_table(db) == before


def test_a_newer_copy_of_an_order_updates_its_data_and_status(
    env: dict[str, str], db: psycopg.Connection
) -> None:
    [order, *_] = sample_orders("bestbuy-ca.OR11-orders.SHIPPING.redacted.json")
    assert run_fulfil("orders", "import", "-", env=env, input_text=json.dumps(order)).returncode == 0
    cancelled = {**order, "order_state": "CANCELED", "last_updated_date": "2025-08-30T10:00:00Z"}

    result = run_fulfil("orders", "import", "-", "--json", env=env, input_text=json.dumps(cancelled))

    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    assert (record["outcome"], record["previous_status"], record["status"], record["order_state"]) == (
        "updated",
        "accepted",
        "canceled",
        "CANCELED",
    )
    row = orders_table(db)[order["order_id"]]
    assert row["raw_order_data"] == cancelled
    assert row["updated_at"] > row["created_at"]


def test_json_lines_with_malformed_objects_import_the_rest(
    env: dict[str, str], db: psycopg.Connection
) -> None:
    good_1, nameless, unknown, good_2 = sample_orders("bestbuy-ca.OR11-orders.SHIPPING.redacted.json")
    nameless = {k: v for k, v in nameless.items() if k != "order_id"}
    unknown = {**unknown, "order_state": "WAITING_REFUND"}
    lines = [
        json.dumps(good_1),
        '{"order_id": "261252961-A", "order_state": ',  # cut off
        json.dumps(nameless),
        "[1, 2, 3]",
        "",
        json.dumps(unknown),
        json.dumps(good_2),
    ]

    result = run_fulfil("orders", "import", "-", "--json", env=env, input_text="\n".join(lines) + "\n")

    assert result.returncode == 3
    records = json_lines(result.stdout)
    assert [(r["position"], r["outcome"], r["order_id"]) for r in records] == [
        ("line 1", "new", good_1["order_id"]),
        ("line 2", "rejected", None),
        ("line 3", "rejected", None),
        ("line 4", "rejected", None),
        ("line 6", "rejected", unknown["order_id"]),
        ("line 7", "new", good_2["order_id"]),
    ]
    assert result.stderr.splitlines() == [
        "fulfil: error: rejected: line 2: not valid JSON (Expecting value)",
        "fulfil: error: rejected: line 3: no order_id",
        "fulfil: error: rejected: line 4: not an order object (a JSON array)",
        f"fulfil: error: rejected: line 6: order {unknown['order_id']}: order_state 'WAITING_REFUND' "
        "is not one fulfil knows; not imported",
    ]
    assert set(orders_table(db)) == {good_1["order_id"], good_2["order_id"]}

    again = run_fulfil("orders", "import", "-", "--json", env=env, input_text="\n".join(lines) + "\n")
    assert again.returncode == 3
    assert [r["outcome"] for r in json_lines(again.stdout) if r["outcome"] != "rejected"] == ["unchanged"] * 2


def test_a_json_array_with_a_malformed_object_imports_the_rest(
    env: dict[str, str], db: psycopg.Connection, tmp_path: Path
) -> None:
    orders = sample_orders("bestbuy-ca.OR11-orders.SHIPPED.redacted.json")
    orders[1] = {**orders[1], "order_id": 261240488}  # a number, not Mirakl's text id
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(orders, indent=2), encoding="utf-8")

    result = run_fulfil("orders", "import", str(path), env=env)

    assert result.returncode == 3
    # Under cron: the one problem on stderr, and no counts line on stdout (it is talk, not data).
    assert (
        result.stderr.strip()
        == "fulfil: error: rejected: item 2: order_id is a JSON number, not Mirakl's text id"
    )
    assert result.stdout == ""
    verbose = run_fulfil("-v", "orders", "import", str(path), env=env)
    assert (
        verbose.stderr.splitlines()[-1] == "fulfil: note: imported: 0 new, 0 updated, 2 unchanged, 1 rejected"
    )
    assert set(orders_table(db)) == {orders[0]["order_id"], orders[2]["order_id"]}


def test_quiet_on_success_when_not_on_a_terminal(env: dict[str, str], db: psycopg.Connection) -> None:
    path = str(sample_path("bestbuy-ca.OR11-orders.SHIPPING.redacted.json"))
    result = run_fulfil("orders", "import", path, env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    verbose = run_fulfil("-v", "orders", "import", path, env=env)
    assert verbose.stdout == ""
    assert verbose.stderr == "fulfil: note: imported: 0 new, 0 updated, 4 unchanged, 0 rejected\n"


def test_input_that_is_no_order_document_is_refused_whole(
    env: dict[str, str], db: psycopg.Connection
) -> None:
    text = '[{"order_id": "1-A", "order_state": "SHIPPING"},\n {"order_id": '
    result = run_fulfil("orders", "import", "-", env=env, input_text=text)
    assert result.returncode == 2
    assert result.stderr == "fulfil: error: the input is not valid JSON: line 2 column 15: Expecting value\n"
    assert orders_table(db) == {}


def test_a_missing_file_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    result = run_fulfil("orders", "import", str(tmp_path / "nope.json"), env=env)
    assert result.returncode == 2
    assert (
        result.stderr == f"fulfil: error: cannot read {tmp_path / 'nope.json'}: No such file or directory\n"
    )


def test_an_order_id_that_appears_again_is_reported_and_only_the_first_copy_is_used(
    env: dict[str, str], db: psycopg.Connection
) -> None:
    first, second, *_ = sample_orders("bestbuy-ca.OR11-orders.SHIPPING.redacted.json")
    changed = {**first, "order_state": "CANCELED", "last_updated_date": "2025-08-30T10:00:00Z"}
    lines = [json.dumps(o) for o in (first, second, first, changed)]

    result = run_fulfil("orders", "import", "-", "--json", env=env, input_text="\n".join(lines) + "\n")

    assert result.returncode == 3, result.stderr
    assert [(r["position"], r["outcome"], r["order_id"]) for r in json_lines(result.stdout)] == [
        ("line 1", "new", first["order_id"]),
        ("line 2", "new", second["order_id"]),
        ("line 3", "rejected", first["order_id"]),
        ("line 4", "rejected", first["order_id"]),
    ]
    order_id = first["order_id"]
    assert result.stderr.splitlines() == [
        f"fulfil: error: rejected: line 3: order {order_id}: appears again (first at line 1, identical); "
        "only the first copy is used",
        f"fulfil: error: rejected: line 4: order {order_id}: appears again (first at line 1, with different "
        "content); only the first copy is used",
    ]
    assert orders_table(db)[order_id]["raw_order_data"] == first


def test_a_repeat_across_the_pages_of_an_or11_dump_is_reported(
    env: dict[str, str], db: psycopg.Connection, tmp_path: Path
) -> None:
    first, second, third, *_ = sample_orders("bestbuy-ca.OR11-orders.SHIPPING.redacted.json")
    pages = [{"orders": [first, second], "total_count": 3}, {"orders": [second, third], "total_count": 3}]
    path = tmp_path / "pages.jsonl"
    path.write_text("".join(json.dumps(page) + "\n" for page in pages), encoding="utf-8")

    result = run_fulfil("orders", "import", str(path), env=env)

    assert result.returncode == 3
    assert result.stderr == (
        f"fulfil: error: rejected: line 2, orders[0]: order {second['order_id']}: appears again "
        "(first at line 1, orders[1], identical); only the first copy is used\n"
    )
    assert set(orders_table(db)) == {first["order_id"], second["order_id"], third["order_id"]}
