"""Mirakl order states and the order statuses fulfil keeps in ``orders.status``.

Mirakl: STAGING → WAITING_ACCEPTANCE → WAITING_DEBIT → WAITING_DEBIT_PAYMENT → SHIPPING → SHIPPED
(or TO_COLLECT) → RECEIVED → CLOSED, with REFUSED and CANCELED as dead ends. fulfil only needs to
know whether an order can be shipped (``accepted``), is already on its way (``shipped``), is dead
(``canceled``), or is not ready yet (the two waiting statuses).

Statuses only move forward: waiting_acceptance → waiting_payment → accepted → shipped | canceled.
``shipped`` and ``canceled`` are final; neither replaces the other, so a copy of an order read
before fulfil shipped it can never undo the shipment.
"""

from __future__ import annotations

# Mirakl's states (the enum grows: unknown values must not crash anything).
SHIPPING = "SHIPPING"
SHIPPED_STATES = frozenset({"SHIPPED", "TO_COLLECT", "RECEIVED", "CLOSED"})
CANCELED_STATES = frozenset({"CANCELED", "REFUSED"})
KNOWN_STATES = (
    "STAGING",
    "WAITING_ACCEPTANCE",
    "WAITING_DEBIT",
    "WAITING_DEBIT_PAYMENT",
    "SHIPPING",
    "SHIPPED",
    "TO_COLLECT",
    "RECEIVED",
    "CLOSED",
    "REFUSED",
    "CANCELED",
)

# fulfil's order statuses.
WAITING_ACCEPTANCE = "waiting_acceptance"
WAITING_PAYMENT = "waiting_payment"
ACCEPTED = "accepted"
SHIPPED = "shipped"
CANCELED = "canceled"

_STATUS_OF_STATE = {
    "STAGING": WAITING_ACCEPTANCE,
    "WAITING_ACCEPTANCE": WAITING_ACCEPTANCE,
    "WAITING_DEBIT": WAITING_PAYMENT,
    "WAITING_DEBIT_PAYMENT": WAITING_PAYMENT,
    "SHIPPING": ACCEPTED,
    **dict.fromkeys(SHIPPED_STATES, SHIPPED),
    **dict.fromkeys(CANCELED_STATES, CANCELED),
}

# How far along each status is; equal final ranks never replace each other.
_RANK = {WAITING_ACCEPTANCE: 1, WAITING_PAYMENT: 2, ACCEPTED: 3, SHIPPED: 4, CANCELED: 4}
FINAL_STATUSES = frozenset({SHIPPED, CANCELED})
FULFIL_STATUSES = frozenset(_RANK)


def status_for_state(state: str) -> str | None:
    """fulfil's status for a Mirakl order state; None for a state fulfil does not know."""
    return _STATUS_OF_STATE.get(state)


def moves_forward(current: str, proposed: str) -> bool:
    """Whether an order in ``current`` may take ``proposed`` (both fulfil statuses)."""
    if current == proposed:
        return True
    if current in FINAL_STATUSES:
        return False
    return _RANK[proposed] > _RANK[current]
