"""`--json` works on every command, `fulfil sandbox serve` and `fulfil db stop` included: stdout
carries only JSON lines, stderr only `fulfil: LEVEL: message` lines. Real processes, no mocks."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from fulfil.embedded_db import server_pid
from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from tests.conftest import run_fulfil, start_fulfil

START_TIMEOUT_S = 30


def first_line(process: subprocess.Popen[str]) -> str:
    """The first line the process writes on stdout; fails (rather than hangs) if none comes."""
    assert process.stdout is not None
    stdout = process.stdout
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT_S)
    assert got, f"no line on stdout within {START_TIMEOUT_S} s"
    return got[0]


def stop_and_collect(process: subprocess.Popen[str], signum: int) -> tuple[int, str, str]:
    process.send_signal(signum)
    rest, errors = process.communicate(timeout=START_TIMEOUT_S)
    return process.returncode, rest, errors


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object: fails on any line that is not one."""
    records = []
    for line in text.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    return records


def assert_only_fulfil_lines(stderr: str) -> None:
    strays = [line for line in stderr.splitlines() if not line.startswith("fulfil: ")]
    assert not strays, f"stderr lines that are not `fulfil: …`: {strays}"


@pytest.mark.parametrize(
    ("arguments", "signum"),
    [
        (["sandbox", "serve", "--json"], signal.SIGTERM),
        (["--json", "sandbox", "serve"], signal.SIGINT),
    ],
    ids=["serve --json, SIGTERM", "fulfil --json serve, SIGINT"],
)
def test_sandbox_serve_json_is_one_line_listening_then_one_stopped(
    arguments: list[str], signum: int, cli_env: dict[str, str]
) -> None:
    process = start_fulfil(
        *arguments,
        "--port",
        "0",
        "--seed",
        "11",
        "--orders",
        "2",
        "--tracking-scenario",
        "261250893-A=returned",
        "--bb-throttle-limit",
        "OR11=1/60",
        env=cli_env,
    )
    try:
        line = first_line(process)
        assert line.endswith("\n")
        listening = json.loads(line)
        port = listening["port"]
        assert isinstance(port, int)
        assert port > 0
        url = f"http://127.0.0.1:{port}"
        assert listening["event"] == "listening"
        assert listening["url"] == url
        assert listening["host"] == "127.0.0.1"
        assert (listening["seed"], listening["orders"], listening["orders_seed"]) == (11, 2, 1)
        assert listening["environment"] == {
            "FULFIL_CANADAPOST_BASE_URL": url,
            "FULFIL_BESTBUY_BASE_URL": url,
            **DEFAULT_CREDENTIALS,
        }
        assert listening["credentials"] == "sandbox"
        assert listening["xsd_dir"] is None
        assert listening["tracking"] == {
            "default": "mix",
            "no_history_hours": 1.0,
            "orders": {"261250893-A": "returned"},
        }
        assert listening["canadapost_throttle"]["window_s"] == 60.0
        assert listening["canadapost_throttle"]["groups"]["E"] == 20
        assert listening["bestbuy_throttle"] == {"OR11": {"calls": 1, "window_s": 60.0}}
        assert listening["state_url"] == f"{url}/_sandbox/state"

        state = requests.get(listening["state_url"], timeout=10)
        assert state.status_code == 200
        assert isinstance(state.json(), dict)
        orders = requests.get(
            f"{url}/api/orders",
            headers={"Authorization": listening["environment"]["FULFIL_BESTBUY_API_KEY"]},
            timeout=10,
        )
        assert orders.status_code == 200
        assert orders.json()["total_count"] == 2

        code, rest, errors = stop_and_collect(process, signum)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert code == 0, errors
    assert json_lines(rest) == [{"event": "stopped", "url": url}]
    assert not any(text in rest for text in ("export ", "# ")), rest
    assert_only_fulfil_lines(errors)
    assert errors == ""


