"""Orders PostgreSQL cannot store (NUL, lone surrogates, bytes that are not UTF-8, 100,000-deep
nesting, 1e400) are rejected one by one, naming the field; the other orders of the file or of the
OR11 page are stored. Through the real command line, a real database and real sockets.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from fulfil.bestbuy.order_documents import OrderCandidate
from fulfil.workflows.order_import import OrderRun, OrderStore
from tests.conftest import run_fulfil
from tests.local_http import Received, Reply, ScriptedServer
from tests.orders.helpers import json_lines, orders_table, sample_orders
from tests.orders.hostile import (
    OrderText,
    as_json_array,
    as_json_lines,
    as_or11_answer,
    good_and_bad_orders,
)
from tests.orders.test_orders_pull import backdate_last_poll


@pytest.fixture
def env(cli_env: dict[str, str], database_url: str) -> dict[str, str]:
    return {**cli_env, "FULFIL_DATABASE_URL": database_url}


SHAPES: dict[str, tuple[Callable[[list[OrderText]], bytes], Callable[[int], str]]] = {
    "json-array": (as_json_array, lambda index: f"item {index + 1}"),
    "json-lines": (as_json_lines, lambda index: f"line {index + 1}"),
    "or11-dump": (as_or11_answer, lambda index: f"orders[{index}]"),
}


def expected_records(orders: list[OrderText], position: Callable[[int], str]) -> list[tuple[Any, ...]]:
    return [
        (o.order_id, "new" if o.problem is None else "rejected", position(index), o.problem)
        for index, o in enumerate(orders)
    ]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_unstorable_order_of_a_file_is_rejected_alone(
    env: dict[str, str], db: psycopg.Connection, tmp_path: Path, shape: str
) -> None:
    orders = good_and_bad_orders()
    write, position = SHAPES[shape]
    path = tmp_path / "orders.json"
    path.write_bytes(write(orders))

    result = run_fulfil("orders", "import", str(path), "--json", env=env)

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    records = json_lines(result.stdout)
    assert [(r["order_id"], r["outcome"], r["position"], r["reason"]) for r in records] == expected_records(
        orders, position
    )
    assert result.stderr.splitlines() == [
        f"fulfil: error: rejected: {position(index)}: {o.problem}"
        for index, o in enumerate(orders)
        if o.problem
    ]
    good = {o.order_id: json.loads(o.text) for o in orders if o.problem is None}
    assert {order_id: row["raw_order_data"] for order_id, row in orders_table(db).items()} == good

    # The same file again: the same rejections, the good orders unchanged, still no crash.
    again = run_fulfil("orders", "import", str(path), "--json", env=env)
    assert again.returncode == 3, again.stderr
    assert [r["outcome"] for r in json_lines(again.stdout)] == [
        "unchanged" if o.problem is None else "rejected" for o in orders
    ]


def test_unstorable_orders_on_stdin_are_rejected_alone(env: dict[str, str], db: psycopg.Connection) -> None:
    # Text only (stdin here is text): a NUL and a lone surrogate as JSON escapes, in keys as well.
    good, *_ = sample_orders("bestbuy-ca.OR11-orders.SHIPPING.redacted.json")
    key_nul = {**copy.deepcopy(good), "order_id": "900000011-A"}
    key_nul["customer"]["nick\u0000name"] = "x"
    surrogate = {**copy.deepcopy(good), "order_id": "900000012-A", "order_lines": [{"\ud800": 1}]}
    lines = [json.dumps(o) for o in (key_nul, good, surrogate)]

    result = run_fulfil("orders", "import", "-", "--json", env=env, input_text="\n".join(lines))

    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines() == [
        'fulfil: error: rejected: line 1: order 900000011-A: customer has a key ("nick\\u0000name") that '
        "contains a NUL character",
        'fulfil: error: rejected: line 3: order 900000012-A: order_lines[0] has a key ("\\ud800") that '
        "contains a lone surrogate (U+D800)",
    ]
    assert set(orders_table(db)) == {good["order_id"]}


def test_a_chunk_the_database_refuses_is_stored_order_by_order(
    database_url: str, db: psycopg.Connection
) -> None:
    # Defence in depth: a candidate that was never checked (as a future bug might let through)
    # still costs only itself, with the database's reason; the fast path is one transaction.
    first, second, third, *_ = sample_orders("bestbuy-ca.OR11-orders.SHIPPING.redacted.json")
    unchecked = copy.deepcopy(third)
    unchecked["customer"]["shipping_address"]["street_1"] = "12\u0000 St"
    candidates = [
        OrderCandidate("item 1", first),
        OrderCandidate("item 2", unchecked),
        OrderCandidate("item 3", second),
    ]
    run = OrderRun()

    with psycopg.connect(database_url) as conn:
        OrderStore(database_url).store(conn, candidates, run)
        conn.commit()

    outcomes = [(r.order_id, r.outcome, r.position) for r in run.results]
    assert sorted(outcomes) == sorted(
        [
            (first["order_id"], "new", "item 1"),
            (third["order_id"], "rejected", "item 2"),
            (second["order_id"], "new", "item 3"),
        ]
    )
    [refused] = [r for r in run.results if r.outcome == "rejected"]
    assert refused.reason is not None
    assert refused.reason.startswith(f"order {third['order_id']}: the database refused it (")
    assert "\\u0000" in refused.reason
    assert set(orders_table(db)) == {first["order_id"], second["order_id"]}


# --- orders pull --------------------------------------------------------------------------------


def test_an_or11_page_with_a_nul_and_an_infinity_stores_the_other_orders_every_time(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    good = sandbox.generate_orders(3, seed=61)
    nul = copy.deepcopy(good[0]) | {"order_id": "900000021-A", "created_date": "2025-08-01T00:00:00Z"}
    nul["customer"]["shipping_address"] = {"street_1": "1 Main\u0000 St"}
    infinite = copy.deepcopy(good[1]) | {"order_id": "900000022-A", "leadtime_to_ship": float("inf")}
    sandbox.add_orders([nul, infinite])  # the sandbox writes Infinity, as Python's json does

    for attempt in range(2):
        result = run_fulfil("orders", "pull", "--force", "--json", env=fulfil_env)

        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr
        records = {r["order_id"]: r for r in json_lines(result.stdout)}
        assert {o: r["outcome"] for o, r in records.items()} == {
            **{o["order_id"]: "new" if attempt == 0 else "unchanged" for o in good},
            "900000021-A": "rejected",
            "900000022-A": "rejected",
        }
        assert records["900000021-A"]["reason"] == (
            "order 900000021-A: customer.shipping_address.street_1 contains a NUL character"
        )
        assert records["900000022-A"]["reason"] == (
            "order 900000022-A: leadtime_to_ship is not a finite number (Infinity)"
        )
        assert set(orders_table(db)) == {o["order_id"] for o in good}


@pytest.fixture
def hostile_best_buy() -> Iterator[ScriptedServer]:
    """A Best Buy whose SHIPPING listing holds the five unstorable orders among two good ones."""
    orders = good_and_bad_orders()

    def answer(request: Received) -> Reply:
        query = parse_qs(urlsplit(request.path).query)
        if query.get("offset", ["0"]) != ["0"] or "order_ids" in query:
            return Reply(200, b'{"orders": [], "total_count": 0}', {"Content-Type": "application/json"})
        return Reply(200, as_or11_answer(orders), {"Content-Type": "application/json"})

    with ScriptedServer(answer) as server:
        yield server


def test_an_or11_answer_with_unstorable_orders_stores_the_others_every_time(
    fulfil_env: dict[str, str], db: psycopg.Connection, hostile_best_buy: ScriptedServer
) -> None:
    orders = good_and_bad_orders()
    fulfil_env["FULFIL_BESTBUY_BASE_URL"] = hostile_best_buy.url

    for attempt in range(2):
        result = run_fulfil("orders", "pull", "--json", env=fulfil_env)

        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr
        records = json_lines(result.stdout)
        assert [(r["order_id"], r["outcome"], r["position"], r["reason"]) for r in records] == [
            (
                o.order_id,
                ("new" if attempt == 0 else "unchanged") if o.problem is None else "rejected",
                f"OR11 offset {index}",
                o.problem,
            )
            for index, o in enumerate(orders)
        ]
        good = {o.order_id: json.loads(o.text) for o in orders if o.problem is None}
        assert {order_id: row["raw_order_data"] for order_id, row in orders_table(db).items()} == good
        backdate_last_poll(db)
