"""The shipment lifecycle: every state a shipment can be in, and every move between them.

This table is the state machine. The database holds the same table (``shipment_states`` and
``shipment_moves``, filled by ``sql/0003_shipment_state_machine.sql``) and a trigger on
``shipments`` refuses any change of status it does not list, however the UPDATE is written; a
test keeps the two identical. A move that needs the lease can only be made through
``fulfil_shipment_move()``, which checks that the run making it holds the lease, and every move is
written to ``shipment_events`` (the order's timeline). A new state or move is a row here and a row
in a migration, never a literal in a workflow.

Two things a shipment also has are deliberately *not* states, because they move independently of
this lifecycle and would multiply it: the carrier's tracking status (in transit, delivered,
returned: a column of its own, refreshed from Canada Post's tracking) and whether the shipment was
transmitted on an end-of-day manifest (a column of its own). A delivered parcel is still
``tracking_updated`` here, and a transmitted label can still be pushed to Best Buy.

    label_pending ─claim─▶ label_creation_initiated ─record─▶ label_created ─OR23─▶ tracking_sent
        ▲    ▲                 │   │   │                         │   │  ▲             │
        │    └─ proven not ────┘   │   └─▶ needs_review ◀────────┘   │  └─ retry ─┐   │ OR24
        │       bought             ▼          │  (keep)              ▼            │   ▼
        └──── retry ───────── label_failed    └──▶ label_created    tracking_failed  tracking_updated
                                                                     order_canceled
    label_created, order_canceled, tracking_failed,
    tracking_updated ─void─▶ label_voiding ─▶ label_voided | refund_requested
                          ▲                                      │
                          └──── release_void_to_<where it was> ──┘ (proven not done: nothing sent,
                                                                  refused, or Canada Post still has it)
    label_voided, refund_requested ─replace─▶ label_pending (a new label, a new request id)
    label_created ─OR23, the order shipped before (shipped_at kept)─▶ tracking_updated (retracked)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ShipmentState(StrEnum):
    LABEL_PENDING = "label_pending"
    LABEL_CREATION_INITIATED = "label_creation_initiated"
    LABEL_FAILED = "label_failed"
    NEEDS_REVIEW = "needs_review"
    LABEL_CREATED = "label_created"
    TRACKING_SENT = "tracking_sent"
    TRACKING_UPDATED = "tracking_updated"
    TRACKING_FAILED = "tracking_failed"
    ORDER_CANCELED = "order_canceled"
    # Void and refund (issue 13): a void is a foreign mutation like a purchase, so it has its
    # in-flight state, and its outcomes.
    LABEL_VOIDING = "label_voiding"
    LABEL_VOIDED = "label_voided"
    REFUND_REQUESTED = "refund_requested"


S = ShipmentState


@dataclass(frozen=True)
class StateInfo:
    state: ShipmentState
    meaning: str
    way_out: str
    # A run may hold a lease on it: a purchase, push or void in flight, or claimed for one.
    may_hold_lease: bool
    # A label is bought: the PIN (and, for labels fulfil bought, the Canada Post shipment id) is set.
    has_label: bool
    # The state records why it is there (last_error).
    needs_reason: bool


STATES: tuple[StateInfo, ...] = (
    StateInfo(
        S.LABEL_PENDING,
        "nothing bought yet (new, or proven not bought)",
        "nothing: the next `labels create` buys it",
        may_hold_lease=False,
        has_label=False,
        needs_reason=False,
    ),
    StateInfo(
        S.LABEL_CREATION_INITIATED,
        "a purchase was started; its outcome may not be known yet",
        "nothing: `labels create`/`reconcile` settle it (`fulfil labels reconcile` to do it now)",
        may_hold_lease=True,
        has_label=False,
        needs_reason=False,
    ),
    StateInfo(
        S.LABEL_FAILED,
        "Canada Post refused the request, or the order's data cannot make one (`last_error` names the field)",
        "fix the order (a changed order is retried on its own) or the settings, then "
        "`fulfil labels retry ORDER`",
        may_hold_lease=False,
        has_label=False,
        needs_reason=True,
    ),
    StateInfo(
        S.NEEDS_REVIEW,
        "fulfil cannot tell whether a label was bought (a purchase left by the older scripts), or "
        "Canada Post sold the order several labels (`last_error_code` `two-labels` or "
        "`duplicate-labels`; each listed as a surplus label by `fulfil status`)",
        "several labels: void all but one at Canada Post, then `fulfil labels keep ORDER SHIPMENT_ID`; "
        "otherwise check Canada Post's site and `fulfil labels retry --not-bought ORDER` if none exists",
        may_hold_lease=False,
        has_label=False,
        needs_reason=True,
    ),
    StateInfo(
        S.LABEL_CREATED,
        "bought; the PIN is known; the PDF is on disk when `label_pdf_path` is set",
        "`fulfil labels download` if the PDF is missing; `fulfil tracking push` next",
        may_hold_lease=True,
        has_label=True,
        needs_reason=False,
    ),
    StateInfo(
        S.TRACKING_SENT,
        "Best Buy has the tracking number (OR23); the ship confirmation (OR24) comes next",
        "nothing: the next `fulfil tracking push` sends it",
        may_hold_lease=True,
        has_label=True,
        needs_reason=False,
    ),
    StateInfo(
        S.TRACKING_UPDATED,
        "Best Buy confirmed the shipment; the order is `shipped`",
        "nothing",
        may_hold_lease=False,
        has_label=True,
        needs_reason=False,
    ),
    StateInfo(
        S.TRACKING_FAILED,
        "Best Buy refused tracking or ship (see `last_error`)",
        "read `last_error` (Best Buy's message); fix the cause (carrier code, shop id…), then "
        "`fulfil tracking retry ORDER`",
        may_hold_lease=False,
        has_label=True,
        needs_reason=True,
    ),
    StateInfo(
        S.ORDER_CANCELED,
        "a label exists but the order was canceled on Best Buy",
        "`fulfil labels void ORDER` voids or refunds its label (every such order: "
        "`fulfil labels void --canceled`)",
        may_hold_lease=False,
        has_label=True,
        needs_reason=True,
    ),
    StateInfo(
        S.LABEL_VOIDING,
        "a void or refund request was started; its outcome may not be known yet",
        "nothing while its run goes on; left by a run that stopped: `fulfil labels void ORDER` (or "
        "`--canceled`) settles it by reading the shipment at Canada Post",
        may_hold_lease=True,
        has_label=True,
        needs_reason=False,
    ),
    StateInfo(
        S.LABEL_VOIDED,
        "the label was voided at Canada Post (not charged)",
        "nothing; `fulfil labels create --order ORDER` buys a new one if the order still ships",
        may_hold_lease=False,
        has_label=True,
        needs_reason=False,
    ),
    StateInfo(
        S.REFUND_REQUESTED,
        "the label was already transmitted; a refund was requested from Canada Post",
        "nothing; `fulfil labels create --order ORDER` buys a new one if the order still ships",
        may_hold_lease=False,
        has_label=True,
        needs_reason=False,
    ),
)
STATE_INFO = {info.state: info for info in STATES}


class LeaseRule(StrEnum):
    # The run making the move must hold the shipment's lease: it claimed the work and nobody
    # took it over since. Only fulfil_shipment_move() can make such a move.
    HOLDER = "holder"
    # No lease is involved: the move is made under a row lock (a claim), or by the seller's own
    # command, or records a purchase that succeeded whoever holds the claim now.
    NONE = "none"


@dataclass(frozen=True)
class Move:
    name: str
    sources: tuple[ShipmentState, ...]
    target: ShipmentState
    command: str
    lease: LeaseRule
    sets: tuple[str, ...] = ()
    clears: tuple[str, ...] = ()


_LABEL = ("tracking_pin", "cp_shipment_id", "cp_self_url", "cp_api_label_url", "cp_label_media_type")
_ERROR = ("last_error", "last_error_code")
_LEASE = ("lease_owner", "lease_expires_at")
_PUSHABLE = (S.LABEL_CREATED, S.TRACKING_SENT)
# Where a void may start: any label not in the middle of a push (tracking_sent: Best Buy has the
# PIN, OR24 comes next). A shipped one too (its parcel never left): its replacement is re-tracked.
VOIDABLE = (S.LABEL_CREATED, S.ORDER_CANCELED, S.TRACKING_FAILED, S.TRACKING_UPDATED)
# What a void records, and clears again when a replacement label is bought (label_history keeps it).
_VOID_OUTCOME = ("voided_at", "refund_requested_at", "refund_ticket_id", "refund_ticket_date", "void_reason")

MOVES: tuple[Move, ...] = (
    Move(
        "claim_purchase",
        (S.LABEL_PENDING, S.LABEL_FAILED),
        S.LABEL_CREATION_INITIATED,
        "labels create",
        LeaseRule.NONE,
        sets=("cp_mode", "cp_request_id", "purchase_started_at", "attempts", "warnings", *_LEASE),
        clears=(*_ERROR, "failed_order_data_hash"),
    ),
    Move(
        "refuse_order_data",
        (S.LABEL_PENDING,),
        S.LABEL_FAILED,
        "labels create",
        LeaseRule.NONE,
        sets=(*_ERROR, "failed_order_data_hash", "warnings"),
    ),
    Move(
        "record_purchase",
        (S.LABEL_CREATION_INITIATED,),
        S.LABEL_CREATED,
        "labels create, labels reconcile",
        LeaseRule.HOLDER,
        sets=(*_LABEL, "label_created_at"),
        clears=(*_ERROR, *_LEASE),
    ),
    Move(
        "record_purchase_after_takeover",
        (S.LABEL_PENDING, S.LABEL_CREATION_INITIATED, S.LABEL_FAILED, S.NEEDS_REVIEW),
        S.LABEL_CREATED,
        "labels create, labels reconcile",
        LeaseRule.NONE,
        sets=(*_LABEL, "label_created_at"),
        clears=(*_ERROR, "failed_order_data_hash", *_LEASE),
    ),
    Move(
        "refuse_purchase",
        (S.LABEL_CREATION_INITIATED,),
        S.LABEL_FAILED,
        "labels create, labels reconcile",
        LeaseRule.HOLDER,
        sets=(*_ERROR, "failed_order_data_hash"),
        clears=_LEASE,
    ),
    Move(
        "release_purchase",
        (S.LABEL_CREATION_INITIATED,),
        S.LABEL_PENDING,
        "labels create, labels reconcile",
        LeaseRule.HOLDER,
        sets=_ERROR,
        clears=_LEASE,
    ),
    Move(
        "park_purchase",
        (S.LABEL_CREATION_INITIATED,),
        S.NEEDS_REVIEW,
        "labels create, labels reconcile",
        LeaseRule.HOLDER,
        sets=_ERROR,
        clears=_LEASE,
    ),
    Move(
        "park_unkeyed_purchase",
        (S.LABEL_CREATION_INITIATED,),
        S.NEEDS_REVIEW,
        "labels create, labels reconcile",
        LeaseRule.NONE,
        sets=_ERROR,
    ),
    Move(
        "park_two_labels",
        (S.LABEL_CREATED,),
        S.NEEDS_REVIEW,
        "labels create, labels reconcile",
        LeaseRule.NONE,
        sets=_ERROR,
        clears=_LEASE,
    ),
    Move(
        "retry_label",
        (S.LABEL_FAILED, S.NEEDS_REVIEW),
        S.LABEL_PENDING,
        "labels retry",
        LeaseRule.NONE,
        clears=(*_ERROR, "failed_order_data_hash"),
    ),
    Move(
        "keep_label",
        (S.NEEDS_REVIEW,),
        S.LABEL_CREATED,
        "labels keep",
        LeaseRule.NONE,
        sets=_LABEL,
        clears=(*_ERROR, "label_pdf_path", "label_pdf_sha256", "label_pdf_bytes", *_LEASE),
    ),
    Move(
        "record_tracking_sent",
        (S.LABEL_CREATED,),
        S.TRACKING_SENT,
        "tracking push",
        LeaseRule.HOLDER,
        sets=("tracking_sent_at",),
        clears=_ERROR,
    ),
    Move(
        "record_shipped",
        _PUSHABLE,
        S.TRACKING_UPDATED,
        "tracking push",
        LeaseRule.HOLDER,
        sets=("tracking_sent_at", "shipped_at"),
        clears=(*_ERROR, *_LEASE),
    ),
    Move(
        # A replacement label of an order Best Buy confirmed shipped before: the new tracking
        # number (OR23) and no second ship confirmation.
        "record_retracked",
        (S.LABEL_CREATED,),
        S.TRACKING_UPDATED,
        "tracking push",
        LeaseRule.HOLDER,
        sets=("tracking_sent_at",),
        clears=(*_ERROR, *_LEASE),
    ),
    # 0020: the other parcels of an order split into several follow its first parcel, the one
    # whose tracking number Best Buy has.
    Move(
        "ship_with_first_parcel",
        (S.LABEL_CREATED,),
        S.TRACKING_UPDATED,
        "tracking push",
        LeaseRule.NONE,
        sets=("tracking_sent_at", "shipped_at"),
        clears=(*_ERROR, *_LEASE),
    ),
    Move(
        "cancel_with_first_parcel",
        (S.LABEL_CREATED,),
        S.ORDER_CANCELED,
        "tracking push",
        LeaseRule.NONE,
        sets=_ERROR,
        clears=_LEASE,
    ),
    Move(
        "record_canceled",
        _PUSHABLE,
        S.ORDER_CANCELED,
        "tracking push",
        LeaseRule.HOLDER,
        sets=_ERROR,
        clears=_LEASE,
    ),
    Move(
        "refuse_push",
        _PUSHABLE,
        S.TRACKING_FAILED,
        "tracking push",
        LeaseRule.HOLDER,
        sets=_ERROR,
        clears=_LEASE,
    ),
    Move(
        "retry_push",
        (S.TRACKING_FAILED,),
        S.LABEL_CREATED,
        "tracking retry",
        LeaseRule.NONE,
        clears=_ERROR,
    ),
    # Issue 13: void and refund, and a replacement label after them.
    # A void remembers where it started (void_from_status), so a void proven not done (nothing
    # sent, refused, or Canada Post still has the label) goes back there: one move per source.
    Move(
        "start_void",
        VOIDABLE,
        S.LABEL_VOIDING,
        "labels void",
        LeaseRule.NONE,
        sets=("void_from_status", "void_started_at", *_LEASE),
        clears=_ERROR,
    ),
    Move(
        "record_voided",
        (S.LABEL_VOIDING,),
        S.LABEL_VOIDED,
        "labels void",
        LeaseRule.HOLDER,
        sets=("voided_at", "void_reason", "label_pdf_path"),
        clears=("void_from_status", *_ERROR, *_LEASE),
    ),
    Move(
        "record_refund_requested",
        (S.LABEL_VOIDING,),
        S.REFUND_REQUESTED,
        "labels void",
        LeaseRule.HOLDER,
        sets=(
            "refund_requested_at",
            "refund_ticket_id",
            "refund_ticket_date",
            "void_reason",
            "label_pdf_path",
        ),
        clears=("void_from_status", *_ERROR, *_LEASE),
    ),
    *(
        Move(
            f"release_void_to_{source.value}",
            (S.LABEL_VOIDING,),
            source,
            "labels void",
            LeaseRule.HOLDER,
            sets=_ERROR,
            clears=("void_from_status", *_LEASE),
        )
        for source in VOIDABLE
    ),
    Move(
        "park_void",
        (S.LABEL_VOIDING,),
        S.NEEDS_REVIEW,
        "labels void",
        LeaseRule.HOLDER,
        sets=_ERROR,
        clears=("void_from_status", *_LEASE),
    ),
    Move(
        "replace_label",
        (S.LABEL_VOIDED, S.REFUND_REQUESTED),
        S.LABEL_PENDING,
        "labels create",
        LeaseRule.NONE,
        clears=(
            *_LABEL,
            "cp_request_id",
            "label_pdf_path",
            "label_pdf_sha256",
            "label_pdf_bytes",
            *_VOID_OUTCOME,
        ),
    ),
)
MOVE_BY_NAME = {move.name: move for move in MOVES}


def in_states(predicate: str) -> tuple[ShipmentState, ...]:
    """The states whose StateInfo flag ``predicate`` is true, in table order (for CHECKs and tests)."""
    return tuple(info.state for info in STATES if getattr(info, predicate))


def allowed_moves() -> set[tuple[ShipmentState, ShipmentState]]:
    return {(source, move.target) for move in MOVES for source in move.sources}
