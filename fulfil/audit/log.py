"""The api_calls audit log: a row written before each request is sent, completed after.

The log writes on its own autocommit connection, so nothing a workflow rolls back can erase it,
and a crash between sending and recording leaves the request in the table with no answer (never
an answer-less request with no row). Everything stored is redacted first: credential headers are
kept as a marker that they were present, every form of a known secret (and of every credential
the log saw go out in a request) is scrubbed from every column, binary bodies are stored as a
summary and long bodies are cut at a cap.

Everything stored is made storable whatever came from outside: PostgreSQL's text and jsonb cannot
hold U+0000, and jsonb refuses lone surrogates and NaN. A body with NUL bytes is stored as a
summary; in any other value those characters are written as visible escapes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fulfil.audit.budget import Admission, Budget, Pause, admission_parameters, record_pause
from fulfil.audit.redaction import SENSITIVE_NAME, Redactor
from fulfil.db import connect, query

if TYPE_CHECKING:
    import psycopg

DEFAULT_BODY_CAP = 64 * 1024
# How much of an unreadable (NUL-bearing) body its summary shows.
UNREADABLE_START_CHARS = 1000
LEASE_LOST_MESSAGE = "the lease on this work was taken over before the request was sent"

_BINARY_TYPES = re.compile(r"^(application/(pdf|zpl|octet-stream|zip)|image/|audio/|video/)", re.I)
# What PostgreSQL text and jsonb cannot hold: U+0000 and (UTF-8 cannot encode them) lone surrogates.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


# Run on the audit connection, in the transaction that inserts the request row and before it:
# False means the work was taken over, and nothing is recorded or sent.
@dataclass(frozen=True)
class SendGuard:
    """A condition the request row is written under, in the same statement: a named query (a
    ``SELECT … FOR UPDATE`` returning a row while the work is still the caller's) and its
    parameters. No row: nothing is written, ``LeaseLost`` is raised, nothing is sent. One
    statement, so a takeover either waits for the row lock and then sees the request, or wins and
    the request is never sent."""

    group: str
    name: str
    params: Mapping[str, Any]
    description: str | None = None
    # The shipment the request is for, kept with its api_calls row: an order split into parcels
    # has one shipment per parcel, and each parcel's attempts must be told from the others'.
    shipment_id: int | None = None


# The guard of a request made under no claim: it always holds.
NO_GUARD = SendGuard("api_calls", "no_guard", {})


class LeaseLost(Exception):
    """The guard given to ``ApiCallLog.begin`` refused: another run owns the work now."""


@dataclass(frozen=True)
class StoredBody:
    text: str | None
    truncated: bool


def storable_text(value: str) -> str:
    """The text with NUL and lone surrogates written as visible escapes (\\x00, \\udc80)."""
    if not _UNSTORABLE.search(value):
        return value
    return _UNSTORABLE.sub(lambda m: "\\x00" if m.group() == "\x00" else f"\\u{ord(m.group()):04x}", value)


def storable_json(value: Any) -> Any:
    """The value with every string (keys too) storable, and non-finite numbers (which jsonb
    refuses) as strings."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {storable_text(str(key)): storable_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(item) for item in value]
    return storable_text(str(value))


def _optional_text(value: str | None) -> str | None:
    return None if value is None else storable_text(value)


def request_payload(body: bytes | str | None, content_type: str | None, cap: int, redactor: Redactor) -> Any:
    """What goes into request_payload (jsonb): JSON as JSON, XML and other text as a JSON string."""
    if body is None or body == b"" or body == "":
        return None
    if isinstance(body, bytes):
        if content_type and _BINARY_TYPES.match(content_type):
            return binary_summary(body, content_type)
        text = redactor.bytes(body).decode("utf-8", errors="replace")
    else:
        text = redactor.text(body) or ""
    if content_type and "json" in content_type.lower() and len(text) <= cap:
        try:
            return storable_json(json.loads(text))
        except (ValueError, RecursionError):
            pass  # not JSON after all (or nested beyond reason): kept as text
    if len(text) > cap:
        text = text[:cap] + f"\n[truncated: {len(text)} characters in all]"
    return storable_text(text)


def binary_summary(body: bytes, content_type: str | None) -> dict[str, Any]:
    return {
        "binary": True,
        "content_type": _optional_text(content_type),
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }


def _redacted_start(body: bytes, chars: int, redactor: Redactor) -> tuple[str, bool]:
    """The first ``chars`` characters of the body, redacted; True when there is more. Only the
    bytes that can reach into those characters are scrubbed (a UTF-8 character is at most 4 bytes,
    and a secret starting inside them ends within its longest form), not a 20 MB answer again."""
    window = body[: chars * 4 + redactor.longest_form]
    text = redactor.bytes(window).decode("utf-8", errors="replace")
    return text[:chars], len(text) > chars or len(window) < len(body)


def unreadable_summary(body: bytes, content_type: str | None, redactor: Redactor) -> dict[str, Any]:
    """A body no text column can hold (NUL bytes): what it was, and how it began."""
    start, _ = _redacted_start(body, UNREADABLE_START_CHARS, redactor)
    return {
        "unreadable": "contains NUL bytes",
        "content_type": _optional_text(content_type),
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "nul_bytes": body.count(b"\x00"),
        "start": storable_text(start),
    }


def response_text(body: bytes, content_type: str | None, cap: int, redactor: Redactor) -> StoredBody:
    """What goes into response_body (text)."""
    if not body:
        return StoredBody("", False)
    if (content_type and _BINARY_TYPES.match(content_type)) or body[:5] == b"%PDF-":
        return StoredBody(json.dumps(binary_summary(body, content_type)), False)
    if b"\x00" in body:
        summary = unreadable_summary(body, content_type, redactor)
        return StoredBody(json.dumps(summary, ensure_ascii=False), False)
    text, truncated = _redacted_start(body, cap, redactor)
    return StoredBody(storable_text(text), truncated)


def _credentials_sent(headers: Mapping[str, str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The credentials in a request's headers: Basic auth's pair, a bearer token, a raw key."""
    secrets: list[str] = []
    pairs: list[tuple[str, str]] = []
    for name, value in headers.items():
        if not SENSITIVE_NAME.search(name) or not isinstance(value, str) or not value.strip():
            continue
        value = value.strip()
        secrets.append(value)
        scheme, _, credentials = value.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "basic" and credentials:
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                decoded = b""
            # fulfil.audit.transport.BasicAuth encodes as Latin-1 when it can; UTF-8 is tried first.
            for encoding in ("utf-8", "latin-1"):
                try:
                    user, colon, password = decoded.decode(encoding).partition(":")
                except UnicodeDecodeError:
                    continue
                if colon:
                    pairs.append((user, password))
                break
            secrets.append(credentials)
        elif credentials and "cookie" not in name.lower():
            # Bearer <token>, Token <key>. (A cookie's values are not split out: "consent=true"
            # would have every "true" scrubbed from the bodies stored.)
            secrets.append(credentials)
    return secrets, pairs


def _guarded(name: str, guard: SendGuard) -> str:
    """A named api_calls statement with the guard's named query composed in as {guard}."""
    return _composed(name, guard.group, guard.name)


@functools.cache
def _composed(name: str, group: str, guard_name: str) -> str:
    # Composed once per pair, not per request: psycopg would otherwise render the composition
    # on every call. Both are fulfil's own named queries; only values travel as parameters.
    from psycopg import sql

    return sql.SQL(query("api_calls", name)).format(guard=sql.SQL(query(group, guard_name))).as_string(None)


class ApiCallLog:
    """Writes api_calls rows on a dedicated autocommit connection (thread-safe)."""

    def __init__(
        self,
        url: str,
        *,
        run_id: str | None = None,
        redactor: Redactor | None = None,
        body_cap: int = DEFAULT_BODY_CAP,
    ) -> None:
        self._url = url
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self.run_id = run_id
        # Should know every secret in every form (fulfil.services builds it from the settings).
        self.redactor = redactor or Redactor()
        self.body_cap = body_cap
        # Credentials seen going out in requests: scrubbed from what is stored, even if the
        # redactor above was never told them (defence in depth for an echoed Authorization).
        self._seen_credentials: set[str] = set()
        self._learned_secrets: list[str] = []
        self._learned_pairs: list[tuple[str, str]] = []
        self._storage: tuple[Redactor, Redactor] | None = None  # (built from, built)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._url, autocommit=True, application_name="fulfil-audit")
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _learn(self, headers: Mapping[str, str]) -> None:
        """Called with the lock held."""
        fresh = {
            value
            for name, value in headers.items()
            if SENSITIVE_NAME.search(name) and isinstance(value, str) and value not in self._seen_credentials
        }
        if not fresh:
            return
        self._seen_credentials |= fresh
        secrets, pairs = _credentials_sent({name: value for name, value in headers.items() if value in fresh})
        self._learned_secrets += secrets
        self._learned_pairs += pairs
        self._storage = None

    def _storage_redactor(self) -> Redactor:
        """The redactor plus what was learnt from requests. Called with the lock held."""
        if self._storage is None or self._storage[0] is not self.redactor:
            built = self.redactor
            if self._learned_secrets or self._learned_pairs:
                built = Redactor(
                    [*built.secrets, *self._learned_secrets],
                    credential_pairs=[*built.credential_pairs, *self._learned_pairs],
                )
            self._storage = (self.redactor, built)
        return self._storage[1]

    def begin(
        self,
        *,
        service: str,
        endpoint: str,
        related_id: str | None,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | str | None,
        content_type: str | None,
        guard: SendGuard | None = None,
        deadline_seconds: float | None = None,
    ) -> int:
        """Record a request about to be sent; returns its call_id. Raises if it cannot be recorded.

        ``guard`` runs on the audit connection inside the transaction that inserts the row, before
        the insert (it may lock rows: ``SELECT … FOR UPDATE``). When it returns False nothing is
        inserted and ``LeaseLost`` is raised, with the guard's ``description`` attribute as its
        message if it has one. ``deadline_seconds``: when the attempt will have been cut off,
        stored as ``deadline_at`` (NULL when None).
        """
        with self._lock:
            parameters = self._request_parameters(
                service, endpoint, related_id, method, url, headers, body, content_type, deadline_seconds
            )
            guard = guard or NO_GUARD
            row = (
                self._connection()
                .execute(
                    _guarded("insert_request", guard),
                    {**guard.params, **parameters, "call_shipment_id": guard.shipment_id},
                )
                .fetchone()
            )
        if row is None:
            raise LeaseLost(guard.description or LEASE_LOST_MESSAGE)
        return int(row[0])

    def begin_metered(
        self,
        *,
        service: str,
        endpoint: str,
        related_id: str | None,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | str | None,
        content_type: str | None,
        budget: Budget,
        horizon: float,
        longest_wait: float,
        reserved: bool,
        guard: SendGuard | None = None,
        deadline_seconds: float | None = None,
    ) -> Admission:
        """``begin``, admitted under ``budget`` in the same statement (fulfil/audit/budget.py):
        the row is written only when the budget admits the call now (``call_id`` set, started at
        its slot), else the answer is the reservation made or the pause, and how long to wait.
        ``reserved``: the caller comes back with the slot it reserved. ``LeaseLost`` as ``begin``;
        then no slot is taken."""
        with self._lock:
            parameters = self._request_parameters(
                service, endpoint, related_id, method, url, headers, body, content_type, deadline_seconds
            )
            parameters.update(
                admission_parameters(budget, horizon=horizon, longest_wait=longest_wait, reserved=reserved)
            )
            guard = guard or NO_GUARD
            row = (
                self._connection()
                .execute(
                    _guarded("insert_request_metered", guard),
                    {**guard.params, **parameters, "call_shipment_id": guard.shipment_id},
                )
                .fetchone()
            )
        assert row is not None
        call_id, held, slot, wait_seconds, paused_until, pause_reason = row
        if not held:
            raise LeaseLost(guard.description or LEASE_LOST_MESSAGE)
        return Admission(
            call_id=None if call_id is None else int(call_id),
            slot=slot,
            wait_seconds=float(wait_seconds or 0.0),
            paused_until=paused_until,
            pause_reason=pause_reason,
        )

    def pause_budget(self, budget: Budget, pause: Pause) -> datetime:
        """A throttle answer: pause the budget for every process (one statement); returns its end."""
        with self._lock:
            return record_pause(self._connection(), budget, pause)

    def _request_parameters(
        self,
        service: str,
        endpoint: str,
        related_id: str | None,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | str | None,
        content_type: str | None,
        deadline_seconds: float | None,
    ) -> dict[str, Any]:
        """The request row's values, redacted and storable. Called with the lock held."""
        from psycopg.types.json import Jsonb

        self._learn(headers)
        redactor = self._storage_redactor()
        payload = request_payload(body, content_type, self.body_cap, redactor)
        return {
            "service": storable_text(service),
            "endpoint": storable_text(endpoint),
            "related_id": _optional_text(redactor.text(related_id)),
            "method": storable_text(method),
            "url": storable_text(redactor.url(url)),
            "request_headers": Jsonb(storable_json(redactor.headers(headers))),
            "request_payload": Jsonb(payload) if payload is not None else None,
            "run_id": self.run_id,
            "deadline_seconds": deadline_seconds,
        }

    def finish(
        self,
        call_id: int,
        *,
        status_code: int | None,
        response_headers: Mapping[str, str] | None,
        body: bytes | None,
        content_type: str | None,
        is_success: bool,
        error: str | None,
        failure_class: str | None,
        duration_ms: int,
    ) -> None:
        from psycopg.types.json import Jsonb

        with self._lock:
            redactor = self._storage_redactor()
            stored = response_text(body, content_type, self.body_cap, redactor) if body is not None else None
            headers = (
                storable_json(redactor.headers(response_headers)) if response_headers is not None else None
            )
            self._connection().execute(
                query("api_calls", "record_response"),
                {
                    "call_id": call_id,
                    "status_code": status_code,
                    "response_headers": Jsonb(headers) if headers is not None else None,
                    "response_body": stored.text if stored else None,
                    "response_truncated": stored.truncated if stored else None,
                    "is_success": is_success,
                    "error": _optional_text(redactor.text(error)),
                    "failure_class": _optional_text(failure_class),
                    "duration_ms": duration_ms,
                },
            )
