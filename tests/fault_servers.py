"""Real servers on loopback for fault probes: a TLS front end that breaks on cue, a trickling server,
and a server that records whatever reaches it.

``TlsFrontend`` stands where a TLS-terminating gateway stands in front of Canada Post or Mirakl: it
forwards each request over plain HTTP to a backend (normally the sandbox) and relays the answer,
unless a scripted behaviour says otherwise. Its certificate comes from a throwaway CA made with
``trustme``; point ``FULFIL_CA_BUNDLE`` / ``REQUESTS_CA_BUNDLE`` (or ``verify=``) at ``ca_pem_path``.

    with TlsFrontend(sandbox.base_url) as frontend:
        frontend.script("POST", r"/rs/.*/shipment", ["corrupt_after_headers"])
        env["FULFIL_CANADAPOST_BASE_URL"] = frontend.base_url
        env["FULFIL_CA_BUNDLE"] = str(frontend.ca_pem_path)

Every server here runs its threads only inside its ``with`` block: leaving it closes every
connection and joins every thread.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO
from urllib.parse import urlsplit

import trustme

from tests.local_http import Received, Reply, ScriptedServer

PASS = "pass"
CORRUPT_AFTER_HEADERS = "corrupt_after_headers"
FAIL_HANDSHAKE = "fail_handshake"
DROP_AFTER_REQUEST = "drop_after_request"
BEHAVIOURS = (PASS, CORRUPT_AFTER_HEADERS, FAIL_HANDSHAKE, DROP_AFTER_REQUEST)

# Headers that describe one hop, not the message: a proxy never relays them.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
MAX_LINE = 65536
MAX_BODY = 16 * 1024 * 1024
# A fatal TLS alert record (level 2, handshake_failure 40): what a server that refuses the
# handshake sends back to a ClientHello.
HANDSHAKE_FAILURE_ALERT = bytes((0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28))


@dataclass(frozen=True)
class HttpRequest:
    """One request as read off a connection: request line, headers in order, body."""

    method: str
    target: str  # path and query, as sent
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


@dataclass(frozen=True)
class FrontendRequest:
    """What the front end received and what it did with it."""

    method: str | None  # None: a connection whose handshake was failed, so no request was read
    path: str | None  # path and query as received
    received_at: float  # epoch seconds
    behaviour: str
    connection: int  # which client connection (1, 2, …): several requests on one means keep-alive


def read_request(reader: BinaryIO) -> HttpRequest | None:
    """The next HTTP/1.1 request on a connection; None at end of stream or on anything malformed."""
    line = reader.readline(MAX_LINE)
    while line in (b"\r\n", b"\n"):  # RFC 9112: ignore empty lines before a request line
        line = reader.readline(MAX_LINE)
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None
    try:
        message = http.client.parse_headers(reader)  # type: ignore[arg-type]
    except http.client.HTTPException:
        return None
    headers = [(name, value) for name, value in message.items()]
    request = HttpRequest(parts[0], parts[1], headers, b"")
    if "chunked" in (request.header("Transfer-Encoding") or "").lower():
        body = _read_chunked(reader)
    else:
        length_text = request.header("Content-Length") or "0"
        if not length_text.isdigit() or int(length_text) > MAX_BODY:
            return None
        body = reader.read(int(length_text)) if int(length_text) else b""
        if len(body) != int(length_text):
            return None
    if body is None:
        return None
    return HttpRequest(parts[0], parts[1], headers, body)


def _read_chunked(reader: BinaryIO) -> bytes | None:
    data = bytearray()
    while True:
        size_line = reader.readline(MAX_LINE).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            return None
        if size == 0:
            while reader.readline(MAX_LINE).strip():
                pass  # trailers: not relayed
            return bytes(data)
        if len(data) + size > MAX_BODY:
            return None
        data += reader.read(size)
        reader.readline(MAX_LINE)


class LoopbackServer:
    """Accepts TCP connections on 127.0.0.1 and serves each on its own thread.

    ``close()`` stops accepting, shuts every tracked socket down (which wakes any thread blocked on
    it) and joins every thread, so nothing outlives the server.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._acceptor = threading.Thread(target=self._accept, name=f"{name}:{self.port}", daemon=True)

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._acceptor.start()

    def close(self) -> None:
        self.stopping.set()
        if self._acceptor.is_alive():
            self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=10)

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def serve(self, connection: socket.socket, raw: socket.socket) -> None:
        """Serve one connection. ``raw`` shares its socket: writing to it bypasses any TLS layer."""
        raise NotImplementedError

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(
                target=self._serve_tracked, args=(connection,), name=f"{self._name}-conn", daemon=True
            )
            with self._lock:
                self._threads = [known for known in self._threads if known.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve_tracked(self, connection: socket.socket) -> None:
        # A duplicate descriptor of the same socket: shutting it down wakes a reader blocked on the
        # connection even after ssl has taken the original over.
        raw = connection.dup()
        raw.settimeout(5)
        self.track(raw)
        try:
            self.serve(connection, raw)
        except (OSError, ssl.SSLError, http.client.HTTPException):
            pass  # the peer went away or the server is closing: the connection just ends
        finally:
            self.untrack(raw)
            with contextlib.suppress(OSError):
                raw.close()
            with contextlib.suppress(OSError):
                connection.close()


class TlsFrontend(LoopbackServer):
    """A TLS-terminating gateway on 127.0.0.1 in front of a plain-HTTP backend, with scripted breakage.

    ``script(method, path_regex, behaviours)`` queues behaviours for requests whose method matches
    and whose path (without the query) fully matches the regex; each matching request consumes the
    next one, and a request with no behaviour left passes. Behaviours:

    * ``pass``: forward the request, relay the answer;
    * ``corrupt_after_headers``: forward the request (the backend performs it), send the backend's
      status line and headers, then a corrupt TLS record instead of the body, and close: the
      client sees its status code, then an SSL error while reading the body;
    * ``drop_after_request``: forward the request (performed), wait for the backend's answer, then
      close the connection without a byte of it;
    * ``fail_handshake``: refuse the TLS handshake with a fatal alert; no request is read, nothing
      reaches the backend. A handshake comes before its request, so this applies to the next new
      connection, whatever it carries, as soon as it heads any script. To make sure a keep-alive
      client opens one, ``script`` closes idle client connections, and an answer is sent with
      ``Connection: close`` whenever a ``fail_handshake`` heads a script.

    Requests are forwarded with their method, target, headers and body, plus ``X-Forwarded-Proto:
    https``, ``X-Forwarded-Host`` (the ``Host`` the client addressed, or this server's authority)
    and ``X-Forwarded-For``; hop-by-hop headers are dropped. A body with a length is streamed to the
    client as it arrives (headers first), so a trickled body stays trickled. If the backend closes
    without answering, so does the front end. Client connections are HTTP/1.1 keep-alive.
    """

    def __init__(
        self, backend_url: str, *, backend_timeout_s: float = 120.0, idle_timeout_s: float = 30.0
    ) -> None:
        backend = urlsplit(backend_url)
        if backend.scheme != "http" or not backend.hostname:
            raise ValueError(f"the backend must be a plain http:// URL, not {backend_url!r}")
        super().__init__("tls-frontend")
        self.backend_host = backend.hostname
        self.backend_port = backend.port or 80
        self.backend_timeout_s = backend_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.base_url = f"https://{self.authority}"
        self._directory = Path(tempfile.mkdtemp(prefix="fulfil-tls-frontend-"))
        ca = trustme.CA()
        self.ca_pem_path = self._directory / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_pem_path))
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self._context)
        self._scripts: list[tuple[str, re.Pattern[str], deque[str]]] = []
        self._received: list[FrontendRequest] = []
        self._idle: set[socket.socket] = set()
        self._connections_seen = 0
        # Seeded, so the corrupt record is the same bytes every run.
        self._noise = random.Random(7).randbytes(64)

    # --- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> TlsFrontend:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    # --- steering and inspection -----------------------------------------------------------------

    def script(self, method: str, path_regex: str, behaviours: list[str]) -> None:
        unknown = [behaviour for behaviour in behaviours if behaviour not in BEHAVIOURS]
        if unknown:
            raise ValueError(f"unknown behaviour(s) {unknown}; known: {', '.join(BEHAVIOURS)}")
        pattern = re.compile(path_regex)
        with self._lock:
            for known_method, known_pattern, queue in self._scripts:
                if known_method == method.upper() and known_pattern.pattern == pattern.pattern:
                    queue.extend(behaviours)
                    break
            else:
                self._scripts.append((method.upper(), pattern, deque(behaviours)))
            idle = list(self._idle) if self._handshake_failure_pending() else []
        for raw in idle:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)

    @property
    def received(self) -> list[FrontendRequest]:
        with self._lock:
            return list(self._received)

    def requests_for(self, method: str, path_regex: str) -> list[FrontendRequest]:
        """The requests received (handshake failures excluded) with this method and matching path."""
        pattern = re.compile(path_regex)
        return [
            entry
            for entry in self.received
            if entry.method == method.upper()
            and entry.path is not None
            and pattern.fullmatch(urlsplit(entry.path).path)
        ]

    @property
    def failed_handshakes(self) -> int:
        return sum(1 for entry in self.received if entry.behaviour == FAIL_HANDSHAKE)

    def _handshake_failure_pending(self) -> bool:
        return any(queue and queue[0] == FAIL_HANDSHAKE for _, _, queue in self._scripts)

    def _take_handshake_failure(self) -> bool:
        with self._lock:
            for _, _, queue in self._scripts:
                if queue and queue[0] == FAIL_HANDSHAKE:
                    queue.popleft()
                    self._connections_seen += 1
                    self._received.append(
                        FrontendRequest(None, None, time.time(), FAIL_HANDSHAKE, self._connections_seen)
                    )
                    return True
        return False

    def _behaviour_for(self, request: HttpRequest, received_at: float, connection: int) -> str:
        with self._lock:
            behaviour = PASS
            for method, pattern, queue in self._scripts:
                if method == request.method and pattern.fullmatch(request.path) and queue:
                    # A fail_handshake heading the queue waits for the next new connection.
                    if queue[0] != FAIL_HANDSHAKE:
                        behaviour = queue.popleft()
                    break
            self._received.append(
                FrontendRequest(request.method, request.target, received_at, behaviour, connection)
            )
            return behaviour

    # --- serving ---------------------------------------------------------------------------------

    def serve(self, connection: socket.socket, raw: socket.socket) -> None:
        if self._take_handshake_failure():
            self._refuse_handshake(raw)
            return
        with self._lock:
            self._connections_seen += 1
            number = self._connections_seen
        connection.settimeout(5)
        with (
            self._context.wrap_socket(connection, server_side=True) as tls,
            tls.makefile("rb") as reader,
        ):
            tls.settimeout(self.idle_timeout_s)
            while not self.stopping.is_set():
                with self._lock:
                    self._idle.add(raw)
                try:
                    request = read_request(reader)
                finally:
                    with self._lock:
                        self._idle.discard(raw)
                if request is None:
                    return
                behaviour = self._behaviour_for(request, time.time(), number)
                if not self._exchange(tls, raw, request, behaviour):
                    return

    def _refuse_handshake(self, raw: socket.socket) -> None:
        # Read the ClientHello first: closing with it unread would reset the connection instead.
        raw.settimeout(2)
        with contextlib.suppress(OSError):
            raw.recv(65536)
        raw.sendall(HANDSHAKE_FAILURE_ALERT)
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_WR)
            while raw.recv(65536):
                pass

    def _exchange(self, tls: ssl.SSLSocket, raw: socket.socket, request: HttpRequest, behaviour: str) -> bool:
        """Forward one request and answer it as the behaviour says; True to keep the connection."""
        backend = http.client.HTTPConnection(
            self.backend_host, self.backend_port, timeout=self.backend_timeout_s
        )
        try:
            backend.connect()
            assert backend.sock is not None
            self.track(backend.sock)
            self._send_to_backend(backend, request)
            try:
                answer = backend.getresponse()
            except (OSError, http.client.HTTPException):
                return False  # the backend dropped the request: so does the gateway
            if behaviour == DROP_AFTER_REQUEST:
                answer.read()
                return False
            if behaviour == CORRUPT_AFTER_HEADERS:
                body = answer.read()
                tls.sendall(self._head(answer, len(body), close=True))
                raw.sendall(bytes((0x17, 0x03, 0x03, 0x00, len(self._noise))) + self._noise)
                return False
            with self._lock:
                # A scripted handshake failure needs a new connection, so this one ends here.
                keep = not self._handshake_failure_pending()
            keep = keep and (request.header("Connection") or "").lower() != "close"
            keep = keep and not self.stopping.is_set()
            self._relay(tls, request, answer, keep)
            return keep
        finally:
            if backend.sock is not None:
                self.untrack(backend.sock)
            backend.close()

    def _send_to_backend(self, backend: http.client.HTTPConnection, request: HttpRequest) -> None:
        backend.putrequest(request.method, request.target, skip_host=True, skip_accept_encoding=True)
        host = request.header("Host") or self.authority
        for name, value in request.headers:
            lowered = name.lower()
            if lowered in HOP_BY_HOP or lowered in (
                "content-length",
                "x-forwarded-proto",
                "x-forwarded-host",
            ):
                continue
            backend.putheader(name, value)
        if request.header("Host") is None:
            backend.putheader("Host", host)
        backend.putheader("X-Forwarded-Proto", "https")
        backend.putheader("X-Forwarded-Host", host)
        backend.putheader("X-Forwarded-For", "127.0.0.1")
        if request.body or request.method in ("POST", "PUT", "PATCH"):
            backend.putheader("Content-Length", str(len(request.body)))
        backend.endheaders(request.body or None)

    def _relay(
        self, tls: ssl.SSLSocket, request: HttpRequest, answer: http.client.HTTPResponse, keep: bool
    ) -> None:
        bodiless = request.method == "HEAD" or answer.status in (204, 304) or 100 <= answer.status < 200
        if bodiless:
            tls.sendall(self._head(answer, None, close=not keep))
            answer.read()
            return
        if answer.length is None:
            # Chunked or delimited by the backend's close: buffer it, send it with a length.
            body = answer.read()
            tls.sendall(self._head(answer, len(body), close=not keep) + body)
            return
        tls.sendall(self._head(answer, answer.length, close=not keep))
        while chunk := answer.read1(65536):
            tls.sendall(chunk)

    @staticmethod
    def _head(answer: http.client.HTTPResponse, length: int | None, *, close: bool) -> bytes:
        lines = [f"HTTP/1.1 {answer.status} {answer.reason}"]
        for name, value in answer.getheaders():
            if name.lower() in HOP_BY_HOP or name.lower() == "content-length":
                continue
            lines.append(f"{name}: {value}")
        if length is not None:
            lines.append(f"Content-Length: {length}")
        elif answer.getheader("Content-Length") is not None:
            lines.append(f"Content-Length: {answer.getheader('Content-Length')}")
        lines.append("Connection: close" if close else "Connection: keep-alive")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class TrickleServer(LoopbackServer):
    """Reads each request, then answers one byte every ``interval_s`` seconds, status line included."""

    def __init__(self, body: bytes, interval_s: float, status: int, content_type: str) -> None:
        super().__init__("trickle-server")
        reason = http.client.responses.get(status, "Unknown")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        )
        self.answer = (head + "Connection: close\r\n\r\n").encode("latin-1") + body
        self.interval_s = interval_s
        self.url = f"http://{self.authority}"
        self._requests = 0

    @property
    def requests_received(self) -> int:
        with self._lock:
            return self._requests

    def serve(self, connection: socket.socket, raw: socket.socket) -> None:
        connection.settimeout(5)
        with connection.makefile("rb") as reader:
            if read_request(reader) is None:
                return
        with self._lock:
            self._requests += 1
        for index, byte in enumerate(self.answer):
            if index and self.stopping.wait(self.interval_s):
                return
            connection.sendall(bytes((byte,)))


