"""The api_calls audit log: a row written before each request is sent, completed after.

The log writes on its own autocommit connection, so nothing a workflow rolls back can erase it,
and a crash between sending and recording leaves the request in the table with no answer (never
an answer-less request with no row). Everything stored is redacted first: credential headers are
kept as a marker that they were present, known secret values are scrubbed from every text column,
binary bodies are stored as a summary and long bodies are cut at a cap.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fulfil.db import connect, query

if TYPE_CHECKING:
    import psycopg

REDACTED = "[redacted]"
DEFAULT_BODY_CAP = 64 * 1024

# Header and query-parameter names whose values are credentials, whatever their case.
_SENSITIVE_NAME = re.compile(
    r"authorization|cookie|api[-_]?key|token|secret|password|passwd|credential", re.I
)
_BINARY_TYPES = re.compile(r"^(application/(pdf|zpl|octet-stream|zip)|image/|audio/|video/)", re.I)


@dataclass(frozen=True)
class StoredBody:
    text: str | None
    truncated: bool


class Redactor:
    """Removes credentials from anything about to be stored or printed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= 4}
        self._secrets = sorted(values, key=len, reverse=True)

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        return Redactor([*self._secrets, *secrets])

    @staticmethod
    def basic_auth_forms(username: str, password: str) -> list[str]:
        """The ways a user/password pair can appear on the wire, so each can be scrubbed."""
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        return [password, token, f"{username}:{password}"]

    def text(self, value: str | None) -> str | None:
        if value is None:
            return None
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {
            name: (REDACTED if _SENSITIVE_NAME.search(name) else (self.text(value) or ""))
            for name, value in headers.items()
        }

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:  # user:password@host
            netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(_SENSITIVE_NAME.search(name) for name, _ in pairs):
            query_string = urlencode([(n, REDACTED if _SENSITIVE_NAME.search(n) else v) for n, v in pairs])
        else:
            query_string = parts.query
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, query_string, parts.fragment))) or ""


def request_payload(body: bytes | str | None, content_type: str | None, cap: int, redactor: Redactor) -> Any:
    """What goes into request_payload (jsonb): JSON as JSON, XML and other text as a JSON string."""
    if body is None or body == b"" or body == "":
        return None
    if isinstance(body, bytes):
        if content_type and _BINARY_TYPES.match(content_type):
            return binary_summary(body, content_type)
        text = body.decode("utf-8", errors="replace")
    else:
        text = body
    text = redactor.text(text) or ""
    if content_type and "json" in content_type.lower() and len(text) <= cap:
        try:
            return json.loads(text)
        except ValueError:
            pass
    if len(text) > cap:
        return text[:cap] + f"\n[truncated: {len(text)} characters in all]"
    return text


def binary_summary(body: bytes, content_type: str | None) -> dict[str, Any]:
    return {
        "binary": True,
        "content_type": content_type,
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }


def response_text(body: bytes, content_type: str | None, cap: int, redactor: Redactor) -> StoredBody:
    """What goes into response_body (text)."""
    if not body:
        return StoredBody("", False)
    if (content_type and _BINARY_TYPES.match(content_type)) or body[:5] == b"%PDF-":
        return StoredBody(json.dumps(binary_summary(body, content_type)), False)
    text = redactor.text(body.decode("utf-8", errors="replace")) or ""
    if len(text) > cap:
        return StoredBody(text[:cap], True)
    return StoredBody(text, False)


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
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self.run_id = run_id
        self.redactor = redactor or Redactor()
        self.body_cap = body_cap

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._url, autocommit=True, application_name="fulfil-audit")
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

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
    ) -> int:
        """Record a request about to be sent; returns its call_id. Raises if it cannot be recorded."""
        from psycopg.types.json import Jsonb

        payload = request_payload(body, content_type, self.body_cap, self.redactor)
        with self._lock:
            row = (
                self._connection()
                .execute(
                    query("api_calls", "insert_request"),
                    {
                        "service": service,
                        "endpoint": endpoint,
                        "related_id": related_id,
                        "method": method,
                        "url": self.redactor.url(url),
                        "request_headers": Jsonb(self.redactor.headers(headers)),
                        "request_payload": Jsonb(payload) if payload is not None else None,
                        "run_id": self.run_id,
                    },
                )
                .fetchone()
            )
        assert row is not None
        return int(row[0])

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

        stored = response_text(body, content_type, self.body_cap, self.redactor) if body is not None else None
        with self._lock:
            self._connection().execute(
                query("api_calls", "record_response"),
                {
                    "call_id": call_id,
                    "status_code": status_code,
                    "response_headers": Jsonb(self.redactor.headers(response_headers))
                    if response_headers is not None
                    else None,
                    "response_body": stored.text if stored else None,
                    "response_truncated": stored.truncated if stored else None,
                    "is_success": is_success,
                    "error": self.redactor.text(error),
                    "failure_class": failure_class,
                    "duration_ms": duration_ms,
                },
            )
