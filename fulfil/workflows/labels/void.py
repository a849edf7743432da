"""Voiding labels (``fulfil labels void``): each label voided or refunded exactly once, every
answer that is lost settled by reading Canada Post, never by sending blindly again.

    label_created, order_canceled, tracking_failed ──start_void──▶ label_voiding ──▶ label_voided
                  ▲                                                  │   │    └──▶ refund_requested
                  └────────── release_void_to_<where it was> ────────┘   └──▶ needs_review
                              (proven not done)                          (Canada Post contradicts us)

1. Claim, in one statement: the shipment becomes ``label_voiding`` with this run's lease, the state
   it started from and when, committed before anything is sent.
2. Send through the audited HTTP layer (an api_calls row per attempt, Canada Post's group B
   budget), each attempt only while this run still holds the claim (checked in the transaction
   that writes its row). A contract label's self link is DELETEd: 204 voided; 8064 (transmitted
   already) asks for a refund instead. A non-contract label has no void: a refund is requested.
3. Record what the answer proves: voided, or refund requested with Canada Post's service ticket
   (7292, "already requested": refund requested, the ticket read from the shipment's details).
   A 404 proves nothing by itself (Canada Post answers an empty ``<messages/>`` for a shipment it
   does not have *at that link*): the shipment is read, by its link and then by its PIN, and only
   a label Canada Post no longer has is voided; one it still has goes back where it was.
4. Provably not sent (the error came before the first byte, or the budget held it back), or
   refused: back where it was, with the reason. An answer lost (a timeout, a dropped connection, a
   5xx, an answer that fails the checks): Canada Post is read first; gone: voided; a refund
   request shows: refund requested; still there, no request: the request was not performed, and
   is sent once more (a void or a refund twice is harmless only once proven undone, and then it
   is not twice); still unknown: left ``label_voiding`` for the next run.
5. A void left ``label_voiding`` by a run that is gone (killed mid-call) is claimed by the next
   ``labels void`` (its lease expired, or its process is dead on this host), settled from the
   audit log or by reading, and only then sent again.

The label's PDF is set aside (renamed ``<name>.<PIN>.voided.pdf``, never deleted) so it is never
printed by mistake, and the label goes to ``label_history`` with its outcome, in the statement
that records it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg

from fulfil.audit.log import LeaseLost
from fulfil.audit.outcome import FailureClass, HttpOutcome
from fulfil.canadapost.client import (
    CanadaPostClient,
    CanadaPostUnavailable,
    ShipmentStanding,
    UnusableLink,
    auth_error,
    interpret_error,
    shipment_link,
)
from fulfil.canadapost.responses import ErrorKind, RefundTicket, ResponseFormatError, messages_in
from fulfil.config import CanadaPostSettings, refund_email_missing
from fulfil.errors import ConfigError, FulfilError
from fulfil.runs import owner_is_dead
from fulfil.shipments.states import STATE_INFO, VOIDABLE, ShipmentState
from fulfil.shipments.store import ShipmentStore
from fulfil.stop_signals import StopRequest
from fulfil.workflows.labels.results import (
    FAILED,
    NOT_ELIGIBLE,
    PENDING,
    REVIEW,
    SKIPPED,
    UNSETTLED,
    LabelResult,
    StopRun,
)
from fulfil.workflows.run_results import RunResults

S = ShipmentState

# Outcomes of a void, besides those every label command has.
VOIDED = "voided"  # the outcome; the state is label_voided
REFUND_REQUESTED = ShipmentState.REFUND_REQUESTED.value
NOT_VOIDED = "not_voided"  # Canada Post still has the label; it went back where it was
WOULD_VOID = "would_void"
WOULD_REFUND = "would_refund"
WOULD_SETTLE = "would_settle"

# Canada Post's codes: a void refused because the shipment was transmitted (refund instead), and a
# refund asked for a second time.
TRANSMITTED = "8064"
ALREADY_REQUESTED = "7292"
_TRANSMITTED_STATUS = "transmitted"


@dataclass
class VoidResult(LabelResult):
    """A label command's result, with how the void came out (or why nothing was done)."""

    reason: str | None = None

    def as_record(self) -> dict[str, Any]:
        return {**super().as_record(), "reason": self.reason}


