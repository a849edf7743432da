"""The one way fulfil talks to the outside world.

Every request goes through ``AuditedHttp.send``: a ``requests`` session with mandatory connect and
read timeouts and TLS verification on, redirects never followed, the answer read with a size cap,
and an api_calls row written before sending and completed after. The outcome carries a failure
class every caller can act on:

* ``definitive``: the service answered and refused (a 4xx). Retrying the same request will not help.
* ``not_sent``: provably never reached the service (connection refused, connect timeout, DNS, TLS
  handshake). Safe to retry, even for a purchase.
* ``indeterminate``: it may have been acted on (read timeout, connection reset, 5xx, a garbled or
  oversized answer). Never blindly repeat a purchase: look it up first.
* ``rate_limited``: a 429; wait (``retry_after``) and send again.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import requests
import urllib3.exceptions
from requests.auth import AuthBase

from fulfil import __version__
from fulfil.api_calls import ApiCallLog

log = logging.getLogger("fulfil.http")

DEFAULT_MAX_RESPONSE_BYTES = 20 * 1024 * 1024


class FailureClass(StrEnum):
    DEFINITIVE = "definitive"
    NOT_SENT = "not_sent"
    INDETERMINATE = "indeterminate"
    RATE_LIMITED = "rate_limited"


@dataclass
class HttpOutcome:
    call_id: int
    method: str
    url: str
    status_code: int | None
    headers: Mapping[str, str]
    body: bytes
    failure: FailureClass | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def retry_after(self) -> float | None:
        """Seconds from a Retry-After header (delta-seconds or HTTP date), if any."""
        raw = self.headers.get("Retry-After")
        if raw is None:
            return None
        raw = raw.strip()
        if raw.isdigit():
            return float(raw)
        try:
            moment = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, moment.timestamp() - time.time())

    def describe(self) -> str:
        """One line for messages: what happened, never a credential."""
        if self.status_code is not None:
            return f"HTTP {self.status_code}"
        return self.error or "no answer"


@dataclass
class RetryPolicy:
    """Which failures to send again, how often and how long to wait. Each attempt is its own row."""

    max_attempts: int = 1
    retry_on: frozenset[FailureClass] = frozenset()
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    # A Retry-After longer than this is not slept through: the caller gets the 429 and stops
    # (cron comes back later) rather than sleeping past what a run should.
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep)

    def delay(self, outcome: HttpOutcome, attempt: int) -> float | None:
        """Seconds to wait before the next attempt; None when waiting is not worth it."""
        if outcome.failure is FailureClass.RATE_LIMITED:
            hinted = outcome.retry_after()
            if hinted is not None:
                return hinted if hinted <= self.max_retry_after else None
        return min(self.backoff_base * (2 ** (attempt - 1)), self.backoff_max)

    def longest_wait(self) -> float:
        """The most this policy can sleep in all, for sizing a lease around a call."""
        return (self.max_attempts - 1) * max(self.max_retry_after, self.backoff_max)


NO_RETRY = RetryPolicy()


class RawKeyAuth(AuthBase):
    """Mirakl's scheme: the shop key itself in Authorization, no 'Bearer'."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.key
        return request


