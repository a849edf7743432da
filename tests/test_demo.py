"""`fulfil demo`: the newcomer's first command, with nothing configured."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

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


@pytest.mark.slow
def test_demo_serve_keeps_the_sandbox_up_for_the_users_own_refresh_and_show(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    # Ten simulated hours a real second: the parcels travel while the test watches.
    process = subprocess.Popen(
        [sys.executable, "-m", "fulfil", "demo", "--orders", "2", "--serve", "--time-scale", "36000"],
        env=demo_env,
        cwd=tmp_path,
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
                told[name] = value.strip("'")
            if "Ctrl-C here ends the demo." in line:
                break
        order_id = next(line.split("\t")[0] for line in process.stdout if line.startswith("26"))
        env = {**demo_env, **told}
        first = run_fulfil("tracking", "refresh", "--json", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert len(json_lines(first.stdout)) == 2
        time.sleep(6)  # sixty simulated hours on
        # A minute later for the refresher too (the demo's intervals are its shortest, a minute).
        shown = run_fulfil("tracking", "show", order_id, "--refresh", "--json", env=env, cwd=tmp_path)
        [record] = json_lines(shown.stdout)
        assert record["asked_now"] is False  # asked seconds ago: the cool-down holds
        with psycopg.connect(told["FULFIL_DATABASE_URL"], autocommit=True) as conn:
            conn.execute("UPDATE carrier_tracking SET next_refresh_at = now()")
        second = run_fulfil("tracking", "refresh", "--json", env=env, cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        statuses = {record["carrier_status"] for record in json_lines(second.stdout)}
        assert statuses <= {"delivered", "returned", "pre_transit", "delivery_attempted", "exception"}
        assert statuses != {"pre_transit"}
        [after] = json_lines(run_fulfil("tracking", "show", order_id, "--json", env=env, cwd=tmp_path).stdout)
        assert after["carrier_status"] in statuses
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0
