"""The deadline watchdog: a call that ends in time leaves nothing behind and is never cut; a call
whose deadline passes is cut, even when the watchdog was asleep towards a later deadline."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Callable

from fulfil.audit.wire import Watchdog, WireProbe


def _wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_an_earlier_deadline_wakes_a_watchdog_asleep_towards_a_later_one() -> None:
    watchdog = Watchdog()
    slow = WireProbe(30.0)
    watchdog.watch(slow)
    assert _wait_for(lambda: watchdog._sleeping_until is not None), "the watchdog never went to sleep"
    quick = WireProbe(0.2)
    watchdog.watch(quick)
    assert _wait_for(lambda: quick.expired), "a 0.2 s deadline was not enforced within 5 s"
    assert not slow.expired


def test_calls_that_end_in_time_are_never_cut_and_leave_no_entry() -> None:
    watchdog = Watchdog()
    probes = [WireProbe(0.05) for _ in range(500)]
    for probe in probes:
        watchdog.cancel(watchdog.watch(probe))
    straggler = WireProbe(0.1)
    watchdog.watch(straggler)  # still running when its deadline passes
    assert _wait_for(lambda: straggler.expired)
    assert not any(probe.expired for probe in probes)
    assert _wait_for(lambda: not watchdog._heap), f"{len(watchdog._heap)} entries left in the heap"
    assert list(watchdog._live) == [500]  # only the straggler, until its call ends


def test_a_finished_call_leaves_no_probe_behind() -> None:
    # Finished entries wait in the heap until their deadline (a minute at most); at a few hundred
    # calls a second, each holding its probe (and socket) would be megabytes of a long run.
    watchdog = Watchdog()
    in_flight = WireProbe(30.0)
    watchdog.watch(in_flight)
    assert _wait_for(lambda: watchdog._sleeping_until is not None)
    probe = WireProbe(60.0)  # later than the one the watchdog sleeps towards: it stays asleep
    finished = weakref.ref(probe)
    watchdog.cancel(watchdog.watch(probe))
    del probe
    gc.collect()
    assert len(watchdog._heap) == 2  # the finished call's entry waits for its deadline...
    assert finished() is None  # ...holding nothing