class VoidRun(RunResults[VoidResult]):
    attention = frozenset({FAILED, NOT_VOIDED, UNSETTLED, REVIEW, NOT_ELIGIBLE, PENDING})


@dataclass(frozen=True)
class VoidSettings:
    canadapost: CanadaPostSettings
    # FULFIL_CANADAPOST_REFUND_EMAIL (None: unset; a refund then stops the run, exit 2).
    refund_email: str | None
    # How long a void's claim lasts from each of its requests: the request with all its attempts
    # and waits, and the reads that may follow it (audit.retry.lease_seconds); renewed before each.
    lease_seconds: float


@dataclass(frozen=True)
class VoidClaim:
    shipment_id: int
    order_id: str
    contract: bool
    tracking_pin: str
    cp_shipment_id: str | None
    cp_self_url: str | None
    label_pdf_path: str | None
    from_status: str | None
    started_at: datetime
    # Left label_voiding by a run that is gone: settled by reading before anything is sent.
    left_unfinished: bool

    @classmethod
    def of(cls, row: dict[str, Any]) -> VoidClaim:
        return cls(
            shipment_id=row["shipment_id"],
            order_id=row["order_id"],
            contract=row["cp_mode"] == "contract",
            tracking_pin=row["tracking_pin"],
            cp_shipment_id=row["cp_shipment_id"],
            cp_self_url=row["cp_self_url"],
            label_pdf_path=row["label_pdf_path"],
            from_status=row["void_from_status"],
            started_at=row["void_started_at"],
            left_unfinished=row["left_unfinished"],
        )


class _Step:
    """What to send next for a void: DELETE (contract) or a refund request."""

    VOID = "void"
    REFUND = "refund"


class _StopAfter(Exception):
    """This order's result is known, and the run cannot go on (Canada Post unreachable or throttling)."""

    def __init__(self, result: VoidResult, why: str) -> None:
        super().__init__(why)
        self.result = result
        self.why = why


class VoidWorkflow:
    """``fulfil labels void``: one store (connection), one Canada Post client, one order at a time
    (voids are few). However a run ends, it releases every claim it still holds."""

    def __init__(
        self,
        *,
        database_url: str,
        settings: VoidSettings,
        client: CanadaPostClient | None,
        lease_owner: str,
        run_id: str | None = None,
        on_result: Callable[[VoidResult], None] | None = None,
        stop: StopRequest | None = None,
        keep_results: bool = True,
    ) -> None:
        self.database_url = database_url
        self.settings = settings
        self.client = client
        self.owner = lease_owner
        self.run_id = run_id
        self.on_result = on_result or (lambda result: None)
        self.stop = stop or StopRequest()
        self.keep_results = keep_results

    @contextlib.contextmanager
    def _store(self) -> Iterator[ShipmentStore]:
        with ShipmentStore.open(
            self.database_url, owner=self.owner, run_id=self.run_id, purpose="labels-void"
        ) as store:
            try:
                yield store
            finally:
                with contextlib.suppress(FulfilError, psycopg.Error):
                    store.release_leases()

    def targets(self, order_ids: list[str] | None, *, canceled: bool) -> list[str]:
        """The orders a run works on, in order: those named, then (``canceled``) every void left
        unfinished and every label of an order canceled on Best Buy."""
        with ShipmentStore.open(
            self.database_url, owner=self.owner, run_id=self.run_id, purpose="labels-void"
        ) as store:
            return _targets(store, order_ids, canceled=canceled)

    def void(self, order_ids: list[str] | None, *, canceled: bool) -> VoidRun:
        run = VoidRun(keep_results=self.keep_results)
        with self._store() as store:
            voids = _Voids(self, store, run)
            try:
                voids.void_all(_targets(store, order_ids, canceled=canceled), named=order_ids or [])
            except StopRun as stop:
                run.stopped = str(stop)
            except ConfigError as exc:
                run.fatal = exc
        return run

    def dry_run(self, order_ids: list[str] | None, *, canceled: bool) -> VoidRun:
        """What a run would do for each order, and why: no HTTP, no writes."""
        run = VoidRun(keep_results=True)
        with ShipmentStore.open(
            self.database_url, owner=self.owner, run_id=self.run_id, purpose="labels-void"
        ) as store:
            voids = _Voids(self, store, run)
            for row in store.void_standing(_targets(store, order_ids, canceled=canceled)):
                voids.report(voids.plan(row))
        return run


