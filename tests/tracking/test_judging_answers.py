"""Reading Best Buy's answers: error bodies of every shape, and what an order's state says about a
refused or unclear push."""

from __future__ import annotations

from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from fulfil.audit.outcome import FailureClass, HttpOutcome
from fulfil.bestbuy.errors import BestBuyError, auth_error, interpret_error
from fulfil.bestbuy.verdicts import CANCELED_VERDICT, DONE, NOT_YET, REFUSED, judge

pytestmark = pytest.mark.unit


def answer(status: int | None, body: bytes = b"", content_type: str = "application/json") -> HttpOutcome:
    return HttpOutcome(
        call_id=1,
        method="PUT",
        url="http://x/api/orders/1-A/ship",
        status_code=status,
        headers=CaseInsensitiveDict({"Content-Type": content_type} if status is not None else {}),
        body=body,
        failure=FailureClass.DEFINITIVE if status is not None else FailureClass.INDETERMINATE,
        error=None if status is not None else "read timeout: no answer in time (timed out)",
        duration_ms=5,
    )


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (
            answer(400, b'{"status": 400, "message": "Order 1-A is SHIPPED, not SHIPPING"}'),
            "Best Buy HTTP 400: Order 1-A is SHIPPED, not SHIPPING",
        ),
        (
            answer(
                400,
                b'{"status": 400, "code": "ORDER_INVALID_STATE", '
                b'"errors": [{"field": "order_lines", "message": "bad"}]}',
            ),
            "Best Buy HTTP 400 ORDER_INVALID_STATE: order_lines bad",
        ),
        (answer(400, b""), "Best Buy HTTP 400"),
        (
            answer(404, b"No such order\n\n  anywhere", "text/plain"),
            "Best Buy HTTP 404: No such order anywhere",
        ),
        (
            answer(502, b"<html><body>502 Bad Gateway</body></html>", "text/html"),
            "Best Buy HTTP 502: an HTML error page, not Best Buy's JSON",
        ),
        (answer(400, b'["not", "an", "object"]'), 'Best Buy HTTP 400: ["not", "an", "object"]'),
        (answer(None), "Best Buy no answer: read timeout: no answer in time (timed out)"),
    ],
    ids=["mirakl", "symbolic-code", "empty", "plain-text", "html", "json-array", "no-answer"],
)
def test_error_answers_become_one_line(outcome: HttpOutcome, expected: str) -> None:
    assert str(interpret_error(outcome)) == expected


def test_a_long_error_body_is_cut() -> None:
    error = interpret_error(answer(400, b'{"message": "' + b"x" * 5000 + b'"}'))
    assert len(error.message) == 300
    assert error.message.endswith("…")


@pytest.mark.parametrize(
    ("status", "names"), [(401, "FULFIL_BESTBUY_API_KEY"), (403, "FULFIL_BESTBUY_SHOP_ID")]
)
def test_refused_credentials_name_the_setting_to_check(status: int, names: str) -> None:
    error = interpret_error(answer(status, b'{"status": %d, "message": "Unauthorized"}' % status))
    assert error.is_auth
    message = str(auth_error(error))
    assert names in message
    assert f"HTTP {status}" in message


REFUSAL = BestBuyError(400, "Order 1-A is not SHIPPING")
UNCLEAR = BestBuyError(503, "Service Unavailable")


def order(state: Any, tracking: str | None = None) -> dict[str, Any]:
    return {"order_id": "1-A", "order_state": state, "shipping_tracking": tracking}


@pytest.mark.parametrize("state", ["SHIPPED", "TO_COLLECT", "RECEIVED", "CLOSED"])
@pytest.mark.parametrize("step", ["OR23", "OR24"])
def test_an_order_already_shipped_is_done(state: str, step: str) -> None:
    for tracking in (None, "", "7000000000000001"):
        verdict = judge("1-A", "7000000000000001", step, REFUSAL, unclear=False, order=order(state, tracking))
        assert (verdict.kind, verdict.order_state) == (DONE, state)


def test_shipped_with_another_tracking_number_needs_the_seller() -> None:
    verdict = judge(
        "1-A", "7000000000000001", "OR23", REFUSAL, unclear=False, order=order("SHIPPED", "1Z999")
    )
    assert (verdict.kind, verdict.code) == (REFUSED, "other-tracking")
    assert "1Z999" in (verdict.message or "")
    assert "void label 7000000000000001" in (verdict.message or "")


@pytest.mark.parametrize("state", ["CANCELED", "REFUSED"])
def test_a_cancelled_order_says_a_label_exists(state: str) -> None:
    verdict = judge("1-A", "7000000000000001", "OR24", REFUSAL, unclear=False, order=order(state))
    assert (verdict.kind, verdict.code, verdict.order_state) == (CANCELED_VERDICT, "order-canceled", state)
    assert verdict.message == (
        f"order 1-A is {state} on Best Buy, but a Canada Post label was bought for it "
        "(PIN 7000000000000001): do not ship the parcel; "
        "void the label at Canada Post to get the postage refunded"
    )


def test_still_shipping_after_an_unclear_ship_is_tried_again_later() -> None:
    verdict = judge("1-A", "7", "OR24", UNCLEAR, unclear=True, order=order("SHIPPING"))
    assert (verdict.kind, verdict.code) == (NOT_YET, "ship-unconfirmed")


def test_still_shipping_after_a_refusal_keeps_best_buys_message() -> None:
    verdict = judge("1-A", "7", "OR24", REFUSAL, unclear=False, order=order("SHIPPING"))
    assert (verdict.kind, verdict.code) == (REFUSED, "refused")
    assert verdict.message == (
        "order 1-A: the ship confirmation (OR24) was refused (Best Buy HTTP 400: Order 1-A is not "
        "SHIPPING); the order is SHIPPING on Best Buy"
    )


@pytest.mark.parametrize("state", ["WAITING_DEBIT_PAYMENT", "STAGING", "SOME_NEW_STATE", None])
def test_any_other_state_is_an_error_with_best_buys_message(state: Any) -> None:
    verdict = judge("1-A", "7", "OR23", REFUSAL, unclear=False, order=order(state))
    assert (verdict.kind, verdict.code) == (REFUSED, "not-shippable")
    assert "Order 1-A is not SHIPPING" in (verdict.message or "")
    assert str(state) in (verdict.message or "")


def test_an_order_best_buy_does_not_return_points_at_the_shop_id() -> None:
    verdict = judge(
        "1-A", "7", "OR23", BestBuyError(404, "Order with id '1-A' not found"), unclear=False, order=None
    )
    assert (verdict.kind, verdict.code) == (REFUSED, "order-not-found")
    assert "FULFIL_BESTBUY_SHOP_ID" in (verdict.message or "")
