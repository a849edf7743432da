"""What a command says about the orders it is asked for (issue 15): an id fulfil does not have is
an error in every command that takes --order, an order with nothing to do is said, and a pipeline
whose first step passed nothing on (`--order -`, empty stdin) has nothing to do: exit 0, never
"every order". The real CLI, a real PostgreSQL, the sandboxes over sockets."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.conftest import run_fulfil
from tests.tracking.helpers import json_lines, seed_labelled


def best_buy_calls(sandbox: Any) -> dict[str, int]:
    counts = sandbox.state()["requests"]["counts"]
    return {name: n for name, n in counts.items() if name.startswith("bestbuy.")}


@pytest.mark.parametrize(
    "args",
    [
        ["tracking", "push", "--order", "-"],
        ["labels", "create", "--order", "-"],
        ["labels", "download", "--order", "-"],
        ["tracking", "push", "--order", "-", "--json"],
    ],
)
def test_an_empty_order_list_on_stdin_is_nothing_to_do_never_every_order(
    args: list[str], fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    # Labels waiting to be pushed: "every order" would push them.
    seed_labelled(db, sandbox, 2)

    result = run_fulfil(*args, env=fulfil_env, input_text="")

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == ""  # on a pipe, nothing on success
    assert best_buy_calls(sandbox) == {}
    statuses = {row[0] for row in db.execute("SELECT status FROM shipments").fetchall()}
    assert statuses == {"label_created"}


def test_a_blank_order_id_given_by_hand_is_still_a_usage_error(fulfil_env: dict[str, str]) -> None:
    result = run_fulfil("tracking", "push", "--order", " ", env=fulfil_env)
    assert result.returncode == 2
    assert "no order id was read" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["tracking", "push"],
        ["tracking", "push", "--dry-run"],
        ["labels", "download"],
        ["labels", "reconcile"],
        ["labels", "create"],
    ],
)
def test_an_order_fulfil_does_not_have_is_named_as_such_and_exits_3(
    args: list[str], fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    result = run_fulfil(*args, "--order", "NOPE-1", "--json", env=fulfil_env)

    assert result.returncode == 3, result.stderr
    [record] = json_lines(result.stdout)
    assert record["order_id"] == "NOPE-1"
    message = record.get("error") or ""
    assert "order NOPE-1 is not in the orders table" in message
    assert "no label was bought" not in message


@pytest.mark.parametrize("args", [["labels", "download"], ["labels", "reconcile"]])
def test_an_order_with_nothing_to_do_is_said_skipped_and_exits_0(
    args: list[str], fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    [made] = seed_labelled(db, sandbox, 1)

    result = run_fulfil(*args, "--order", made["order_id"], "--json", env=fulfil_env)

    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    assert (record["order_id"], record["outcome"], record["status"]) == (
        made["order_id"],
        "skipped",
        "label_created",
    )


def test_root_options_work_after_the_command_too(fulfil_env: dict[str, str], tmp_path: Any) -> None:
    metrics = tmp_path / "fulfil.prom"

    after = run_fulfil("status", "-v", "--metrics-file", str(metrics), env=fulfil_env)
    before = run_fulfil("-v", "status", env=fulfil_env)

    assert after.returncode == before.returncode == 0, after.stderr
    assert "No such option" not in after.stderr
    assert after.stdout == before.stdout
    assert 'fulfil_command_runs_total{command="status",exit_code="0"} 1' in metrics.read_text()
    # After a "--", a "-v" is an argument, not the option.
    assert run_fulfil("orders", "show", "--", "-v", env=fulfil_env).returncode == 3


def test_calls_by_a_contract_endpoint_name_find_its_non_contract_twin(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    from tests.labels.helpers import seed_orders

    fulfil_env.pop("FULFIL_CANADAPOST_CONTRACT_ID")
    seed_orders(db, 1)
    assert run_fulfil("labels", "create", env=fulfil_env).returncode == 0

    def endpoints(name: str) -> list[str]:
        result = run_fulfil("calls", "--endpoint", name, "--json", env=fulfil_env)
        assert result.returncode == 0, result.stderr
        return [call["endpoint"] for call in json_lines(result.stdout)]

    assert endpoints("CreateShipment") == ["CreateNCShipment"]
    assert endpoints("createncshipment") == ["CreateNCShipment"]
    assert endpoints("GetArtifact") == ["GetArtifact"]
    assert endpoints("Shipment") == []


def test_a_missing_sender_names_each_missing_key_once(fulfil_env: dict[str, str]) -> None:
    env = {key: value for key, value in fulfil_env.items() if not key.startswith("FULFIL_SENDER_")}
    env["FULFIL_SENDER_NAME"] = "Shipping Desk"

    result = run_fulfil("labels", "create", env=env)

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("fulfil: error: the sender address is not configured: set FULFIL_SENDER_COMPANY, ")
    assert line.count("in the config file") == 1
    assert line.count("[sender]") == 1
    assert "postal_code under [sender]" in line


def test_under_cron_a_run_with_a_failure_mails_one_line_for_it_and_nothing_else(
    fulfil_env: dict[str, str], db: psycopg.Connection, sandbox: Any
) -> None:
    from fulfil.sandbox.orders import generate_orders
    from tests.labels.helpers import insert_orders

    orders = generate_orders(3, seed=5)
    orders[2]["customer"]["shipping_address"]["zip_code"] = "N8X3P"  # not a Canadian postal code
    ids = insert_orders(db, orders)

    result = run_fulfil("labels", "create", env=fulfil_env)

    assert result.returncode == 3
    assert result.stdout == ""  # the two labels bought are not mail
    [line] = result.stderr.splitlines()
    assert line.startswith(f"fulfil: error: order {ids[2]}: ")
