"""What Best Buy's copy of an order says about a push it refused or left unclear.

Pure: given the step that failed, Best Buy's refusal and the order as OR11 returns it (or None when
Best Buy does not return it), the verdict says what to record. The tracking workflow reads the
orders (batched) and applies the verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fulfil.bestbuy.client import SHIP, UPDATE_TRACKING
from fulfil.bestbuy.errors import BestBuyError
from fulfil.bestbuy.order_states import CANCELED_STATES, SHIPPED_STATES, SHIPPING

STEP_NAMES = {UPDATE_TRACKING: "the tracking number (OR23)", SHIP: "the ship confirmation (OR24)"}

DONE = "done"
CANCELED_VERDICT = "canceled"
NOT_YET = "not_yet"
REFUSED = "refused"


@dataclass(frozen=True)
class Verdict:
    kind: str  # DONE, CANCELED_VERDICT, NOT_YET, REFUSED
    code: str | None = None
    message: str | None = None
    order_state: str | None = None


def judge(
    order_id: str,
    tracking_pin: str,
    step: str,
    refusal: BestBuyError,
    *,
    unclear: bool,
    order: dict[str, Any] | None,
    replacing: bool = False,
) -> Verdict:
    """What to record for a shipment whose ``step`` failed, given Best Buy's copy of the order.

    ``unclear``: the step may or may not have happened (no clear answer after the retries).
    ``replacing``: ``tracking_pin`` replaces the label of an order Best Buy confirmed shipped before.
    """
    what = STEP_NAMES[step]
    if order is None:
        return Verdict(
            REFUSED,
            "order-not-found",
            f"order {order_id}: {what} was refused ({refusal}), and Best Buy does not return the order "
            "when asked by id: is it an order of this shop (FULFIL_BESTBUY_SHOP_ID)?",
        )
    raw_state = order.get("order_state")
    state = raw_state if isinstance(raw_state, str) else repr(raw_state)
    if state in SHIPPED_STATES:
        tracking = order.get("shipping_tracking")
        shown = tracking.strip() if isinstance(tracking, str) else ""
        if replacing and shown != tracking_pin:
            return Verdict(
                REFUSED,
                "tracking-not-replaced",
                f"order {order_id}: Best Buy refused the replacement tracking number {tracking_pin} "
                f"({refusal}) and still shows {shown or 'no tracking number'}; fix the cause, "
                f"then `fulfil tracking retry {order_id}` (the order stays shipped: no second ship "
                "confirmation)",
                state,
            )
        if isinstance(tracking, str) and tracking.strip() and tracking.strip() != tracking_pin:
            return Verdict(
                REFUSED,
                "other-tracking",
                f"order {order_id} is {state} on Best Buy with tracking number {tracking.strip()}, not "
                f"PIN {tracking_pin} that fulfil bought. If the parcel left with {tracking.strip()}, void "
                f"label {tracking_pin} at Canada Post (unused labels are refunded); otherwise have Best "
                "Buy correct the tracking number",
                state,
            )
        return Verdict(DONE, order_state=state)
    if state in CANCELED_STATES:
        return Verdict(
            CANCELED_VERDICT,
            "order-canceled",
            f"order {order_id} is {state} on Best Buy, but a Canada Post label was bought for it "
            f"(PIN {tracking_pin}): do not ship the parcel; void the label at Canada Post to get "
            "the postage refunded",
            state,
        )
    if state == SHIPPING and unclear:
        return Verdict(
            NOT_YET,
            "ship-unconfirmed",
            f"order {order_id}: {what} got no clear answer ({refusal}) and Best Buy still shows the "
            "order SHIPPING: it did not go through; the next run sends it again",
            state,
        )
    if state == SHIPPING:
        return Verdict(
            REFUSED,
            "refused",
            f"order {order_id}: {what} was refused ({refusal}); the order is SHIPPING on Best Buy",
            state,
        )
    return Verdict(
        REFUSED,
        "not-shippable",
        f"order {order_id}: {what} was refused ({refusal}); the order is {state} on Best Buy, not SHIPPING",
        state,
    )
