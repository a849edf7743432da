"""The tracking state machine: give Best Buy each tracking number and confirm the order shipped, once.

    label_created ──OR23 204──▶ tracking_sent ──OR24 204──▶ tracking_updated (+ order shipped)
          │                          │
          │   a 4xx, or an OR24 whose outcome is unclear: read the order (OR11 by id)
          ▼                          ▼
        SHIPPED/TO_COLLECT/RECEIVED/CLOSED ─▶ tracking_updated  (already done)
        CANCELED/REFUSED                   ─▶ order_canceled    (a label exists: void it)
        anything else                      ─▶ tracking_failed   (Best Buy's message kept)

Phases, each in its own short transaction (never one held across HTTP):

1. Claim the next shipment (``FOR UPDATE SKIP LOCKED``) with a lease; shipments whose lease
   expired or whose process died on this host are taken over.
2. OR23 (tracking number and carrier). Safe to repeat: it sets the same number again. On 204 the
   shipment becomes ``tracking_sent`` at once, so a crash before OR24 resumes at OR24: Best Buy
   does not tell the customer about tracking added after the ship confirmation, so OR24 is never
   sent before OR23 succeeded.
3. OR24 (ship). On 204: shipment ``tracking_updated`` and order ``shipped``, in one transaction.
   OR24 has no idempotency key and a second one is answered with a bare 400, so a 400 (or any
   refusal, or an OR24 whose outcome is unclear) is settled by reading the order, batched up to
   100 ids per OR11 call.
4. Every write after a call is a compare-and-set on status and lease owner.

Only shipments whose label PDF is on disk and matches its recorded sha256 are pushed: OR24 tells
the customer the parcel is on its way. Each call is sent only while this run still holds the
shipment's claim (checked in the transaction that writes its api_calls row). Only Mirakl's own
204 counts as success; any other 2xx (an HTML page from a proxy) is unclear and settled by
reading the order.

Failures: 429 waits Retry-After, 5xx and connection failures are retried with backoff (the
client). When they persist, the shipment keeps its status for the next run and the run stops
(Best Buy is down; hammering it helps nobody). A refused key (401/403) stops the run with one
configuration error. Canada Post is never called: a Best Buy outage cannot stop labels, and a
Canada Post outage cannot stop this.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from fulfil.audit.log import LeaseLost, SendGuard
from fulfil.audit.outcome import FailureClass, HttpOutcome
from fulfil.bestbuy.client import SHIP, UPDATE_TRACKING, BestBuyClient
from fulfil.bestbuy.errors import BestBuyError, BestBuyUnavailable, auth_error, interpret_error
from fulfil.bestbuy.verdicts import CANCELED_VERDICT, DONE, NOT_YET, STEP_NAMES, judge
from fulfil.errors import ConfigError, FulfilError
from fulfil.label_files import file_matches
from fulfil.runs import owner_is_dead
from fulfil.shipments.states import ShipmentState
from fulfil.shipments.store import ShipmentStore
from fulfil.stop_signals import StopRequest
from fulfil.workflows.run_results import RunResults
from fulfil.workflows.workers import Halt, SharedSet, WorkLimit, run_workers

# Shipment statuses this workflow reads and writes.
LABEL_CREATED = ShipmentState.LABEL_CREATED
TRACKING_SENT = ShipmentState.TRACKING_SENT
TRACKING_UPDATED = ShipmentState.TRACKING_UPDATED
TRACKING_FAILED = ShipmentState.TRACKING_FAILED
ORDER_CANCELED = ShipmentState.ORDER_CANCELED

# Outcomes a result can report.
SHIPPED = "shipped"  # OR24 answered 204
# A replacement label of an order Best Buy had confirmed shipped: OR23 only (Best Buy does not
# tell the customer about a tracking number changed after its ship confirmation).
RETRACKED = "retracked"
ALREADY_SHIPPED = "already_shipped"  # Best Buy shows the order shipped (OR11)
CANCELED = ShipmentState.ORDER_CANCELED.value
FAILED = "failed"
PENDING = "pending"  # nothing settled; the next run carries on from the same status
WAITING = "waiting_for_pdf"  # bought moments ago, its PDF still being fetched: the next run pushes it
SKIPPED = "skipped"
NOT_PUSHABLE = "not_pushable"  # a named order with nothing this command can do
WOULD_PUSH = "would_push"
RETRYABLE = "retryable"

ATTENTION = frozenset({CANCELED, FAILED, PENDING, NOT_PUSHABLE})


@dataclass
class TrackingResult:
    order_id: str
    outcome: str
    status: str | None = None
    tracking_pin: str | None = None
    order_state: str | None = None  # Best Buy's, when it was read
    error: str | None = None
    planned: list[str] | None = None  # dry run: the calls a run would make

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "order_id": self.order_id,
            "outcome": self.outcome,
            "status": self.status,
            "tracking_pin": self.tracking_pin,
            "order_state": self.order_state,
            "error": self.error,
        }
        if self.planned is not None:
            record["planned"] = self.planned
        return record


class TrackingRun(RunResults[TrackingResult]):
    attention = ATTENTION


@dataclass(frozen=True)
class TrackingSettings:
    carrier_code: str
    # How long a claimed shipment is this run's alone: long enough for OR23, OR24 and their
    # retries; a run that dies on this host is seen at once, on another host after this.
    lease_seconds: float
    check_batch: int = 100  # order ids per OR11 read (Mirakl's maximum)
    # How long after a purchase a missing PDF is taken as "being downloaded" rather than missing.
    download_grace_seconds: float = 600.0


# ==============================================================================================
# The workflow
# ==============================================================================================


class _StopRun(Exception):
    """Best Buy cannot take more work now (down, throttling); the rest waits for the next run."""


@dataclass
class _Claim:
    shipment_id: int
    order_id: str
    status: str
    tracking_pin: str
    label_pdf_path: str | None = None
    label_pdf_sha256: str | None = None
    pdf_on_its_way: bool = False
    # Best Buy confirmed the order shipped before (this is a replacement label): no OR24.
    shipped_before: bool = False
    # The order's parcels (0020): Best Buy hears of this one, parcel 1; the others follow it.
    parcel_count: int = 1


@dataclass
class _Check:
    """A shipment whose refused or unclear step is settled by reading the order."""

    claim: _Claim
    step: str
    refusal: BestBuyError
    unclear: bool
    since: float


Listener = Callable[[TrackingResult], None]


class TrackingWorkflow:
    def __init__(
        self,
        *,
        database_url: str,
        settings: TrackingSettings,
        client: BestBuyClient | None,
        lease_owner: str,
        on_result: Listener | None = None,
        clock: Callable[[], float] = time.monotonic,
        stop: StopRequest | None = None,
        run_id: str | None = None,
        concurrency: int = 1,
        worker_client: Callable[[], AbstractContextManager[BestBuyClient]] | None = None,
        keep_results: bool = True,
    ) -> None:
        self.database_url = database_url
        self.settings = settings
        self._client = client
        self.owner = lease_owner
        self.on_result = on_result or (lambda result: None)
        self.clock = clock
        self.stop = stop or StopRequest()
        self.run_id = run_id
        # Workers beyond the first each need their own Best Buy client (HTTP session and audit
        # connection): without a way to make one, the run has one worker.
        self.concurrency = max(1, concurrency) if worker_client is not None else 1
        self.worker_client = worker_client
        self.keep_results = keep_results

    def _store_without_release(self) -> AbstractContextManager[ShipmentStore]:
        return ShipmentStore.open(self.database_url, owner=self.owner, run_id=self.run_id, purpose="tracking")

    @contextlib.contextmanager
    def _store(self) -> Iterator[ShipmentStore]:
        """This run's store (one connection); whatever happens, the run leaves no claim behind
        (its workers' claims included: they all hold leases in the run's name)."""
        with self._store_without_release() as store:
            try:
                yield store
            finally:
                with contextlib.suppress(FulfilError, psycopg.Error):
                    store.release_leases()

    def _deliver(self, run: TrackingRun) -> Listener:
        def deliver(result: TrackingResult) -> None:
            self._report(run, result)

        return deliver

    @property
    def client(self) -> BestBuyClient:
        if self._client is None:
            raise RuntimeError("this workflow was built without a Best Buy client (dry run)")
        return self._client

    # ==========================================================================================
    # tracking push
    # ==========================================================================================

    def push(self, order_ids: list[str] | None = None, limit: int | None = None) -> TrackingRun:
        run = TrackingRun(keep_results=self.keep_results)
        if order_ids:
            run.track_orders()
        shared = _PushRun(run, order_ids, WorkLimit(limit))
        deliver = self._deliver(run)
        with self._store() as store:
            # Parcels left behind when their order's first parcel was settled (a crash between).
            store.follow_first_parcels(order_ids)
            shared.dead = [owner for owner in store.owners_of_open_shipments() if owner_is_dead(owner)]
            main = _Pusher(self, store, self._client, deliver, shared)
            try:
                self._in_workers(main, shared, deliver)
                # What the workers left to settle by reading the orders (they settle full batches).
                main.settle_checks(everything=True)
            except _StopRun as stop:
                run.stopped = str(stop)
                main.release_checks(str(stop))
            except ConfigError as exc:
                run.fatal = exc
                main.release_checks(None)
            if order_ids and run.stopped is None and run.fatal is None:
                self._report_untouched(store, run, order_ids)
        return run

    def _in_workers(self, main: _Pusher, shared: _PushRun, deliver: Listener) -> None:
        if self.concurrency == 1:
            main.work()
            return
        assert self.worker_client is not None
        make_client = self.worker_client

        def worker(sink: Listener, halt: Halt) -> None:
            # A worker's store never releases the run's leases: the run does, once all have stopped.
            with self._store_without_release() as store, make_client() as client:
                _Pusher(self, store, client, sink, shared).work()

        run_workers(self.concurrency, worker, deliver, shared.halt)

    def count_pushable(self, order_ids: list[str] | None) -> int:
        """About how many shipments a run would work on (for a progress bar)."""
        with self._store_without_release() as store:
            return store.count_pushable(order_ids)

    def _report_untouched(self, store: ShipmentStore, run: TrackingRun, order_ids: list[str]) -> None:
        """Say why an order named on the command line was not pushed."""
        rest = [order_id for order_id in order_ids if not run.reported(order_id)]
        if not rest:
            return
        states = store.push_states(rest)
        unknown = {
            row["order_id"] for row in store.requested_order_states(rest) if row["order_status"] is None
        }
        for order_id in rest:
            row = states.get(order_id)
            if order_id in unknown:
                why = "is not in the orders table (`fulfil orders pull` or `fulfil orders import` it)"
                self._report(run, TrackingResult(order_id, NOT_PUSHABLE, error=f"order {order_id} {why}"))
                continue
            if row is None:
                self._report(
                    run,
                    TrackingResult(
                        order_id,
                        NOT_PUSHABLE,
                        error=f"order {order_id} has no shipment: no label was bought for it yet",
                    ),
                )
                continue
            status, pin = row["status"], row["tracking_pin"]
            if status in (LABEL_CREATED, TRACKING_SENT) and row["parcels_without_label"]:
                error = (
                    f"order {order_id}: {row['parcels_without_label']} of its {row['parcel_count']} parcels "
                    "have no label yet; Best Buy gets parcel 1's tracking number once every parcel has "
                    f"one (`fulfil orders show {order_id}`)"
                )
                self._report(run, TrackingResult(order_id, SKIPPED, status, pin, error=error))
            elif status == TRACKING_UPDATED:
                self._report(run, TrackingResult(order_id, SKIPPED, status, pin))
            elif status in (LABEL_CREATED, TRACKING_SENT):
                why = "another fulfil run is working on it" if row["leased"] else "left for the next run"
                self._report(
                    run, TrackingResult(order_id, SKIPPED, status, pin, error=f"order {order_id}: {why}")
                )
            elif status == TRACKING_FAILED:
                error = f"{row['last_error']} (when fixed: fulfil tracking retry {order_id})"
                self._report(run, TrackingResult(order_id, NOT_PUSHABLE, status, pin, error=error))
            elif status == ORDER_CANCELED:
                self._report(
                    run, TrackingResult(order_id, NOT_PUSHABLE, status, pin, error=row["last_error"])
                )
            else:
                error = f"order {order_id}: its label is not bought yet (shipment {status})"
                self._report(run, TrackingResult(order_id, NOT_PUSHABLE, status, pin, error=error))

    # ==========================================================================================
    # tracking retry
    # ==========================================================================================

    def retry(self, order_ids: list[str]) -> TrackingRun:
        """Put refused pushes back to label_created (OR23 first again), once the cause is fixed."""
        run = TrackingRun()
        with self._store() as store:
            made = store.retry_pushes(order_ids)
            states = store.push_states(order_ids)
        for order_id in order_ids:
            state = states.get(order_id)
            pin = state["tracking_pin"] if state else None
            if order_id in made:
                self._report(run, TrackingResult(order_id, RETRYABLE, made[order_id], pin))
                continue
            if state is None:
                why = "has no shipment (no label bought yet, or an unknown order)"
            elif state["status"] == ORDER_CANCELED:
                why = "was cancelled on Best Buy; nothing can be pushed for it"
            else:
                why = f"is {state['status']}, not tracking_failed"
            self._report(
                run,
                TrackingResult(
                    order_id,
                    SKIPPED,
                    state["status"] if state else None,
                    pin,
                    error=f"order {order_id} {why}",
                ),
            )
        return run

    # ==========================================================================================
    # Dry run
    # ==========================================================================================

    def dry_run(self, order_ids: list[str] | None, limit: int | None) -> TrackingRun:
        """The calls a run would make, shipment by shipment; no HTTP, no writes."""
        run = TrackingRun()
        if order_ids:
            run.track_orders()
        with self._store() as store:
            rows = store.push_dry_run_candidates(order_ids, limit)
            self._dry_run_rows(run, rows)
            if order_ids:
                # An order named but not in the plan is said, never left silent (an unknown id too).
                self._report_untouched(store, run, order_ids)
        return run

    def _dry_run_rows(self, run: TrackingRun, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            order_id, pin = row["order_id"], row["tracking_pin"]
            planned: list[str] = []
            if row["status"] == LABEL_CREATED:
                body = json.dumps({"carrier_code": self.settings.carrier_code, "tracking_number": pin})
                planned.append(f"OR23 PUT /api/orders/{order_id}/tracking {body}")
            if row["shipped_before"]:
                planned.append(f"no OR24: {retracked_note(order_id, pin)}")
            else:
                planned.append(f"OR24 PUT /api/orders/{order_id}/ship")
            self._report(run, TrackingResult(order_id, WOULD_PUSH, row["status"], pin, planned=planned))

    # ==========================================================================================

    def _report(self, run: TrackingRun, result: TrackingResult) -> None:
        run.record(result)
        self.on_result(result)


def _what_became_of(step: str, failure: FailureClass | None) -> str:
    """How a step that must be sent again ended, without claiming more than is known: "not sent"
    only when nothing left this machine. A tracking number set again is harmless (OR23 sets it,
    and setting the same number twice changes nothing), so an unclear OR23 is simply sent again."""
    name = STEP_NAMES[step]
    if failure is FailureClass.NOT_SENT:
        return f"{name} not sent"
    if failure is FailureClass.RATE_LIMITED:
        return f"{name} refused for now (throttled)"
    return f"{name} sent, but Best Buy's answer is not known"


def retracked_note(order_id: str, pin: str) -> str:
    return (
        f"order {order_id} was confirmed shipped before: Best Buy has the replacement tracking number "
        f"{pin}, but does not notify the customer of a number changed after the ship confirmation; "
        f"message the buyer (https://marketplace.bestbuy.ca/mmp/shop/order/{order_id})"
    )


@dataclass
class _PushRun:
    """What the workers of one push share: the run, its limit, the shipments it gave back (not
    taken again in this run), the refused steps waiting to be settled by reading the orders."""

    run: TrackingRun
    order_ids: list[str] | None
    limit_left: WorkLimit
    dead: list[str] = field(default_factory=list)
    released: SharedSet[int] = field(default_factory=SharedSet)
    halt: Halt = field(default_factory=Halt)
    checks: list[_Check] = field(default_factory=list)
    checks_lock: threading.Lock = field(default_factory=threading.Lock)


class _Pusher:
    """One worker of a push: its own store (connection) and Best Buy client (HTTP session)."""

    def __init__(
        self,
        flow: TrackingWorkflow,
        store: ShipmentStore,
        client: BestBuyClient | None,
        sink: Listener,
        shared: _PushRun,
    ) -> None:
        self.flow = flow
        self.settings = flow.settings
        self.store = store
        self._client = client
        self.sink = sink
        self.shared = shared

    @property
    def client(self) -> BestBuyClient:
        if self._client is None:
            raise RuntimeError("this workflow was built without a Best Buy client (dry run)")
        return self._client

    def work(self) -> None:
        shared = self.shared
        while not shared.halt.is_set:
            if self.flow.stop.requested:
                raise _StopRun(self.flow.stop.describe())
            if not shared.limit_left.take():
                return
            claim = self._claim()
            if claim is None:
                shared.limit_left.give_back()
                return
            result = self._push_one(claim)
            if result is not None:
                self.sink(result)
            self.settle_checks(everything=False)

    def _claim(self) -> _Claim | None:
        row = self.store.claim_next_shipment(
            lease_seconds=self.settings.lease_seconds,
            dead_owners=self.shared.dead,
            order_ids=self.shared.order_ids,
            skip=self.shared.released.snapshot(),
            download_grace_seconds=self.settings.download_grace_seconds,
        )
        if row is None:
            return None
        return _Claim(
            row["shipment_id"],
            row["order_id"],
            row["status"],
            row["tracking_pin"],
            row["label_pdf_path"],
            row["label_pdf_sha256"],
            bool(row["pdf_on_its_way"]),
            bool(row["shipped_before"]),
            int(row["parcel_count"]),
        )

    def _push_one(self, claim: _Claim) -> TrackingResult | None:
        """OR23 (unless Best Buy has the number already), then OR24. None: settled later by OR11."""
        if not file_matches(claim.label_pdf_path, claim.label_pdf_sha256):
            # OR24 tells the customer the parcel is on its way: never before its label is printable.
            self._release(claim, None, None)
            if claim.pdf_on_its_way:
                # Another host's labels run bought it a moment ago and is fetching its PDF now: not
                # a problem yet, the next push takes it.
                message = f"order {claim.order_id}: its label was just bought; pushed once its PDF is saved"
                return TrackingResult(
                    claim.order_id, WAITING, claim.status, claim.tracking_pin, error=message
                )
            where = claim.label_pdf_path or "no file recorded"
            message = (
                f"order {claim.order_id}: its label PDF is not on disk or does not match what was "
                f"downloaded ({where}); nothing was sent to Best Buy. Run `fulfil labels download "
                f"--order {claim.order_id}`, then push again"
            )
            return TrackingResult(
                claim.order_id, NOT_PUSHABLE, claim.status, claim.tracking_pin, error=message
            )
        guard = self.store.push_guard(claim.shipment_id)
        try:
            return self._send_steps(claim, guard)
        except LeaseLost:
            message = (
                f"order {claim.order_id}: another fulfil run took this shipment over before the next "
                "call was sent; nothing more was sent"
            )
            return TrackingResult(claim.order_id, SKIPPED, claim.status, claim.tracking_pin, error=message)

    def _send_steps(self, claim: _Claim, guard: SendGuard) -> TrackingResult | None:
        if claim.status == LABEL_CREATED:
            outcome = self.client.update_tracking(
                claim.order_id, claim.tracking_pin, self.settings.carrier_code, guard=guard
            )
            if not outcome.ok:
                return self._after_failure(claim, UPDATE_TRACKING, outcome)
            if claim.shipped_before:
                return self._record_retracked(claim)
            if not self.store.record_tracking_sent(claim.shipment_id):
                return self._taken_over(claim)
            claim.status = TRACKING_SENT
        outcome = self.client.ship(claim.order_id, guard=guard)
        if outcome.ok:
            return self._record_shipped(claim, SHIPPED, None)
        return self._after_failure(claim, SHIP, outcome)

    def _after_failure(self, claim: _Claim, step: str, outcome: HttpOutcome) -> TrackingResult | None:
        refusal = interpret_error(outcome)
        if refusal.is_auth:
            self._release(claim, None, None)
            raise auth_error(refusal)
        if outcome.failure is FailureClass.DEFINITIVE:
            self._add_check(_Check(claim, step, refusal, unclear=False, since=self.flow.clock()))
            return None
        if step == SHIP and outcome.failure is FailureClass.INDETERMINATE:
            # The ship confirmation may have gone through: find out now, then stop.
            self._add_check(_Check(claim, step, refusal, unclear=True, since=self.flow.clock()))
            self.settle_checks(everything=True)
            raise _StopRun(f"Best Buy did not answer {STEP_NAMES[step]} clearly ({refusal})")
        became_of = _what_became_of(step, outcome.failure)
        message = f"order {claim.order_id}: {became_of}: {refusal}; the next run sends it"
        self._release(claim, "bestbuy-unavailable", message)
        self.sink(TrackingResult(claim.order_id, PENDING, claim.status, claim.tracking_pin, error=message))
        if outcome.failure is FailureClass.RATE_LIMITED:
            wait = outcome.retry_after()
            hint = f" (it asks to wait {wait:.0f} s)" if wait is not None else ""
            raise _StopRun(f"Best Buy is throttling this API key{hint}; the remaining shipments wait")
        raise _StopRun(f"Best Buy is not answering ({refusal}); the remaining shipments wait")

    # --- settling refused and unclear steps by reading the orders ------------------------------

    def _add_check(self, check: _Check) -> None:
        with self.shared.checks_lock:
            self.shared.checks.append(check)

    def _take_checks(self, everything: bool) -> list[_Check]:
        """The next batch to settle: a full one, one whose oldest lease is a quarter gone, or
        (``everything``) whatever waits."""
        shared = self.shared
        with shared.checks_lock:
            checks = shared.checks
            if not checks:
                return []
            due = (
                everything
                or len(checks) >= self.settings.check_batch
                # Read before the oldest waiting claim's lease could run out.
                or self.flow.clock() - checks[0].since >= self.settings.lease_seconds / 4
            )
            if not due:
                return []
            batch = checks[: self.settings.check_batch]
            del checks[: len(batch)]
            return batch

    def settle_checks(self, *, everything: bool) -> None:
        while batch := self._take_checks(everything):
            try:
                orders = self.client.orders_by_id([check.claim.order_id for check in batch])
            except BestBuyUnavailable as exc:
                with self.shared.checks_lock:
                    self.shared.checks[:0] = batch
                raise _StopRun(f"could not read the orders' state on Best Buy: {exc}") from exc
            for check in batch:
                self.sink(self._settle(check, orders.get(check.claim.order_id)))

    def _settle(self, check: _Check, order: dict[str, Any] | None) -> TrackingResult:
        claim = check.claim
        verdict = judge(
            claim.order_id,
            claim.tracking_pin,
            check.step,
            check.refusal,
            unclear=check.unclear,
            order=order,
            replacing=claim.shipped_before,
        )
        if verdict.kind == DONE:
            return self._record_shipped(claim, ALREADY_SHIPPED, verdict.order_state)
        if verdict.kind == NOT_YET:
            self._release(claim, verdict.code, verdict.message)
            return TrackingResult(
                claim.order_id,
                PENDING,
                claim.status,
                claim.tracking_pin,
                verdict.order_state,
                verdict.message,
            )
        if verdict.kind == CANCELED_VERDICT:
            if not self.store.record_canceled(claim.shipment_id, code=verdict.code, error=verdict.message):
                return self._taken_over(claim)
            self._follow(claim)
            return TrackingResult(
                claim.order_id,
                CANCELED,
                ORDER_CANCELED,
                claim.tracking_pin,
                verdict.order_state,
                verdict.message,
            )
        if not self.store.refuse_push(claim.shipment_id, code=verdict.code, error=verdict.message):
            return self._taken_over(claim)
        return TrackingResult(
            claim.order_id, FAILED, TRACKING_FAILED, claim.tracking_pin, verdict.order_state, verdict.message
        )

    def release_checks(self, why: str | None) -> None:
        """The run stops: shipments still waiting for their order to be read keep their status."""
        with self.shared.checks_lock:
            checks, self.shared.checks[:] = list(self.shared.checks), []
        for check in checks:
            message = (
                f"order {check.claim.order_id}: {STEP_NAMES[check.step]}: {check.refusal}; not settled "
                f"because the run stopped ({why}); the next run tries again"
                if why
                else None
            )
            self._release(check.claim, "unsettled" if why else None, message)
            if why:
                self.sink(
                    TrackingResult(
                        check.claim.order_id,
                        PENDING,
                        check.claim.status,
                        check.claim.tracking_pin,
                        error=message,
                    )
                )

    # --- recording ------------------------------------------------------------------------------

    def _record_retracked(self, claim: _Claim) -> TrackingResult:
        if not self.store.record_retracked(claim.shipment_id):
            return self._taken_over(claim)
        note = retracked_note(claim.order_id, claim.tracking_pin)
        parcels = self._follow(claim)
        return TrackingResult(
            claim.order_id,
            RETRACKED,
            TRACKING_UPDATED,
            claim.tracking_pin,
            "SHIPPED",
            error=f"{note}; {parcels}" if parcels else note,
        )

    def _record_shipped(self, claim: _Claim, outcome: str, order_state: str | None) -> TrackingResult:
        if not self.store.record_shipped(claim.shipment_id):
            return self._taken_over(claim)
        return TrackingResult(
            claim.order_id,
            outcome,
            TRACKING_UPDATED,
            claim.tracking_pin,
            order_state or "SHIPPED",
            error=self._follow(claim),
        )

    def _follow(self, claim: _Claim) -> str | None:
        """A split order's other parcels follow its first, just settled; says so (None: one parcel)."""
        if claim.parcel_count <= 1:
            return None
        self.store.follow_first_parcels([claim.order_id])
        others = ", ".join(
            f"parcel {row['parcel_no']}: {row['tracking_pin'] or 'no label'}"
            for row in self.store.other_parcels(claim.order_id)
        )
        return (
            f"order {claim.order_id} ships in {claim.parcel_count} parcels; Best Buy takes one tracking "
            f"number per order, so it has parcel 1's ({claim.tracking_pin}); the others are kept in "
            f"fulfil ({others})"
        )

    def _release(self, claim: _Claim, code: str | None, error: str | None) -> None:
        """Given back without being done: not taken again in this run."""
        self.store.release_shipment(claim.shipment_id, code=code, error=error)
        self.shared.released.add(claim.shipment_id)

    def _taken_over(self, claim: _Claim) -> TrackingResult:
        row = self.store.push_states([claim.order_id]).get(claim.order_id)
        message = (
            f"order {claim.order_id}: another fulfil run took this shipment over "
            "(this run's lease had expired)"
        )
        return TrackingResult(
            claim.order_id, SKIPPED, row["status"] if row else None, claim.tracking_pin, error=message
        )