def _targets(store: ShipmentStore, order_ids: list[str] | None, *, canceled: bool) -> list[str]:
    found = list(order_ids or [])
    if canceled:
        found += store.voids_left_unfinished() + store.canceled_to_void()
    return list(dict.fromkeys(found))


class _Voids:
    """One run's voids, order by order."""

    def __init__(self, workflow: VoidWorkflow, store: ShipmentStore, run: VoidRun) -> None:
        self.settings = workflow.settings
        self.client = workflow.client
        self.store = store
        self.run = run
        self.on_result = workflow.on_result
        self.stop = workflow.stop

    def report(self, result: VoidResult) -> None:
        self.run.record(result)
        self.on_result(result)

    # --- the run ------------------------------------------------------------------------------

    def void_all(self, order_ids: list[str], *, named: list[str]) -> None:
        self.run.track_orders()
        rows = self.store.void_standing(order_ids)
        dead = [owner for owner in self.store.owners_of_voidable(order_ids) if owner_is_dead(owner)]
        for index, row in enumerate(rows):
            try:
                if self.stop.requested:
                    raise StopRun(self.stop.describe())
                self.report(self._void_order(row, dead))
            except _StopAfter as stop:
                self.report(stop.result)
                self._left_waiting(rows[index + 1 :], named, stop.why)
                raise StopRun(stop.why) from None
            except (StopRun, ConfigError) as stop:
                self._left_waiting(rows[index:], named, str(stop))
                raise

    def _left_waiting(self, rows: list[dict[str, Any]], named: list[str], why: str) -> None:
        """The orders asked for by name that the run stops before: said, not left silent."""
        for row in rows:
            if row["order_id"] in named and not self.run.reported(row["order_id"]):
                message = f"order {row['order_id']}: not reached: {why}"
                self.report(
                    VoidResult(row["order_id"], PENDING, row["status"], error=message, reason=message)
                )

    def _void_order(self, row: dict[str, Any], dead: list[str]) -> VoidResult:
        refusal = self.refusal(row, dead)
        if refusal is not None:
            return refusal
        order_id = row["order_id"]
        if row["cp_mode"] == "noncontract" and self.settings.refund_email is None:
            # Every non-contract void is a refund request: refused before anything is claimed.
            raise ConfigError(
                refund_email_missing(
                    f"order {order_id}'s label is non-contract, so only a refund can undo it"
                )
            )
        lease = self.settings.lease_seconds
        claim = (
            self.store.claim_unfinished_void if row["status"] == S.LABEL_VOIDING else self.store.claim_void
        )
        why = "the order was canceled on Best Buy" if row["status"] == S.ORDER_CANCELED else "asked for"
        claim_row = claim(
            order_id, lease_seconds=lease, dead_owners=dead, reason=f"`fulfil labels void`: {why}"
        )
        if claim_row is None:
            # Another run got there between the look and the claim: say where it is now.
            [now] = self.store.void_standing([order_id])
            return self.refusal(now, dead) or _skipped(
                now, f"order {order_id}: another fulfil run took it meanwhile"
            )
        return _Void(self, VoidClaim.of(claim_row)).run()

    # --- what can be voided, and what would be done ----------------------------------------------

    def refusal(self, row: dict[str, Any], dead: list[str]) -> VoidResult | None:
        """Why this order's label is not voided by this run (None: it can be)."""
        order_id, status = row["order_id"], row["status"]
        if row["order_status"] is None and status is None:
            why = "is not in the orders table (`fulfil orders pull` or `fulfil orders import` it)"
            return _not_eligible(row, f"order {order_id} {why}")
        if status is None:
            return _not_eligible(
                row,
                f"order {order_id} has no label to void (no shipment; the order is {row['order_status']})",
            )
        if (row["parcel_count"] or 1) > 1:
            # One void per order, its result and its replacement keyed by the order: an order
            # split into parcels (0020) would have only its first parcel's label voided.
            return _not_eligible(
                row,
                f"order {order_id} ships in {row['parcel_count']} parcels; `fulfil labels void` voids the "
                "label of an order in one parcel only, for now: void its labels at Canada Post (their "
                f"shipment ids are in `fulfil orders show {order_id}`)",
            )
        if status in (S.LABEL_PENDING, S.LABEL_CREATION_INITIATED, S.LABEL_FAILED):
            why = f"has no label to void ({status}: {STATE_INFO[S(status)].meaning})"
            if status == S.LABEL_CREATION_INITIATED:
                why += "; `fulfil labels reconcile` settles the purchase first"
            return _not_eligible(row, f"order {order_id} {why}")
        if status == S.NEEDS_REVIEW:
            return _not_eligible(
                row, f"order {order_id} needs review first ({row['last_error'] or 'see `fulfil status`'})"
            )
        if status == S.TRACKING_SENT:
            why = (
                "has its tracking number at Best Buy already (tracking_sent: the ship confirmation is "
                "next); `fulfil tracking push` finishes it, or moves it to order_canceled if Best Buy "
                f"canceled the order, and then `fulfil labels void {order_id}` can void it"
            )
            return _not_eligible(row, f"order {order_id} {why}")
        if status == S.LABEL_VOIDED:
            return _skipped(row, f"order {order_id}: its label was voided already ({row['void_reason']})")
        if status == S.REFUND_REQUESTED:
            return _skipped(row, f"order {order_id}: a refund was requested already ({row['void_reason']})")
        owner = row["lease_owner"]
        held = owner is not None and row["leased"] and owner not in dead and not owner_is_dead(owner)
        if status == S.LABEL_VOIDING and held:
            return _skipped(row, f"order {order_id}: another fulfil run is voiding its label now")
        if held:
            why = (
                "is held by another fulfil run now (a tracking push or a label download in flight); "
                f"run `fulfil labels void {order_id}` again once it is done"
            )
            return VoidResult(order_id, PENDING, status, row["tracking_pin"], row["label_pdf_path"],
                              error=f"order {order_id} {why}", reason=f"order {order_id} {why}")  # fmt: skip
        if row["cp_mode"] is None:
            why = (
                f"has a label (PIN {row['tracking_pin']}) bought by an earlier tool: fulfil does not know "
                "which Canada Post service sold it; void it on Canada Post's site"
            )
            return _not_eligible(row, f"order {order_id} {why}")
        try:
            self.link_of(row)
        except UnusableLink as exc:
            return _not_eligible(row, f"order {order_id}: its label cannot be voided from here: {exc}")
        if status not in (*VOIDABLE, S.LABEL_VOIDING):  # pragma: no cover - every state is named above
            return _not_eligible(row, f"order {order_id} is {status}")
        return None

    def link_of(self, row: dict[str, Any]) -> str:
        return shipment_link(
            self.settings.canadapost,
            contract=row["cp_mode"] == "contract",
            self_url=row["cp_self_url"],
            shipment_id=row["cp_shipment_id"],
        )

    def plan(self, row: dict[str, Any]) -> VoidResult:
        """The dry run: what a run would do for this order and why (no HTTP, no writes)."""
        refusal = self.refusal(row, [])
        if refusal is not None:
            return refusal
        link = self.link_of(row)
        order_id, contract = row["order_id"], row["cp_mode"] == "contract"
        warnings = []
        if self.settings.refund_email is None:
            warnings.append(refund_email_missing("a refund request would be refused here"))
        refund = (
            f"POST {link.rstrip('/')}/refund ({'contract' if contract else 'non-contract'} refund request)"
        )
        if row["status"] == S.LABEL_VOIDING:
            outcome = WOULD_SETTLE
            why = (
                "a void left unfinished: Canada Post is read first (gone: voided; a refund request shows: "
                "refund requested); only a void proven not done is sent again"
            )
        elif contract:
            outcome = WOULD_VOID
            why = f"DELETE {link} (void); if Canada Post answers 8064 (transmitted already): {refund}"
        else:
            outcome = WOULD_REFUND
            why = f"{refund}: a non-contract label has no void, only a refund"
        return VoidResult(order_id, outcome, row["status"], row["tracking_pin"], row["label_pdf_path"],
                          warnings=warnings, reason=f"order {order_id}: {why}")  # fmt: skip


