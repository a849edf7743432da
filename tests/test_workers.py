"""The workers of one run: results come back to the run's thread, a failure stops the others,
the first worker goes alone until its first result."""

from __future__ import annotations

import threading
import time

import pytest

from fulfil.workflows.workers import Halt, SharedSet, WorkLimit, run_workers

pytestmark = pytest.mark.unit


def test_every_result_is_delivered_in_the_calling_thread() -> None:
    work = list(range(200))
    lock = threading.Lock()
    delivered: list[tuple[int, str]] = []
    worker_threads: set[str] = set()

    def worker(sink, halt: Halt) -> None:  # type: ignore[no-untyped-def]
        worker_threads.add(threading.current_thread().name)
        while not halt.is_set:
            with lock:
                if not work:
                    return
                item = work.pop()
            time.sleep(0.001)
            sink(item)

    def deliver(item: int) -> None:
        delivered.append((item, threading.current_thread().name))

    run_workers(4, worker, deliver)

    assert sorted(item for item, _ in delivered) == list(range(200))
    assert {name for _, name in delivered} == {threading.current_thread().name}
    assert len(worker_threads) == 4
    assert threading.current_thread().name not in worker_threads


def test_one_worker_runs_in_the_calling_thread() -> None:
    names: list[str] = []
    run_workers(1, lambda sink, halt: names.append(threading.current_thread().name), lambda r: None)
    assert names == [threading.current_thread().name]


def test_the_others_join_only_after_the_first_result() -> None:
    started: list[float] = []
    first_result_at: list[float] = []
    lock = threading.Lock()

    def worker(sink, halt: Halt) -> None:  # type: ignore[no-untyped-def]
        with lock:
            started.append(time.monotonic())
            first = len(started) == 1
        if first:
            time.sleep(0.2)
            first_result_at.append(time.monotonic())
        sink("done")

    run_workers(3, worker, lambda r: None)
    assert len(started) == 3
    assert all(moment >= first_result_at[0] for moment in started[1:])


def test_a_first_worker_that_fails_before_any_result_is_the_only_one() -> None:
    calls: list[int] = []

    def worker(sink, halt: Halt) -> None:  # type: ignore[no-untyped-def]
        calls.append(1)
        raise RuntimeError("credentials refused")

    with pytest.raises(RuntimeError, match="credentials refused"):
        run_workers(8, worker, lambda r: None)
    assert calls == [1]


def test_a_failing_worker_stops_the_others_after_their_item_and_its_error_is_raised() -> None:
    items = iter(range(10_000))
    lock = threading.Lock()
    delivered: list[int] = []

    def worker(sink, halt: Halt) -> None:  # type: ignore[no-untyped-def]
        while not halt.is_set:
            with lock:
                item = next(items)
            if item == 50:
                raise LookupError("throttled")
            time.sleep(0.001)
            sink(item)

    with pytest.raises(LookupError, match="throttled"):
        run_workers(4, worker, delivered.append)
    # Each of the others finished the item it had, then stopped: nowhere near the 10,000.
    assert 40 <= len(delivered) < 200


def test_the_work_limit_is_shared_and_given_back() -> None:
    limit_left = WorkLimit(3)
    assert [limit_left.take() for _ in range(4)] == [True, True, True, False]
    limit_left.give_back()
    assert limit_left.take() is True
    assert WorkLimit(None).take() is True


def test_a_shared_set_snapshot_is_a_copy() -> None:
    shared: SharedSet[int] = SharedSet()
    shared.add(1)
    snapshot = shared.snapshot()
    shared.add(2)
    assert snapshot == [1]
    assert sorted(shared.snapshot()) == [1, 2]
