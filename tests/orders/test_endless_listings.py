"""`orders pull` against a Best Buy whose OR11 listing never ends: it stops, says why and what it stored.

A local server over real sockets plays the misbehaving Best Buy (the sandbox pages correctly).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from fulfil.bestbuy.client import PAGE_SIZE, BestBuyClient
from fulfil.config import load_settings
from fulfil.services import open_session
from fulfil.workflows import order_import
from fulfil.workflows.order_import import OrderPull
from tests.conftest import run_fulfil
from tests.local_http import Received, Reply, ScriptedServer
from tests.orders.helpers import json_lines, orders_table

Listing = Callable[[int], tuple[list[dict[str, Any]], int | None]]  # offset → (orders, total_count)


def fresh_orders(offset: int, count: int = PAGE_SIZE) -> list[dict[str, Any]]:
    return [{"order_id": f"{800000000 + offset + n}-A", "order_state": "SHIPPING"} for n in range(count)]


def listing_server(listing: Listing) -> ScriptedServer:
    def answer(request: Received) -> Reply:
        query = parse_qs(urlsplit(request.path).query)
        if "order_ids" in query:  # the accepted orders read by id after the listing
            return Reply(200, b'{"orders": [], "total_count": 0}', {"Content-Type": "application/json"})
        orders, total = listing(int(query["offset"][0]))
        document: dict[str, Any] = {"orders": orders}
        if total is not None:
            document["total_count"] = total
        return Reply(200, json.dumps(document).encode(), {"Content-Type": "application/json"})

    return ScriptedServer(answer)


@pytest.fixture
def best_buy(request: pytest.FixtureRequest) -> Iterator[ScriptedServer]:
    with listing_server(request.param) as server:
        yield server


def listing_calls(server: ScriptedServer) -> list[int]:
    return [
        int(parse_qs(urlsplit(r.path).query)["offset"][0])
        for r in server.received
        if "offset" in parse_qs(urlsplit(r.path).query)
    ]


def same_page(total: int | None) -> Listing:
    return lambda offset: (fresh_orders(0), total)


def growing(offset: int) -> tuple[list[dict[str, Any]], int | None]:
    return fresh_orders(offset), offset + 150  # there is always more than was read


def past_its_count(offset: int) -> tuple[list[dict[str, Any]], int | None]:
    return fresh_orders(offset), 250  # full pages at any offset, though it counts 250


@pytest.mark.parametrize(
    ("best_buy", "offsets", "stored", "what"),
    [
        (
            same_page(10_000),
            [0, 100],
            100,
            "the page at offset 100 brought no order this pull had not already read; stopped after 2 pages",
        ),
        (
            same_page(None),
            [0, 100],
            100,
            "the page at offset 100 brought no order this pull had not already read; stopped after 2 pages",
        ),
        (
            growing,
            [0, 100, 200, 300],
            400,
            "its first page counted 150 orders, 400 have been read and it now counts 450; stopped after "
            "4 pages",
        ),
    ],
    indirect=["best_buy"],
    ids=["same-page-counting-10000", "same-page-no-count", "count-that-grows"],
)
def test_a_listing_that_never_ends_stops_with_what_it_stored(
    fulfil_env: dict[str, str],
    db: psycopg.Connection,
    best_buy: ScriptedServer,
    offsets: list[int],
    stored: int,
    what: str,
) -> None:
    fulfil_env["FULFIL_BESTBUY_BASE_URL"] = best_buy.url

    result = run_fulfil("orders", "pull", "--json", env=fulfil_env)

    assert result.returncode == 3, result.stderr
    assert listing_calls(best_buy) == offsets
    assert result.stderr.splitlines() == [
        f"fulfil: warning: stopped early: Best Buy's order listing does not end: {what}, with the "
        f"{stored} orders read stored (the next pull starts again from the first page)"
    ]
    assert len(orders_table(db)) == stored
    assert len({r["order_id"] for r in json_lines(result.stdout)}) == stored


@pytest.mark.parametrize("best_buy", [past_its_count], indirect=True)
def test_a_listing_ends_at_its_count_even_when_more_pages_would_come(
    fulfil_env: dict[str, str], db: psycopg.Connection, best_buy: ScriptedServer
) -> None:
    fulfil_env["FULFIL_BESTBUY_BASE_URL"] = best_buy.url

    result = run_fulfil("orders", "pull", env=fulfil_env)

    assert (result.returncode, result.stderr) == (0, "")
    assert listing_calls(best_buy) == [0, 100, 200]
    assert len(orders_table(db)) == 300


@pytest.mark.parametrize("best_buy", [lambda offset: (fresh_orders(offset), None)], indirect=True)
def test_full_pages_of_new_orders_without_a_count_stop_at_the_hard_cap(
    fulfil_env: dict[str, str],
    database_url: str,
    db: psycopg.Connection,
    best_buy: ScriptedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 2,000 pages take too long for a test: the same pull, in this process, with a cap of 3.
    monkeypatch.setattr(order_import, "MAX_PAGES", 3)
    settings = load_settings({**fulfil_env, "FULFIL_BESTBUY_BASE_URL": best_buy.url}, tmp_path)

    with open_session(database_url, settings, "orders pull") as session:
        client = BestBuyClient(settings.bestbuy(), session.bestbuy_http())
        run = OrderPull(database_url=database_url, client=client, run_id=session.run.run_id).pull(
            ["SHIPPING"], force=True
        )

    assert run.stopped == (
        "Best Buy's order listing does not end: it still sent full pages after 3 pages; stopped after 3 "
        "pages, with the 300 orders read stored (the next pull starts again from the first page)"
    )
    assert listing_calls(best_buy) == [0, 100, 200]
    assert len(orders_table(db)) == 300
