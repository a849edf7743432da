"""What `fulfil config check` advises beyond right and wrong: a database that was never migrated
is said as such (run `fulfil db migrate`, exit 2) rather than a crash, and a label format that
non-contract shipping cannot honour is a warning that does not fail the check. The real CLI, a
real PostgreSQL, the sandbox over sockets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CONTRACT_ID, SENDER_ENV, run_fulfil
from tests.tracking.helpers import json_lines

# The README's example fulfil.toml: label_format = "4x6", and no contract id.
EXAMPLE_CANADAPOST_SECTION = '[canadapost]\nservice_code = "DOM.EP"\nlabel_format = "4x6"\n'


def configured_env(cli_env: dict[str, str], base_url: str) -> dict[str, str]:
    """Everything the offline checks need, non-contract (no FULFIL_CANADAPOST_CONTRACT_ID)."""
    from fulfil.sandbox.config import DEFAULT_CREDENTIALS

    return {
        **cli_env,
        **DEFAULT_CREDENTIALS,
        **SENDER_ENV,
        "FULFIL_CANADAPOST_BASE_URL": base_url,
        "FULFIL_BESTBUY_BASE_URL": base_url,
        "FULFIL_HTTP_CONNECT_TIMEOUT": "1",
        "FULFIL_HTTP_READ_TIMEOUT": "2",
    }


def check_records(stdout: str) -> dict[str, dict[str, Any]]:
    return {r["check"]: r for r in json_lines(stdout) if r["type"] == "check"}


def table_checks(stdout: str) -> dict[str, tuple[str, str]]:
    """The Checks table (tab-separated off a terminal): check name -> (ok column, message)."""
    lines = stdout.splitlines()
    start = lines.index("check\tok\tmessage")
    rows = [line.split("\t") for line in lines[start + 1 :] if line]
    return {row[0]: (row[1], row[2]) for row in rows}


# --------------------------------------------------------------------------------------------
# A database that was never migrated
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["table", "json"])
def test_online_check_on_a_never_migrated_database_says_to_run_db_migrate_and_exits_2(
    json_flag: list[str], empty_database_url: str, cli_env: dict[str, str], sandbox: Any
) -> None:
    env = {
        **configured_env(cli_env, sandbox.base_url),
        "FULFIL_CANADAPOST_CONTRACT_ID": CONTRACT_ID,
        "FULFIL_DATABASE_URL": empty_database_url,
    }

    result = run_fulfil("config", "check", "--online", *json_flag, env=env)

    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("fulfil: ")
    assert "no fulfil tables yet" in line
    assert "run `fulfil db migrate`" in line
    assert "Traceback" not in result.stderr
    assert "UndefinedTable" not in result.stderr
    assert result.stdout == ""
    # Refused before anything was asked of either service.
    assert sandbox.state()["requests"]["counts"] == {}

    # Offline, config check does not read the database: the settings and checks, exit 0.
    offline = run_fulfil("config", "check", *json_flag, env=env)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert offline.stderr == ""


# --------------------------------------------------------------------------------------------
# label_format without a contract id
# --------------------------------------------------------------------------------------------


def test_label_format_4x6_without_a_contract_id_is_a_warning_not_a_failure(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "fulfil.toml").write_text(EXAMPLE_CANADAPOST_SECTION)
    env = configured_env(cli_env, "http://127.0.0.1:9")

    as_json = run_fulfil("config", "check", "--json", env=env, cwd=tmp_path)

    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    checks = check_records(as_json.stdout)
    warning = checks["label format"]
    assert warning["ok"] is True
    assert warning["warning"] is True
    message = warning["message"]
    assert "FULFIL_CANADAPOST_LABEL_FORMAT" in message
    assert "'4x6'" in message
    assert str(tmp_path / "fulfil.toml") in message
    assert "FULFIL_CANADAPOST_CONTRACT_ID" in message
    assert "non-contract" in message
    assert "8.5x11" in message
    assert "only with a contract id" in message
    # Nothing else is a warning, and nothing fails.
    assert [name for name, r in checks.items() if r["warning"]] == ["label format"]
    assert all(r["ok"] for r in checks.values())

    table = run_fulfil("config", "check", env=env, cwd=tmp_path)
    assert table.returncode == 0, table.stdout + table.stderr
    ok, shown = table_checks(table.stdout)["label format"]
    assert ok == "warning"
    assert shown == message


@pytest.mark.parametrize(
    ("canadapost_section", "contract_id"),
    [
        (EXAMPLE_CANADAPOST_SECTION, CONTRACT_ID),  # a contract: output-format is sent as set
        ('[canadapost]\nlabel_format = "8.5x11"\n', None),  # the default, said explicitly
        ("", None),  # the default, unset
    ],
    ids=["4x6-with-contract", "8.5x11-non-contract", "unset-non-contract"],
)
def test_no_label_format_warning_when_the_format_is_honoured(
    canadapost_section: str, contract_id: str | None, cli_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "fulfil.toml").write_text(canadapost_section)
    env = configured_env(cli_env, "http://127.0.0.1:9")
    if contract_id is not None:
        env["FULFIL_CANADAPOST_CONTRACT_ID"] = contract_id

    as_json = run_fulfil("config", "check", "--json", env=env, cwd=tmp_path)

    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    checks = check_records(as_json.stdout)
    assert "label format" not in checks
    # Every check record says whether it is a warning; here none is.
    assert {r["warning"] for r in checks.values()} == {False}

    table = run_fulfil("config", "check", env=env, cwd=tmp_path)
    assert table.returncode == 0, table.stdout + table.stderr
    rows = table_checks(table.stdout)
    assert "label format" not in rows
    assert {ok for ok, _ in rows.values()} == {"yes"}


@pytest.mark.parametrize("args", [["status"], ["labels", "create"], ["tracking", "push"]])
def test_every_database_command_says_a_never_migrated_database_plainly(
    args: list[str], empty_database_url: str, cli_env: dict[str, str], sandbox: Any
) -> None:
    env = {**configured_env(cli_env, sandbox.base_url), "FULFIL_DATABASE_URL": empty_database_url}

    result = run_fulfil(*args, env=env)

    assert result.returncode == 2
    assert result.stderr == (
        "fulfil: error: the database has no fulfil tables yet: run `fulfil db migrate` to create them\n"
    )