def _not_eligible(row: dict[str, Any], message: str) -> VoidResult:
    return VoidResult(
        row["order_id"], NOT_ELIGIBLE, row["status"], row["tracking_pin"], row["label_pdf_path"],
        error=message, reason=message,
    )  # fmt: skip


def _skipped(row: dict[str, Any], message: str) -> VoidResult:
    return VoidResult(
        row["order_id"], SKIPPED, row["status"], row["tracking_pin"], row["label_pdf_path"], reason=message
    )


class _Void:
    """One claimed void, from its first request to what Canada Post proves."""

    def __init__(self, voids: _Voids, claim: VoidClaim) -> None:
        self.voids = voids
        self.claim = claim
        self.store = voids.store
        self.client = voids.client
        self.order = claim.order_id
        # A request whose answer was lost and that Canada Post shows undone is sent once more.
        self.resent = False

    def run(self) -> VoidResult:
        claim = self.claim
        assert self.client is not None, "a void needs a Canada Post client (a session)"
        try:
            self.link = shipment_link(
                self.voids.settings.canadapost,
                contract=claim.contract,
                self_url=claim.cp_self_url,
                shipment_id=claim.cp_shipment_id,
            )
        except UnusableLink as exc:
            return self._release(FAILED, "unusable-link", f"its label cannot be voided from here: {exc}")
        try:
            step: str | VoidResult = _Step.VOID if claim.contract else _Step.REFUND
            if claim.left_unfinished:
                step = self._settle_left_unfinished()
            while not isinstance(step, VoidResult):
                step = self._void() if step == _Step.VOID else self._refund()
            return step
        except LeaseLost:
            return self._taken_over("before its next request was sent (that run settles it)")

    # --- the requests -------------------------------------------------------------------------

    def _hold(self) -> None:
        """The claim, renewed for the request about to go out and the reads after it."""
        if not self.store.extend_void_lease(
            self.claim.shipment_id, lease_seconds=self.voids.settings.lease_seconds
        ):
            raise LeaseLost("the void was taken over by another run")

    def _void(self) -> str | VoidResult:
        assert self.client is not None
        self._hold()
        outcome = self.client.void_shipment(
            self.order, self.link, guard=self.store.void_guard(self.claim.shipment_id)
        )
        if outcome.ok:
            return self._voided("voided at Canada Post")
        self._stop_if_not_sent(outcome, "void")
        if TRANSMITTED in _codes(outcome):
            return _Step.REFUND
        if outcome.status_code == 404:
            return self._after_not_found("void")
        if outcome.failure is FailureClass.DEFINITIVE:
            return self._refused(outcome, "void")
        return self._after_unknown("void", interpret_error(outcome).description)

    def _refund(self) -> str | VoidResult:
        assert self.client is not None
        email = self.voids.settings.refund_email
        if email is None:
            # Said once this order's result is out: the run stops with exit 2, nothing more sent.
            self.voids.report(
                self._release(
                    NOT_VOIDED,
                    "refund-email",
                    "only a refund request can undo the label, and FULFIL_CANADAPOST_REFUND_EMAIL is not set",
                )
            )
            raise ConfigError(
                refund_email_missing(
                    f"order {self.order}'s label was transmitted already, so only a refund can undo it"
                )
            )
        self._hold()
        outcome = self.client.refund_shipment(
            self.order, self.link, contract=self.claim.contract, email=email,
            guard=self.store.void_guard(self.claim.shipment_id),
        )  # fmt: skip
        if outcome.ok:
            try:
                ticket = self.client.refund_ticket_of(outcome.body)
            except ResponseFormatError as exc:
                # A 2xx whose ticket cannot be read may still be a refund requested: find out.
                return self._after_unknown("refund request", f"unusable answer: {exc}")
            return self._refund_requested(ticket, "refund requested at Canada Post")
        self._stop_if_not_sent(outcome, "refund request")
        if ALREADY_REQUESTED in _codes(outcome):
            return self._already_requested()
        if outcome.status_code == 404:
            return self._after_not_found("refund request")
        if outcome.failure is FailureClass.DEFINITIVE:
            return self._refused(outcome, "refund request")
        return self._after_unknown("refund request", interpret_error(outcome).description)

    def _stop_if_not_sent(self, outcome: HttpOutcome, what: str) -> None:
        """Nothing performed, and none of the next orders would fare better: back where it was, and
        the run stops (the others wait). Refused credentials stop it with exit 2."""
        error = interpret_error(outcome)
        if error.kind is ErrorKind.AUTH:
            self.voids.report(
                self._release(
                    NOT_VOIDED, "auth", f"Canada Post refused the credentials; the {what} was not performed"
                )
            )
            raise auth_error(error)
        if (
            outcome.failure is FailureClass.NOT_SENT
            or outcome.failure is FailureClass.RATE_LIMITED
            or (error.kind is ErrorKind.RATE_LIMITED)
        ):
            said = outcome.error or error.description
            result = self._release(
                NOT_VOIDED, "not-sent", f"the {what} was not performed ({said}); it waits for the next run"
            )
            raise _StopAfter(
                result, f"Canada Post could not take the {what} ({said}); the remaining voids wait"
            )

    # --- what the answers prove ---------------------------------------------------------------

    def _refused(self, outcome: HttpOutcome, what: str) -> VoidResult:
        error = interpret_error(outcome)
        return self._release(
            FAILED,
            error.code or str(outcome.status_code),
            f"Canada Post refused the {what}: {error.description}",
        )

    def _already_requested(self) -> VoidResult:
        """7292: a refund was requested before (by fulfil, whose answer was lost, or on Canada
        Post's site). Its ticket is read from the shipment's details when Canada Post shows it."""
        reason = "a refund had already been requested at Canada Post (7292)"
        try:
            standing = self._standing()
        except CanadaPostUnavailable as exc:
            return self._refund_requested(None, f"{reason}; its ticket could not be read ({exc})")
        if isinstance(standing, VoidResult):
            return standing
        return self._refund_requested(standing.refund, reason)

    def _after_not_found(self, what: str) -> VoidResult:
        """404 (an empty ``<messages/>``): nothing was done, and it does not say whether Canada
        Post no longer has the label or never had it at this link. Reading tells."""
        said = f"Canada Post answered the {what} with 404"
        try:
            standing = self._standing()
        except CanadaPostUnavailable as exc:
            return self._release(
                NOT_VOIDED,
                "not-found",
                f"{said}, and whether it still has the label could not be read ({exc}); "
                "left as it was for a retry",
            )
        if isinstance(standing, VoidResult):
            return standing
        if not standing.exists:
            return self._voided(f"Canada Post no longer has it ({said}; {standing.seen})")
        return self._release(
            NOT_VOIDED, "not-found",
            f"{said} but still has the label ({standing.seen}): it was not voided; "
            "left as it was for a retry",
        )  # fmt: skip

    def _after_unknown(self, what: str, said: str) -> str | VoidResult:
        """The answer to the request is unknown: read Canada Post before anything else."""
        try:
            standing = self._standing()
        except CanadaPostUnavailable as exc:
            return self._unsettled(
                f"the answer to the {what} was lost ({said}) and Canada Post could not be read ({exc})"
            )
        if isinstance(standing, VoidResult):
            return standing
        lost = f"the answer to the {what} was lost ({said})"
        return self._from_standing(standing, lost)

    def _settle_left_unfinished(self) -> str | VoidResult:
        """A void a run that is gone left label_voiding: its audit log first, then Canada Post."""
        calls = self.store.void_calls(self.claim.shipment_id, self.order, self.claim.started_at)
        for call in reversed(calls):
            if not call["is_success"]:
                continue
            if call["endpoint"] == "VoidShipment":
                return self._voided(
                    "voided at Canada Post (its answer was recorded by a run that stopped before "
                    "recording the void)"
                )
            try:
                ticket = self.client.refund_ticket_of(call["response_body"] or "") if self.client else None
            except ResponseFormatError:
                continue
            return self._refund_requested(
                ticket,
                "refund requested at Canada Post (its answer was recorded by a run that stopped "
                "before recording the refund)",
            )
        if all(call["failure_class"] == FailureClass.NOT_SENT.value for call in calls):
            # The api_calls row is written before anything is sent: nothing went out.
            return _Step.VOID if self.claim.contract else _Step.REFUND
        try:
            standing = self._standing()
        except CanadaPostUnavailable as exc:
            return self._unsettled(
                f"a void left unfinished by an earlier run, and Canada Post could not be read ({exc})"
            )
        if isinstance(standing, VoidResult):
            return standing
        return self._from_standing(standing, "a void left unfinished by an earlier run")

    def _from_standing(self, standing: ShipmentStanding, why: str) -> str | VoidResult:
        if not standing.exists:
            return self._voided(f"Canada Post no longer has it ({why}; {standing.seen})")
        if standing.refund is not None:
            return self._refund_requested(
                standing.refund, f"refund requested at Canada Post ({why}; its details show the request)"
            )
        if self.resent:
            return self._unsettled(f"{why}, again; Canada Post still shows the label ({standing.seen})")
        # Canada Post still has it and shows no refund request: the request was not performed.
        self.resent = True
        if self.claim.contract and standing.status != _TRANSMITTED_STATUS:
            return _Step.VOID
        return _Step.REFUND

    def _standing(self) -> ShipmentStanding | VoidResult:
        """What Canada Post holds; a label that is not the one recorded parks the void."""
        assert self.client is not None
        try:
            standing = self.client.shipment_standing(
                self.order, self.link, self.claim.tracking_pin, contract=self.claim.contract
            )
        except ConfigError:
            # Refused credentials stop the run (exit 2); this void is left for the next one.
            self.voids.report(self._unsettled("Canada Post refused the credentials while it was being read"))
            raise
        if standing.tracking_pin is not None and standing.tracking_pin != self.claim.tracking_pin:
            message = (
                f"order {self.order}: the shipment at {self.link} has PIN {standing.tracking_pin}, "
                f"not the label's PIN {self.claim.tracking_pin}; check the label on Canada Post's site "
                "(void it there if need be)"
            )
            if not self.store.park_void(self.claim.shipment_id, code="other-label", error=message):
                return self._taken_over("while Canada Post was read")
            return self._result(REVIEW, S.NEEDS_REVIEW, error=message)
        return standing

    # --- recording ----------------------------------------------------------------------------

    def _voided(self, reason: str) -> VoidResult:
        path, warnings = _set_aside(self.claim.label_pdf_path, self.claim.tracking_pin)
        if not self.store.record_voided(self.claim.shipment_id, reason=reason, label_pdf_path=path):
            return self._taken_over("while its outcome was being recorded")
        return self._result(VOIDED, S.LABEL_VOIDED, reason=reason, label_pdf_path=path, warnings=warnings)

    def _refund_requested(self, ticket: RefundTicket | None, reason: str) -> VoidResult:
        if ticket is not None:
            reason = f"{reason}: service ticket {ticket.ticket_id} of {ticket.ticket_date:%Y-%m-%d}"
        path, warnings = _set_aside(self.claim.label_pdf_path, self.claim.tracking_pin)
        ticket_date: date | None = ticket.ticket_date if ticket else None
        recorded = self.store.record_refund_requested(
            self.claim.shipment_id, reason=reason, ticket_id=ticket.ticket_id if ticket else None,
            ticket_date=ticket_date, label_pdf_path=path,
        )  # fmt: skip
        if not recorded:
            return self._taken_over("while its outcome was being recorded")
        return self._result(
            REFUND_REQUESTED, S.REFUND_REQUESTED, reason=reason, label_pdf_path=path, warnings=warnings
        )

    def _release(self, outcome: str, code: str, why: str) -> VoidResult:
        """Not done: back where the void started, with the reason."""
        message = f"order {self.order}: {why}"
        status = self.store.release_void(self.claim.shipment_id, code=code, error=message)
        if status is None:
            return self._taken_over("before it was released")
        return self._result(outcome, status, error=message)

    def _unsettled(self, why: str) -> VoidResult:
        message = (
            f"order {self.order}: {why}; the next `fulfil labels void` settles it by reading Canada Post"
        )
        if not self.store.leave_void_unsettled(self.claim.shipment_id, code="void-unsettled", error=message):
            return self._taken_over("while it was being settled")
        return self._result(UNSETTLED, S.LABEL_VOIDING, error=message)

    def _taken_over(self, when: str) -> VoidResult:
        message = f"order {self.order}: another fulfil run took this void over {when}"
        [row] = self.store.void_standing([self.order])
        return VoidResult(
            self.order, SKIPPED, row["status"], row["tracking_pin"], row["label_pdf_path"], reason=message
        )

    def _result(
        self,
        outcome: str,
        status: str,
        *,
        error: str | None = None,
        reason: str | None = None,
        label_pdf_path: str | None = None,
        warnings: list[str] | None = None,
    ) -> VoidResult:
        return VoidResult(
            self.order,
            outcome,
            status,
            self.claim.tracking_pin,
            label_pdf_path if label_pdf_path is not None else self.claim.label_pdf_path,
            error=error,
            warnings=warnings or [],
            reason=reason or error,
        )


