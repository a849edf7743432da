"""The label state machine: buy each accepted order's Canada Post label exactly once.

    (no shipment) ──create──▶ label_pending ──claim──▶ label_creation_initiated ──▶ label_created
                                   ▲   ▲                        │    │    │
                     proven not    │   └──── labels retry ──────┘    │    └──▶ needs_review
                     bought        │                                 ▼         (ambiguous)
                                   └─────────────────────────── label_failed
                                                              (Canada Post refused)

Phases, each in its own short transaction (never one held across HTTP):

1. Claim: lock the next eligible shipment (FOR UPDATE SKIP LOCKED), build the request, and commit
   the intent: ``label_creation_initiated`` with a lease, a lookup key (contract: the
   customer-request-id; non-contract: customer-ref-1 = order id) and ``purchase_started_at``.
2. Call: POST Create Shipment through the audited HTTP layer (its api_calls row is written
   before sending).
3. Record, compare-and-set on status and lease owner: bought → ``label_created``; refused →
   ``label_failed`` with Canada Post's code; provably not sent → back to ``label_pending``;
   unknown (timeout, reset, 5xx, garbage) → reconcile, never a blind second POST.
4. Reconcile a purchase whose outcome is unknown: the audit log first (an answer recorded there
   but not here), then Canada Post (by request id, or the non-contract listing matched on
   customer-ref-1). One match: adopt it. Several: ``needs_review``. None: only once the purchase
   has had time to settle is it proven not bought and eligible again; until then it waits.
5. Download the PDF (202 = not ready: wait and retry a bounded number of times); a failed
   download (Canada Post, or a file that cannot be written) never loses the purchase: the row
   stays ``label_created`` without a file, reported ``download_failed`` with the reason.

Exactly once, under every fault:

* Each attempt is sent only if this run still holds the claim, checked in the transaction that
  writes its api_calls row (``hold_purchase_lease``): a claim taken over is never POSTed by its
  old owner.
* The claim (lease) lasts as long as the whole Create Shipment retry policy can take, and a
  purchase whose answer is unknown is proven not bought only when Canada Post still shows
  nothing after its last attempt's deadline plus Canada Post's allowance (``purchase_settles_at``).
* A purchase that succeeded is always recorded, even when another run took the claim over in
  the meantime: on the shipment if it holds no label, else as a surplus label (one of the two
  must be voided) with the shipment parked in ``needs_review`` when not yet pushed.
* Every value Canada Post sends back is checked (PIN, shipment id, links on Canada Post's own
  host) before it is recorded; an answer that fails the checks is indeterminate, never re-POSTed.
* The labels directory is checked before anything is bought.
* A run leaves no lease behind when it ends (finished, failed or stopped by a signal).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from fulfil.api_calls import LeaseLost
from fulfil.audited_http import FailureClass, HttpOutcome, settle_seconds
from fulfil.canadapost.client import (
    CanadaPostClient,
    CanadaPostUnavailable,
    auth_error,
    interpret_error,
)
from fulfil.canadapost.destination import OrderDataError
from fulfil.canadapost.media_types import PDF_MEDIA_TYPE
from fulfil.canadapost.noncontract_index import NonContractIndex
from fulfil.canadapost.responses import ErrorKind, ResponseFormatError, ShipmentInfo
from fulfil.canadapost.shipment_request import ShipmentRequest, build_shipment_request
from fulfil.config import CanadaPostSettings, ParcelSettings, SenderSettings
from fulfil.db import connect, query
from fulfil.errors import ConfigError, FulfilError, UsageError
from fulfil.label_files import check_labels_dir, file_matches, looks_like_pdf, write_label
from fulfil.runs import owner_is_dead, release_leases
from fulfil.stop_signals import StopRequest
from fulfil.workflows.run_results import RunResults

# Outcomes a result can report, besides a shipment status.
BOUGHT = "bought"
ADOPTED = "adopted"
FAILED = "failed"
PENDING = "pending"
REVIEW = "needs_review"
UNSETTLED = "unsettled"
DOWNLOADED = "downloaded"
DOWNLOAD_FAILED = "download_failed"
SKIPPED = "skipped"
WOULD_BUY = "would_buy"
RETRYABLE = "retryable"
NOT_ELIGIBLE = "not_eligible"
KEPT = "kept"

# Outcomes that need someone's attention (exit code 3).
ATTENTION = frozenset({FAILED, PENDING, REVIEW, UNSETTLED, DOWNLOAD_FAILED, NOT_ELIGIBLE})


@dataclass
class LabelResult:
    order_id: str
    outcome: str
    status: str | None = None
    tracking_pin: str | None = None
    label_pdf_path: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "outcome": self.outcome,
            "status": self.status,
            "tracking_pin": self.tracking_pin,
            "label_pdf_path": self.label_pdf_path,
            "error": self.error,
            "warnings": self.warnings,
        }


class LabelRun(RunResults[LabelResult]):
    attention = ATTENTION


@dataclass(frozen=True)
class LabelSettings:
    canadapost: CanadaPostSettings
    sender: SenderSettings
    parcel: ParcelSettings
    labels_dir: Path
    # How long a claim is held: the longest Create Shipment can take with all its attempts and
    # waits (audited_http.lease_seconds).
    lease_seconds: float
    # The overall deadline of one call, for api_calls rows written before deadline_at existed.
    deadline: float
    # How long after an attempt's deadline Canada Post is given to make a purchase it received
    # visible, before its absence proves nothing was bought (audited_http.settle_seconds).
    settle_allowance: float
    label_not_ready_retries: int = 5
    label_not_ready_wait: float = 2.0


class _StopRun(Exception):
    """Canada Post cannot take more work now (throttled, unreachable); the rest waits."""


Listener = Callable[[LabelResult], None]


class LabelWorkflow:
    def __init__(
        self,
        *,
        database_url: str,
        settings: LabelSettings,
        client: CanadaPostClient,
        lease_owner: str,
        on_result: Listener | None = None,
        sleep: Callable[[float], None] = time.sleep,
        run_id: str | None = None,
        stop: StopRequest | None = None,
    ) -> None:
        self.database_url = database_url
        self.settings = settings
        self.client = client
        self.owner = lease_owner
        self.on_result = on_result or (lambda result: None)
        self.sleep = sleep
        self.run_id = run_id
        self.stop = stop or StopRequest()
        self._noncontract: NonContractIndex | None = None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """This run's connection; whatever happens, the run leaves no claim behind."""
        try:
            with connect(self.database_url, row_factory=dict_row, application_name="fulfil-labels") as conn:
                yield conn
        finally:
            with contextlib.suppress(FulfilError, psycopg.Error):
                release_leases(self.database_url, self.owner)

    # ==========================================================================================
    # labels create
    # ==========================================================================================

    def create(self, order_ids: list[str] | None = None, limit: int | None = None) -> LabelRun:
        run = LabelRun()
        # A label is paid for before its PDF exists: a directory that cannot take it stops the run
        # before anything is bought.
        check_labels_dir(self.settings.labels_dir)
        with self._connection() as conn:
            try:
                self._reconcile_all(conn, run, order_ids)
                conn.execute(
                    query("labels", "create_pending_shipments"), {"order_ids": order_ids, "limit": limit}
                )
                conn.commit()
                done: list[int] = []
                while limit is None or len(done) < limit:
                    if self.stop.requested:
                        raise _StopRun(self.stop.describe())
                    claimed = self._claim_and_prepare(conn, order_ids, done)
                    if claimed is None:
                        break
                    done.append(claimed.shipment_id)
                    if claimed.result is not None:
                        self._report(run, claimed.result)
                        continue
                    self._report(run, self._purchase(conn, claimed))
            except _StopRun as stop:
                run.stopped = str(stop)
            except ConfigError as exc:
                run.fatal = exc
            if run.stopped is None and run.fatal is None:
                self._download_missing(conn, run, order_ids)
                self._report_untouched(conn, run, order_ids)
        return run

    def count_eligible(self, order_ids: list[str] | None) -> int:
        """About how many orders a run would work on (for a progress bar)."""
        with connect(self.database_url, row_factory=dict_row) as conn:
            row = conn.execute(query("labels", "count_eligible"), {"order_ids": order_ids}).fetchone()
        return int(row["count"]) if row else 0

    @dataclass
    class _Claim:
        shipment_id: int
        order_id: str
        order_data_hash: str
        request: ShipmentRequest | None = None
        request_id: str | None = None
        purchase_started_at: datetime | None = None
        result: LabelResult | None = None

    def _claim_and_prepare(
        self, conn: psycopg.Connection, order_ids: list[str] | None, skip: list[int]
    ) -> LabelWorkflow._Claim | None:
        """Phase 1: lock the next eligible order, build its request, commit the intent."""
        with conn.transaction():
            row = conn.execute(
                query("labels", "claim_next_purchase"), {"order_ids": order_ids, "skip": skip}
            ).fetchone()
            if row is None:
                return None
            claim = LabelWorkflow._Claim(row["shipment_id"], row["order_id"], row["order_data_hash"])
            request_id = row["cp_request_id"]
            if request_id is None:
                assigned = conn.execute(
                    query("labels", "assign_request_id"), {"shipment_id": claim.shipment_id}
                ).fetchone()
                request_id = assigned["cp_request_id"] if assigned else None
            try:
                request = build_shipment_request(
                    order_id=claim.order_id,
                    order=row["raw_order_data"] or {},
                    canadapost=self.settings.canadapost,
                    sender=self.settings.sender,
                    parcel=self.settings.parcel,
                    request_id=request_id,
                )
            except OrderDataError as exc:
                conn.execute(
                    query("labels", "mark_failed_before_sending"),
                    {
                        "shipment_id": claim.shipment_id,
                        "code": "order-data",
                        "error": str(exc),
                        "order_data_hash": claim.order_data_hash,
                        "warnings": None,
                    },
                )
                claim.result = LabelResult(claim.order_id, FAILED, "label_failed", error=str(exc))
                return claim
            intent = conn.execute(
                query("labels", "mark_purchase_initiated"),
                {
                    "shipment_id": claim.shipment_id,
                    "cp_mode": "contract" if request.contract else "noncontract",
                    "owner": self.owner,
                    "lease_seconds": self.settings.lease_seconds,
                    "warnings": Jsonb(list(request.warnings)) if request.warnings else None,
                },
            ).fetchone()
            assert intent is not None
            claim.request = request
            claim.request_id = intent["cp_request_id"]
            claim.purchase_started_at = intent["purchase_started_at"]
        return claim

    def _purchase(self, conn: psycopg.Connection, claim: LabelWorkflow._Claim) -> LabelResult:
        """Phases 2 and 3: send, then record what the answer proves."""
        assert claim.request is not None
        warnings = list(claim.request.warnings)
        try:
            outcome = self.client.create_shipment(
                claim.order_id, claim.request, guard=self._lease_guard(claim.shipment_id)
            )
        except LeaseLost:
            message = (
                f"order {claim.order_id}: another fulfil run took this order over before its request "
                "was sent; nothing was sent"
            )
            return LabelResult(claim.order_id, SKIPPED, error=message)
        if outcome.ok:
            try:
                info = self.client.shipment_info_of(outcome.body)
            except ResponseFormatError as exc:
                # A 2xx we cannot read (or whose values fail the checks) may still be a bought
                # label: find out, never re-POST.
                return self._settle(
                    conn, claim.shipment_id, claim.order_id, f"unusable answer: {exc}", warnings
                )
            return self._adopt(
                conn, claim.shipment_id, claim.order_id, info, BOUGHT, warnings, call_id=outcome.call_id
            )

        error = interpret_error(outcome)
        if outcome.failure is FailureClass.NOT_SENT:
            self._release(conn, claim.shipment_id, "not-sent", f"Canada Post not reached: {outcome.error}")
            raise _StopRun(f"Canada Post could not be reached ({outcome.error}); the remaining orders wait")
        if error.kind is ErrorKind.AUTH:
            self._release(conn, claim.shipment_id, "auth", error.description)
            raise auth_error(error)
        if error.kind is ErrorKind.RATE_LIMITED:
            # Throttled at the gateway, before any processing: nothing was bought.
            self._release(conn, claim.shipment_id, "rate-limited", error.description)
            raise _StopRun(
                "Canada Post is throttling this API key (it blocks for up to a minute); run again later"
            )
        if outcome.failure is FailureClass.DEFINITIVE and error.kind is ErrorKind.NOT_FOUND:
            self._release(conn, claim.shipment_id, "not-found", error.description)
            raise ConfigError(
                f"Canada Post answered 404 to Create Shipment ({outcome.url}); check "
                "FULFIL_CANADAPOST_CUSTOMER_NUMBER and FULFIL_CANADAPOST_BASE_URL"
            )
        if outcome.failure is FailureClass.DEFINITIVE:
            message = f"order {claim.order_id}: {error.description}"
            self._cas(
                conn,
                "record_label_failed",
                shipment_id=claim.shipment_id,
                code=error.code or str(outcome.status_code),
                error=message,
                order_data_hash=claim.order_data_hash,
            )
            return LabelResult(claim.order_id, FAILED, "label_failed", error=message, warnings=warnings)
        # Indeterminate: a read timeout, a reset, a 5xx, a gateway page.
        return self._settle(conn, claim.shipment_id, claim.order_id, error.description, warnings)

    # ==========================================================================================
    # Reconcile
    # ==========================================================================================

    def _lease_guard(self, shipment_id: int) -> Callable[[psycopg.Connection], bool]:
        def still_ours(audit_conn: psycopg.Connection) -> bool:
            row = audit_conn.execute(
                query("labels", "hold_purchase_lease"), {"shipment_id": shipment_id, "owner": self.owner}
            ).fetchone()
            return row is not None

        return still_ours

    def reconcile(self, order_ids: list[str] | None = None) -> LabelRun:
        run = LabelRun()
        with self._connection() as conn:
            try:
                self._reconcile_all(conn, run, order_ids)
            except _StopRun as stop:
                run.stopped = str(stop)
            except ConfigError as exc:
                run.fatal = exc
        return run

    def _reconcile_all(self, conn: psycopg.Connection, run: LabelRun, order_ids: list[str] | None) -> None:
        with conn.transaction():
            for row in conn.execute(
                query("labels", "park_unkeyed_purchases"), {"order_ids": order_ids}
            ).fetchall():
                self._report(run, self._result_of_order(conn, row["order_id"], REVIEW))
        owners = [
            r["lease_owner"] for r in conn.execute(query("labels", "owners_of_open_purchases")).fetchall()
        ]
        conn.commit()
        dead = [owner for owner in owners if owner_is_dead(owner)]
        seen: list[int] = []
        while True:
            if self.stop.requested:
                raise _StopRun(self.stop.describe())
            with conn.transaction():
                row = conn.execute(
                    query("labels", "claim_stuck_purchase"),
                    {
                        "owner": self.owner,
                        "lease_seconds": self.settings.lease_seconds,
                        "dead_owners": dead,
                        "order_ids": order_ids,
                        "skip": seen,
                    },
                ).fetchone()
            if row is None:
                return
            seen.append(row["shipment_id"])
            self._report(run, self._reconcile_one(conn, row))

    def _reconcile_one(self, conn: psycopg.Connection, row: dict[str, Any]) -> LabelResult:
        shipment_id, order_id = row["shipment_id"], row["order_id"]
        calls = conn.execute(
            query("labels", "purchase_calls"), {"order_id": order_id, "since": row["purchase_started_at"]}
        ).fetchall()
        conn.commit()
        # The audit log first: an answer that arrived but was never recorded on the shipment.
        for call in calls:
            if call["is_success"] and call["response_body"]:
                try:
                    info = self.client.shipment_info_of(call["response_body"])
                except ResponseFormatError:
                    continue
                return self._adopt(conn, shipment_id, order_id, info, ADOPTED, [], call_id=call["call_id"])
        if not calls:
            # The api_calls row is written before anything is sent: no row, nothing sent.
            return self._release_result(
                conn, shipment_id, order_id, "never sent (the run stopped before the call)"
            )
        last = calls[-1]
        if all(call["failure_class"] == FailureClass.NOT_SENT.value for call in calls):
            return self._release_result(conn, shipment_id, order_id, "never reached Canada Post")
        if last["failure_class"] == FailureClass.DEFINITIVE.value and last["response_body"]:
            kind = interpret_error(_recorded_outcome(last)).kind
            if kind is ErrorKind.INVALID_REQUEST:
                hash_row = conn.execute(query("labels", "order_data_hash"), {"order_id": order_id}).fetchone()
                conn.commit()
                error = f"order {order_id}: {interpret_error(_recorded_outcome(last)).description}"
                self._cas(
                    conn,
                    "record_label_failed",
                    shipment_id=shipment_id,
                    code=interpret_error(_recorded_outcome(last)).code or str(last["status_code"]),
                    error=error,
                    order_data_hash=hash_row["md5"] if hash_row else None,
                )
                return LabelResult(order_id, FAILED, "label_failed", error=error)
        return self._settle(
            conn, shipment_id, order_id, "the outcome of the last purchase attempt is unknown", [], row=row
        )

    def _settle(
        self,
        conn: psycopg.Connection,
        shipment_id: int,
        order_id: str,
        reason: str,
        warnings: list[str],
        row: dict[str, Any] | None = None,
    ) -> LabelResult:
        """Ask Canada Post what became of a purchase whose answer we do not have."""
        if row is None:
            row = conn.execute(query("labels", "purchase_key"), {"shipment_id": shipment_id}).fetchone()
            conn.commit()
            assert row is not None
        timing = conn.execute(
            query("labels", "purchase_settles_at"),
            {
                "order_id": order_id,
                "since": row["purchase_started_at"],
                "allowance": self.settings.settle_allowance,
                "settle_seconds": settle_seconds(self.settings.deadline, self.settings.settle_allowance),
            },
        ).fetchone()
        conn.commit()
        assert timing is not None
        settles_at: datetime | None = timing["settles_at"]
        if settles_at is None:
            # The api_calls row is written before anything is sent: no row, nothing sent.
            return self._release_result(conn, shipment_id, order_id, f"{reason}; never sent")
        settled = timing["now"] >= settles_at
        try:
            if row["cp_mode"] == "contract":
                listed_at = self._database_now(conn)
                found = self.client.find_contract_shipments(order_id, row["cp_request_id"])
                key = f"request id {row['cp_request_id']}"
            else:
                # A listing proves absence only if read after the settle point; before it, it can
                # still show a purchase (when read after the attempts started).
                found, listed_at = self._noncontract_index(conn).find(
                    order_id,
                    row["purchase_started_at"],
                    listed_after=settles_at if settled else timing["last_started_at"],
                )
                key = f"customer-ref-1 {order_id}"
        except CanadaPostUnavailable as exc:
            message = f"order {order_id}: {reason}; could not check Canada Post yet ({exc})"
            self._cas(conn, "leave_unsettled", shipment_id=shipment_id, code="unsettled", error=message)
            return LabelResult(
                order_id, UNSETTLED, "label_creation_initiated", error=message, warnings=warnings
            )
        found = _distinct(found)
        if len(found) == 1:
            return self._adopt(conn, shipment_id, order_id, found[0], ADOPTED, warnings)
        if len(found) > 1:
            ids = ", ".join(f"{info.shipment_id} (PIN {info.tracking_pin})" for info in found)
            message = (
                f"order {order_id}: Canada Post holds {len(found)} labels for {key}: {ids}. Void all "
                f"but one at Canada Post, then `fulfil labels keep {order_id} SHIPMENT_ID` with the one kept"
            )
            with conn.transaction():
                parked = conn.execute(
                    query("labels", "park_for_review"),
                    {
                        "owner": self.owner,
                        "shipment_id": shipment_id,
                        "code": "duplicate-labels",
                        "error": message,
                    },
                ).fetchone()
                if parked is not None:
                    # Every one of them was paid for: none is forgotten while the seller chooses.
                    for info in found:
                        self._record_surplus(conn, order_id, shipment_id, info, None, message)
            if parked is None:
                return self._taken_over(conn, shipment_id, order_id)
            return LabelResult(order_id, REVIEW, "needs_review", error=message, warnings=warnings)
        if settled and listed_at >= settles_at:
            return self._release_result(
                conn, shipment_id, order_id, f"{reason}; Canada Post has no label for {key}: buying again"
            )
        message = (
            f"order {order_id}: {reason}; Canada Post shows no label for {key} yet. It is checked again "
            f"after {settles_at:%H:%M:%S %Z} (fulfil labels reconcile) before anything is bought again"
        )
        self._cas(conn, "leave_unsettled", shipment_id=shipment_id, code="unsettled", error=message)
        return LabelResult(order_id, UNSETTLED, "label_creation_initiated", error=message, warnings=warnings)

    def _database_now(self, conn: psycopg.Connection) -> datetime:
        row = conn.execute(query("labels", "database_now")).fetchone()
        conn.commit()
        assert row is not None
        return row["now"]

    def _noncontract_index(self, conn: psycopg.Connection) -> NonContractIndex:
        """One per run: the listing read once, each shipment's details at most once."""
        if self._noncontract is None:
            self._noncontract = NonContractIndex(self.client, lambda: self._database_now(conn))
        return self._noncontract

    # ==========================================================================================
    # Recording
    # ==========================================================================================

    def _adopt(
        self,
        conn: psycopg.Connection,
        shipment_id: int,
        order_id: str,
        info: ShipmentInfo,
        outcome: str,
        warnings: list[str],
        *,
        call_id: int | None = None,
    ) -> LabelResult:
        label = info.label_links[0] if info.label_links else None
        self_link = info.links.get("self")
        values = {
            "shipment_id": shipment_id,
            "tracking_pin": info.tracking_pin,
            "cp_shipment_id": info.shipment_id,
            "cp_self_url": self_link.href if self_link else None,
            "cp_label_url": label.href if label else None,
            "cp_label_media_type": (label.media_type if label else None) or PDF_MEDIA_TYPE,
        }
        try:
            updated = self._cas(conn, "record_label_bought", **values)
            if not updated:
                # Our claim was taken over while the purchase was in flight. It was paid for all
                # the same, so it is recorded, never dropped.
                taken_over = self._record_after_takeover(conn, order_id, info, values, call_id, warnings)
                if taken_over is not None:
                    return taken_over
        except psycopg.errors.UniqueViolation:
            conn.rollback()
            message = (
                f"order {order_id}: Canada Post returned PIN {info.tracking_pin} "
                f"(shipment {info.shipment_id}), which another shipment already holds"
            )
            self._cas(conn, "park_for_review", shipment_id=shipment_id, code="pin-conflict", error=message)
            return LabelResult(order_id, REVIEW, "needs_review", error=message, warnings=warnings)
        result = LabelResult(
            order_id, outcome, "label_created", tracking_pin=info.tracking_pin, warnings=warnings
        )
        if label is None:
            result.error = "Canada Post's answer has no label link; the label must be fetched by hand"
            return result
        download = self._download(conn, shipment_id, order_id, label.href, label.media_type)
        result.label_pdf_path = download.label_pdf_path
        if download.error:
            result.outcome = DOWNLOAD_FAILED
            result.error = download.error
        return result

    def _record_after_takeover(
        self,
        conn: psycopg.Connection,
        order_id: str,
        info: ShipmentInfo,
        values: dict[str, Any],
        call_id: int | None,
        warnings: list[str],
    ) -> LabelResult | None:
        """Where a purchase goes whose claim another run took over. None: it was recorded on the
        shipment (which held no label), carry on as for any purchase."""
        with conn.transaction():
            row = conn.execute(
                query("labels", "lock_shipment_label"), {"shipment_id": values["shipment_id"]}
            ).fetchone()
            assert row is not None
            if row["cp_shipment_id"] == info.shipment_id:
                # The other run found this very label at Canada Post and recorded it already.
                return LabelResult(
                    order_id,
                    ADOPTED,
                    row["status"],
                    tracking_pin=info.tracking_pin,
                    error=f"order {order_id}: the label was recorded by another fulfil run meanwhile",
                    warnings=warnings,
                )
            if row["cp_shipment_id"] is None:
                recorded = conn.execute(
                    query("labels", "record_label_bought_after_takeover"),
                    {**values, "cp_mode": "contract" if self.client.contract else "noncontract"},
                ).fetchone()
                if recorded is not None:
                    return None
            extra = f"shipment {info.shipment_id} (PIN {info.tracking_pin})"
            pushed = row["status"] not in ("label_created", "needs_review")
            if row["cp_shipment_id"] is None:
                message = (
                    f"order {order_id}: Canada Post sold {extra} for this order after another run "
                    f"took it over, and the shipment is now {row['status']}: void {extra} at Canada Post"
                )
            else:
                held = f"shipment {row['cp_shipment_id']} (PIN {row['tracking_pin']})"
                message = (
                    f"order {order_id}: Canada Post sold two labels for this order: {held}, recorded on "
                    f"the shipment, and {extra}, bought by a run whose claim had been taken over. "
                    + (
                        f"The recorded one was already sent to Best Buy: void {extra} at Canada Post, then "
                        f"`fulfil labels keep {order_id} {row['cp_shipment_id']}`"
                        if pushed
                        else (
                            "Void one of them at Canada Post, then "
                            f"`fulfil labels keep {order_id} SHIPMENT_ID` with the one kept"
                        )
                    )
                )
            self._record_surplus(conn, order_id, values["shipment_id"], info, call_id, message)
            status = row["status"]
            if not pushed:
                conn.execute(
                    query("labels", "park_for_two_labels"),
                    {"shipment_id": values["shipment_id"], "error": message},
                )
                status = "needs_review"
        return LabelResult(
            order_id, REVIEW, status, tracking_pin=info.tracking_pin, error=message, warnings=warnings
        )

    def _record_surplus(
        self,
        conn: psycopg.Connection,
        order_id: str,
        shipment_id: int,
        info: ShipmentInfo,
        call_id: int | None,
        reason: str,
    ) -> None:
        label = info.label_links[0] if info.label_links else None
        self_link = info.links.get("self")
        conn.execute(
            query("labels", "record_surplus_label"),
            {
                "order_id": order_id,
                "shipment_id": shipment_id,
                "cp_shipment_id": info.shipment_id,
                "tracking_pin": info.tracking_pin,
                "cp_self_url": self_link.href if self_link else None,
                "cp_label_url": label.href if label else None,
                "run_id": self.run_id,
                "call_id": call_id,
                "reason": reason,
            },
        )

    def _release(self, conn: psycopg.Connection, shipment_id: int, code: str, error: str) -> None:
        self._cas(conn, "release_to_pending", shipment_id=shipment_id, code=code, error=error)

    def _release_result(
        self, conn: psycopg.Connection, shipment_id: int, order_id: str, why: str
    ) -> LabelResult:
        message = f"order {order_id}: previous attempt {why}; eligible to buy"
        updated = self._cas(
            conn, "release_to_pending", shipment_id=shipment_id, code="not-bought", error=message
        )
        if not updated:
            return self._taken_over(conn, shipment_id, order_id)
        return LabelResult(order_id, RETRYABLE, "label_pending", error=message)

    def _taken_over(self, conn: psycopg.Connection, shipment_id: int, order_id: str) -> LabelResult:
        row = conn.execute(query("labels", "shipment_result"), {"shipment_id": shipment_id}).fetchone()
        conn.commit()
        message = (
            f"order {order_id}: another fulfil run took this shipment over (this run's lease had expired)"
        )
        return LabelResult(order_id, SKIPPED, row["status"] if row else None, error=message)

    def _cas(self, conn: psycopg.Connection, name: str, **params: Any) -> bool:
        """A compare-and-set write in its own transaction; True when the row was still ours."""
        with conn.transaction():
            cursor = conn.execute(query("labels", name), {"owner": self.owner, **params})
            return cursor.rowcount > 0

    # ==========================================================================================
    # Label files
    # ==========================================================================================

    def download(self, order_ids: list[str] | None = None, verify: bool = True) -> LabelRun:
        """Fetch missing labels and (verify) re-fetch files that are gone or changed on disk."""
        run = LabelRun()
        check_labels_dir(self.settings.labels_dir)
        with self._connection() as conn:
            try:
                self._download_all(conn, run, order_ids, verify=verify)
            except _StopRun as stop:
                run.stopped = str(stop)
        return run

    def _download_missing(self, conn: psycopg.Connection, run: LabelRun, order_ids: list[str] | None) -> None:
        """After buying: fetch every label still without a file (this run's failures excepted)."""
        tried = {r.order_id for r in run.results if r.outcome == DOWNLOAD_FAILED}
        self._download_all(conn, run, order_ids, verify=False, exclude=tried)

    def _download_all(
        self,
        conn: psycopg.Connection,
        run: LabelRun,
        order_ids: list[str] | None,
        *,
        verify: bool,
        exclude: Iterable[str] = (),
    ) -> None:
        rows = conn.execute(
            query("labels", "labels_to_download"), {"verify": verify, "order_ids": order_ids}
        ).fetchall()
        conn.commit()
        skip = set(exclude)
        for row in rows:
            if self.stop.requested:
                raise _StopRun(self.stop.describe())
            if row["order_id"] in skip or file_matches(row["label_pdf_path"], row["label_pdf_sha256"]):
                continue
            if not row["cp_api_label_url"]:
                message = (
                    f"order {row['order_id']}: no label link recorded; fetch it from Canada Post by hand"
                )
                self._report(run, LabelResult(row["order_id"], DOWNLOAD_FAILED, error=message))
                continue
            result = self._download(
                conn, row["shipment_id"], row["order_id"], row["cp_api_label_url"], row["cp_label_media_type"]
            )
            result.tracking_pin = row["tracking_pin"]
            self._report(run, result)

    def _download(
        self, conn: psycopg.Connection, shipment_id: int, order_id: str, href: str, media_type: str | None
    ) -> LabelResult:
        error = ""
        for attempt in range(self.settings.label_not_ready_retries + 1):
            outcome = self.client.fetch_label(order_id, href, media_type)
            if outcome.status_code == 202:
                error = "Canada Post has not finished the label yet (202)"
                if attempt < self.settings.label_not_ready_retries and not self.stop.requested:
                    self.sleep(self.settings.label_not_ready_wait * (attempt + 1))
                    continue
                break
            error = self._label_problem(outcome)
            if not error:
                try:
                    saved = write_label(self.settings.labels_dir, order_id, outcome.body)
                except OSError as exc:
                    # The label is bought and recorded; only its file is missing. The run goes on.
                    error = (
                        f"the PDF could not be written to {self.settings.labels_dir}: {exc.strerror or exc}"
                    )
                    break
                self._cas(
                    conn,
                    "record_label_file",
                    shipment_id=shipment_id,
                    path=str(saved.path),
                    sha256=saved.sha256,
                    size=saved.size,
                )
                return LabelResult(order_id, DOWNLOADED, "label_created", label_pdf_path=str(saved.path))
            # Only "not ready yet" is worth asking again here: the client already retried what
            # waiting can cure, and an answer too large or refused will not change.
            break
        message = (
            f"order {order_id}: label not downloaded: {error}; `fulfil labels download` fetches it later"
        )
        self._cas(conn, "record_label_download_failed", shipment_id=shipment_id, error=message)
        return LabelResult(order_id, DOWNLOAD_FAILED, "label_created", error=message)

    @staticmethod
    def _label_problem(outcome: HttpOutcome) -> str:
        if outcome.failure is not None:
            if outcome.status_code == 404:
                return "Canada Post no longer has it (404: link older than 90 days, or the label was voided)"
            return interpret_error(outcome).description
        if outcome.status_code != 200:
            return f"unexpected HTTP {outcome.status_code}"
        if outcome.content_type != PDF_MEDIA_TYPE:
            return f"expected a PDF, got {outcome.content_type or 'no content type'}"
        if not looks_like_pdf(outcome.body):
            return "the answer is not a complete PDF"
        return ""

    # ==========================================================================================
    # labels retry
    # ==========================================================================================

    def retry(self, order_ids: list[str], *, not_bought: bool) -> LabelRun:
        run = LabelRun()
        statuses = ["label_failed", "needs_review"] if not_bought else ["label_failed"]
        with connect(self.database_url, row_factory=dict_row) as conn:
            with conn.transaction():
                made = {
                    r["order_id"]
                    for r in conn.execute(
                        query("labels", "make_retryable"), {"order_ids": order_ids, "statuses": statuses}
                    ).fetchall()
                }
                states = {
                    r["order_id"]: r
                    for r in conn.execute(
                        query("labels", "shipment_states"), {"order_ids": order_ids}
                    ).fetchall()
                }
            for order_id in order_ids:
                if order_id in made:
                    self._report(run, LabelResult(order_id, RETRYABLE, "label_pending"))
                    continue
                state = states.get(order_id)
                if state is None:
                    why = "has no shipment (not accepted yet, or unknown order)"
                elif state["status"] == "needs_review" and state["last_error_code"] in (
                    "two-labels",
                    "duplicate-labels",
                ):
                    why = (
                        "has several labels at Canada Post: void all but one, then "
                        f"`fulfil labels keep {order_id} SHIPMENT_ID`"
                    )
                elif state["status"] == "needs_review":
                    why = (
                        "needs review: a label may exist. Check Canada Post first; if none was bought, "
                        f"run `fulfil labels retry --not-bought {order_id}`"
                    )
                else:
                    why = f"is {state['status']}, not label_failed"
                self._report(
                    run,
                    LabelResult(
                        order_id, SKIPPED, state["status"] if state else None, error=f"order {order_id} {why}"
                    ),
                )
        return run

    # ==========================================================================================
    # labels keep
    # ==========================================================================================

    def keep(self, order_id: str, cp_shipment_id: str) -> LabelResult:
        """The seller voided the other labels of an order at Canada Post and keeps this one: the
        shipment holds it (its PDF fetched by the next download) and the others are closed."""
        with connect(self.database_url, row_factory=dict_row) as conn, conn.transaction():
            row = conn.execute(query("labels", "label_choice"), {"order_id": order_id}).fetchone()
            if row is None:
                raise UsageError(f"order {order_id} has no shipment")
            surplus = {item["cp_shipment_id"]: item for item in row["surplus"]}
            choices = [c for c in [row["cp_shipment_id"], *surplus] if c]
            if not surplus:
                raise UsageError(
                    f"order {order_id} has only one label ({row['cp_shipment_id'] or 'none'}): "
                    "nothing to choose"
                )
            if cp_shipment_id not in choices:
                raise UsageError(
                    f"order {order_id}: {cp_shipment_id} is not one of its labels; choose one of "
                    f"{', '.join(choices)}"
                )
            resolution = f"voided at Canada Post: the seller kept shipment {cp_shipment_id}"
            params = {"shipment_id": row["shipment_id"], "kept": cp_shipment_id, "resolution": resolution}
            pushed = row["status"] != "needs_review"
            if cp_shipment_id == row["cp_shipment_id"]:
                kept = {
                    "tracking_pin": row["tracking_pin"],
                    "cp_shipment_id": row["cp_shipment_id"],
                    "cp_self_url": row["cp_self_url"],
                    "cp_label_url": row["cp_api_label_url"],
                }
            elif pushed:
                raise UsageError(
                    f"order {order_id}: its label {row['cp_shipment_id']} (PIN {row['tracking_pin']}) was "
                    f"already sent to Best Buy; keep that one and void {cp_shipment_id}"
                )
            else:
                chosen = surplus[cp_shipment_id]
                kept = {
                    key: chosen[key]
                    for key in ("tracking_pin", "cp_shipment_id", "cp_self_url", "cp_label_url")
                }
                conn.execute(query("labels", "retire_recorded_label"), {**params, "run_id": self.run_id})
                conn.execute(query("labels", "mark_surplus_kept"), params)
            conn.execute(query("labels", "resolve_surplus_labels"), params)
            if not pushed:
                conn.execute(query("labels", "take_kept_label"), {"shipment_id": row["shipment_id"], **kept})
            status = "label_created" if not pushed else row["status"]
        return LabelResult(order_id, KEPT, status, tracking_pin=kept["tracking_pin"])

    # ==========================================================================================
    # Dry run
    # ==========================================================================================

    def dry_run(self, order_ids: list[str] | None, limit: int | None) -> tuple[LabelRun, dict[str, bytes]]:
        """Build and check each request a run would send; no HTTP, no writes."""
        run = LabelRun()
        bodies: dict[str, bytes] = {}
        with connect(self.database_url, row_factory=dict_row) as conn:
            rows = conn.execute(
                query("labels", "dry_run_candidates"), {"order_ids": order_ids, "limit": limit}
            ).fetchall()
            conn.rollback()
        for row in rows:
            order_id = row["order_id"]
            try:
                request = build_shipment_request(
                    order_id=order_id,
                    order=row["raw_order_data"] or {},
                    canadapost=self.settings.canadapost,
                    sender=self.settings.sender,
                    parcel=self.settings.parcel,
                    request_id=row["cp_request_id"] or "F" + "0" * 32,
                )
            except OrderDataError as exc:
                self._report(run, LabelResult(order_id, FAILED, row["status"], error=str(exc)))
                continue
            bodies[order_id] = request.xml
            self._report(
                run, LabelResult(order_id, WOULD_BUY, row["status"], warnings=list(request.warnings))
            )
        with connect(self.database_url, row_factory=dict_row) as conn:
            self._report_untouched(conn, run, order_ids)
        return run, bodies

    # ==========================================================================================

    def _report_untouched(self, conn: psycopg.Connection, run: LabelRun, order_ids: list[str] | None) -> None:
        """Say why an order asked for by id was left alone, rather than staying silent about it."""
        if not order_ids:
            return
        seen = {result.order_id for result in run.results}
        missing = [order_id for order_id in order_ids if order_id not in seen]
        if not missing:
            return
        rows = conn.execute(query("labels", "requested_order_states"), {"order_ids": missing}).fetchall()
        conn.commit()
        for row in rows:
            self._report(run, _untouched_result(row))

    def _report(self, run: LabelRun, result: LabelResult) -> None:
        run.results.append(result)
        self.on_result(result)

    def _result_of_order(self, conn: psycopg.Connection, order_id: str, outcome: str) -> LabelResult:
        row = conn.execute(query("labels", "shipment_of_order"), {"order_id": order_id}).fetchone()
        if row is None:
            return LabelResult(order_id, outcome)
        return LabelResult(
            order_id, outcome, row["status"], row["tracking_pin"], row["label_pdf_path"], row["last_error"]
        )


