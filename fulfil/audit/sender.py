"""The one way fulfil talks to the outside world.

Every request goes through ``AuditedHttp.send``: urllib3 pools (fulfil/audit/transport.py) with
mandatory connect and read timeouts, an overall deadline per call, TLS verification on (trusting
the CA bundle the environment names), redirects never followed, credentials only ever sent to the configured
service's scheme, host and port, the answer read with a size cap, and an api_calls row written
before sending and completed after. The outcome carries a failure class every caller can act on:

* ``definitive``: the service answered and refused (a 4xx). Retrying the same request will not help.
* ``not_sent``: provably never reached the service: the error came before the first byte of the
  request was written (name resolution, connection refused, connect timeout, a failed handshake on
  a fresh connection, a deadline that passed while connecting, a link to another host refused).
  Safe to retry, even for a purchase.
* ``indeterminate``: it may have been acted on: anything after the first byte was written (read
  timeout, reset, a TLS error while reading, the deadline passing mid-answer), a 5xx, a garbled,
  oversized or unexpected answer. Never blindly repeat a purchase: look it up first.
* ``rate_limited``: a 429, or another answer the service's budgets know as its throttle
  (Canada Post's "Rejected by SLM Monitor"): refused before anything was done; wait and send again.

A status code received is kept even when reading the body fails afterwards.

With ``budgets`` (fulfil/audit/budget.py), every request is first admitted under its endpoint's
rate budget, shared by every process using the database, in the statement that writes its row; a
throttle answer pauses that budget for all of them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from urllib3 import HTTPHeaderDict
from urllib3 import exceptions as http_errors

from fulfil import __version__
from fulfil.audit.budget import Budget, ServiceBudgets
from fulfil.audit.log import ApiCallLog, SendGuard
from fulfil.audit.outcome import FailureClass, HttpOutcome
from fulfil.audit.redaction import URL_SAFE_CHARACTERS
from fulfil.audit.retry import NO_RETRY, RetryPolicy
from fulfil.audit.transport import DEFAULT_HEADERS, Credentials, pools_for
from fulfil.audit.wire import WireProbe, probing
from fulfil.config import TRUST_VARIABLES
from fulfil.url_origin import origin_of, same_origin

log = logging.getLogger("fulfil.http")

DEFAULT_MAX_RESPONSE_BYTES = 20 * 1024 * 1024


# An answer judged by its caller: None when a 2xx is what the service answers, else what is wrong.
AnswerCheck = Callable[[int, Mapping[str, str], bytes], str | None]


def trust_store(ca_bundle: str | None, environ: Mapping[str, str] | None = None) -> str | bool:
    """What to verify server certificates against: FULFIL_CA_BUNDLE, else the bundle the
    environment names (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, SSL_CERT_FILE, SSL_CERT_DIR), else the
    certifi bundle. Verification itself is never off."""
    if ca_bundle:
        return ca_bundle
    environ = os.environ if environ is None else environ
    for name in TRUST_VARIABLES:
        value = (environ.get(name) or "").strip()
        if value:
            return value
    return True


class AuditedHttp:
    """Audited, timed, redacted HTTP for one service, whose credentials go to its origin only."""

    def __init__(
        self,
        audit: ApiCallLog,
        *,
        service: str,
        origin: str,
        auth: Credentials,
        connect_timeout: float,
        read_timeout: float,
        deadline: float | None = None,
        ca_bundle: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        budgets: ServiceBudgets | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        if connect_timeout <= 0 or read_timeout <= 0 or (deadline is not None and deadline <= 0):
            raise ValueError("timeouts are mandatory and must be positive")
        self.audit = audit
        self.service = service
        self.origin = origin_of(origin)
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        # A whole call (connect, answer and body) ends by this many seconds, however it trickles.
        self.deadline = deadline if deadline is not None else connect_timeout + read_timeout
        self.max_response_bytes = max_response_bytes
        self.verify = trust_store(ca_bundle)
        self.redactor = audit.redactor
        self.auth = auth
        # Requests only ever go to ``origin`` (anything else is refused before sending), so the
        # environment's proxy settings are read once, for that one origin.
        self.pools = pools_for(self.origin, self.verify)
        self._headers = {"User-Agent": f"fulfil/{__version__}", **DEFAULT_HEADERS}
        # The shared rate budgets of this service's endpoints (None: calls are not metered).
        self.budgets = budgets
        # Asked between the slices of a budget wait: True holds the request back (a stop signal).
        self.should_stop = should_stop

    def close(self) -> None:
        self.pools.clear()

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
        expect: AnswerCheck | None = None,
        guard: SendGuard | None = None,
    ) -> HttpOutcome:
        """Send with the retry policy; returns the last attempt's outcome. Raises only if the audit
        row cannot be written, or ``guard`` refuses (``LeaseLost``): then nothing is sent. Waiting
        for the endpoint's budget takes at most ``budgets.max_wait`` over all the attempts."""
        attempt = 1
        waits = _BudgetWaits(self.budgets.max_wait if self.budgets is not None else 0.0)
        while True:
            outcome = self._send_once(
                method,
                url,
                endpoint=endpoint,
                related_id=related_id,
                headers=headers,
                params=params,
                data=data,
                expect=expect,
                guard=guard,
                waits=waits,
            )
            if (
                outcome.failure is None
                or outcome.failure not in retry.retry_on
                or not outcome.repeatable
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
        expect: AnswerCheck | None,
        guard: SendGuard | None,
        waits: _BudgetWaits,
    ) -> HttpOutcome:
        body = data.encode("utf-8") if isinstance(data, str) else data
        full_url = with_query(url, params)
        foreign = None if same_origin(full_url, self.origin) else full_url
        sent_headers = {**self._headers, **(headers or {})}
        if body is not None:
            sent_headers["Content-Length"] = str(len(body))
        elif method not in ("GET", "HEAD"):
            sent_headers["Content-Length"] = "0"  # which some Mirakl front ends insist on
        if foreign is None:
            # Never let an answer's link carry the credentials elsewhere: a foreign request is
            # recorded as refused, without them, and nothing is sent.
            sent_headers["Authorization"] = self.auth.header_value()
        request: dict[str, Any] = {
            "service": self.service,
            "endpoint": endpoint,
            "related_id": related_id,
            "method": method,
            "url": full_url,
            "headers": sent_headers,
            "body": body,
            "content_type": sent_headers.get("Content-Type"),
            "guard": guard if foreign is None else None,
            "deadline_seconds": self.deadline,
        }
        budget = self.budgets.budget_for(endpoint) if self.budgets is not None and foreign is None else None
        if budget is None:
            call_id = self.audit.begin(**request)
        else:
            admitted = self._admit(budget, request, waits)
            if isinstance(admitted, str):
                return self._hold_back(request, admitted)
            call_id = admitted
        if foreign is not None:
            return self._refuse_foreign(call_id, method, foreign, endpoint)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "→ %s %s [%s] headers=%s",
                method,
                self.redactor.url(full_url),
                endpoint,
                self.redactor.headers(sent_headers),
            )
        started = time.monotonic()
        status_code: int | None = None
        response_headers: dict[str, str] | None = None
        received: bytes | None = None
        failure: FailureClass | None = None
        error: str | None = None
        repeatable = True
        probe = WireProbe(self.deadline)
        with probing(probe):
            try:
                response = self.pools.urlopen(
                    method,
                    full_url,
                    body=body,
                    headers=sent_headers,
                    retries=False,  # a request is only sent again by the retry policy, audited
                    redirect=False,
                    timeout=self.timeout,
                    preload_content=False,
                )
                try:
                    status_code = response.status
                    response_headers = dict(response.headers)
                    received = self._read_capped(response)
                finally:
                    if received is None:
                        response.close()  # not read to the end: it cannot carry another request
                    response.release_conn()  # back to the pool (a closed one reconnects there)
            except ResponseTooLarge as exc:
                failure, error, repeatable = FailureClass.INDETERMINATE, str(exc), False
            except (http_errors.HTTPError, ValueError, OSError, LookupError) as exc:
                # Before the first byte of the request was written nothing can have happened,
                # whatever the error (whatever else the HTTP stack lets through, a header it
                # cannot decode say, included); after it, anything may have.
                failure = FailureClass.INDETERMINATE if probe.sent else FailureClass.NOT_SENT
                error = describe_exception(exc, sent=probe.sent, answered=status_code is not None)
        if probe.expired and failure is None and not _framed(response_headers):
            # The watchdog cut a body that ends when the connection does: it may be incomplete.
            failure = FailureClass.INDETERMINATE
        if probe.expired and failure is not None:
            error = f"no complete answer within the {self.deadline:g} s deadline ({error})"
        if failure is None and status_code is not None:
            failure = classify_status(status_code)
            if failure is not None:
                error = f"HTTP {status_code}"
            elif expect is not None:
                problem = expect(status_code, response_headers or {}, received or b"")
                if problem is not None:
                    failure, error = FailureClass.INDETERMINATE, problem
        duration_ms = int((time.monotonic() - started) * 1000)
        # Nothing downstream (parsers, messages, shipments.last_error) ever sees a credential the
        # service echoed back. A label or manifest file is the exception: its bytes are kept as
        # sent (a byte replaced in a PDF breaks its cross-reference table, and a label's text may
        # happen to contain a short secret, the sandbox's user name does), and its stored copy in
        # api_calls is a summary (length, sha256), never its text.
        artifact = _is_artifact((response_headers or {}).get("Content-Type"))
        exact = received
        received = self.redactor.bytes(received) if received is not None else None
        response_headers = self.redactor.headers(response_headers) if response_headers is not None else None
        error = self.redactor.text(error)
        outcome = HttpOutcome(
            call_id=call_id,
            method=method,
            url=full_url,
            status_code=status_code,
            headers=HTTPHeaderDict(response_headers or {}),
            body=(exact if artifact else received) or b"",
            failure=failure,
            error=error,
            duration_ms=duration_ms,
            repeatable=repeatable,
        )
        if budget is not None and self.budgets is not None and status_code is not None:
            pause = self.budgets.pause_after(budget, endpoint, outcome)
            if pause is not None:
                # Refused at the door, nothing done: rate_limited, whatever the status said. The
                # pause is recorded first, so the other processes stop as soon as possible.
                failure = outcome.failure = FailureClass.RATE_LIMITED
                error = outcome.error = error or f"HTTP {status_code}"
                until = self.audit.pause_budget(budget, pause)
                # The run says what it does about it (waits, or stops with one line); this is for -v.
                log.info(
                    "%s %s: %s; %s paused for every process until %s",
                    self.service,
                    endpoint,
                    pause.reason,
                    budget.name,
                    f"{until:%H:%M:%S}",
                )
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
        return outcome

    # --- rate budgets ---------------------------------------------------------------------------

    def _admit(self, budget: Budget, request: dict[str, Any], waits: _BudgetWaits) -> int | str:
        """The call_id of the request's row once its budget admits it (the slot reached), or why
        it is held back (the wait would pass ``waits``' bound, or the run is stopping)."""
        assert self.budgets is not None
        horizon = self.budgets.horizon
        reserved = False
        while True:
            admission = self.audit.begin_metered(
                **request, budget=budget, horizon=horizon, longest_wait=waits.left(), reserved=reserved
            )
            if admission.call_id is not None:
                if admission.wait_seconds > 0:
                    waits.sleep(admission.wait_seconds, None)  # within the horizon: no coming back
                return admission.call_id
            reserved = admission.reserved
            wait = admission.wait_seconds
            if admission.paused_until is not None:
                why = (
                    f"{budget.name} is paused for every process until "
                    f"{admission.paused_until:%H:%M:%S} ({admission.pause_reason})"
                )
            else:
                why = f"{budget.name} has no slot for {wait:.1f} s"
            if wait > waits.left() + horizon:
                return f"held back: {why}; waited {waits.spent:.1f} s of at most {waits.bound:.1f} s"
            log.debug("%s %s: %s; waiting %.2f s", self.service, request["endpoint"], why, wait)
            if not waits.sleep(wait, self.should_stop):
                return f"held back: the run is stopping ({why})"

    def _hold_back(self, request: dict[str, Any], reason: str) -> HttpOutcome:
        """A request its budget did not admit in time: recorded, never sent (``not_sent``)."""
        call_id = self.audit.begin(**request)
        error = f"{reason}; nothing was sent"
        # The caller reports what it does about it; this is for -v.
        log.info("%s %s: %s", self.service, request["endpoint"], error)
        # Not sent again: the waits of every attempt share one bound, so the next would be held too.
        return self._unsent(call_id, request["method"], request["url"], error, repeatable=False)

    def _refuse_foreign(self, call_id: int, method: str, url: str, endpoint: str) -> HttpOutcome:
        host = _host_for_message(url)
        error = (
            f"refused: the link points to {host}, not to the configured {self.service} host "
            f"({self.origin}); nothing was sent there"
        )
        log.warning("%s %s: %s", self.service, endpoint, error)
        return self._unsent(call_id, method, url, error, repeatable=False)

    def _unsent(self, call_id: int, method: str, url: str, error: str, *, repeatable: bool) -> HttpOutcome:
        """A request recorded and never sent: its row completed as ``not_sent``, and its outcome."""
        self.audit.finish(
            call_id,
            status_code=None,
            response_headers=None,
            body=None,
            content_type=None,
            is_success=False,
            error=error,
            failure_class=FailureClass.NOT_SENT.value,
            duration_ms=0,
        )
        return HttpOutcome(
            call_id=call_id,
            method=method,
            url=self.redactor.url(url),
            status_code=None,
            headers={},
            body=b"",
            failure=FailureClass.NOT_SENT,
            error=error,
            duration_ms=0,
            repeatable=repeatable,
        )

    def _read_capped(self, response: urllib3.BaseHTTPResponse) -> bytes:
        chunks: list[bytes] = []
        total = 0
        for chunk in response.stream(64 * 1024, decode_content=True):
            total += len(chunk)
            if total > self.max_response_bytes:
                raise ResponseTooLarge(
                    f"the answer is larger than the {self.max_response_bytes:,} bytes fulfil reads; "
                    "it was not read (sending again would not change it)"
                )
            chunks.append(chunk)
        return b"".join(chunks)


