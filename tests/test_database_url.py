"""The database password is never shown (defect 12): in messages, in `fulfil config check`, in any
error of the real command line; a malformed URL is a configuration error (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from fulfil.config import load_settings
from fulfil.db import check_database_url, connect, database_password_forms, describe_url
from fulfil.errors import ConfigError, DatabaseError
from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from tests.conftest import SENDER_ENV, run_fulfil
from tests.local_http import closed_port_url

# (as configured, as it may be shown)
MASKED = [
    ("postgresql://fulfil:s3cretPw@db.example:5432/fulfil", "postgresql://fulfil:***@db.example:5432/fulfil"),
    ("postgres://fulfil:s3cret%2Fpw%40x@db.example/fulfil", "postgres://fulfil:***@db.example/fulfil"),
    ("postgresql://fulfil:Sup3r/SecretPw@127.0.0.1:1/db", "postgresql://fulfil:***@127.0.0.1:1/db"),
    ("postgresql://fulfil:Sup3r@SecretPw@127.0.0.1:1/db", "postgresql://fulfil:***@127.0.0.1:1/db"),
    ("postgresql://fulfil:a/b@c/d@127.0.0.1/db", "postgresql://fulfil:***@127.0.0.1/db"),
    ("postgresql://fulfil:Sup3r%zzSecretPw@127.0.0.1:1/db", "postgresql://fulfil:***@127.0.0.1:1/db"),
    ("postgresql://fulfil:pa?ss@db.example/db", "postgresql://fulfil:***@db.example/db"),
    ("postgresql://fulfil:@db.example/db", "postgresql://fulfil:@db.example/db"),
    (
        "postgresql://fulfil@db.example/db?sslmode=require&password=Other5ecret",
        "postgresql://fulfil@db.example/db?sslmode=require&password=***",
    ),
    (
        "postgresql://db.example/db?p%61ssword=Other5ecret&sslmode=require",
        "postgresql://db.example/db?p%61ssword=***&sslmode=require",
    ),
    # A keyword libpq does not know, a stray word: perhaps a password out of place, masked too.
    ("postgresql://db.example/db?pwd=s3cretPw", "postgresql://db.example/db?pwd=***"),
    ("host=db.example s3cretPw dbname=fulfil", "host=db.example *** dbname=fulfil"),
    ("host=db.example passwd=s3cretPw", "host=db.example passwd=***"),
    ("Sup3rSecretPw", "***"),
    (
        "host=db.example port=5432 user=fulfil password=s3cretPw dbname=fulfil",
        "host=db.example port=5432 user=fulfil password=*** dbname=fulfil",
    ),
    ("host=db.example password = s3cretPw dbname=fulfil", "host=db.example password = *** dbname=fulfil"),
    ("host=db.example password='s3cret pw' dbname=fulfil", "host=db.example password=*** dbname=fulfil"),
    ("host=db.example password='it\\'s s3cret' dbname=fulfil", "host=db.example password=*** dbname=fulfil"),
    ("host=db.example password=s3cret\\ pw dbname=fulfil", "host=db.example password=*** dbname=fulfil"),
    ("host=db.example PASSWORD='unterminated s3cret", "host=db.example PASSWORD=***"),
    ("host=db.example sslpassword=keyPass1 dbname=d", "host=db.example sslpassword=*** dbname=d"),
    # Nothing to hide: shown as it is.
    ("postgresql://fulfil@db.example:5432/fulfil", "postgresql://fulfil@db.example:5432/fulfil"),
    ("postgresql:///fulfil?host=/run/postgresql", "postgresql:///fulfil?host=/run/postgresql"),
    ("host=db.example dbname=fulfil", "host=db.example dbname=fulfil"),
    # On one line, whatever it holds.
    ("host=db.example\ndbname=fulfil", "host=db.example\\x0adbname=fulfil"),
]
SECRET_PIECES = ["s3cret", "Sup3r", "SecretPw", "Other5ecret", "keyPass1", "pa?ss", "a/b@c/d"]


@pytest.mark.unit
@pytest.mark.parametrize(("url", "shown"), MASKED)
def test_the_password_is_masked_in_every_form(url: str, shown: str) -> None:
    assert describe_url(url) == shown
    for piece in SECRET_PIECES:
        assert piece not in describe_url(url)


@pytest.mark.unit
@pytest.mark.parametrize(("url", "shown"), MASKED)
def test_the_settings_table_shows_the_masked_url(url: str, shown: str) -> None:
    # mask() would have shown the last two characters, the password's in a key/value string.
    setting = load_settings({"FULFIL_DATABASE_URL": url}, cwd=Path("/")).get("FULFIL_DATABASE_URL")
    assert setting.display() == describe_url(setting.value or "")


@pytest.mark.unit
def test_the_password_forms_cover_what_libpq_and_the_user_meant() -> None:
    assert set(database_password_forms("postgresql://u:s3cret%2Fpw@h/db")) >= {"s3cret%2Fpw", "s3cret/pw"}
    pieces = database_password_forms("postgresql://u:Sup3r/SecretPw@h/db")
    assert {"Sup3r/SecretPw", "Sup3r", "SecretPw"} <= set(pieces)
    assert "it's s3cret" in database_password_forms("host=h password='it\\'s s3cret'")
    assert database_password_forms("postgresql://u@h/db") == []


@pytest.mark.unit
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://fulfil:s3cret%2Fpw%40x@db.example:5432/fulfil",
        "postgresql://fulfil@db.example/fulfil?password=s3cret",
        "postgresql:///fulfil?host=/run/postgresql",
        "host=db.example password='s3cret pw' dbname=fulfil",
        "postgresql://fulfil:pa?ss@db.example/db",
    ],
)
def test_well_formed_urls_pass_the_check(url: str) -> None:
    check_database_url(url)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://fulfil:Sup3r/SecretPw@127.0.0.1:1/db", "'/' as %2F"),
        ("postgresql://fulfil:Sup3r@SecretPw@127.0.0.1:1/db", "'@' as %40"),
        ("postgresql://fulfil:a/b@c/d@127.0.0.1/db", "'/' as %2F and '@' as %40"),
        ("postgresql://fulfil:Sup3r%zzSecretPw@127.0.0.1:1/db", "write a literal '%' as %25"),
        ("postgresql://fulfil:Sup3r%00SecretPw@127.0.0.1:1/db", "%00"),
        ("postgresql://fulfil:Sup3rSecretPw@127.0.0.1:1/db?bogus=1", "postgresql://user:password@host"),
        ("host=127.0.0.1 password=Sup3rSecretPw junk", "key=value"),
        ("host=127.0.0.1 password='Sup3r SecretPw", "key=value"),
        ("Sup3rSecretPw", "key=value"),
        ("host=127.0.0.1\npassword=Sup3rSecretPw", "control character"),
        ("  ", "empty"),
    ],
)
def test_a_malformed_url_is_one_clear_configuration_error(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_database_url(url)
    message = str(raised.value)
    assert says in message
    assert "FULFIL_DATABASE_URL" in message
    assert "\n" not in message
    for piece in SECRET_PIECES:
        assert piece not in message
    # connect() checks first: the same error, nothing sent to any server.
    with pytest.raises(ConfigError):
        connect(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://fulfil:Sup3rSecretPw@127.0.0.1:{port}/fulfil",
        "host=127.0.0.1 port={port} user=fulfil password=Sup3rSecretPw dbname=fulfil",
        "host=127.0.0.1 port={port} password='Sup3r SecretPw' dbname=fulfil",
        "postgresql://fulfil@127.0.0.1:{port}/fulfil?password=Sup3rSecretPw",
    ],
)
def test_a_database_that_cannot_be_reached_is_named_without_its_password(url: str) -> None:
    port = closed_port_url().rsplit(":", 1)[1]
    with pytest.raises(DatabaseError) as raised:
        connect(url.format(port=port))
    message = str(raised.value)
    assert message.startswith("cannot connect to the database (")
    assert "***" in message
    for piece in SECRET_PIECES:
        assert piece not in message


def test_connect_takes_a_row_factory(database_url: str) -> None:
    with connect(database_url, row_factory=dict_row) as conn:
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    with connect(database_url, autocommit=True, application_name="fulfil-test") as conn:
        assert conn.autocommit
        assert conn.execute("SHOW application_name").fetchone() == ("fulfil-test",)
        assert isinstance(conn, psycopg.Connection)


# ------------------------------------------------------------------------------------------------
# The real command line
# ------------------------------------------------------------------------------------------------

HOSTILE = [
    "host=127.0.0.1 port={port} user=fulfil password=Sup3rSecretPw dbname=fulfil",
    "host=127.0.0.1 port={port} password='Sup3r SecretPw' dbname=fulfil",
    "postgresql://fulfil@127.0.0.1:{port}/fulfil?password=Sup3rSecretPw",
    "postgresql://fulfil:Sup3r/SecretPw@127.0.0.1:{port}/fulfil",
    "postgresql://fulfil:Sup3r@SecretPw@127.0.0.1:{port}/fulfil",
    "postgresql://fulfil:Sup3r%zzSecretPw@127.0.0.1:{port}/fulfil",
    "host=127.0.0.1 port={port} password=Sup3rSecretPw junk",
]
MALFORMED = {3, 4, 5, 6}


def assert_one_clear_line_without_the_password(stdout: str, stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("fulfil: error: "), stderr
    assert "database" in lines[0].lower() or "FULFIL_DATABASE_URL" in lines[0]
    for piece in ("Sup3r", "SecretPw"):
        assert piece not in stdout + stderr


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_the_command_line_never_shows_the_database_password(
    index: int, cli_env: dict[str, str], tmp_path: Path
) -> None:
    unreachable = closed_port_url()
    url = HOSTILE[index].format(port=unreachable.rsplit(":", 1)[1])
    env = {
        **cli_env,
        **DEFAULT_CREDENTIALS,
        **SENDER_ENV,
        "FULFIL_DATABASE_URL": url,
        "FULFIL_CANADAPOST_BASE_URL": unreachable,
        "FULFIL_BESTBUY_BASE_URL": unreachable,
        "FULFIL_HTTP_CONNECT_TIMEOUT": "1",
        "FULFIL_HTTP_READ_TIMEOUT": "1",
    }
    for command in (["db", "status"], ["labels", "create"], ["config", "check", "--online"]):
        result = run_fulfil(*command, env=env, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert_one_clear_line_without_the_password(result.stdout, result.stderr)

    # Offline, `config check` shows the URL masked; a malformed one is a failed check (exit 2).
    offline = run_fulfil("config", "check", "--json", env=env, cwd=tmp_path)
    for piece in ("Sup3r", "SecretPw"):
        assert piece not in offline.stdout + offline.stderr
    [shown] = [
        record["value"]
        for record in map(json.loads, offline.stdout.splitlines())
        if record.get("name") == "FULFIL_DATABASE_URL"
    ]
    assert shown == describe_url(url)
    if index in MALFORMED:
        assert offline.returncode == 2, offline.stdout
        assert "FULFIL_DATABASE_URL" in offline.stdout + offline.stderr
