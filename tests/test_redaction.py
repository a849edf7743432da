"""Credentials never reach api_calls, logs (-vv) or error text, across real runs of every command
that calls out."""

from __future__ import annotations

import base64
import html
import json
import re
import urllib.parse
from typing import Any

import psycopg
import pytest

from fulfil.audit.log import ApiCallLog
from fulfil.audit.redaction import Redactor, redactor_from_environment
from fulfil.audit.sender import AuditedHttp
from fulfil.audit.transport import BasicAuth, RawKeyAuth
from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from fulfil.sandbox.orders import generate_orders
from tests.conftest import run_fulfil
from tests.labels.helpers import insert_orders
from tests.local_http import Received, Reply, ScriptedServer

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


# ------------------------------------------------------------------------------------------------
# Every form a secret takes on the wire or in an echoed page (defect 11)
# ------------------------------------------------------------------------------------------------

CP_USER = "cp-user-7f3a"
# Characters that every encoding changes: '/', space, '+', '&', '"', '<', and a non-ASCII letter.
CP_PASSWORD = 'pa/ss wörd+9&"<x'
BB_KEY = "bb/key+51c0e2aa77"


def every_form(secret: str) -> set[str]:
    """The forms the test itself expects to be scrubbed, worked out independently of fulfil."""
    forms = {secret}
    for encoded in (
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret),
        urllib.parse.quote_plus(secret),
    ):
        forms |= {encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)}
    forms.add(html.escape(secret))
    forms.add(html.escape(secret, quote=False))
    json_escaped = json.dumps(secret)[1:-1]
    forms |= {json_escaped, json_escaped.replace("/", "\\/"), json.dumps(secret, ensure_ascii=False)[1:-1]}
    return forms


def base64_forms(text: str) -> set[str]:
    forms: set[str] = set()
    for encoding in ("utf-8", "latin-1"):
        raw = text.encode(encoding)
        for token in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
            forms |= {token, token.rstrip("=")}
    return forms


def all_secret_forms() -> set[str]:
    pair = f"{CP_USER}:{CP_PASSWORD}"
    forms = every_form(CP_PASSWORD) | every_form(BB_KEY) | every_form(pair)
    for token in base64_forms(pair) | base64_forms(CP_PASSWORD) | base64_forms(BB_KEY):
        forms |= every_form(token)
    return forms


