"""Refreshing the parcels that are due, most urgent first, one Canada Post call each.

Each parcel is taken (its next refresh pushed out by a lease, so no other refresher takes it),
asked about through the audited HTTP layer (whose rate budget for throttle group E is shared by
every process and host), and its answer recorded: events and status, error 004 (no scan yet, not a
failure), or a failure (backed off; auto-refresh stopped after too many). A call that provably sent
nothing (the budget had no slot in time, Canada Post unreachable, or its throttle refused it at the
door) leaves the parcel due as it was and ends the cycle: the parcels after it would be held back
the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fulfil.audit.outcome import FailureClass
from fulfil.canadapost.client import CanadaPostClient, auth_error, interpret_error
from fulfil.canadapost.responses import ErrorKind, ResponseFormatError
from fulfil.canadapost.tracking import CarrierStatus, no_pin_history, parse_tracking_detail
from fulfil.carrier_tracking.store import CarrierTrackingStore
from fulfil.config import Rate
from fulfil.errors import ConfigError
from fulfil.workflows.workers import Halt, WorkLimit, run_workers

REFRESHED = "refreshed"
NO_HISTORY = "no_history"
FAILED = "failed"
HELD_BACK = "held_back"


@dataclass
class RefreshResult:
    order_id: str
    tracking_pin: str
    outcome: str
    carrier_status: CarrierStatus | None
    next_refresh_at: datetime | None = None
    error: str | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "tracking_pin": self.tracking_pin,
            "outcome": self.outcome,
            "carrier_status": self.carrier_status.value if self.carrier_status else None,
            "next_refresh_at": self.next_refresh_at.isoformat() if self.next_refresh_at else None,
            "error": self.error,
        }


@dataclass
class RefreshCycle:
    due: int  # due when the cycle began
    results: list[RefreshResult]
    stopped: str | None = None  # why the cycle ended before everything due was asked about
    fatal: ConfigError | None = None  # the key was refused: nothing more can be asked
    paused: str | None = None  # `fulfil tracking pause` is in force: nothing was asked
    still_due: int | None = None  # due when the cycle ended (None: not counted)
    outlook: dict[str, Any] | None = None  # the tracking budget's next slot and pause, at the end

    @property
    def refreshed(self) -> int:
        return sum(1 for result in self.results if result.outcome in (REFRESHED, NO_HISTORY))

    @property
    def needs_attention(self) -> bool:
        return any(result.outcome == FAILED for result in self.results)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for result in self.results:
            found[result.outcome] = found.get(result.outcome, 0) + 1
        return found


class _Shared:
    """What the workers of one cycle share: the limit, the halt flag, the first reason to stop."""

    def __init__(self, limit: int | None) -> None:
        self.limit = WorkLimit(limit)
        self.halt = Halt()
        self.stopped: str | None = None
        self._lock = threading.Lock()

    def stop(self, why: str | None) -> None:
        with self._lock:
            if self.stopped is None:
                self.stopped = why
        self.halt.set()


# A worker's own store and client (its connection and keep-alive HTTP session).
WorkerParts = Callable[[], AbstractContextManager[tuple[CarrierTrackingStore, CanadaPostClient]]]


class Refresher:
    def __init__(
        self,
        store: CarrierTrackingStore,
        client: CanadaPostClient,
        *,
        lease_seconds: float,
        on_result: Callable[[RefreshResult], None] | None = None,
        concurrency: int = 1,
        worker_parts: WorkerParts | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.lease_seconds = lease_seconds
        self.on_result = on_result
        # Workers beyond the first need a store and client of their own: without a way to make
        # them, a cycle has one worker.
        self.concurrency = max(1, concurrency) if worker_parts is not None else 1
        self.worker_parts = worker_parts

    def refresh_due(
        self,
        *,
        limit: int | None = None,
        order_ids: list[str] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> RefreshCycle:
        """One cycle: every parcel due (up to ``limit``), until the budget holds one back, the day's
        cap is spent, the key is refused (``fatal``) or ``should_stop`` says so (between parcels)."""
        # What is due when the cycle begins: a parcel due again before it ends waits for the next.
        started = self.store.now()
        cycle = RefreshCycle(due=self.store.count_due(order_ids), results=[])
        pause = self.store.paused()
        if pause is not None:
            cycle.paused = (
                f"refreshes are paused since {pause['paused_at']:%Y-%m-%d %H:%M %Z} ({pause['reason']})"
            )
            return cycle
        shared = _Shared(limit)

        def deliver(result: RefreshResult) -> None:
            cycle.results.append(result)
            if self.on_result is not None:
                self.on_result(result)

        def worker(sink: Callable[[RefreshResult], None], halt: Halt) -> None:
            if self.concurrency == 1 or self.worker_parts is None:
                self._work(self.store, self.client, shared, sink, order_ids, should_stop, started)
                return
            with self.worker_parts() as (store, client):
                self._work(store, client, shared, sink, order_ids, should_stop, started)

        try:
            run_workers(self.concurrency, worker, deliver, shared.halt)
        except ConfigError as exc:
            cycle.fatal = exc
        cycle.stopped = shared.stopped
        if cycle.fatal is None:
            cycle.still_due = self.store.count_due(order_ids)
            cycle.outlook = self.store.budget_outlook()
        return cycle

    def _work(
        self,
        store: CarrierTrackingStore,
        client: CanadaPostClient,
        shared: _Shared,
        sink: Callable[[RefreshResult], None],
        order_ids: list[str] | None,
        should_stop: Callable[[], bool] | None,
        due_by: datetime,
    ) -> None:
        while not shared.halt.is_set:
            if should_stop is not None and should_stop():
                shared.stop("asked to stop")
                return
            if not shared.limit.take():
                return
            claimed = store.claim_due(lease_seconds=self.lease_seconds, order_ids=order_ids, due_by=due_by)
            if claimed is None:
                shared.limit.give_back()
                spent = self._daily_cap_spent(store)
                if spent is not None:
                    shared.stop(spent)
                return
            result = self._ask(store, client, claimed)
            sink(result)
            if result.outcome == HELD_BACK:
                shared.stop(result.error)
                return

    def _daily_cap_spent(self, store: CarrierTrackingStore) -> str | None:
        """Why nothing was claimed, if it was the day's cap rather than nothing being due."""
        left, seconds_to_next_day = store.daily_calls_left()
        if left is None or left > 0:
            return None
        return (
            f"the daily tracking budget ({store.policy.daily_calls} calls, FULFIL_TRACKING_DAILY_CALLS)"
            f" is spent; the next day starts in {seconds_to_next_day / 3600:.1f} h (Eastern time)"
        )

    def refresh_parcel(self, shipment_id: int) -> RefreshResult | None:
        """Ask about this one parcel now (for `tracking show`); None when it cannot be asked about
        (another refresher holds it, it was asked within the cool-down, or the day's cap is spent)."""
        claimed = self.store.claim_parcel(shipment_id, lease_seconds=self.lease_seconds)
        if claimed is None:
            return None
        return self._ask(self.store, self.client, claimed)

    def refresh_one(self, claimed: dict[str, Any]) -> RefreshResult:
        return self._ask(self.store, self.client, claimed)

    def _ask(
        self, store: CarrierTrackingStore, client: CanadaPostClient, claimed: dict[str, Any]
    ) -> RefreshResult:
        order_id, pin, shipment_id = claimed["order_id"], claimed["tracking_pin"], claimed["shipment_id"]
        try:
            outcome = client.tracking_detail(order_id, pin)
        except BaseException:
            store.release(claimed)
            raise
        if outcome.ok:
            try:
                detail = parse_tracking_detail(outcome.body, pin=pin)
            except ResponseFormatError as exc:
                unusable = f"order {order_id}: unusable tracking answer for PIN {pin}: {exc}"
                recorded = store.record_failure(shipment_id, unusable, call_id=outcome.call_id)
                return RefreshResult(
                    order_id, pin, FAILED, recorded.carrier_status, recorded.next_refresh_at, unusable
                )
            recorded = store.record_answer(shipment_id, detail, call_id=outcome.call_id)
            return RefreshResult(order_id, pin, REFRESHED, recorded.carrier_status, recorded.next_refresh_at)
        if outcome.status_code == 404 and no_pin_history(outcome.body):
            recorded = store.record_no_history(shipment_id, call_id=outcome.call_id)
            outcome_name = NO_HISTORY if recorded.carrier_status is CarrierStatus.PRE_TRANSIT else FAILED
            return RefreshResult(
                order_id, pin, outcome_name, recorded.carrier_status, recorded.next_refresh_at
            )
        error = interpret_error(outcome)
        if error.kind is ErrorKind.AUTH:
            store.release(claimed)
            raise auth_error(error)
        if outcome.failure in (FailureClass.NOT_SENT, FailureClass.RATE_LIMITED):
            store.release(claimed)
            message = f"nothing was sent for PIN {pin}: {outcome.error}"
            return RefreshResult(
                order_id, pin, HELD_BACK, CarrierStatus(claimed["carrier_status"]), error=message
            )
        message = f"order {order_id}: tracking PIN {pin}: {error.description}"
        recorded = store.record_failure(shipment_id, message, call_id=outcome.call_id)
        return RefreshResult(
            order_id, pin, FAILED, recorded.carrier_status, recorded.next_refresh_at, message
        )


