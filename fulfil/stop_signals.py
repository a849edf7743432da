"""Stopping a run on SIGTERM or SIGINT without leaving damage behind.

The first signal asks the run to stop: the order in flight is finished (a purchase already sent is
answered and recorded, within its deadline), nothing new is started, the run's leases are released
so another run or host can go on at once, and the command exits 143 (SIGTERM) or 130 (SIGINT),
saying so on stderr. A second signal stops at once (``RunInterrupted``): whatever was in flight is
left to reconcile, which never buys twice, and the leases are still released on the way out.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class RunInterrupted(BaseException):
    """A second stop signal: leave now. A BaseException, so no `except Exception` swallows it."""

    def __init__(self, signal_name: str, exit_code: int) -> None:
        super().__init__(f"interrupted by a second {signal_name}")
        self.signal_name = signal_name
        self.exit_code = exit_code


class StopRequest:
    """Whether this run has been asked to stop, and by which signal."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.exit_code: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def request(self, signum: int) -> None:
        self.signal_name = signal.Signals(signum).name
        self.exit_code = EXIT_CODES.get(signal.Signals(signum), 128 + signum)

    def describe(self) -> str:
        return f"{self.signal_name} received; the remaining orders wait for the next run"


def interrupt_on_sigterm() -> None:
    """SIGTERM raises RunInterrupted (as SIGINT raises KeyboardInterrupt), so a command that has no
    graceful stop still unwinds: transactions roll back and the exit says why."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        raise RunInterrupted("SIGTERM", EXIT_CODES[signal.SIGTERM])

    signal.signal(signal.SIGTERM, handle)


@contextmanager
def stop_on_signals(say: Callable[[str], None]) -> Iterator[StopRequest]:
    """Turn SIGINT and SIGTERM into a stop request for the duration of a run (main thread only)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            raise RunInterrupted(signal.Signals(signum).name, stop.exit_code or 128 + signum)
        stop.request(signum)
        say(
            f"fulfil: {stop.signal_name} received: finishing the order in flight, then stopping "
            "(send it again to stop at once)"
        )

    previous = {signum: signal.signal(signum, handle) for signum in EXIT_CODES}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
