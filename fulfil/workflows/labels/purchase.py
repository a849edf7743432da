"""Buying a label: claim the next order, commit the intent, send Create Shipment, record what the
answer proves.

1. Claim, in one statement: the next eligible shipment (FOR UPDATE SKIP LOCKED) becomes
   ``label_creation_initiated`` with a lease, a lookup key (contract: the customer-request-id;
   non-contract: customer-ref-1 = order id) and ``purchase_started_at``; then its parcel,
   service and options are decided (fulfil.workflows.labels.choice: a rule may ask Canada Post
   for a quote first) and its request built (an order whose data cannot make one, or that
   Canada Post would not quote, is refused at once: nothing is sent).
2. Call: POST Create Shipment through the audited HTTP layer. Each attempt is sent only while this
   run still holds the claim, checked in the statement that writes its api_calls row (which
   also records what the label is bought as).
3. Record what the answer proves: bought → ``label_created``; refused → ``label_failed`` with
   Canada Post's code; provably not sent → back to ``label_pending``; unknown (a timeout, a reset,
   a 5xx, an answer that fails the checks) → settled by looking it up, never a blind second POST.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fulfil.audit.log import LeaseLost
from fulfil.audit.outcome import FailureClass
from fulfil.canadapost.client import auth_error, interpret_error
from fulfil.canadapost.destination import OrderDataError
from fulfil.canadapost.responses import ErrorKind, ResponseFormatError
from fulfil.canadapost.shipment_request import ShipmentRequest
from fulfil.errors import ConfigError
from fulfil.shipments.states import ShipmentState
from fulfil.workflows.labels.choice import LabelChoice, LabelChooser, QuoteFailed, shipment_request_for
from fulfil.workflows.labels.context import LabelContext
from fulfil.workflows.labels.price_fetch import price_in_answer
from fulfil.workflows.labels.reconcile import Reconciler
from fulfil.workflows.labels.recording import Recorder
from fulfil.workflows.labels.results import BOUGHT, FAILED, SKIPPED, LabelResult, StopRun


@dataclass
class Claim:
    shipment_id: int
    order_id: str
    order_data_hash: str
    request: ShipmentRequest | None = None
    request_id: str | None = None
    purchase_started_at: datetime | None = None
    # What the request is bought as: recorded with its first attempt's api_calls row
    # (purchase_guard), so a label is always read back with it; its warnings go on the result.
    choice: LabelChoice | None = None
    # Set when the order cannot make a request (its data): nothing is sent for it.
    result: LabelResult | None = None


class Purchases:
    def __init__(
        self, ctx: LabelContext, recorder: Recorder, reconciler: Reconciler, chooser: LabelChooser
    ) -> None:
        self.ctx = ctx
        self.chooser = chooser
        self.recorder = recorder
        self.reconciler = reconciler

    def claim_next(self, order_ids: list[str] | None) -> Claim | None:
        """Claim the next eligible order and commit the intent (one statement), then build its
        request; an order whose data cannot make one is refused at once, nothing sent."""
        ctx = self.ctx
        row = ctx.store.claim_next_purchase(
            order_ids, contract=ctx.client.contract, lease_seconds=ctx.settings.lease_seconds
        )
        if row is None:
            return None
        claim = Claim(
            row["shipment_id"],
            row["order_id"],
            row["order_data_hash"],
            request_id=row["cp_request_id"],
            purchase_started_at=row["purchase_started_at"],
        )
        order = row["raw_order_data"] or {}
        try:
            # A parcel of an order already split keeps the parcel it was given (planned_parcel):
            # the split never changes once any of its labels may have been bought.
            claim.choice = self.chooser.choose(
                claim.order_id,
                order,
                fixed=row["planned_parcel"],
                parcel_no=row["parcel_no"],
                parcel_count=row["parcel_count"],
            )
            claim.request = shipment_request_for(
                ctx.settings,
                claim.order_id,
                order,
                claim.choice,
                request_id=claim.request_id,
                group_id=ctx.settings.group_id(claim.purchase_started_at),
            )
        except OrderDataError as exc:
            ctx.store.refuse_purchase(
                claim.shipment_id, code="order-data", error=str(exc), order_data_hash=claim.order_data_hash
            )
            claim.result = LabelResult(claim.order_id, FAILED, ShipmentState.LABEL_FAILED, error=str(exc))
        except QuoteFailed as exc:
            claim.result = self._after_quote_failure(claim, exc)
        except BaseException as exc:
            # A setting that cannot make any request (say, a parcel over 30 kg): nothing was sent,
            # so the order goes back to waiting, and the run stops with the configuration error.
            ctx.store.release_purchase(
                claim.shipment_id, code="not-sent", error=f"order {claim.order_id}: not sent: {exc}"
            )
            raise
        choice = claim.choice
        if (
            claim.result is None
            and choice is not None
            and choice.splits_order()
            and not ctx.store.split_order(claim.shipment_id, choice.parcel_records())
        ):
            claim.result = LabelResult(
                claim.order_id,
                SKIPPED,
                error=f"order {claim.order_id}: another fulfil run took this order over before it was "
                "split into parcels; nothing was sent",
            )
        if claim.result is not None and row["parcel_count"] > 1:
            claim.result.parcel = f"{row['parcel_no']}/{row['parcel_count']}"
        return claim

    def _after_quote_failure(self, claim: Claim, failure: QuoteFailed) -> LabelResult:
        """Nothing was bought. Canada Post refusing the quote for this order fails the order (its
        words kept); a quote lost to the network or to Canada Post's trouble leaves the order
        waiting and stops the run, as a purchase that could not be sent does."""
        if failure.retry_later:
            self._release(claim, "quote-failed", f"{failure}; nothing was bought")
            raise StopRun(f"{failure}; nothing was bought, the remaining orders wait")
        code = "quote-refused"
        if failure.outcome is not None:
            code = interpret_error(failure.outcome).code or code
        self.ctx.store.refuse_purchase(
            claim.shipment_id, code=code, error=str(failure), order_data_hash=claim.order_data_hash
        )
        return LabelResult(claim.order_id, FAILED, ShipmentState.LABEL_FAILED, error=str(failure))

    def purchase(self, claim: Claim) -> LabelResult:
        """Send, then record what the answer proves."""
        result = self._purchase(claim)
        if claim.choice is not None and result.parcel is None:
            result.parcel = claim.choice.parcel_reference
        return result

    def _purchase(self, claim: Claim) -> LabelResult:
        ctx = self.ctx
        assert claim.request is not None
        assert claim.choice is not None
        warnings = [*claim.choice.warnings, *claim.request.warnings]
        try:
            guard = ctx.store.purchase_guard(claim.shipment_id, claim.choice.as_record())
            outcome = ctx.client.create_shipment(claim.order_id, claim.request, guard=guard)
        except LeaseLost:
            message = (
                f"order {claim.order_id}: another fulfil run took this order over before its request "
                "was sent; nothing was sent"
            )
            return LabelResult(claim.order_id, SKIPPED, error=message)
        if outcome.ok:
            try:
                info = ctx.client.shipment_info_of(outcome.body)
            except ResponseFormatError as exc:
                # A 2xx we cannot read (or whose values fail the checks) may still be a bought
                # label: find out, never re-POST.
                return self.reconciler.settle(
                    claim.shipment_id, claim.order_id, f"unusable answer: {exc}", warnings
                )
            # A price that cannot be read does not make the label any less bought: it is recorded,
            # and its price fetched from Canada Post instead.
            price, price_problem = price_in_answer(outcome.body, contract=claim.request.contract)
            return self.recorder.adopt(
                claim.shipment_id,
                claim.order_id,
                info,
                BOUGHT,
                warnings,
                contract=claim.request.contract,
                call_id=outcome.call_id,
                price=price,
                price_problem=price_problem,
            )

        error = interpret_error(outcome)
        if outcome.failure is FailureClass.NOT_SENT:
            # Unreachable, or held back by a rate budget: either way nothing went out.
            self._release(claim, "not-sent", f"nothing was sent to Canada Post: {outcome.error}")
            raise StopRun(f"nothing was sent to Canada Post ({outcome.error}); the remaining orders wait")
        if error.kind is ErrorKind.AUTH:
            self._release(claim, "auth", error.description)
            raise auth_error(error)
        if error.kind is ErrorKind.RATE_LIMITED:
            # Throttled at the gateway, before any processing: nothing was bought.
            self._release(claim, "rate-limited", error.description)
            raise StopRun(
                "Canada Post is throttling this API key (it blocks for up to a minute); run again later"
            )
        if outcome.failure is FailureClass.DEFINITIVE and error.kind is ErrorKind.NOT_FOUND:
            self._release(claim, "not-found", error.description)
            raise ConfigError(
                f"Canada Post answered 404 to Create Shipment ({outcome.url}); check "
                "FULFIL_CANADAPOST_CUSTOMER_NUMBER and FULFIL_CANADAPOST_BASE_URL"
            )
        if outcome.failure is FailureClass.DEFINITIVE:
            message = f"order {claim.order_id}: {error.description}"
            ctx.store.refuse_purchase(
                claim.shipment_id,
                code=error.code or str(outcome.status_code),
                error=message,
                order_data_hash=claim.order_data_hash,
            )
            return LabelResult(
                claim.order_id, FAILED, ShipmentState.LABEL_FAILED, error=message, warnings=warnings
            )
        # Indeterminate: a read timeout, a reset, a 5xx, a gateway page.
        return self.reconciler.settle(claim.shipment_id, claim.order_id, error.description, warnings)

    def _release(self, claim: Claim, code: str, error: str) -> None:
        self.ctx.store.release_purchase(claim.shipment_id, code=code, error=error)
