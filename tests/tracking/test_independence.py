"""Labels and tracking depend on different services: one being down never stops the other."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from fulfil.sandbox import Faults
from tests.conftest import run_fulfil
from tests.tracking.helpers import json_lines, seed_labelled, shipments


def test_labels_are_bought_while_best_buy_is_down(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = sandbox.generate_orders(2, seed=51)
    for order in orders:
        db.execute(
            "INSERT INTO orders (order_id, status, raw_order_data) VALUES (%s, 'accepted', %s)",
            (order["order_id"], Jsonb(order)),
        )
    sandbox.set_faults("bestbuy", Faults(error_rate=1.0))
    env = {k: v for k, v in fulfil_env.items() if not k.startswith("FULFIL_BESTBUY_")}

    result = run_fulfil("labels", "create", "--json", env=env)

    assert result.returncode == 0, result.stderr
    assert {r["outcome"] for r in json_lines(result.stdout)} == {"bought"}
    assert sandbox.labels_bought_per_order() == {o["order_id"]: 1 for o in orders}


def test_tracking_is_pushed_while_canada_post_is_down(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    seed_labelled(db, sandbox, 2, seed=53)
    sandbox.set_faults("canadapost", Faults(error_rate=1.0))
    env = {k: v for k, v in fulfil_env.items() if not k.startswith(("FULFIL_CANADAPOST_", "FULFIL_SENDER_"))}

    result = run_fulfil("tracking", "push", "--json", env=env)

    assert result.returncode == 0, result.stderr
    assert {r["outcome"] for r in json_lines(result.stdout)} == {"shipped"}
    assert {r["status"] for r in shipments(db).values()} == {"tracking_updated"}
    assert {e["service"] for e in sandbox.request_log()} == {"bestbuy"}