class TrickleUrl(str):
    """The URL of a trickle server, which also tells how many requests that server has read."""

    server: TrickleServer

    @property
    def requests_received(self) -> int:
        return self.server.requests_received


@contextmanager
def trickle_server(
    body: bytes, interval_s: float, status: int = 200, content_type: str = "application/json"
) -> Iterator[TrickleUrl]:
    """A server whose every answer takes ``interval_s`` × its length in bytes: no single read waits
    longer than ``interval_s``, so only an overall deadline stops a client. Yields its URL
    (``url.requests_received`` counts requests read)."""
    server = TrickleServer(body, interval_s, status, content_type)
    url = TrickleUrl(server.url)
    url.server = server
    server.start()
    try:
        yield url
    finally:
        server.close()


class RecordingServer(ScriptedServer):
    """Records every request that reaches it (method, path, headers, body) and answers ``reply``.

    Stand it where a hostile answer points (``Faults(foreign_base_url=server.url)``) to prove that
    no request, and no credential, ever went there.
    """

    def __init__(self, reply: Reply | None = None) -> None:
        answer = reply or Reply(404, b"nothing here\n", {"Content-Type": "text/plain"})
        super().__init__(lambda _request: answer)

    def requests(self) -> list[Received]:
        return list(self.received)

    def authorization_headers(self) -> list[str]:
        """Every Authorization value received (any spelling of the header name)."""
        return [
            value
            for request in self.requests()
            for name, value in request.headers.items()
            if name.lower() == "authorization"
        ]