def cycle_summary(cycle: RefreshCycle, rate: Rate | None) -> str:
    """One line for the end of a refresh: how much of what was due the budget covered, and when
    the rest can go ("refreshed 20 of 340 due; tracking budget 20 a minute; 320 still due, next
    slot in 3 s, about 16 min for all of them at this budget")."""
    if cycle.paused:
        return f"nothing asked: {cycle.paused}; `fulfil tracking resume` starts them again"
    parts = [f"refreshed {cycle.refreshed} of {cycle.due} due", budget_text(rate)]
    outlook = cycle.outlook or {}
    if outlook.get("paused_seconds"):
        parts.append(
            f"the budget is paused for {outlook['paused_seconds']:.0f} s ({outlook['pause_reason']})"
        )
    if cycle.still_due:
        rest = f"{cycle.still_due} still due"
        if outlook.get("next_slot_seconds") is not None:
            rest += f", next slot in {max(outlook['next_slot_seconds'], 0):.0f} s"
        if rate is not None:
            minutes = cycle.still_due * rate.seconds / rate.calls / 60
            rest += (
                f", about {minutes:.0f} min for all of them at this budget"
                if minutes >= 1
                else ", all of them within a minute at this budget"
            )
        parts.append(rest)
    return "; ".join(parts)


def budget_text(rate: Rate | None) -> str:
    """The group-E budget this host keeps to ("tracking budget 20 a minute")."""
    if rate is None:
        return "no tracking budget set"
    per = "a minute" if rate.seconds == 60 else f"per {rate.seconds:g} s"
    return f"tracking budget {rate.calls} {per}"