def test_sandbox_serve_json_with_fulfils_own_credentials(cli_env: dict[str, str]) -> None:
    env = {
        **cli_env,
        "FULFIL_CANADAPOST_USERNAME": "someone",
        "FULFIL_CANADAPOST_PASSWORD": "their-password",
        "FULFIL_CANADAPOST_CUSTOMER_NUMBER": "1234567",
        "FULFIL_BESTBUY_API_KEY": "their-shop-key",
    }
    process = start_fulfil("sandbox", "serve", "--port", "0", "--json", "--no-cp-throttle", env=env)
    try:
        listening = json.loads(first_line(process))
        url = listening["url"]
        assert listening["environment"] == {
            "FULFIL_CANADAPOST_BASE_URL": url,
            "FULFIL_BESTBUY_BASE_URL": url,
        }
        assert listening["credentials"] == "environment"
        assert listening["canadapost_throttle"] is None
        assert listening["orders"] == 0
        assert listening["orders_seed"] is None
        code, rest, errors = stop_and_collect(process, signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert code == 0, errors
    assert json_lines(rest) == [{"event": "stopped", "url": url}]
    assert errors == ""


# The sandbox's own app, run alone as tests/sandbox/test_cli.py does: no fulfil error handler.
ALONE = ["-c", "from fulfil.sandbox.cli import sandbox_app; sandbox_app()"]


@pytest.mark.parametrize("program", [["-m", "fulfil", "sandbox"], ALONE], ids=["fulfil", "sandbox app alone"])
def test_sandbox_serve_json_whose_reader_went_away_stops_quietly(
    program: list[str], cli_env: dict[str, str]
) -> None:
    # `fulfil sandbox serve --json | head -1`: the reader is gone when "stopped" is written.
    process = subprocess.Popen(
        [sys.executable, *program, "serve", "--port", "0", "--json"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert json.loads(first_line(process))["event"] == "listening"
        assert process.stdout is not None
        process.stdout.close()
        process.send_signal(signal.SIGTERM)
        assert process.stderr is not None
        errors = process.stderr.read()
        code = process.wait(timeout=START_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
    assert code == 0, errors
    assert errors == ""


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_sandbox_serve_that_cannot_listen_says_so_on_one_error_line(
    json_flag: list[str], cli_env: dict[str, str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_fulfil("sandbox", "serve", "--port", str(port), *json_flag, env=cli_env, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"fulfil: error: cannot listen on 127.0.0.1:{port}: "), lines[0]


@pytest.mark.parametrize(
    "arguments",
    [["db", "stop", "--json"], ["--json", "db", "stop"]],
    ids=["db stop --json", "fulfil --json db stop"],
)
def test_db_stop_json_when_no_embedded_server_runs(
    arguments: list[str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    # A database elsewhere changes nothing: `db stop` is about the embedded server in the data dir.
    env = {**cli_env, "FULFIL_DATABASE_URL": f"postgresql://nobody@/nowhere?host={tmp_path}&port=1"}
    data_dir = Path(env["FULFIL_DATA_DIR"])
    result = run_fulfil(*arguments, env=env)
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [
        {"stopped": False, "data_dir": str(data_dir), "pgdata": str(data_dir / "pgdata")}
    ]
    assert result.stderr == ""


def test_db_stop_without_json_prints_nothing_on_stdout(cli_env: dict[str, str]) -> None:
    result = run_fulfil("db", "stop", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert_only_fulfil_lines(result.stderr)


@pytest.mark.slow
def test_db_stop_json_stops_the_running_embedded_server(cli_env: dict[str, str]) -> None:
    data_dir = Path(cli_env["FULFIL_DATA_DIR"])
    try:
        started = run_fulfil("db", "migrate", env=cli_env)
        assert started.returncode == 0, started.stderr
        assert server_pid(data_dir) is not None
    finally:
        stopped = run_fulfil("db", "stop", "--json", env=cli_env)
    assert stopped.returncode == 0, stopped.stderr
    assert json_lines(stopped.stdout) == [
        {"stopped": True, "data_dir": str(data_dir), "pgdata": str(data_dir / "pgdata")}
    ]
    assert stopped.stderr == ""
    assert server_pid(data_dir) is None

    again = run_fulfil("db", "stop", "--json", env=cli_env)
    assert again.returncode == 0, again.stderr
    assert json_lines(again.stdout)[0]["stopped"] is False
