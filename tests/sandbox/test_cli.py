"""`fulfil sandbox serve`: light to import, helpful, and a real server that stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from typer.testing import CliRunner

from fulfil.sandbox.cli import sandbox_app
from tests.sandbox.conftest import BB_KEY


def test_importing_the_cli_pulls_in_neither_lxml_nor_the_server() -> None:
    code = (
        "import sys, fulfil.sandbox.cli\n"
        "modules = ('lxml', 'fulfil.sandbox.server', 'http.server', 'requests')\n"
        "heavy = [m for m in modules if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.unit
def test_help_texts_carry_examples() -> None:
    runner = CliRunner()
    group = runner.invoke(sandbox_app, ["--help"], env={"COLUMNS": "200"})
    assert group.exit_code == 0
    assert "Examples:" in group.output
    assert "fulfil sandbox serve --port 8765" in group.output
    serve = runner.invoke(sandbox_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert serve.exit_code == 0
    assert "Example" in serve.output
    assert "fulfil sandbox serve --port" in serve.output
    for option in (
        "--cp-drop-rate",
        "--cp-drop-mode",
        "--cp-label-not-ready",
        "--bb-retry-after",
        "--xsd-dir",
    ):
        assert option in serve.output


@pytest.mark.unit
def test_bad_options_are_usage_errors(tmp_path: object) -> None:
    runner = CliRunner()
    for arguments, complaint in (
        (["--cp-error-rate", "2"], "between 0 and 1"),
        (["--bb-drop-mode", "often"], "drop_mode"),
        (["--xsd-dir", str(tmp_path)], "lacks Canada Post XSD files"),
        (["--orders", "1", "--problem-orders", "2"], "problem_orders"),
    ):
        result = runner.invoke(sandbox_app, ["serve", "--port", "0", *arguments], env={"COLUMNS": "200"})
        assert result.exit_code == 2, result.output
        assert complaint in result.output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_runs_until_sigterm_and_exits_zero() -> None:
    port = free_port()
    code = "from fulfil.sandbox.cli import sandbox_app; sandbox_app()"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FULFIL_")}
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", str(port), "--orders", "2", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        first = process.stdout.readline()
        assert first.strip() == f"fulfil sandbox listening on http://127.0.0.1:{port}", first
        exports = [process.stdout.readline().strip() for _ in range(2)]
        assert exports == [
            f"export FULFIL_CANADAPOST_BASE_URL=http://127.0.0.1:{port}",
            f"export FULFIL_BESTBUY_BASE_URL=http://127.0.0.1:{port}",
        ]
        answer = requests.get(
            f"http://127.0.0.1:{port}/api/orders", headers={"Authorization": BB_KEY}, timeout=5
        )
        assert answer.status_code == 200
        assert answer.json()["total_count"] == 2
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        output, errors = process.communicate(timeout=5)
        assert process.returncode == 0, errors
        assert "fulfil sandbox stopped" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.unit
def test_mounts_under_a_parent_app_as_the_sandbox_group() -> None:
    import typer

    parent = typer.Typer()

    @parent.command()
    def version() -> None:
        typer.echo("1")

    parent.add_typer(sandbox_app, name="sandbox")
    result = CliRunner().invoke(parent, ["sandbox", "serve", "--help"])
    assert result.exit_code == 0
    assert "--cp-error-rate" in result.output
