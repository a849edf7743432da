"""Credentials never reach api_calls, logs (-vv) or error text, across real runs of every command
that calls out."""

from __future__ import annotations

import base64
import json
from typing import Any

import psycopg

from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from fulfil.sandbox.orders import generate_orders
from tests.conftest import run_fulfil
from tests.labels.helpers import insert_orders

PASSWORD = DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_PASSWORD"]
API_KEY = DEFAULT_CREDENTIALS["FULFIL_BESTBUY_API_KEY"]
BASIC = base64.b64encode(f"{DEFAULT_CREDENTIALS['FULFIL_CANADAPOST_USERNAME']}:{PASSWORD}".encode()).decode()


def test_secrets_stay_out_of_verbose_output_and_the_audit_table(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    orders = generate_orders(2, seed=9)
    insert_orders(db, orders)
    sandbox.add_orders(orders)  # Best Buy knows them too
    outputs = []
    for command in (
        ["config", "check", "--online"],
        ["labels", "create"],
        ["tracking", "push"],
        ["orders", "pull", "--force"],
    ):
        result = run_fulfil("-vv", *command, env=fulfil_env)
        assert result.returncode == 0, (command, result.stderr)
        assert "CanadaPost" in result.stderr or "BestBuy" in result.stderr or "Best Buy" in result.stderr
        outputs.append(result.stdout + result.stderr)
    # And when the credentials are refused, the error text names them without showing them.
    refused = run_fulfil(
        "-vv", "labels", "create", env={**fulfil_env, "FULFIL_CANADAPOST_PASSWORD": PASSWORD + "x"}
    )
    outputs.append(refused.stdout + refused.stderr)

    everything = "\n".join(outputs)
    table = json.dumps([r[0] for r in db.execute("SELECT row_to_json(a) FROM api_calls a").fetchall()])
    assert "Authorization" in everything  # the headers were logged …
    for secret in (PASSWORD, API_KEY, BASIC):
        assert secret not in everything  # … without their values
        assert secret not in table
    assert db.execute("SELECT count(*) FROM api_calls").fetchone()[0] >= 10
