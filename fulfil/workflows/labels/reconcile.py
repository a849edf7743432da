"""Settling purchases whose outcome is unknown: adopt what Canada Post sold, re-queue what it
provably did not, and never decide before the purchase has had time to settle.

A purchase is looked at here when the run that made it is gone (its lease expired, or its process
died on this machine) or when its own answer was unclear. The audit log first (an answer that
arrived but was never recorded), then Canada Post: by request id (contract) or in the listing of
the window, matched on customer-ref-1 (non-contract; one listing per run, see
canadapost/noncontract_index.py). One label found: adopted. Several: each kept as a surplus label
and the shipment parked for the seller to choose. None: only once the settle window after the last
attempt's deadline has passed, and only from a look-up made after it, is it proven not bought.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fulfil.audit.outcome import FailureClass, HttpOutcome
from fulfil.audit.retry import settle_seconds
from fulfil.canadapost.client import CanadaPostUnavailable, interpret_error
from fulfil.canadapost.noncontract_index import NonContractIndex
from fulfil.canadapost.responses import ErrorKind, ResponseFormatError, ShipmentInfo
from fulfil.runs import owner_is_dead
from fulfil.shipments.states import ShipmentState
from fulfil.workflows.labels.context import LabelContext
from fulfil.workflows.labels.price_fetch import price_in_answer
from fulfil.workflows.labels.recording import Recorder
from fulfil.workflows.labels.results import ADOPTED, FAILED, REVIEW, UNSETTLED, LabelResult


class Reconciler:
    def __init__(self, ctx: LabelContext, recorder: Recorder) -> None:
        self.ctx = ctx
        self.recorder = recorder
        self._noncontract: NonContractIndex | None = None

    def reconcile_all(self, order_ids: list[str] | None) -> None:
        ctx = self.ctx
        for order_id in ctx.store.park_unkeyed_purchases(order_ids):
            ctx.report(self.recorder.result_of_order(order_id, REVIEW))
        dead = [owner for owner in ctx.store.owners_of_open_purchases() if owner_is_dead(owner)]
        seen: list[int] = []
        while True:
            ctx.stop_if_asked()
            row = ctx.store.claim_stuck_purchase(
                lease_seconds=ctx.settings.lease_seconds, dead_owners=dead, order_ids=order_ids, skip=seen
            )
            if row is None:
                return
            seen.append(row["shipment_id"])
            result = self.reconcile_one(row)
            result.parcel = result.parcel or parcel_reference(row)
            ctx.report(result)

    def reconcile_one(self, row: dict[str, Any]) -> LabelResult:
        ctx = self.ctx
        shipment_id, order_id = row["shipment_id"], row["order_id"]
        calls = ctx.store.purchase_calls(shipment_id, order_id, row["purchase_started_at"])
        # The audit log first: an answer that arrived but was never recorded on the shipment.
        for call in calls:
            if call["is_success"] and call["response_body"]:
                try:
                    info = ctx.client.shipment_info_of(call["response_body"])
                except ResponseFormatError:
                    continue
                # The answer that was never recorded may carry the label's price too.
                contract = row["cp_mode"] == "contract"
                price, problem = price_in_answer(call["response_body"], contract=contract)
                return self.recorder.adopt(
                    shipment_id,
                    order_id,
                    info,
                    ADOPTED,
                    [],
                    contract=contract,
                    call_id=call["call_id"],
                    price=price,
                    price_problem=problem,
                )
        if not calls:
            # The api_calls row is written before anything is sent: no row, nothing sent.
            return self.recorder.release_result(
                shipment_id, order_id, "never sent (the run stopped before the call)"
            )
        last = calls[-1]
        if all(call["failure_class"] == FailureClass.NOT_SENT.value for call in calls):
            return self.recorder.release_result(shipment_id, order_id, "never reached Canada Post")
        if last["failure_class"] == FailureClass.DEFINITIVE.value and last["response_body"]:
            refusal = interpret_error(_recorded_outcome(last))
            if refusal.kind is ErrorKind.INVALID_REQUEST:
                error = f"order {order_id}: {refusal.description}"
                ctx.store.refuse_purchase(
                    shipment_id,
                    code=refusal.code or str(last["status_code"]),
                    error=error,
                    order_data_hash=ctx.store.order_data_hash(order_id),
                )
                return LabelResult(order_id, FAILED, ShipmentState.LABEL_FAILED, error=error)
        return self.settle(
            shipment_id, order_id, "the outcome of the last purchase attempt is unknown", [], row=row
        )

    def settle(
        self,
        shipment_id: int,
        order_id: str,
        reason: str,
        warnings: list[str],
        row: dict[str, Any] | None = None,
    ) -> LabelResult:
        """Ask Canada Post what became of a purchase whose answer we do not have."""
        ctx = self.ctx
        if row is None:
            row = ctx.store.purchase_key(shipment_id)
        timing = ctx.store.purchase_settles_at(
            shipment_id,
            order_id,
            row["purchase_started_at"],
            allowance=ctx.settings.settle_allowance,
            settle_seconds=settle_seconds(ctx.settings.deadline, ctx.settings.settle_allowance),
        )
        settles_at: datetime | None = timing["settles_at"]
        if settles_at is None:
            # The api_calls row is written before anything is sent: no row, nothing sent.
            return self.recorder.release_result(shipment_id, order_id, f"{reason}; never sent")
        settled = timing["now"] >= settles_at
        try:
            if row["cp_mode"] == "contract":
                listed_at = ctx.store.database_now()
                found = ctx.client.find_contract_shipments(order_id, row["cp_request_id"])
                key = f"request id {row['cp_request_id']}"
            else:
                # A listing proves absence only if read after the settle point; before it, it can
                # still show a purchase (when read after the attempts started).
                reference = parcel_reference(row)
                found, listed_at = self._noncontract_index().find(
                    order_id,
                    row["purchase_started_at"],
                    listed_after=settles_at if settled else timing["last_started_at"],
                    parcel_reference=reference,
                )
                key = f"customer-ref-1 {order_id}" + (
                    f", customer-ref-2 {reference}" if reference is not None else ""
                )
        except CanadaPostUnavailable as exc:
            message = f"order {order_id}: {reason}; could not check Canada Post yet ({exc})"
            ctx.store.leave_unsettled(shipment_id, error=message)
            return LabelResult(
                order_id, UNSETTLED, ShipmentState.LABEL_CREATION_INITIATED, error=message, warnings=warnings
            )
        found = _distinct(found)
        if len(found) == 1:
            # Found by a look-up, whose answer carries no price: it is fetched once recorded.
            return self.recorder.adopt(
                shipment_id, order_id, found[0], ADOPTED, warnings, contract=row["cp_mode"] == "contract"
            )
        if len(found) > 1:
            return self._several(shipment_id, order_id, found, key, warnings)
        if settled and listed_at >= settles_at:
            return self.recorder.release_result(
                shipment_id, order_id, f"{reason}; Canada Post has no label for {key}: buying again"
            )
        message = (
            f"order {order_id}: {reason}; Canada Post shows no label for {key} yet. It is checked again "
            f"after {settles_at:%H:%M:%S %Z} (fulfil labels reconcile) before anything is bought again"
        )
        ctx.store.leave_unsettled(shipment_id, error=message)
        return LabelResult(
            order_id, UNSETTLED, ShipmentState.LABEL_CREATION_INITIATED, error=message, warnings=warnings
        )

    def _several(
        self, shipment_id: int, order_id: str, found: list[ShipmentInfo], key: str, warnings: list[str]
    ) -> LabelResult:
        ids = ", ".join(f"{info.shipment_id} (PIN {info.tracking_pin})" for info in found)
        message = (
            f"order {order_id}: Canada Post holds {len(found)} labels for {key}: {ids}. Void all "
            f"but one at Canada Post, then `fulfil labels keep {order_id} SHIPMENT_ID` with the one kept"
        )
        store = self.ctx.store
        with store.transaction():
            parked = store.park_duplicate_purchase(shipment_id, error=message)
            if parked:
                # Every one of them was paid for: none is forgotten while the seller chooses.
                for info in found:
                    self.recorder.record_surplus(order_id, shipment_id, info, None, message)
        if not parked:
            return self.recorder.taken_over(shipment_id, order_id)
        return LabelResult(order_id, REVIEW, ShipmentState.NEEDS_REVIEW, error=message, warnings=warnings)

    def _noncontract_index(self) -> NonContractIndex:
        """One per run: the listing read once, each shipment's details at most once."""
        if self._noncontract is None:
            self._noncontract = NonContractIndex(self.ctx.client, self.ctx.store.database_now)
        return self._noncontract


def parcel_reference(row: dict[str, Any]) -> str | None:
    """customer-ref-2 of a split order's parcel (as shipment_request_for writes it), or None."""
    count = row.get("parcel_count") or 1
    return f"{row['parcel_no']}/{count}" if count > 1 else None


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