def with_query(url: str, params: Mapping[str, Any] | None) -> str:
    """The URL as sent: characters a URL cannot hold quoted, and ``params`` appended as its query
    (a list as the key repeated; None left out), as requests built it."""
    url = quote(url, safe=URL_SAFE_CHARACTERS)
    if not params:
        return url
    pairs: list[tuple[str, Any]] = []
    for key, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        pairs += [(key, item) for item in values if item is not None]
    if not pairs:
        return url
    return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(pairs)}"


def _framed(headers: Mapping[str, str] | None) -> bool:
    """True when the answer says where its body ends (so a cut-off body is an error, not an end)."""
    if not headers:
        return False
    lowered = {name.lower(): value for name, value in headers.items()}
    return "content-length" in lowered or "chunked" in lowered.get("transfer-encoding", "").lower()


def _host_for_message(url: str) -> str:
    try:
        return origin_of(url)
    except ValueError:
        printable = "".join(ch if ch.isprintable() and not ch.isspace() else "?" for ch in url[:80])
        return repr(printable)


class ResponseTooLarge(Exception):
    pass


class _BudgetWaits:
    """How long one call (all its attempts) has waited for its budget, against its bound."""

    SLICE_SECONDS = 0.25  # how often a long wait asks whether the run is stopping

    def __init__(self, bound: float) -> None:
        self.bound = bound
        self.spent = 0.0

    def left(self) -> float:
        return max(0.0, self.bound - self.spent)

    def sleep(self, seconds: float, should_stop: Callable[[], bool] | None) -> bool:
        """Sleep ``seconds`` (in slices when it can be stopped); False when stopped first."""
        started = time.monotonic()
        deadline = started + seconds
        try:
            while True:
                if should_stop is not None and should_stop():
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                time.sleep(min(remaining, self.SLICE_SECONDS) if should_stop is not None else remaining)
        finally:
            self.spent += time.monotonic() - started