def _untouched_result(row: dict[str, Any]) -> LabelResult:
    order_id, shipment = row["order_id"], row["shipment_status"]
    if row["order_status"] is None:
        why = "is not in the orders table: `fulfil orders pull` or `fulfil orders import` it first"
        return LabelResult(order_id, NOT_ELIGIBLE, None, error=f"order {order_id} {why}")
    if shipment in (
        "label_created",
        "tracking_sent",
        "tracking_updated",
        "tracking_failed",
        "order_canceled",
    ):
        return LabelResult(order_id, SKIPPED, shipment, row["tracking_pin"], row["label_pdf_path"])
    if row["order_status"] != "accepted":
        why = f"is {row['order_status']}, not accepted: no label is bought for it"
    elif shipment == "label_failed":
        why = f"failed before and its data has not changed: fix it, or `fulfil labels retry {order_id}`"
    elif shipment == "needs_review":
        why = "needs review (see `fulfil status`)"
    elif shipment == "label_creation_initiated":
        why = "has a purchase in progress, or waiting to be settled (`fulfil labels reconcile`)"
    else:
        why = f"was not reached ({shipment or 'no shipment'})"
    return LabelResult(order_id, NOT_ELIGIBLE, shipment, error=f"order {order_id} {why}")


def _distinct(found: list[ShipmentInfo]) -> list[ShipmentInfo]:
    unique: dict[str, ShipmentInfo] = {}
    for info in found:
        unique.setdefault(info.shipment_id, info)
    return list(unique.values())


def _recorded_outcome(call: dict[str, Any]) -> HttpOutcome:
    """An HttpOutcome rebuilt from an api_calls row, to interpret an answer recorded earlier."""
    body = call["response_body"] or ""
    return HttpOutcome(
        call_id=call["call_id"],
        method="POST",
        url="",
        status_code=call["status_code"],
        headers={},
        body=body.encode("utf-8"),
        failure=FailureClass(call["failure_class"]) if call["failure_class"] else None,
        error=None,
        duration_ms=0,
    )