def stored_strings(db: psycopg.Connection) -> list[str]:
    """Every string in every api_calls column (jsonb walked), as stored: no re-encoding."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif value is not None:
            found.append(str(value))

    cur = db.execute("SELECT * FROM api_calls ORDER BY call_id")
    for row in cur.fetchall():
        for value in row:
            walk(value)
    return found


def echo_page(request: Received) -> Reply:
    """A careless gateway's error page: the request's Authorization header and the credentials
    in every encoding a template engine or a JSON serializer would give them."""
    authorization = request.headers.get("Authorization", "")
    page = "\n".join(
        [
            f"<p>You sent Authorization: {authorization}</p>",
            f"<p>escaped: {html.escape(CP_PASSWORD)} key {html.escape(BB_KEY)}</p>",
            f"<a href='/retry?password={urllib.parse.quote_plus(CP_PASSWORD)}"
            f"&k={urllib.parse.quote(BB_KEY, safe='')}'>",
            f"<a href='/again?p={urllib.parse.quote(CP_PASSWORD, safe='').lower()}'>",
            "<script>var debug = " + json.dumps({"password": CP_PASSWORD, "key": BB_KEY}).replace("/", "\\/"),
            "</script>",
        ]
    )
    return Reply(401, page.encode(), {"Content-Type": "text/html", "X-Echo": authorization})


def send_to_echoing_server(audit: ApiCallLog) -> ScriptedServer:
    with ScriptedServer(echo_page) as server:
        canadapost = AuditedHttp(
            audit,
            service="CanadaPost",
            origin=server.url,
            auth=BasicAuth(CP_USER, CP_PASSWORD),
            connect_timeout=1.0,
            read_timeout=2.0,
        )
        bestbuy = AuditedHttp(
            audit,
            service="BestBuy",
            origin=server.url,
            auth=RawKeyAuth(BB_KEY),
            connect_timeout=1.0,
            read_timeout=2.0,
        )
        canadapost.send("GET", f"{server.url}/rs/artifact/x/0", endpoint="GetArtifact", related_id="O-1")
        bestbuy.send("GET", f"{server.url}/api/orders", endpoint="OR11")
    return server


def assert_no_secret_stored(db: psycopg.Connection, server: ScriptedServer) -> None:
    assert server.received[0].headers["Authorization"].startswith("Basic ")  # it was sent …
    assert server.received[1].headers["Authorization"] == BB_KEY
    stored = stored_strings(db)
    assert any("[redacted]" in value for value in stored)  # … the pages were stored …
    for form in all_secret_forms():
        leaked = [value for value in stored if form in value]
        assert not leaked, f"{form!r} stored in {leaked[0][:200]!r}"  # … without any form of a secret


def test_an_echoed_authorization_header_and_encoded_secrets_never_reach_api_calls(
    database_url: str, db: psycopg.Connection
) -> None:
    # The way commands build the audit log: the settings' secrets and the Canada Post key pair.
    audit = ApiCallLog(
        database_url,
        redactor=Redactor([CP_USER, CP_PASSWORD, BB_KEY], credential_pairs=[(CP_USER, CP_PASSWORD)]),
    )
    try:
        server = send_to_echoing_server(audit)
    finally:
        audit.close()
    assert_no_secret_stored(db, server)


def test_the_audit_log_scrubs_the_credentials_it_sees_sent_even_when_not_told_them(
    database_url: str, db: psycopg.Connection
) -> None:
    # As commands built it before: the log knew only the raw secrets, not the Basic token. It still
    # scrubs every credential it saw go out in the request's headers.
    audit = ApiCallLog(database_url, redactor=Redactor([CP_USER, CP_PASSWORD, BB_KEY]))
    try:
        server = send_to_echoing_server(audit)
    finally:
        audit.close()
    assert_no_secret_stored(db, server)


@pytest.mark.unit
def test_every_form_of_a_secret_is_scrubbed_from_text_and_bytes() -> None:
    redactor = Redactor([BB_KEY]).with_credentials(CP_USER, CP_PASSWORD)
    for form in sorted(all_secret_forms()):
        text = f"before {form} after"
        assert redactor.text(text) == "before [redacted] after", form
        assert redactor.bytes(text.encode()) == b"before [redacted] after", form
    assert redactor.text(None) is None
    assert redactor.bytes(b"") == b""


@pytest.mark.unit
def test_the_longest_form_is_replaced_first() -> None:
    redactor = Redactor(["abcd"], credential_pairs=[("user", "abcd")])
    assert redactor.text("x user:abcd y abcd z") == "x [redacted] y [redacted] z"
    # A secret inside a longer one: the longer wins, nothing of it is left behind.
    nested = Redactor(["abcd", "xxabcdyy"])
    assert nested.text("1 xxabcdyy 2") == "1 [redacted] 2"
    assert nested.bytes(b"1 xxabcdyy 2") == b"1 [redacted] 2"


@pytest.mark.unit
def test_short_values_are_not_secrets_and_redactors_are_immutable() -> None:
    base = Redactor(["abc", ""])
    assert base.text("abc") == "abc"  # too short to be a credential, and would scrub everything
    more = base.with_secrets(["s3cret"])
    assert more.text("s3cret") == "[redacted]"
    assert base.text("s3cret") == "s3cret"
    assert base.with_credentials("u", "passw0rd").text("dTpwYXNzdzByZA==") == "[redacted]"


@pytest.mark.unit
def test_headers_and_urls() -> None:
    redactor = Redactor([BB_KEY])
    headers = redactor.headers({"Authorization": "anything", "X-Api-Key": "k", "X-Echo": f"was {BB_KEY}"})
    assert headers == {"Authorization": "[redacted]", "X-Api-Key": "[redacted]", "X-Echo": "was [redacted]"}
    url = redactor.url(f"https://u:p@h.example/x?api_key=1&q={urllib.parse.quote(BB_KEY, safe='')}")
    assert url == "https://[redacted]@h.example/x?api_key=%5Bredacted%5D&q=[redacted]"


@pytest.mark.unit
def test_a_large_body_is_scrubbed_in_one_pass() -> None:
    redactor = Redactor([CP_USER, CP_PASSWORD, BB_KEY], credential_pairs=[(CP_USER, CP_PASSWORD)])
    # 20 MB of text full of near misses: every form's first characters, never a whole form.
    near_misses = "".join(form[:6] + "~" for form in sorted(all_secret_forms()))
    filler = (near_misses * (20 * 1024 * 1024 // len(near_misses) + 1)).encode()[: 20 * 1024 * 1024]
    body = filler + BB_KEY.encode() + filler[:1000]
    scrubbed = redactor.bytes(body)
    assert BB_KEY.encode() not in scrubbed
    assert len(scrubbed) == len(body) - len(BB_KEY) + len(b"[redacted]")


@pytest.mark.unit
def test_the_redactor_from_the_environment_knows_every_secret() -> None:
    environ = {
        "FULFIL_CANADAPOST_USERNAME": CP_USER,
        "FULFIL_CANADAPOST_PASSWORD": CP_PASSWORD,
        "FULFIL_BESTBUY_API_KEY": BB_KEY,
        "FULFIL_DATABASE_URL": "postgresql://fulfil:db%2Fpass%40word@db.example:5432/fulfil",
        "FULFIL_LABELS_DIR": "labels",
    }
    redactor = redactor_from_environment(environ)
    for form in sorted(all_secret_forms()):
        assert redactor.text(f"<{form}>") == "<[redacted]>", form
    for form in ("db/pass@word", "db%2Fpass%40word", "db%2fpass%40word"):
        assert redactor.text(f"x {form} y") == "x [redacted] y", form
    assert redactor.text("labels") == "labels"  # not a secret
    # A password libpq would misread (an unencoded '/'): its pieces are scrubbed too, since an
    # error message may quote one as a port or host name.
    hostile = redactor_from_environment({"FULFIL_DATABASE_URL": "postgresql://u:Sup3r/SecretPw@h/db"})
    assert "Sup3r" not in (hostile.text('invalid port "Sup3r"') or "")
    assert "SecretPw" not in (hostile.text('host "SecretPw@h"') or "")
    keyword = redactor_from_environment({"FULFIL_DATABASE_URL": "host=h password='it\\'s secret' dbname=d"})
    assert keyword.text("it's secret") == "[redacted]"
