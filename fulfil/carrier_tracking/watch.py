"""`fulfil tracking watch`: the refresher as a long-running service (systemd), one refresh cycle
per tick.

Ticks are on a fixed schedule from the start (a cycle that overruns its tick starts the next one at
once, and skips the ticks it missed rather than running them back to back), so the refresher asks
at a steady pace whatever each cycle costs. A stop request (SIGTERM from systemd, Ctrl-C) is
honoured between parcels inside a cycle (the call in flight is answered and recorded) and at once
between ticks: the service then ends with exit 0, as systemd expects of a clean stop. A pause set
by `fulfil tracking pause` is read at every tick, so a paused watch keeps running and starts
asking again on the first tick after `resume`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fulfil.carrier_tracking.refresh import RefreshCycle

# How often a sleeping watch looks at its stop request: a signal interrupts the sleep, but a
# handler that only sets a flag lets it resume (PEP 475), so the sleep is taken in short steps.
_STOP_POLL_SECONDS = 0.2


@dataclass
class WatchEnd:
    cycles: int
    stopped_by: str | None  # the signal that ended it (None: --cycles reached)


def watch(
    run_cycle: Callable[[], RefreshCycle],
    on_cycle: Callable[[RefreshCycle], None],
    *,
    interval: float,
    should_stop: Callable[[], bool],
    stop_reason: Callable[[], str | None] = lambda: None,
    max_cycles: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WatchEnd:
    """Run a cycle every ``interval`` seconds until asked to stop (or ``max_cycles`` are done).
    A cycle whose key was refused (``fatal``) ends the watch by raising it: nothing can be asked
    until the configuration is fixed."""
    if interval <= 0:
        raise ValueError("the interval must be positive")
    start = clock()
    cycles = 0
    while not should_stop():
        cycle = run_cycle()
        cycles += 1
        on_cycle(cycle)
        if cycle.fatal is not None:
            raise cycle.fatal
        if max_cycles is not None and cycles >= max_cycles:
            return WatchEnd(cycles, None)
        # The next tick on the schedule after now (ticks an overrunning cycle covered are skipped).
        elapsed = clock() - start
        next_tick = start + (int(elapsed // interval) + 1) * interval
        while not should_stop():
            left = next_tick - clock()
            if left <= 0:
                break
            sleep(min(left, _STOP_POLL_SECONDS))
    return WatchEnd(cycles, stop_reason())
