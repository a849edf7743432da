"""The audited HTTP layer over real sockets and a real database: write-ahead rows, redaction,
failure classes, retries, body storage."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fulfil.audit.log import ApiCallLog
from fulfil.audit.outcome import FailureClass, HttpOutcome
from fulfil.audit.redaction import Redactor
from fulfil.audit.retry import RetryPolicy
from fulfil.audit.sender import AuditedHttp
from fulfil.audit.transport import BasicAuth, RawKeyAuth
from tests.local_http import (
    Received,
    Reply,
    ScriptedServer,
    closed_port_url,
    resetting_server,
    scripted,
    silent_server,
)

USER = "cp-user-7f3a"
PASSWORD = "cp-pass-9b21e4d0"
API_KEY = "bb-key-51c0e2aa77"


@pytest.fixture
def audit(database_url: str) -> Iterator[ApiCallLog]:
    log = ApiCallLog(database_url, redactor=Redactor([API_KEY, *Redactor.basic_auth_forms(USER, PASSWORD)]))
    yield log
    log.close()


class ToTheServerAsked:
    """An AuditedHttp configured for whichever local server a test sends to (these tests are not
    about origins; tests/test_http_faults.py is)."""

    def __init__(self, audit: ApiCallLog, service: str, auth: object, read_timeout: float) -> None:
        self.audit, self.service, self.auth, self.read_timeout = audit, service, auth, read_timeout

    def send(self, method: str, url: str, **kwargs: object) -> HttpOutcome:
        http = AuditedHttp(
            self.audit,
            service=self.service,
            origin=url,
            auth=self.auth,  # type: ignore[arg-type]
            connect_timeout=1.0,
            read_timeout=self.read_timeout,
        )
        try:
            return http.send(method, url, **kwargs)  # type: ignore[arg-type]
        finally:
            http.close()


def canadapost(audit: ApiCallLog, read_timeout: float = 2.0) -> ToTheServerAsked:
    return ToTheServerAsked(audit, "CanadaPost", BasicAuth(USER, PASSWORD), read_timeout)


def bestbuy(audit: ApiCallLog) -> ToTheServerAsked:
    return ToTheServerAsked(audit, "BestBuy", RawKeyAuth(API_KEY), 2.0)


def rows(db: psycopg.Connection) -> list[dict[str, object]]:
    cur = db.execute("SELECT row_to_json(a) FROM api_calls a ORDER BY call_id")
    return [r[0] for r in cur.fetchall()]


XML = '<?xml version="1.0" encoding="UTF-8"?><shipment xmlns="http://www.canadapost.ca/ws/shipment-v8"/>'


def test_a_request_that_never_gets_an_answer_still_leaves_its_row(
    audit: ApiCallLog, db: psycopg.Connection
) -> None:
    http = canadapost(audit, read_timeout=0.3)
    with silent_server() as url:
        outcome = http.send(
            "POST",
            f"{url}/rs/1/1/shipment",
            endpoint="CreateShipment",
            related_id="261250893-A",
            headers={"Content-Type": "application/vnd.cpc.shipment-v8+xml"},
            data=XML,
        )
    assert outcome.failure is FailureClass.INDETERMINATE
    assert "read timeout" in (outcome.error or "")
    [row] = rows(db)
    assert row["request_payload"] == XML  # XML kept as a JSON string
    assert row["related_id"] == "261250893-A"
    assert row["method"] == "POST"
    assert row["status_code"] is None
    assert row["is_success"] is False
    assert row["failure_class"] == "indeterminate"
    assert "read timeout" in str(row["error"])
    assert row["started_at"] is not None
    assert row["finished_at"] is not None


def test_the_row_exists_before_the_request_reaches_the_server(
    audit: ApiCallLog, database_url: str, db: psycopg.Connection
) -> None:
    seen_rows_at_arrival: list[int] = []

    def look_in_the_table(request: Received) -> Reply:
        with psycopg.connect(database_url) as conn:
            seen_rows_at_arrival.append(
                conn.execute("SELECT count(*) FROM api_calls WHERE finished_at IS NULL").fetchone()[0]
            )
        return Reply(200, b"{}", {"Content-Type": "application/json"})

    with ScriptedServer(look_in_the_table) as server:
        bestbuy(audit).send("GET", f"{server.url}/api/account", endpoint="A01")
    assert seen_rows_at_arrival == [1]
    assert rows(db)[0]["finished_at"] is not None


def test_a_workflow_rollback_does_not_erase_api_calls(audit: ApiCallLog, database_url: str) -> None:
    with psycopg.connect(database_url) as workflow, scripted(Reply(204)) as server:
        workflow.execute("INSERT INTO orders (order_id, status) VALUES ('R-1', 'accepted')")
        bestbuy(audit).send("PUT", f"{server.url}/api/orders/R-1/ship", endpoint="OR24", related_id="R-1")
        workflow.rollback()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (0,)
        assert conn.execute("SELECT endpoint, status_code, is_success FROM api_calls").fetchall() == [
            ("OR24", 204, True)
        ]


def test_credentials_never_reach_any_column_or_the_log(
    audit: ApiCallLog, db: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # The server echoes what it received, as a careless gateway error page might.
    def echo(request: Received) -> Reply:
        body = json.dumps({"message": f"bad {request.headers.get('Authorization')} {request.path}"}).encode()
        return Reply(401, body, {"Content-Type": "application/json", "Set-Cookie": f"s={API_KEY}"})

    caplog.set_level(logging.DEBUG, logger="fulfil")
    with ScriptedServer(echo) as server:
        bestbuy(audit).send(
            "PUT",
            f"{server.url}/api/orders/1/tracking",
            endpoint="OR23",
            params={"api_key": API_KEY},
            headers={"Content-Type": "application/json"},
            data=json.dumps({"tracking_number": "1", "note": API_KEY}),
        )
        canadapost(audit).send("GET", f"{server.url}/rs/1/1/shipment?requestId=x", endpoint="GetShipments")
    assert server.received[0].headers["Authorization"] == API_KEY  # it was sent …
    stored = json.dumps(rows(db))
    for secret in (API_KEY, PASSWORD, *Redactor.basic_auth_forms(USER, PASSWORD)):
        assert secret not in stored  # … and is nowhere in the table
        assert secret not in caplog.text
    first = rows(db)[0]
    assert first["request_headers"]["Authorization"] == "[redacted]"  # present, value gone
    assert "api_key=%5Bredacted%5D" in str(first["url"])


@pytest.mark.parametrize(
    ("reply", "failure"),
    [
        (Reply(200, b"<ok/>"), None),
        (Reply(204), None),
        (Reply(400, b"<messages><message><code>Server</code></message></messages>"), FailureClass.DEFINITIVE),
        (Reply(404, b"<messages/>"), FailureClass.DEFINITIVE),
        (Reply(429, b"{}", {"Retry-After": "2"}), FailureClass.RATE_LIMITED),
        (Reply(500, b"oops"), FailureClass.INDETERMINATE),
        (Reply(503, b"<html>gateway</html>", {"Content-Type": "text/html"}), FailureClass.INDETERMINATE),
        (Reply(302, b"", {"Location": "http://elsewhere/"}), FailureClass.INDETERMINATE),
    ],
)
def test_answers_are_classified(audit: ApiCallLog, reply: Reply, failure: FailureClass | None) -> None:
    with scripted(reply) as server:
        outcome = canadapost(audit).send("GET", f"{server.url}/x", endpoint="Probe")
    assert outcome.status_code == reply.status
    assert outcome.failure is failure


def test_connection_refused_is_proven_not_sent(audit: ApiCallLog, db: psycopg.Connection) -> None:
    outcome = canadapost(audit).send(
        "POST", f"{closed_port_url()}/rs/1/1/shipment", endpoint="CreateShipment", data=XML
    )
    assert outcome.failure is FailureClass.NOT_SENT
    assert rows(db)[0]["failure_class"] == "not_sent"


def test_a_connection_dropped_after_sending_is_indeterminate(audit: ApiCallLog) -> None:
    with resetting_server() as url:
        outcome = canadapost(audit).send(
            "POST", f"{url}/rs/1/1/shipment", endpoint="CreateShipment", data=XML
        )
    assert outcome.failure is FailureClass.INDETERMINATE


def test_retry_policy_retries_rate_limits_after_retry_after_and_logs_each_attempt(
    audit: ApiCallLog, db: psycopg.Connection
) -> None:
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=3, retry_on=frozenset({FailureClass.RATE_LIMITED}), sleep=waits.append)
    with scripted(Reply(429, b"{}", {"Retry-After": "2"}), Reply(204)) as server:
        outcome = bestbuy(audit).send("PUT", f"{server.url}/api/orders/1/ship", endpoint="OR24", retry=policy)
    assert outcome.ok
    assert waits == [2.0]
    assert [(r["status_code"], r["is_success"]) for r in rows(db)] == [(429, False), (204, True)]


def test_indeterminate_failures_are_not_retried_unless_asked(
    audit: ApiCallLog, db: psycopg.Connection
) -> None:
    policy = RetryPolicy(max_attempts=3, retry_on=frozenset({FailureClass.NOT_SENT}), sleep=lambda _: None)
    with scripted(Reply(503), Reply(200)) as server:
        outcome = canadapost(audit).send(
            "POST", f"{server.url}/s", endpoint="CreateShipment", data=XML, retry=policy
        )
    assert outcome.failure is FailureClass.INDETERMINATE
    assert len(rows(db)) == 1


def test_json_bodies_are_stored_as_json_and_pdfs_as_a_summary(
    audit: ApiCallLog, db: psycopg.Connection
) -> None:
    pdf = b"%PDF-1.4\n" + b"x" * 5000 + b"\n%%EOF\n"
    with scripted(Reply(200, pdf, {"Content-Type": "application/pdf"})) as server:
        outcome = bestbuy(audit).send(
            "PUT",
            f"{server.url}/a",
            endpoint="OR23",
            headers={"Content-Type": "application/json"},
            data='{"carrier_code": "CPCL", "tracking_number": "4000"}',
        )
    assert outcome.body == pdf  # the caller gets every byte …
    [row] = rows(db)
    assert row["request_payload"] == {"carrier_code": "CPCL", "tracking_number": "4000"}
    summary = json.loads(str(row["response_body"]))  # … the table a summary
    assert summary["content_type"] == "application/pdf"
    assert summary["length"] == len(pdf)
    assert len(summary["sha256"]) == 64


def test_stored_bodies_are_capped(database_url: str, db: psycopg.Connection) -> None:
    log = ApiCallLog(database_url, body_cap=1000)
    big = json.dumps({"orders": ["x" * 100] * 100}).encode()
    with scripted(Reply(200, big, {"Content-Type": "application/json"})) as server:
        http = AuditedHttp(
            log,
            service="BestBuy",
            origin=server.url,
            auth=RawKeyAuth(API_KEY),
            connect_timeout=1,
            read_timeout=2,
        )
        outcome = http.send("GET", f"{server.url}/api/orders", endpoint="OR11")
    log.close()
    assert outcome.body == big
    [row] = rows(db)
    assert len(str(row["response_body"])) == 1000
    assert row["response_truncated"] is True


def test_an_oversized_answer_is_refused_not_read_into_memory(audit: ApiCallLog) -> None:
    with scripted(Reply(200, b"x" * 50_000)) as server:
        http = AuditedHttp(
            audit,
            service="BestBuy",
            origin=server.url,
            auth=RawKeyAuth(API_KEY),
            connect_timeout=1,
            read_timeout=2,
            max_response_bytes=10_000,
        )
        outcome = http.send(
            "GET",
            f"{server.url}/big",
            endpoint="OR11",
            retry=RetryPolicy(
                max_attempts=5, retry_on=frozenset({FailureClass.INDETERMINATE}), sleep=lambda _: None
            ),
        )
        assert len(server.received) == 1  # sending it again cannot make it smaller
    assert outcome.failure is FailureClass.INDETERMINATE
    assert outcome.status_code == 200
    assert "larger than" in (outcome.error or "")
    assert "larger than" in outcome.describe()  # says so, not just "HTTP 200"


def test_timeouts_are_mandatory(audit: ApiCallLog) -> None:
    with pytest.raises(ValueError, match="timeouts are mandatory"):
        AuditedHttp(
            audit,
            service="BestBuy",
            origin="http://127.0.0.1",
            auth=RawKeyAuth(API_KEY),
            connect_timeout=0,
            read_timeout=1,
        )


@pytest.fixture
def self_signed_https(tmp_path: Path) -> Iterator[str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed; cannot make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    received: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                received.append(tls.recv(65536))
        except (OSError, ssl.SSLError):
            return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    thread.join(timeout=2)
    assert received == []  # the request itself never went out


def test_tls_certificates_are_verified(audit: ApiCallLog, self_signed_https: str) -> None:
    outcome = canadapost(audit).send(
        "POST", f"{self_signed_https}/rs/1/1/shipment", endpoint="CreateShipment", data=XML
    )
    assert outcome.failure is FailureClass.NOT_SENT
    assert "TLS" in (outcome.error or "")


def test_a_retry_after_longer_than_the_policy_allows_is_not_slept_through(
    audit: ApiCallLog, db: psycopg.Connection
) -> None:
    waits: list[float] = []
    policy = RetryPolicy(
        max_attempts=3,
        retry_on=frozenset({FailureClass.RATE_LIMITED}),
        max_retry_after=60,
        sleep=waits.append,
    )
    with scripted(Reply(429, b"{}", {"Retry-After": "3600"}), Reply(204)) as server:
        outcome = bestbuy(audit).send("PUT", f"{server.url}/api/orders/1/ship", endpoint="OR24", retry=policy)
    assert outcome.failure is FailureClass.RATE_LIMITED
    assert outcome.retry_after() == 3600
    assert waits == []
    assert len(rows(db)) == 1
