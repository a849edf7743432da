"""Several workers inside one run: each claims one piece of work at a time, exactly as a lone run
does (one statement, SKIP LOCKED, a lease), with its own database connection and its own
keep-alive HTTP session; their results come back to the thread that started the run, in the
order they finish, so the output (a terminal's progress bar, JSON lines, cron's stderr) is
written by one thread only.

Threads, not asyncio: nearly all of a worker's time is spent waiting on a socket (the service's
answer, PostgreSQL's), which releases the GIL; requests, psycopg and the audit layer's byte-level
wire probe are blocking code that a thread runs unchanged, where asyncio would need a second HTTP
and database stack. The CPU a worker spends per order (a few milliseconds) is far below what the
interpreter can do while the others wait.

The first worker starts alone and the others join at its first result, so a refused key or a
service that is down costs one request. A worker that raises (the service throttles or is down, a
configuration error) asks the others to stop after the order each has in flight; the first
exception is raised again in the run's thread once all have stopped. A second stop signal
(``RunInterrupted``, raised in the run's thread) leaves at once: the workers are daemon threads,
and whatever they had in flight is left to the recovery every crash already gets.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

R = TypeVar("R")

# How long the run's thread waits for a result before looking again (signals are handled
# between waits, so this bounds how late a stop signal is noticed).
_POLL_SECONDS = 0.1


class Halt:
    """Shared by the workers of one run: set when one of them failed or the run is leaving."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()


@dataclass
class WorkLimit:
    """At most ``limit`` pieces of work for the whole run, whichever worker takes them."""

    limit: int | None
    _taken: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        with self._lock:
            if self.limit is not None and self._taken >= self.limit:
                return False
            self._taken += 1
            return True

    def give_back(self) -> None:
        """A slot taken for work that was not there (the claim found nothing)."""
        with self._lock:
            self._taken -= 1


class SharedSet(Generic[R]):
    """A set the workers of a run share (e.g. the work this run gave back and must not take again)."""

    def __init__(self) -> None:
        self._items: set[R] = set()
        self._lock = threading.Lock()

    def add(self, item: R) -> None:
        with self._lock:
            self._items.add(item)

    def snapshot(self) -> list[R]:
        with self._lock:
            return list(self._items)


# A worker: given where to send each result and the run's halt flag, it works until there is no
# more work, the halt flag is set, or it raises.
Worker = Callable[[Callable[[R], None], Halt], None]


def run_workers(
    count: int, worker: Worker[R], deliver: Callable[[R], None], halt: Halt | None = None
) -> None:
    """Run ``count`` copies of ``worker``; ``deliver`` is called in this thread with each result
    as it comes. One worker runs in this thread itself (no thread, no queue)."""
    halt = halt or Halt()
    if count <= 1:
        worker(deliver, halt)
        return
    results: queue.SimpleQueue[tuple[R]] = queue.SimpleQueue()
    failures: list[BaseException] = []
    failures_lock = threading.Lock()

    def body() -> None:
        try:
            worker(lambda result: results.put((result,)), halt)
        except BaseException as exc:
            with failures_lock:
                failures.append(exc)
            halt.set()

    threads = [
        threading.Thread(target=body, name=f"fulfil-worker-{n + 1}", daemon=True) for n in range(count)
    ]
    # The first worker goes alone until its first result: a refused key, a service that cannot be
    # reached or a throttle then costs one request, not one per worker.
    threads[0].start()
    started = 1
    try:
        while True:
            try:
                (result,) = results.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if not any(thread.is_alive() for thread in threads[:started]):
                    break
                continue
            if started < count and not halt.is_set:
                for thread in threads[started:]:
                    thread.start()
                started = count
            deliver(result)
        while not results.empty():
            deliver(results.get()[0])
    except BaseException:
        # Leaving at once (a second signal), or the output failed: nothing new is claimed.
        halt.set()
        raise
    if failures:
        raise failures[0]
