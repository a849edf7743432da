"""HTTP plumbing: one threaded server, routing to the two services, faults, the request log.

Both services share one port (their paths do not overlap: Canada Post under /rs, /ers and /vis,
Mirakl under /api). ``/_sandbox/*`` is the control API (state, reset, faults, throttle, orders);
faults and throttles never apply to it and it is not logged. Connections are HTTP/1.1 keep-alive,
like the real gateways; ``stop()`` closes idle ones and waits for every handler thread, so nothing
outlives it.

Links in answers point back at the origin the client addressed: the ``Host`` header over plain
HTTP, or ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` when a front end (a TLS terminator) sets
them.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from fulfil.sandbox.fault_answers import (
    echo_headers_page,
    html_200_page,
    with_foreign_links,
    with_hostile_pin,
    with_nul_bytes,
)
from fulfil.sandbox.faults import REFUSALS, FaultDecision, FaultKind, Faults
from fulfil.sandbox.state import RequestRecord
from fulfil.sandbox.throttle import EndpointLimits, GroupLimits
from fulfil.sandbox.wire import ApiRequest, ApiResponse, Route, match_route
from fulfil.sandbox.xsd import XsdError

if TYPE_CHECKING:
    from fulfil.sandbox.sandbox import Sandbox

MAX_BODY_BYTES = 4 * 1024 * 1024
CONTROL_PREFIX = "/_sandbox/"
# What a front end may name in X-Forwarded-Host: a host name or address, an optional port.
FORWARDED_AUTHORITY = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


class Service(Protocol):
    service: str

    def routes(self) -> list[Route]: ...
    def owns(self, path: str) -> bool: ...
    def not_found(self, request: ApiRequest) -> ApiResponse: ...
    def throttled(self, request: ApiRequest, endpoint: str) -> ApiResponse | None: ...
    def method_not_allowed(self, request: ApiRequest, allowed: tuple[str, ...]) -> ApiResponse: ...


def gateway_page(status: int) -> ApiResponse:
    """What a load balancer in front of the API answers when the backend is unreachable or slow."""
    reason = {502: "Bad Gateway", 504: "Gateway Time-out"}[status]
    body = (
        "<html>\r\n"
        f"<head><title>{status} {reason}</title></head>\r\n"
        "<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n"
        "<hr><center>edge-proxy</center>\r\n"
        "</body>\r\n"
        "</html>\r\n"
    ).encode("ascii")
    return ApiResponse(status, body, "text/html; charset=utf-8")


def _is_xml(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.endswith("+xml") or media in ("application/xml", "text/xml")


class SandboxHTTPServer(ThreadingHTTPServer):
    # Handler threads are joined on close (block_on_close), so stop() leaves nothing running.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        # Requests held by a fault wait here, so a stop or a reset wakes them at once.
        self._holds = threading.Condition()
        super().__init__(address, SandboxRequestHandler)

    def hold(self, seconds: float, generation: int) -> bool:
        """Wait ``seconds``; False when the sandbox stopped or was reset (the request is abandoned)."""
        deadline = time.monotonic() + seconds
        with self._holds:
            while not self.stopping.is_set() and self.sandbox.sandbox_state.generation == generation:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                self._holds.wait(remaining)
        return False

    def interrupt_holds(self) -> None:
        with self._holds:
            self._holds.notify_all()

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-exchange (killed, timed out) is part of the faults the
        # sandbox exists for, not an error worth a traceback on stderr.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError | OSError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class SandboxRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fulfil-sandbox"
    sys_version = ""
    # An idle keep-alive connection is closed after this many seconds.
    timeout = 120
    # Headers and body go out in two writes; with Nagle on, a keep-alive client's delayed ACK
    # holds the body back about 40 ms per answer.
    disable_nagle_algorithm = True
    server: SandboxHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # The request log (/_sandbox/state) is the record; stderr stays quiet for tests and demos.
        return

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            Exchange(self).run()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True


class Exchange:
    """One request and its answer, with the faults the plan chose for it."""

    def __init__(self, handler: SandboxRequestHandler) -> None:
        self.handler = handler
        self.server = handler.server
        self.sandbox = handler.server.sandbox
        self.started_at = time.time()
        self.generation = self.sandbox.sandbox_state.generation
        self.target = handler.path
        split = urlsplit(handler.path)
        self.path = unquote(split.path)
        self.query = ApiRequest.parse_query(split.query)

    def run(self) -> None:
        body = self._read_body()
        if body is None:
            return
        if self.path.startswith(CONTROL_PREFIX):
            self._write(ControlApi(self.sandbox).handle(self.handler.command, self.path, body))
            return
        service = next((s for s in self.sandbox.services if s.owns(self.path)), None)
        request = self._request(body, None)
        if service is None:
            self._write(ApiResponse(404, b"not found\n", "text/plain; charset=utf-8"))
            return
        match = match_route(self.sandbox.routes[service.service], self.handler.command, self.path)
        if match is None or match.endpoint is None or match.handler is None:
            response = (
                service.not_found(request)
                if match is None
                else service.method_not_allowed(request, match.allowed)
            )
            self._finish(service.service, None, response, None)
            return
        # The service's throttle stands in front of everything else: a call it refuses is not
        # performed, draws no fault and consumes no scripted one.
        throttled = service.throttled(request, match.endpoint)
        if throttled is not None:
            self._finish(service.service, match.endpoint, throttled, None)
            return
        decision = self.sandbox.fault_plan.decide(service.service, match.endpoint)
        if decision.latency_s > 0 and self.server.stopping.wait(decision.latency_s):
            self.handler.close_connection = True
            return
        request = self._request(body, decision)
        faults = self.sandbox.fault_plan.faults(service.service)
        late_commit = decision.kind is FaultKind.LATE_COMMIT
        if late_commit and not self.server.hold(faults.late_answer_s, self.generation):
            # Stopped or reset while held: the request never happens.
            self.handler.close_connection = True
            return
        if decision.kind in REFUSALS:
            response = self._refusal(service, decision.kind, request, match.endpoint, faults)
        else:
            response = match.handler(request, match.params)
            response = self._checked(response)
        self._finish(service.service, match.endpoint, response, decision)

    def _request(self, body: bytes, decision: FaultDecision | None) -> ApiRequest:
        headers = {name.lower(): value for name, value in self.handler.headers.items()}
        return ApiRequest(
            method=self.handler.command,
            path=self.path,
            query=self.query,
            headers=headers,
            body=body,
            base_url=self._origin(headers),
            received_at=self.started_at,
            fault=decision,
        )

    def _origin(self, headers: dict[str, str]) -> str:
        """scheme://authority the client addressed, as links must name it (behind a front end too)."""
        host = headers.get("host") or self.sandbox.authority
        forwarded_host = (headers.get("x-forwarded-host") or "").split(",", 1)[0].strip()
        if forwarded_host and FORWARDED_AUTHORITY.fullmatch(forwarded_host):
            host = forwarded_host
        proto = (headers.get("x-forwarded-proto") or "").split(",", 1)[0].strip().lower()
        scheme = proto if proto in ("http", "https") else "http"
        return f"{scheme}://{host}"

    def _refusal(
        self, service: Any, kind: FaultKind, request: ApiRequest, endpoint: str, faults: Faults
    ) -> ApiResponse:
        if kind is FaultKind.ECHO_HEADERS:
            return echo_headers_page(self.handler.requestline, self.handler.headers.items())
        if kind is FaultKind.HTML_200:
            return html_200_page()
        if kind is FaultKind.GATEWAY_502:
            return gateway_page(502)
        if kind is FaultKind.GATEWAY_504:
            return gateway_page(504)
        if service.service == "bestbuy":
            return service.refusal(kind, request, endpoint, faults.retry_after_s)
        return service.refusal(kind, request)

    def _checked(self, response: ApiResponse) -> ApiResponse:
        schemas = self.sandbox.schemas
        if schemas is None or not response.body or not _is_xml(response.content_type):
            return response
        try:
            schemas.validate_bytes(response.body)
        except XsdError as error:
            message = (
                f"sandbox bug: its {self.handler.command} {self.path} answer fails the official XSD: {error}"
            )
            with self.sandbox.sandbox_state.lock:
                self.sandbox.sandbox_state.invalid_responses.append(message)
            return ApiResponse(500, (message + "\n").encode("utf-8"), "text/plain; charset=utf-8")
        return response

    def _finish(
        self, service: str, endpoint: str | None, response: ApiResponse, decision: FaultDecision | None
    ) -> None:
        kind = decision.kind if decision is not None else None
        if kind is FaultKind.COMMIT_THEN_DROP:
            # The work is done; the client never hears about it.
            self.handler.close_connection = True
            self._record(service, endpoint, None, kind)
            return
        faults = self.sandbox.fault_plan.faults(service)
        if kind is FaultKind.COMMIT_THEN_LATE:
            self.handler.close_connection = True
            if not self.server.hold(faults.late_answer_s, self.generation):
                self._record(service, endpoint, None, kind)
                return
        elif kind is FaultKind.TRUNCATE and response.body:
            cut = max(1, int(len(response.body) * (0.25 + 0.5 * decision.variant)))  # type: ignore[union-attr]
            response = ApiResponse(
                response.status, response.body[:cut], response.content_type, response.headers
            )
        elif kind is FaultKind.GARBAGE:
            noise = random.Random(decision.variant).randbytes(32 + int(64 * decision.variant))  # type: ignore[union-attr]
            # A 204 cannot carry a body, so a garbled "no content" arrives as a garbled 200.
            status = 200 if response.status == 204 else response.status
            response = ApiResponse(
                status, noise, response.content_type or "application/octet-stream", response.headers
            )
        elif kind is FaultKind.NUL_BODY:
            response = with_nul_bytes(response)
        elif kind is FaultKind.FOREIGN_LINKS:
            response = with_foreign_links(response, faults.foreign_base_url)
        elif kind is FaultKind.BAD_PIN:
            response = with_hostile_pin(response, faults.hostile_pin)
        elif kind is FaultKind.TRICKLE:
            self._record(service, endpoint, response.status, kind)
            self._trickle(response, faults.trickle_interval_s)
            return
        # Recorded before the answer leaves, so a client holding the answer finds it in the log.
        self._record(service, endpoint, response.status, kind)
        self._write_quietly(response)

    def _record(self, service: str, endpoint: str | None, status: int | None, kind: FaultKind | None) -> None:
        if self.sandbox.sandbox_state.generation != self.generation:
            return  # begun before a reset: it belongs to the forgotten log
        self.sandbox.sandbox_state.record(
            RequestRecord(
                service=service,
                endpoint=endpoint,
                method=self.handler.command,
                path=self.target,
                status=status,
                started_at=self.started_at,
                finished_at=time.time(),
                fault=kind.value if kind is not None else None,
            )
        )

    def _write_quietly(self, response: ApiResponse) -> None:
        # A client that gave up (timeout, reset) must not keep the exchange out of the log.
        try:
            self._write(response)
        except OSError:
            self.handler.close_connection = True

    def _trickle(self, response: ApiResponse, interval_s: float) -> None:
        """Send the whole answer, status line first, one byte every ``interval_s`` seconds."""
        handler = self.handler
        socket_writer = handler.wfile
        captured = io.BytesIO()
        handler.wfile = captured
        try:
            self._write(response, close=True)
        finally:
            handler.wfile = socket_writer
        try:
            for index, byte in enumerate(captured.getvalue()):
                if index and not self.server.hold(interval_s, self.generation):
                    return
                socket_writer.write(bytes((byte,)))
        except OSError:
            return  # the client gave up (its deadline): nothing more to send

    def _read_body(self) -> bytes | None:
        headers = self.handler.headers
        if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length_text = headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            self._write(ApiResponse(400, b"bad Content-Length\n", "text/plain"), close=True)
            return None
        if length < 0 or length > MAX_BODY_BYTES:
            self._write(ApiResponse(413, b"request body too large\n", "text/plain"), close=True)
            return None
        return self.handler.rfile.read(length)

    def _read_chunked(self) -> bytes | None:
        data = bytearray()
        while True:
            line = self.handler.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip() or b"x", 16)
            except ValueError:
                self._write(ApiResponse(400, b"bad chunk\n", "text/plain"), close=True)
                return None
            if size == 0:
                while self.handler.rfile.readline(1024).strip():
                    pass
                return bytes(data)
            if len(data) + size > MAX_BODY_BYTES:
                self._write(ApiResponse(413, b"request body too large\n", "text/plain"), close=True)
                return None
            data += self.handler.rfile.read(size)
            self.handler.rfile.readline(1024)

    def _write(self, response: ApiResponse, *, close: bool = False) -> None:
        handler = self.handler
        if close:
            handler.close_connection = True
        handler.send_response(response.status)
        if response.content_type:
            handler.send_header("Content-Type", response.content_type)
        if response.status not in (204, 304):
            handler.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            handler.send_header(name, value)
        if handler.close_connection:
            handler.send_header("Connection", "close")
        handler.end_headers()
        if response.body and response.status not in (204, 304):
            handler.wfile.write(response.body)
        handler.wfile.flush()


