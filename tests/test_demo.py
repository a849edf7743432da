"""`fulfil demo`: the newcomer's first command, with nothing configured."""

from __future__ import annotations

import contextlib
import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fulfil.embedded_db import stop_server
from tests.conftest import run_fulfil
from tests.labels.helpers import json_lines


@pytest.fixture(scope="module")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("demo-data")
    yield data_dir
    stop_server(data_dir)


@pytest.fixture
def demo_env(cli_env: dict[str, str], demo_data_dir: Path, tmp_path: Path) -> dict[str, str]:
    env = {**cli_env, "FULFIL_DATA_DIR": str(demo_data_dir)}
    env.pop("FULFIL_LABELS_DIR")  # the default: ./labels in the working directory
    return env


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_with_nothing_configured_and_runs_again(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    first = run_fulfil("demo", "--orders", "6", env=demo_env, cwd=tmp_path)

    assert first.returncode == 0, first.stderr
    assert "6 of 6 orders shipped" in first.stdout
    assert "API calls logged: " in first.stdout
    pdfs = sorted((tmp_path / "labels" / "demo").glob("*.pdf"))
    assert len(pdfs) == 6
    assert all(pdf.read_bytes().startswith(b"%PDF-") for pdf in pdfs)
    rows = [line.split("\t") for line in first.stdout.splitlines()[1:7]]
    assert {row[3] for row in rows} == {"shipped"}
    assert {row[4] for row in rows} == {"tracking_updated"}
    # Three days on the sandbox's clock: every parcel has reached the end of its life (delivered,
    # or returned, or never handed over), told by the real refresher.
    assert {row[6] for row in rows} <= {"delivered", "returned", "pre_transit"}
    assert "delivered" in {row[6] for row in rows}

    second = run_fulfil("demo", "--orders", "6", env=demo_env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "6 of 6 orders shipped" in second.stdout
    assert len(list((tmp_path / "labels" / "demo").glob("*.pdf"))) == 6


@pytest.mark.slow
def test_demo_never_touches_the_configured_database_or_services(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    demo_env["FULFIL_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:9/production"
    demo_env["FULFIL_CANADAPOST_BASE_URL"] = "http://127.0.0.1:9"
    demo_env["FULFIL_BESTBUY_API_KEY"] = "a-real-key-never-to-use"
    result = run_fulfil("demo", "--orders", "2", "--json", env=demo_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json_lines(result.stdout)[-1]
    assert summary["type"] == "summary"
    assert summary["shipped"] == 2
    assert "fulfil_demo" in summary["database_url"]


@pytest.mark.slow
def test_status_after_a_demo_with_faults_shows_failures_with_reasons_and_fixes(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    result = run_fulfil("demo", "--orders", "15", "--faults", "--json", env=demo_env, cwd=tmp_path)

    assert result.returncode == 3, result.stderr
    records = json_lines(result.stdout)
    summary = records[-1]
    orders = [r for r in records if r["type"] == "order"]
    assert len(orders) == 15
    failed = [o for o in orders if o["shipment_status"] == "label_failed"]
    assert failed  # the unshippable addresses
    assert all("customer.shipping_address." in o["last_error"] for o in failed)
    assert sum(o["shipment_status"] == "order_canceled" for o in orders) == 1
    # One customer bought a monitor too (it ships alone): two parcels, each with its label.
    [split] = [o for o in orders if o["parcels"] > 1]
    assert (split["parcels"], split["shipment_status"]) == (2, "tracking_updated")
    assert summary["phases"]["labels create"].get("adopted") == 1  # the lost answer, found not re-bought
    assert summary["shipped"] == 15 - len(failed) - 1

    status_env = {**demo_env, "FULFIL_DATABASE_URL": summary["database_url"]}
    status = run_fulfil("status", "--json", env=status_env, cwd=tmp_path)
    assert status.returncode == 3
    attention = [json.loads(line) for line in status.stdout.splitlines() if '"attention"' in line]
    problems = {(a["problem"], a["order_id"]): a for a in attention}
    for order in failed:
        item = problems[("label_failed", order["order_id"])]
        assert item["reason"] == order["last_error"]
        assert item["fix"] == f"fix the order or the settings, then `fulfil labels retry {order['order_id']}`"
    canceled = next(o for o in orders if o["shipment_status"] == "order_canceled")
    assert "void" in problems[("order_canceled", canceled["order_id"])]["fix"]


@contextlib.contextmanager
def served_demo(demo_env: dict[str, str], cwd: Path, *args: str) -> Iterator[tuple[dict[str, str], str]]:
    """``fulfil demo --serve`` in a child process, as a user starts it: the environment its
    ``export`` lines tell another terminal (on top of ``demo_env``) and the first order's id,
    until the block ends (then Ctrl-C, and the demo must end cleanly)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fulfil", "demo", "--serve", *args],
        env=demo_env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        assert process.stdout is not None
        told: dict[str, str] = {}
        for line in process.stderr:
            if line.strip().startswith("export "):
                name, _, value = line.strip().removeprefix("export ").partition("=")
                told[name] = shlex.split(value)[0]
            if "Ctrl-C here ends the demo." in line:
                break
        order_id = next(line.split("\t")[0] for line in process.stdout if line.startswith("26"))
        yield {**demo_env, **told}, order_id
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0


@pytest.mark.slow
def test_demo_serve_keeps_the_sandbox_up_for_the_users_own_refresh_and_show(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    # Ten simulated hours a real second: the parcels travel while the test watches.
    with served_demo(demo_env, tmp_path, "--orders", "2", "--time-scale", "36000") as (env, order_id):
        first = run_fulfil("tracking", "refresh", "--json", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert len(json_lines(first.stdout)) == 2
        time.sleep(6)  # sixty simulated hours on
        # A minute later for the refresher too (the demo's intervals are its shortest, a minute).
        shown = run_fulfil("tracking", "show", order_id, "--refresh", "--json", env=env, cwd=tmp_path)
        [record] = json_lines(shown.stdout)
        assert record["asked_now"] is False  # asked seconds ago: the cool-down holds
        with psycopg.connect(env["FULFIL_DATABASE_URL"], autocommit=True) as conn:
            conn.execute("UPDATE carrier_tracking SET next_refresh_at = now()")
        second = run_fulfil("tracking", "refresh", "--json", env=env, cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        statuses = {record["carrier_status"] for record in json_lines(second.stdout)}
        assert statuses <= {"delivered", "returned", "pre_transit", "delivery_attempted", "exception"}
        assert statuses != {"pre_transit"}
        [after] = json_lines(run_fulfil("tracking", "show", order_id, "--json", env=env, cwd=tmp_path).stdout)
        assert after["carrier_status"] in statuses


@pytest.mark.slow
def test_after_the_purchase_on_the_served_demo_as_the_readme_walks_it(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    """The README's walkthrough, on ``demo --serve --manifest end_of_day``: void a demo label, buy
    its replacement, give Best Buy the new number, transmit the day, print, see the costs."""
    from pypdf import PdfReader

    with served_demo(demo_env, tmp_path, "--orders", "3", "--manifest", "end_of_day") as (env, order_id):
        assert env["FULFIL_CANADAPOST_MANIFEST"] == "end_of_day"

        def fulfil(*args: str) -> list[dict[str, Any]]:
            result = run_fulfil(*args, "--json", env=env, cwd=tmp_path)
            assert result.returncode == 0, (args, result.stdout, result.stderr)
            return json_lines(result.stdout)

        [before] = fulfil("orders", "show", order_id)
        old_pin = before["shipment"]["tracking_pin"]

        [voided] = fulfil("labels", "void", order_id)
        assert voided["outcome"] == "voided"  # today's group is not transmitted: a void, no refund

        [bought] = fulfil("labels", "create", "--order", order_id)
        assert bought["outcome"] == "bought"
        new_pin = bought["tracking_pin"]
        assert new_pin != old_pin

        pushed = fulfil("tracking", "push")
        assert [(r["order_id"], r["outcome"]) for r in pushed] == [(order_id, "retracked")]

        [transmitted] = fulfil("manifest", "transmit")
        assert transmitted["outcome"] == "transmitted"
        assert transmitted["included"] == 3
        # The demo's rules buy more than one service, and the sandbox, like Canada Post, may
        # split the day's labels across manifests: every one of them comes with its PDF.
        assert sum(manifest["shipments"] for manifest in transmitted["manifests"]) == 3
        for manifest in transmitted["manifests"]:
            assert Path(manifest["pdf_path"]).read_bytes().startswith(b"%PDF-")

        [printed] = fulfil("labels", "print")
        assert printed["labels"] == 3  # the voided label is not among them
        assert len(PdfReader(printed["path"]).pages) == 3
        assert fulfil("labels", "print")[0]["labels"] == 0  # printed once

        costs = fulfil("report", "costs")
        total = next(row for row in costs if row["key"] == "total")
        assert total["labels"] == 3
        assert total["refunded_labels"] == 1  # the voided label, netted out

        [after] = fulfil("orders", "show", order_id)
        assert [(label["tracking_pin"], label["outcome"]) for label in after["labels"]] == [
            (old_pin, "voided"),
            (new_pin, "active"),
        ]
        assert all(label["cost"] for label in after["labels"])

        with psycopg.connect(env["FULFIL_DATABASE_URL"], autocommit=True) as conn:
            endpoints = {
                endpoint for (endpoint,) in conn.execute("SELECT DISTINCT endpoint FROM api_calls").fetchall()
            }
            ship_confirmations = conn.execute(
                "SELECT count(*) FROM api_calls WHERE endpoint = 'OR24' AND related_id = %s", (order_id,)
            ).fetchone()
        assert {"VoidShipment", "CreateShipment", "OR23", "TransmitShipments", "GetManifest"} <= endpoints
        assert ship_confirmations == (1,)  # the replacement's number went with OR23 alone