def classify_status(status: int) -> FailureClass | None:
    if 200 <= status < 300:
        return None
    if status == 429:
        return FailureClass.RATE_LIMITED
    if status == 408 or status >= 500 or status < 200 or 300 <= status < 400:
        # 3xx: we never follow redirects, and cannot know what the target would have done.
        return FailureClass.INDETERMINATE
    return FailureClass.DEFINITIVE


def describe_exception(exc: BaseException, *, sent: bool, answered: bool = False) -> str:
    """What went wrong, in a few words, and whether it was before or after the request went out
    (``answered``: the status line had arrived, so the body was being read)."""
    detail = _innermost(exc)
    if isinstance(exc, http_errors.NewConnectionError):
        return f"connection refused or unreachable, nothing sent ({detail})"
    if isinstance(exc, http_errors.ConnectTimeoutError):
        return f"connect timeout ({detail})"
    if isinstance(exc, http_errors.ReadTimeoutError):
        return f"read timeout: no answer in time ({detail})"
    if isinstance(exc, http_errors.SSLError):
        if sent:
            return f"TLS error after the request was sent ({detail})"
        return f"TLS error before anything was sent ({detail})"
    if isinstance(exc, http_errors.ProtocolError | OSError) and answered:
        return f"answer cut off ({detail})"
    if isinstance(exc, http_errors.ProtocolError | http_errors.ProxyError | OSError):
        if sent:
            return f"connection lost after the request was sent ({detail})"
        return f"connection refused or unreachable, nothing sent ({detail})"
    return f"{type(exc).__name__} ({detail})"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what caused it, outermost first (urllib3 wraps http.client or socket)."""
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


def _is_artifact(content_type: str | None) -> bool:
    """A label or manifest file (PDF, or a thermal printer's ZPL), not a message to read."""
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind == "application/pdf" or kind.endswith("zpl")
