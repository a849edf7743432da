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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fulfil.audit.outcome import FailureClass
from fulfil.canadapost.client import CanadaPostClient, auth_error, interpret_error
from fulfil.canadapost.responses import ErrorKind, ResponseFormatError
from fulfil.canadapost.tracking import CarrierStatus, no_pin_history, parse_tracking_detail
from fulfil.carrier_tracking.store import CarrierTrackingStore
from fulfil.errors import ConfigError

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


class Refresher:
    def __init__(
        self,
        store: CarrierTrackingStore,
        client: CanadaPostClient,
        *,
        lease_seconds: float,
        on_result: Callable[[RefreshResult], None] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.lease_seconds = lease_seconds
        self.on_result = on_result

    def refresh_due(
        self,
        *,
        limit: int | None = None,
        order_ids: list[str] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> RefreshCycle:
        """One cycle: every parcel due (up to ``limit``), until the budget holds one back, the key
        is refused (``fatal``) or ``should_stop`` says so (between parcels)."""
        cycle = RefreshCycle(due=self.store.count_due(order_ids), results=[])
        pause = self.store.paused()
        if pause is not None:
            cycle.paused = (
                f"refreshes are paused since {pause['paused_at']:%Y-%m-%d %H:%M %Z} ({pause['reason']})"
            )
            return cycle
        while limit is None or len(cycle.results) < limit:
            if should_stop is not None and should_stop():
                cycle.stopped = "asked to stop"
                break
            claimed = self.store.claim_due(lease_seconds=self.lease_seconds, order_ids=order_ids)
            if claimed is None:
                break
            try:
                result = self.refresh_one(claimed)
            except ConfigError as exc:
                cycle.fatal = exc
                break
            cycle.results.append(result)
            if self.on_result is not None:
                self.on_result(result)
            if result.outcome == HELD_BACK:
                cycle.stopped = result.error
                break
        return cycle

    def refresh_one(self, claimed: dict[str, Any]) -> RefreshResult:
        order_id, pin, shipment_id = claimed["order_id"], claimed["tracking_pin"], claimed["shipment_id"]
        try:
            outcome = self.client.tracking_detail(order_id, pin)
        except BaseException:
            self.store.release(claimed)
            raise
        if outcome.ok:
            try:
                detail = parse_tracking_detail(outcome.body, pin=pin)
            except ResponseFormatError as exc:
                unusable = f"order {order_id}: unusable tracking answer for PIN {pin}: {exc}"
                recorded = self.store.record_failure(shipment_id, unusable, call_id=outcome.call_id)
                return RefreshResult(
                    order_id, pin, FAILED, recorded.carrier_status, recorded.next_refresh_at, unusable
                )
            recorded = self.store.record_answer(shipment_id, detail, call_id=outcome.call_id)
            return RefreshResult(order_id, pin, REFRESHED, recorded.carrier_status, recorded.next_refresh_at)
        if outcome.status_code == 404 and no_pin_history(outcome.body):
            recorded = self.store.record_no_history(shipment_id, call_id=outcome.call_id)
            outcome_name = NO_HISTORY if recorded.carrier_status is CarrierStatus.PRE_TRANSIT else FAILED
            return RefreshResult(
                order_id, pin, outcome_name, recorded.carrier_status, recorded.next_refresh_at
            )
        error = interpret_error(outcome)
        if error.kind is ErrorKind.AUTH:
            self.store.release(claimed)
            raise auth_error(error)
        if outcome.failure in (FailureClass.NOT_SENT, FailureClass.RATE_LIMITED):
            self.store.release(claimed)
            message = f"nothing was sent for PIN {pin}: {outcome.error}"
            return RefreshResult(
                order_id, pin, HELD_BACK, CarrierStatus(claimed["carrier_status"]), error=message
            )
        message = f"order {order_id}: tracking PIN {pin}: {error.description}"
        recorded = self.store.record_failure(shipment_id, message, call_id=outcome.call_id)
        return RefreshResult(
            order_id, pin, FAILED, recorded.carrier_status, recorded.next_refresh_at, message
        )
