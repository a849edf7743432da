"""The seller's label commands that decide rather than buy: retry, keep, and the dry run; and the
words for an order asked for by id that a run left alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fulfil.canadapost.destination import OrderDataError
from fulfil.errors import UsageError
from fulfil.shipments.states import STATE_INFO, ShipmentState
from fulfil.workflows.labels.choice import LabelChoice, LabelChooser, QuoteFailed, shipment_request_for
from fulfil.workflows.labels.context import LabelContext
from fulfil.workflows.labels.results import (
    FAILED,
    KEPT,
    NOT_ELIGIBLE,
    RETRYABLE,
    SKIPPED,
    WOULD_BUY,
    LabelResult,
)

S = ShipmentState
_SEVERAL_LABELS = ("two-labels", "duplicate-labels")


def retry(ctx: LabelContext, order_ids: list[str], *, not_bought: bool) -> None:
    """Failed orders (and, with ``not_bought``, those in review) eligible to buy again."""
    made = ctx.store.retry_labels(order_ids, not_bought=not_bought)
    states = ctx.store.label_states(order_ids)
    for order_id in order_ids:
        if order_id in made:
            ctx.report(LabelResult(order_id, RETRYABLE, S.LABEL_PENDING))
            continue
        state = states.get(order_id)
        if state is None:
            why = "has no shipment (not accepted yet, or unknown order)"
        elif state["status"] == S.NEEDS_REVIEW and state["last_error_code"] in _SEVERAL_LABELS:
            why = (
                "has several labels at Canada Post: void all but one, then "
                f"`fulfil labels keep {order_id} SHIPMENT_ID`"
            )
        elif state["status"] == S.NEEDS_REVIEW:
            why = (
                "needs review: a label may exist. Check Canada Post first; if none was bought, "
                f"run `fulfil labels retry --not-bought {order_id}`"
            )
        else:
            why = f"is {state['status']}, not {S.LABEL_FAILED}"
        ctx.report(
            LabelResult(
                order_id, SKIPPED, state["status"] if state else None, error=f"order {order_id} {why}"
            )
        )


def keep(ctx: LabelContext, order_id: str, cp_shipment_id: str) -> LabelResult:
    """The seller voided the other labels of an order at Canada Post and keeps this one: the
    shipment holds it (its PDF fetched by the next download) and the others are closed."""
    store = ctx.store
    with store.transaction():
        row = store.label_choice(order_id, cp_shipment_id)
        if row is None:
            raise UsageError(f"order {order_id} has no shipment")
        surplus = {item["cp_shipment_id"]: item for item in row["surplus"]}
        choices = [c for c in [row["cp_shipment_id"], *surplus] if c]
        # An order in several parcels: which parcel's labels these are.
        which = f"order {order_id}" + (
            f" (parcel {row['parcel_no']} of {row['parcel_count']})" if row["parcel_count"] > 1 else ""
        )
        if not surplus:
            raise UsageError(
                f"{which} has only one label ({row['cp_shipment_id'] or 'none'}): nothing to choose"
            )
        if cp_shipment_id not in choices:
            raise UsageError(
                f"{which}: {cp_shipment_id} is not one of its labels; choose one of {', '.join(choices)}"
            )
        pushed = row["status"] != S.NEEDS_REVIEW
        swap = cp_shipment_id != row["cp_shipment_id"]
        if swap and pushed:
            raise UsageError(
                f"order {order_id}: its label {row['cp_shipment_id']} (PIN {row['tracking_pin']}) was "
                f"already sent to Best Buy; keep that one and void {cp_shipment_id}"
            )
        if swap:
            chosen = surplus[cp_shipment_id]
            kept = {
                key: chosen[key] for key in ("tracking_pin", "cp_shipment_id", "cp_self_url", "cp_label_url")
            }
        else:
            kept = {
                "tracking_pin": row["tracking_pin"],
                "cp_shipment_id": row["cp_shipment_id"],
                "cp_self_url": row["cp_self_url"],
                "cp_label_url": row["cp_api_label_url"],
            }
        store.keep_label(
            shipment_id=row["shipment_id"],
            kept=kept,
            resolution=f"voided at Canada Post: the seller kept shipment {cp_shipment_id}",
            swap=swap,
            move=not pushed,
        )
    return LabelResult(
        order_id, KEPT, row["status"] if pushed else S.LABEL_CREATED, tracking_pin=kept["tracking_pin"]
    )


@dataclass(frozen=True)
class DryRunLabel:
    """What a run would send for one order, and what it would buy."""

    body: bytes
    choice: LabelChoice


def dry_run(
    ctx: LabelContext, chooser: LabelChooser, order_ids: list[str] | None, limit: int | None
) -> dict[tuple[str, str | None], DryRunLabel]:
    """Decide and build each request a run would send: nothing is bought and nothing written,
    though a rule that needs a quote asks Canada Post for one (a read, audited). Keyed by order
    and parcel ("2/3" for one parcel of an order split into several, else None)."""
    planned: dict[tuple[str, str | None], DryRunLabel] = {}
    for row in ctx.store.dry_run_candidates(order_ids, limit):
        order_id = row["order_id"]
        order = row["raw_order_data"] or {}
        try:
            if row["planned_parcel"] is not None:
                # A parcel of an order already split: bought as the parcel it was given.
                choices = [
                    chooser.choose(
                        order_id,
                        order,
                        fixed=row["planned_parcel"],
                        parcel_no=row["parcel_no"],
                        parcel_count=row["parcel_count"],
                    )
                ]
            else:
                choices = chooser.choose_every_parcel(order_id, order)
            requests = [
                shipment_request_for(
                    ctx.settings,
                    order_id,
                    order,
                    choice,
                    # A given-up label's replacement is bought under a new request id (its claim's).
                    request_id=(
                        row["cp_request_id"]
                        if row["status"] == S.LABEL_PENDING and choice.parcel_no == 1
                        else None
                    )
                    or "F" + "0" * 32,
                    group_id=ctx.settings.group_id(None),
                )
                for choice in choices
            ]
        except (OrderDataError, QuoteFailed) as exc:
            ctx.report(LabelResult(order_id, FAILED, row["status"], error=str(exc)))
            continue
        for choice, request in zip(choices, requests, strict=True):
            planned[(order_id, choice.parcel_reference)] = DryRunLabel(request.xml, choice)
            warnings = [*choice.warnings, *request.warnings]
            ctx.report(
                LabelResult(
                    order_id, WOULD_BUY, row["status"], warnings=warnings, parcel=choice.parcel_reference
                )
            )
    return planned


def report_untouched(ctx: LabelContext, order_ids: list[str] | None) -> None:
    """Say why an order asked for by id was left alone, rather than staying silent about it."""
    if not order_ids:
        return
    missing = [order_id for order_id in order_ids if not ctx.run.reported(order_id)]
    if missing:
        for row in ctx.store.requested_order_states(missing):
            ctx.report(untouched_result(row))


def report_named_left_alone(ctx: LabelContext, order_ids: list[str] | None) -> None:
    """`labels reconcile` and `labels download` with --order: an order they had nothing to do for
    is said (skipped, where it stands), and an order fulfil does not have is an error, as in every
    command that takes --order; never a silent exit 0."""
    if not order_ids:
        return
    missing = [order_id for order_id in order_ids if not ctx.run.reported(order_id)]
    for row in ctx.store.requested_order_states(missing) if missing else []:
        if row["order_status"] is None:
            ctx.report(untouched_result(row))
        else:
            ctx.report(
                LabelResult(
                    row["order_id"],
                    SKIPPED,
                    row["shipment_status"],
                    row["tracking_pin"],
                    row["label_pdf_path"],
                )
            )


def untouched_result(row: dict[str, Any]) -> LabelResult:
    order_id, shipment = row["order_id"], row["shipment_status"]
    if row["order_status"] is None:
        why = "is not in the orders table: `fulfil orders pull` or `fulfil orders import` it first"
        return LabelResult(order_id, NOT_ELIGIBLE, None, error=f"order {order_id} {why}")
    info = STATE_INFO.get(shipment) if shipment is not None else None
    if info is not None and info.has_label:
        return LabelResult(order_id, SKIPPED, shipment, row["tracking_pin"], row["label_pdf_path"])
    if row["order_status"] != "accepted":
        why = f"is {row['order_status']}, not accepted: no label is bought for it"
    elif shipment == S.LABEL_FAILED:
        why = f"failed before and its data has not changed: fix it, or `fulfil labels retry {order_id}`"
    elif shipment == S.NEEDS_REVIEW:
        why = "needs review (see `fulfil status`)"
    elif shipment == S.LABEL_CREATION_INITIATED:
        why = "has a purchase in progress, or waiting to be settled (`fulfil labels reconcile`)"
    else:
        why = f"was not reached ({shipment or 'no shipment'})"
    return LabelResult(order_id, NOT_ELIGIBLE, shipment, error=f"order {order_id} {why}")