class ControlApi:
    """``/_sandbox/*``: inspect and steer a running sandbox over HTTP (the CLI-served one too)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def handle(self, method: str, path: str, body: bytes) -> ApiResponse:
        parts = [part for part in path[len(CONTROL_PREFIX) :].split("/") if part]
        routes: dict[tuple[str, int, str], Callable[[list[str], Any], object]] = {
            ("GET", 1, "state"): lambda _parts, _body: self.sandbox.state(),
            ("POST", 1, "reset"): self._reset,
            ("PUT", 2, "faults"): self._faults,
            ("POST", 3, "script"): self._script,
            ("GET", 1, "throttle"): lambda _parts, _body: self.sandbox.throttle_report(),
            ("PUT", 2, "throttle"): self._throttle,
            ("POST", 1, "orders"): self._orders,
            ("POST", 2, "orders"): self._generate,
            ("PUT", 3, "orders"): self._order_state,
        }
        key = (method, len(parts), parts[0] if parts else "")
        action = routes.get(key)
        if action is None:
            return _json(404, {"error": f"no control endpoint {method} {path}"})
        try:
            payload = json.loads(body) if body.strip() else None
            return _json(200, action(parts, payload))
        except (ValueError, KeyError, TypeError) as error:
            return _json(400, {"error": str(error)})

    def _reset(self, parts: list[str], payload: Any) -> object:
        self.sandbox.reset()
        return {"reset": True}

    def _faults(self, parts: list[str], payload: Any) -> object:
        faults = Faults(**(payload or {}))
        self.sandbox.set_faults(parts[1], faults)
        return {"service": parts[1], "faults": faults.as_dict()}

    def _throttle(self, parts: list[str], payload: Any) -> object:
        settings = payload or {}
        if not isinstance(settings, dict):
            raise ValueError("the body must be a JSON object of throttle settings")
        if parts[1] == "canadapost":
            canadapost = GroupLimits.from_dict(settings)
            self.sandbox.set_canadapost_limits(canadapost)
            return {"service": "canadapost", "throttle": canadapost.as_dict()}
        if parts[1] == "bestbuy":
            bestbuy = EndpointLimits.from_dict(settings)
            self.sandbox.set_bestbuy_limits(bestbuy)
            return {"service": "bestbuy", "throttle": bestbuy.as_dict()}
        raise ValueError(f"unknown service {parts[1]!r}; services: canadapost, bestbuy")

    def _script(self, parts: list[str], payload: Any) -> object:
        if not isinstance(payload, list):
            raise ValueError("the body must be a JSON list of fault names")
        self.sandbox.script_faults(parts[1], parts[2], payload)
        return {"service": parts[1], "endpoint": parts[2], "script": payload}

    def _orders(self, parts: list[str], payload: Any) -> object:
        if not isinstance(payload, list):
            raise ValueError("the body must be a JSON list of Mirakl order objects")
        self.sandbox.add_orders(payload)
        return {"added": [order["order_id"] for order in payload]}

    def _generate(self, parts: list[str], payload: Any) -> object:
        if parts[1] != "generate":
            raise KeyError(f"no control endpoint /_sandbox/orders/{parts[1]}")
        options = payload or {}
        orders = self.sandbox.generate_orders(
            int(options.get("n", 1)),
            seed=int(options.get("seed", 1)),
            state=str(options.get("state", "SHIPPING")),
            problems=int(options.get("problems", 0)),
        )
        return {"added": [order["order_id"] for order in orders]}

    def _order_state(self, parts: list[str], payload: Any) -> object:
        if parts[2] != "state" or not isinstance(payload, dict) or "state" not in payload:
            raise ValueError('PUT /_sandbox/orders/{order_id}/state takes {"state": "CANCELED"}')
        self.sandbox.set_order_state(parts[1], str(payload["state"]))
        return {"order_id": parts[1], "state": payload["state"]}


def _json(status: int, payload: object) -> ApiResponse:
    return ApiResponse(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json")