class AuditedHttp:
    """Audited, timed, redacted HTTP for one service."""

    def __init__(
        self,
        audit: ApiCallLog,
        *,
        service: str,
        auth: AuthBase,
        connect_timeout: float,
        read_timeout: float,
        secrets: list[str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("timeouts are mandatory and must be positive")
        self.audit = audit
        self.service = service
        self.timeout = (connect_timeout, read_timeout)
        self.max_response_bytes = max_response_bytes
        self.redactor = audit.redactor.with_secrets(secrets or [])
        self.session = requests.Session()
        self.session.auth = auth
        self.session.headers["User-Agent"] = f"fulfil/{__version__}"

    def close(self) -> None:
        self.session.close()

    def send(
        self,
        method: str,
        url: str,
        *,
        endpoint: str,
        related_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        data: bytes | str | None = None,
        retry: RetryPolicy = NO_RETRY,
    ) -> HttpOutcome:
        """Send with the retry policy; returns the last attempt's outcome. Raises only if the audit
        row cannot be written (then nothing is sent)."""
        attempt = 1
        while True:
            outcome = self._send_once(
                method,
                url,
                endpoint=endpoint,
                related_id=related_id,
                headers=headers,
                params=params,
                data=data,
            )
            if (
                outcome.failure is None
                or outcome.failure not in retry.retry_on
                or attempt >= retry.max_attempts
            ):
                return outcome
            wait = retry.delay(outcome, attempt)
            if wait is None:
                return outcome
            log.info(
                "%s %s: %s; attempt %d of %d in %.1fs",
                self.service,
                endpoint,
                outcome.describe(),
                attempt + 1,
                retry.max_attempts,
                wait,
            )
            retry.sleep(wait)
            attempt += 1

    def _send_once(
        self,
        method: str,
        url: str,
        *,
        endpoint: str,
        related_id: str | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, Any] | None,
        data: bytes | str | None,
    ) -> HttpOutcome:
        body = data.encode("utf-8") if isinstance(data, str) else data
        prepared = self.session.prepare_request(
            requests.Request(method, url, headers=dict(headers or {}), params=params, data=body)
        )
        content_type = prepared.headers.get("Content-Type")
        call_id = self.audit.begin(
            service=self.service,
            endpoint=endpoint,
            related_id=related_id,
            method=method,
            url=prepared.url or url,
            headers=dict(prepared.headers),
            body=body,
            content_type=content_type,
        )
        log.debug(
            "→ %s %s [%s] headers=%s",
            method,
            self.redactor.url(prepared.url or url),
            endpoint,
            self.redactor.headers(prepared.headers),
        )
        started = time.monotonic()
        status_code: int | None = None
        response_headers: dict[str, str] | None = None
        received: bytes | None = None
        failure: FailureClass | None = None
        error: str | None = None
        try:
            settings = self.session.merge_environment_settings(prepared.url, {}, True, True, None)
            settings["verify"] = True  # never let an environment variable turn TLS checks off
            response = self.session.send(prepared, timeout=self.timeout, allow_redirects=False, **settings)
            try:
                status_code = response.status_code
                response_headers = dict(response.headers)
                received = self._read_capped(response)
            finally:
                response.close()
            failure = classify_status(status_code)
            if failure is not None:
                error = f"HTTP {status_code}"
        except ResponseTooLarge as exc:
            failure, error = FailureClass.INDETERMINATE, str(exc)
        except requests.RequestException as exc:
            failure, error = classify_exception(exc), describe_exception(exc)
        duration_ms = int((time.monotonic() - started) * 1000)
        error = self.redactor.text(error)
        self.audit.finish(
            call_id,
            status_code=status_code,
            response_headers=response_headers,
            body=received,
            content_type=(response_headers or {}).get("Content-Type"),
            is_success=failure is None,
            error=error,
            failure_class=failure.value if failure else None,
            duration_ms=duration_ms,
        )
        log.info(
            "%s %s %s → %s (%d ms, call %d)",
            self.service,
            endpoint,
            related_id or "",
            status_code if status_code is not None else error,
            duration_ms,
            call_id,
        )
        return HttpOutcome(
            call_id=call_id,
            method=method,
            url=prepared.url or url,
            status_code=status_code,
            headers=requests.structures.CaseInsensitiveDict(response_headers or {}),
            body=received or b"",
            failure=failure,
            error=error,
            duration_ms=duration_ms,
        )

    def _read_capped(self, response: requests.Response) -> bytes:
        chunks: list[bytes] = []
        total = 0
        for chunk in response.iter_content(chunk_size=64 * 1024):
            total += len(chunk)
            if total > self.max_response_bytes:
                raise ResponseTooLarge(f"answer larger than {self.max_response_bytes} bytes; not read")
            chunks.append(chunk)
        return b"".join(chunks)


class ResponseTooLarge(Exception):
    pass


def classify_status(status: int) -> FailureClass | None:
    if 200 <= status < 300:
        return None
    if status == 429:
        return FailureClass.RATE_LIMITED
    if status == 408 or status >= 500 or status < 200 or 300 <= status < 400:
        # 3xx: we never follow redirects, and cannot know what the target would have done.
        return FailureClass.INDETERMINATE
    return FailureClass.DEFINITIVE


def classify_exception(exc: requests.RequestException) -> FailureClass:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return FailureClass.NOT_SENT
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return FailureClass.INDETERMINATE
    if isinstance(exc, requests.exceptions.SSLError):
        return FailureClass.NOT_SENT  # the handshake fails before a byte of the request is sent
    if isinstance(exc, requests.exceptions.ConnectionError):
        for cause in _causes(exc):
            if isinstance(
                cause,
                urllib3.exceptions.NewConnectionError
                | urllib3.exceptions.ConnectTimeoutError
                | urllib3.exceptions.NameResolutionError
                | ConnectionRefusedError,
            ):
                return FailureClass.NOT_SENT
    return FailureClass.INDETERMINATE


def describe_exception(exc: requests.RequestException) -> str:
    kinds: list[tuple[type[BaseException], str]] = [
        (requests.exceptions.ConnectTimeout, "connect timeout"),
        (requests.exceptions.ReadTimeout, "read timeout: no answer in time"),
        (requests.exceptions.SSLError, "TLS error"),
        (requests.exceptions.ChunkedEncodingError, "answer cut off"),
    ]
    for kind, label in kinds:
        if isinstance(exc, kind):
            return f"{label} ({_innermost(exc)})"
    if isinstance(exc, requests.exceptions.ConnectionError):
        if classify_exception(exc) is FailureClass.NOT_SENT:
            return f"connection refused or unreachable ({_innermost(exc)})"
        return f"connection lost before an answer ({_innermost(exc)})"
    return f"{type(exc).__name__} ({_innermost(exc)})"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what caused it, outermost first (requests wraps urllib3 wraps socket)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and not any(current is seen for seen in chain) and len(chain) < 20:
        chain.append(current)
        candidates = [getattr(current, "reason", None), current.__cause__]
        candidates += [arg for arg in current.args if isinstance(arg, BaseException)]
        candidates.append(current.__context__)
        current = next((c for c in candidates if isinstance(c, BaseException)), None)
    return chain


def _innermost(exc: BaseException) -> str:
    innermost = _causes(exc)[-1]
    text = str(innermost).strip()
    return text.splitlines()[0][:300] if text else type(innermost).__name__