def _codes(outcome: HttpOutcome) -> set[str]:
    """Canada Post's message codes in a failed answer."""
    return {message.code.strip() for message in messages_in(outcome.body) or ()} if outcome.body else set()


_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9]")
_SET_ASIDE_SUFFIX = ".voided.pdf"


def _set_aside(path: str | None, pin: str) -> tuple[str | None, list[str]]:
    """The label's PDF renamed beside it, ``<name>.<PIN>.voided.pdf``, so it is never printed by
    mistake; never deleted. Returns the path to record (the new one; the recorded one when there
    is no file to move) and what went wrong, if anything (the void stands all the same). Safe to
    repeat: a file moved already by a run that stopped before recording it is found there."""
    if not path or path.endswith(_SET_ASIDE_SUFFIX):
        return path, []
    current = Path(path)
    target = current.with_name(f"{current.stem}.{_UNSAFE_IN_NAME.sub('_', pin)}{_SET_ASIDE_SUFFIX}")
    try:
        if current.exists():
            os.replace(current, target)
            _sync_directory(target.parent)
        elif not target.exists():
            return path, []
    except OSError as exc:
        return path, [
            f"the label's PDF {path} could not be renamed to {target.name}: {exc.strerror or exc}; "
            "do not print it"
        ]
    return str(target), []


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
