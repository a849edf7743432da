"""Whatever comes from outside, ApiCallLog stores it (defect 10): NUL bytes, lone surrogates, NaN and
absurd nesting never crash a run. And the request row's guard and deadline (exactly once)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from fulfil.audit.log import ApiCallLog, LeaseLost, SendGuard
from fulfil.audit.outcome import FailureClass
from fulfil.audit.redaction import Redactor
from fulfil.audit.sender import AuditedHttp
from fulfil.audit.transport import BasicAuth, RawKeyAuth
from tests.local_http import Reply, ScriptedServer, scripted

API_KEY = "bb-key-51c0e2aa77"


@pytest.fixture
def audit(database_url: str) -> Iterator[ApiCallLog]:
    log = ApiCallLog(database_url, redactor=Redactor([API_KEY]))
    yield log
    log.close()


def bestbuy(audit: ApiCallLog, server: ScriptedServer) -> AuditedHttp:
    return AuditedHttp(
        audit,
        service="BestBuy",
        origin=server.url,
        auth=RawKeyAuth(API_KEY),
        connect_timeout=1.0,
        read_timeout=2.0,
    )


def rows(db: psycopg.Connection) -> list[dict[str, Any]]:
    return [r[0] for r in db.execute("SELECT row_to_json(a) FROM api_calls a ORDER BY call_id").fetchall()]


def begin(audit: ApiCallLog, **overrides: Any) -> int:
    arguments: dict[str, Any] = {
        "service": "CanadaPost",
        "endpoint": "CreateShipment",
        "related_id": "O-1",
        "method": "POST",
        "url": "https://ct.soa-gw.canadapost.ca/rs/1/1/shipment",
        "headers": {"Content-Type": "application/xml"},
        "body": "<shipment/>",
        "content_type": "application/xml",
    }
    return audit.begin(**{**arguments, **overrides})


# ------------------------------------------------------------------------------------------------
# Answers PostgreSQL cannot store as they are
# ------------------------------------------------------------------------------------------------


def test_an_answer_with_nul_bytes_is_stored_as_a_summary_and_the_run_goes_on(
    audit: ApiCallLog, db: psycopg.Connection
) -> None:
    body = b'{"orders": [{"order_id": "A\x00B"}], "note": "' + API_KEY.encode() + b'"}\x00\x00tail'
    reply = Reply(200, body, {"Content-Type": "application/json", "X-Odd": "v\x00al\xff\x01ue"})
    with scripted(reply, Reply(200, b'{"ok": true}', {"Content-Type": "application/json"})) as server:
        http = bestbuy(audit, server)
        outcome = http.send("GET", f"{server.url}/api/orders", endpoint="OR11")
        after = http.send("GET", f"{server.url}/api/orders", endpoint="OR11")  # the next call works
    assert outcome.status_code == 200
    assert after.ok
    first, second = rows(db)
    summary = json.loads(first["response_body"])
    assert summary["unreadable"] == "contains NUL bytes"
    # Of the answer as the caller got it (the HTTP layer may have scrubbed the key already).
    assert summary["length"] == len(outcome.body)
    assert summary["sha256"] == hashlib.sha256(outcome.body).hexdigest()
    assert summary["start"].startswith('{"orders": [{"order_id": "A\\x00B"}]')  # NULs shown as \x00
    assert "[redacted]" in summary["start"]
    assert API_KEY not in first["response_body"]
    assert first["response_headers"]["X-Odd"] == "v\\x00al\xff\x01ue"
    assert second["response_body"] == '{"ok": true}'


def test_every_value_written_is_made_storable(audit: ApiCallLog, db: psycopg.Connection) -> None:
    hostile = "x\x00y\ud800z"
    call_id = begin(
        audit,
        service="Canada\x00Post",
        endpoint="Create\x00Shipment",
        related_id=hostile,
        method="PO\x00ST",
        url=f"https://h.example/{hostile}?q={hostile}",
        headers={"X-Note": hostile, "X-\x00Name": "v"},
        body='{"note": "a\\u0000b", "lone": "\\ud800", "deep": {"k\\u0000": [1, 2]}}',
        content_type="application/json",
    )
    audit.finish(
        call_id,
        status_code=500,
        response_headers={"X-Echo": hostile},
        body="bad \ud800 text".encode("utf-8", "surrogatepass"),
        content_type="text/plain\x00",
        is_success=False,
        error=f"answer cut off ({hostile})",
        failure_class="indeterminate",
        duration_ms=5,
    )
    [row] = rows(db)
    assert row["service"] == "Canada\\x00Post"
    assert row["endpoint"] == "Create\\x00Shipment"
    assert row["related_id"] == "x\\x00y\\ud800z"
    assert "\\x00" in row["url"]
    assert row["request_headers"]["X-Note"] == "x\\x00y\\ud800z"
    assert row["request_headers"]["X-\\x00Name"] == "v"
    assert row["request_payload"] == {"note": "a\\x00b", "lone": "\\ud800", "deep": {"k\\x00": [1, 2]}}
    assert row["response_headers"] == {"X-Echo": "x\\x00y\\ud800z"}
    assert row["response_body"].startswith("bad ")
    assert row["error"] == "answer cut off (x\\x00y\\ud800z)"


@pytest.mark.parametrize(
    "body",
    [
        '{"weight": NaN, "length": Infinity, "width": 1e999}',  # jsonb has no NaN or infinity
        "[" * 50_000 + "]" * 50_000,  # nested past what the parser takes: kept as text
        '{"a": "\\udc80\\u0000"}',
    ],
    ids=["nan", "deep", "escapes"],
)
def test_any_json_request_body_is_stored(audit: ApiCallLog, db: psycopg.Connection, body: str) -> None:
    audit.body_cap = 200_000
    begin(audit, body=body, content_type="application/json", headers={"Content-Type": "application/json"})
    [row] = rows(db)
    assert row["request_payload"] is not None


def test_a_json_request_body_with_nul_goes_through_the_http_layer(
    audit: ApiCallLog, db: psycopg.Connection
) -> None:
    with scripted(Reply(204)) as server:
        outcome = bestbuy(audit, server).send(
            "PUT",
            f"{server.url}/api/orders/O\x00-1/tracking",
            endpoint="OR23",
            related_id="O\x00-1",
            headers={"Content-Type": "application/json"},
            data='{"tracking_number": "12\\u00003"}',
        )
    assert outcome.ok
    [row] = rows(db)
    assert row["request_payload"] == {"tracking_number": "12\\x003"}
    assert row["related_id"] == "O\\x00-1"


def test_a_nul_in_a_binary_or_pdf_answer_is_still_a_binary_summary(
    audit: ApiCallLog, db: psycopg.Connection
) -> None:
    pdf = b"%PDF-1.4\n\x00\x01\x02" + b"x" * 100
    with scripted(Reply(200, pdf, {"Content-Type": "application/pdf"})) as server:
        outcome = bestbuy(audit, server).send("GET", f"{server.url}/rs/artifact/1/0", endpoint="GetArtifact")
    assert outcome.body == pdf  # the caller gets every byte
    [row] = rows(db)
    assert json.loads(row["response_body"])["binary"] is True


# ------------------------------------------------------------------------------------------------
# The guard: the lease re-checked in the transaction that writes the request row
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def claimed(db: psycopg.Connection) -> int:
    """A shipment claimed by the run "r-1" (its purchase in flight)."""
    db.execute("INSERT INTO orders (order_id, status, raw_order_data) VALUES ('G-1', 'accepted', '{}')")
    row = db.execute(
        "INSERT INTO shipments (order_id, status, cp_mode, cp_request_id, purchase_started_at, "
        "lease_owner, lease_expires_at) VALUES ('G-1', 'label_creation_initiated', 'contract', 'F1', "
        "now(), 'r-1', now() + interval '1 hour') RETURNING shipment_id"
    ).fetchone()
    assert row is not None
    return int(row[0])


def guard_of(shipment_id: int, owner: str, description: str | None = None) -> SendGuard:
    return SendGuard(
        "shipments", "hold_purchase_lease", {"shipment_id": shipment_id, "owner": owner}, description
    )


def test_a_guard_that_refuses_leaves_no_row_and_raises_lease_lost(
    audit: ApiCallLog, db: psycopg.Connection, claimed: int
) -> None:
    with pytest.raises(LeaseLost, match="taken over before the request was sent"):
        begin(audit, guard=guard_of(claimed, "r-2"))
    assert rows(db) == []
    with pytest.raises(LeaseLost, match=r"shipment 7 \(order O-1\) now belongs to run r-2"):
        begin(audit, guard=guard_of(claimed, "r-2", "shipment 7 (order O-1) now belongs to run r-2"))
    # The log is still usable after a refusal.
    begin(audit)
    assert len(rows(db)) == 1


def test_a_guard_that_allows_commits_with_the_row(
    audit: ApiCallLog, db: psycopg.Connection, claimed: int
) -> None:
    call_id = begin(audit, guard=guard_of(claimed, "r-1"))
    [row] = rows(db)
    assert row["call_id"] == call_id
    # The row lock ended with the statement: another connection can take it at once.
    with psycopg.connect(db.info.dsn, autocommit=True) as other:
        other.execute("SET lock_timeout = '2s'")
        other.execute("SELECT 1 FROM shipments WHERE shipment_id = %s FOR UPDATE NOWAIT", (claimed,))


def test_a_guard_that_refuses_sends_nothing(audit: ApiCallLog, db: psycopg.Connection, claimed: int) -> None:
    with scripted(Reply(200, b"<shipment/>")) as server:
        http = AuditedHttp(
            audit,
            service="CanadaPost",
            origin=server.url,
            auth=BasicAuth("user", "password"),
            connect_timeout=1.0,
            read_timeout=2.0,
        )
        with pytest.raises(LeaseLost):
            http.send(
                "POST",
                f"{server.url}/rs/1/1/shipment",
                endpoint="CreateShipment",
                guard=guard_of(claimed, "someone-else"),
            )
    assert server.received == []
    assert rows(db) == []


# ------------------------------------------------------------------------------------------------
# deadline_at
# ------------------------------------------------------------------------------------------------


def test_the_deadline_is_stored_from_the_moment_the_row_is_written(
    audit: ApiCallLog, db: psycopg.Connection
) -> None:
    with_deadline = begin(audit, deadline_seconds=42.5)
    without = begin(audit)
    found = dict(
        db.execute(
            "SELECT call_id, extract(epoch FROM deadline_at - started_at) FROM api_calls ORDER BY call_id"
        ).fetchall()
    )
    assert 42.5 <= float(found[with_deadline]) < 43.5
    assert found[without] is None


def test_the_http_layer_records_each_attempts_deadline(audit: ApiCallLog, db: psycopg.Connection) -> None:
    with scripted(Reply(500, b"busy"), Reply(200, b"{}")) as server:
        http = AuditedHttp(
            audit,
            service="BestBuy",
            origin=server.url,
            auth=RawKeyAuth(API_KEY),
            connect_timeout=1.0,
            read_timeout=2.0,
            deadline=7.0,
        )
        outcome = http.send("GET", f"{server.url}/api/orders", endpoint="OR11")
    assert outcome.failure is FailureClass.INDETERMINATE
    [(seconds,)] = db.execute("SELECT extract(epoch FROM deadline_at - started_at) FROM api_calls").fetchall()
    assert 7.0 <= float(seconds) < 8.0
