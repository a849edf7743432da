"""What reached the wire: whether any byte of a request was written, and a deadline that cuts off a
call however slowly the other side answers.

Two facts the audited HTTP layer cannot get from the HTTP library's exceptions:

* *Was anything sent?* urllib3 raises the same ``SSLError`` for a handshake that failed and for
  a corrupt record in the middle of the answer, and the same ``ProtocolError`` for a connection
  that failed before the request was written and for a reset after it went out. Only "no byte of
  the request was written" makes a purchase safe to send again. The connection classes below
  mark the moment the first byte is about to be written; an error before that moment provably
  sent nothing, whatever it is.
* *How long may it take in all?* A read timeout applies to each socket read, so an answer trickled
  one byte every few seconds never trips it. A watchdog thread shuts the call's socket down when
  its overall deadline passes; the blocked read returns and the call ends as indeterminate (or as
  not sent, when it was still connecting).

The probe for the call in progress travels in a context variable, so the connection classes, which
urllib3 creates and pools, need no reference to it. Each thread (and each call)
has its own.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import urllib3.connection
import urllib3.connectionpool


class DeadlinePassed(OSError):
    """The call's overall deadline passed before its request could be written: nothing was sent."""


class WireProbe:
    """One attempt of one call: its deadline, whether a byte went out, the socket to cut off."""

    def __init__(self, deadline_seconds: float) -> None:
        self.deadline_seconds = deadline_seconds
        self.deadline = time.monotonic() + deadline_seconds
        self.sent = False
        self.expired = False
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        """The socket this call now reads and writes (the raw one while connecting, then TLS)."""
        if sock is None:
            return
        with self._lock:
            self._socket = sock
            expired = self.expired
        if expired:
            _shut_down(sock)

    def detach(self) -> None:
        with self._lock:
            self._socket = None

    def about_to_write(self, sock: socket.socket | None) -> None:
        """Called right before the first (and every) byte of the request is written."""
        if not self.sent and time.monotonic() >= self.deadline:
            # Checked before the first byte so that a process resumed after its deadline (a paused
            # VM, SIGSTOP) never sends a request someone may already have settled as never sent.
            self.expired = True
            raise DeadlinePassed(
                f"the {self.deadline_seconds:g} s deadline passed before the request was sent"
            )
        self.sent = True
        self.attach(sock)

    def expire(self) -> None:
        """The deadline passed: cut the connection so the blocked read returns."""
        with self._lock:
            self.expired = True
            sock = self._socket
        if sock is not None:
            _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    # The base class's shutdown on the file descriptor: for a TLS socket this leaves the TLS
    # object alone (another thread is inside it) and only makes its read return.
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_current: ContextVar[WireProbe | None] = ContextVar("fulfil_wire_probe", default=None)


@contextlib.contextmanager
def probing(probe: WireProbe) -> Iterator[WireProbe]:
    """Make ``probe`` the one for calls made in this context, and enforce its deadline."""
    token = _current.set(probe)
    entry = WATCHDOG.watch(probe)
    try:
        yield probe
    finally:
        WATCHDOG.cancel(entry)
        probe.detach()  # its entry may wait in the heap a while; the socket need not
        _current.reset(token)


class Watchdog:
    """One thread for every deadline of the process, however many calls are in flight.

    A call that ends in time costs no wake-up: cancelling only marks its entry, and the thread,
    asleep until the earliest deadline it knows, drops every finished entry when it wakes. It is
    woken early only for a deadline earlier than the one it sleeps towards (waking it on every
    call was a tenth of a purchase's CPU)."""

    def __init__(self) -> None:
        # (deadline, entry); the entries of finished calls stay until the thread passes them, so
        # they hold no probe: the probes of the calls in flight are in _live.
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, WireProbe] = {}
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._sleeping_until: float | None = None  # the deadline the thread waits for, if any

    def watch(self, probe: WireProbe) -> int:
        entry = next(self._counter)
        with self._condition:
            heapq.heappush(self._heap, (probe.deadline, entry))
            self._live[entry] = probe
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="fulfil-http-deadlines", daemon=True)
                self._thread.start()
            elif self._sleeping_until is None or probe.deadline < self._sleeping_until:
                self._condition.notify()
        return entry

    def cancel(self, entry: int) -> None:
        with self._condition:
            self._live.pop(entry, None)

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._sleeping_until = None
                    self._condition.wait(timeout=30)
                    if not self._heap:
                        self._thread = None
                        return
                    continue
                deadline, entry = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._sleeping_until = deadline
                    self._condition.wait(timeout=wait)
                    continue
                heapq.heappop(self._heap)
                self._sleeping_until = None
                probe = self._live[entry]  # still in flight: it stays live until its call ends
            probe.expire()


WATCHDOG = Watchdog()


# ------------------------------------------------------------------------------------------------
# Connection classes that report to the probe
# ------------------------------------------------------------------------------------------------


class _ProbedConnectionMixin:
    """Marks the first byte of a request, and hands the socket to the probe for its deadline."""

    sock: socket.socket | None
    auto_open: int
    _fulfil_connecting = False

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        probe = _current.get()
        if probe is not None:
            probe.attach(sock)  # so a handshake that trickles is cut off too
        return sock

    def connect(self) -> None:
        probe = _current.get()
        if probe is not None and time.monotonic() >= probe.deadline:
            probe.expired = True
            raise DeadlinePassed(f"the {probe.deadline_seconds:g} s deadline passed before connecting")
        # Bytes written while connecting (a proxy's CONNECT) are not the request.
        self._fulfil_connecting = True
        try:
            super().connect()  # type: ignore[misc]
        finally:
            self._fulfil_connecting = False
        if probe is not None:
            probe.attach(self.sock)

    def send(self, data: Any) -> None:
        if self.sock is None and self.auto_open:
            self.connect()
        probe = _current.get()
        if probe is not None and not self._fulfil_connecting:
            probe.about_to_write(self.sock)
        super().send(data)  # type: ignore[misc]


class ProbedHTTPConnection(_ProbedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class ProbedHTTPSConnection(_ProbedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _ProbedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = ProbedHTTPConnection


class _ProbedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = ProbedHTTPSConnection


# The pool classes a PoolManager makes (fulfil/audit/transport.py): every connection reports.
PROBED_POOLS = {"http": _ProbedHTTPPool, "https": _ProbedHTTPSPool}
