"""Best Buy Canada's marketplace (Mirakl MMP seller API): OR11, OR21, OR23, OR24, SH21, A01.

The shop key travels raw in ``Authorization`` (no ``Bearer``); errors are JSON
``{"status": …, "message": …}``. Orders move through Mirakl's state machine:
WAITING_ACCEPTANCE --OR21--> WAITING_DEBIT_PAYMENT --(simulated debit)--> SHIPPING
--OR23 + OR24--> SHIPPED; refusing every line gives REFUSED; ``set_order_state`` simulates
marketplace-side changes such as CANCELED. Shipping and billing addresses are null until the
debit, as in Best Buy's real data.

Choices where Mirakl documents nothing: partial acceptance is refused (400) as on Best Buy; OR23
is accepted in SHIPPING, and in SHIPPED/TO_COLLECT (Best Buy's seller hub: tracking updated after
the ship confirmation is kept but the customer is not notified), refused later (RECEIVED,
CLOSED, CANCELED); OR24 needs tracking first (Best Buy makes it mandatory).
"""

from __future__ import annotations

import copy
import hmac
import json
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fulfil.sandbox.config import SandboxConfig
from fulfil.sandbox.faults import FaultKind
from fulfil.sandbox.orders import ORDER_STATES, mirakl_time, random_address
from fulfil.sandbox.state import SandboxState
from fulfil.sandbox.throttle import Throttle
from fulfil.sandbox.wire import ApiRequest, ApiResponse, Route

JSON = "application/json"
MAX_PAGE = 100
DEFAULT_PAGE = 10
MAX_ORDER_IDS = 100
# Best Buy's registered carriers as seen in real integrations; sorted by label like SH21.
CARRIERS: tuple[dict[str, str], ...] = (
    {
        "code": "CPCL",
        "label": "Canada Post",
        "standard_code": "ca-post",
        "tracking_url": "https://parcelsapp.com/en/tracking/{trackingId}",
    },
    {
        "code": "FEDX",
        "label": "FedEx",
        "standard_code": "fedex",
        "tracking_url": "https://parcelsapp.com/en/tracking/{trackingId}",
    },
    {
        "code": "PRLA",
        "label": "Purolator",
        "standard_code": "purolator",
        "tracking_url": "https://parcelsapp.com/en/tracking/{trackingId}",
    },
    {
        "code": "UPSN",
        "label": "UPS",
        "standard_code": "ups",
        "tracking_url": "https://parcelsapp.com/en/tracking/{trackingId}",
    },
)
CARRIERS_BY_CODE = {carrier["code"]: carrier for carrier in CARRIERS}
SHIPPED_STATES = ("SHIPPED", "TO_COLLECT", "RECEIVED", "CLOSED")


class MiraklError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(status: int, payload: object, headers: dict[str, str] | None = None) -> ApiResponse:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return ApiResponse(status, body, JSON, dict(headers or {}))


def error_response(status: int, message: str) -> ApiResponse:
    return json_response(status, {"status": status, "message": message})


def refusal(kind: FaultKind, retry_after_s: int) -> ApiResponse:
    """A fault that stops the request before Mirakl performs it, in Mirakl's format."""
    if kind is FaultKind.RATE_LIMIT:
        return json_response(
            429,
            {"status": 429, "message": "Too Many Requests"},
            {"Retry-After": str(retry_after_s)},
        )
    status = {FaultKind.HTTP_500: 500, FaultKind.HTTP_502: 502, FaultKind.HTTP_503: 503}[kind]
    messages = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    return error_response(status, messages[status])


def _now_text(moment: float, *, millis: bool = False) -> str:
    return mirakl_time(datetime.fromtimestamp(moment, UTC), millis=millis)


class BestBuyService:
    service = "bestbuy"

    def __init__(
        self, config: SandboxConfig, state: SandboxState, clock: Callable[[], float], throttle: Throttle
    ) -> None:
        self.config = config
        self.state = state
        self.clock = clock
        self.throttle = throttle

    def routes(self) -> list[Route]:
        order = r"/api/orders/(?P<order_id>[^/]+)"
        table = [
            ("GET", r"/api/orders", "OR11", self.list_orders),
            ("PUT", rf"{order}/accept", "OR21", self.accept_order),
            ("PUT", rf"{order}/tracking", "OR23", self.update_tracking),
            ("PUT", rf"{order}/ship", "OR24", self.ship_order),
            ("GET", r"/api/shipping/carriers", "SH21", self.list_carriers),
            ("GET", r"/api/account", "A01", self.account),
        ]
        return [
            Route(method, re.compile(pattern), name, self._guard(handler))
            for method, pattern, name, handler in table
        ]

    def owns(self, path: str) -> bool:
        return path.startswith("/api/")

    def not_found(self, request: ApiRequest) -> ApiResponse:
        return error_response(404, f"No resource found for {request.method} {request.path}")

    def method_not_allowed(self, request: ApiRequest, allowed: tuple[str, ...]) -> ApiResponse:
        response = error_response(405, f"Request method '{request.method}' not supported")
        response.headers["Allow"] = ", ".join(allowed)
        return response

    def refusal(self, kind: FaultKind, request: ApiRequest, endpoint: str, retry_after_s: int) -> ApiResponse:
        if kind is FaultKind.RATE_LIMIT:
            # An injected 429 is a Retry-After like any other: arrivals before it elapses are recorded.
            self.throttle.retry_after_sent(endpoint, retry_after_s)
        return refusal(kind, retry_after_s)

    def throttled(self, request: ApiRequest, endpoint: str) -> ApiResponse | None:
        """429 with Retry-After when the endpoint is over its limit or inside a 429's window."""
        retry_after_s = self.throttle.admit_bestbuy(endpoint)
        return None if retry_after_s is None else refusal(FaultKind.RATE_LIMIT, retry_after_s)

    def _guard(
        self, handler: Callable[[ApiRequest, dict[str, str]], ApiResponse]
    ) -> Callable[[ApiRequest, dict[str, str]], ApiResponse]:
        def guarded(request: ApiRequest, params: dict[str, str]) -> ApiResponse:
            try:
                self._authenticate(request)
                self._check_shop(request)
                with self.state.lock:
                    self.advance(self.clock())
                    return handler(request, params)
            except MiraklError as error:
                return error_response(error.status, error.message)

        return guarded

    def _authenticate(self, request: ApiRequest) -> None:
        key = request.header("Authorization") or ""
        if not hmac.compare_digest(key.encode(), self.config.bestbuy_api_key.encode()):
            raise MiraklError(401, "Unauthorized")

    def _check_shop(self, request: ApiRequest) -> None:
        shop = request.param("shop_id")
        if shop is None:
            return
        if not re.fullmatch(r"\d+", shop):
            raise MiraklError(400, f"Invalid value for parameter shop_id: '{shop}'")
        if int(shop) != self.config.shop_id:
            raise MiraklError(403, f"You are not allowed to access the shop with id {shop}")

    # --- the order state machine -------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Complete simulated debits that are due (call with the state lock held)."""
        for order_id in self.state.take_due_debits(now):
            order = self.state.orders.get(order_id)
            if order is not None and order["order_state"] == "WAITING_DEBIT_PAYMENT":
                self._debit(order, now)

    def _debit(self, order: dict[str, Any], now: float) -> None:
        self._reveal_addresses(order)
        order["customer_debited_date"] = _now_text(now, millis=True)
        self._set_state(order, "SHIPPING", now)
        for line in order["order_lines"]:
            line["debited_date"] = _now_text(now)
            line["can_refund"] = True

    def _reveal_addresses(self, order: dict[str, Any]) -> None:
        customer = order["customer"]
        if customer.get("shipping_address") is not None:
            return
        hidden = self.state.hidden_addresses.get(order["order_id"])
        if hidden is None:
            # An order added without its address: invent one, stable for this order id.
            shipping, billing, _ = random_address(random.Random(f"address:{order['order_id']}"))
            hidden = (shipping, billing)
        customer["shipping_address"] = copy.deepcopy(hidden[0])
        customer["billing_address"] = copy.deepcopy(hidden[1])

    def _set_state(self, order: dict[str, Any], state: str, now: float) -> None:
        self.state.move_order(order, state)
        order["can_shop_ship"] = state == "SHIPPING"
        order["last_updated_date"] = _now_text(now)
        for line in order["order_lines"]:
            line["order_line_state"] = state
            line["last_updated_date"] = _now_text(now)

    def force_state(self, order_id: str, state: str) -> None:
        """Marketplace-side change (operator, customer, fraud check): no seller rule applies."""
        if state not in ORDER_STATES:
            raise ValueError(f"unknown order state {state!r}; states: {', '.join(ORDER_STATES)}")
        now = self.clock()
        with self.state.lock:
            order = self.state.orders.get(order_id)
            if order is None:
                raise KeyError(order_id)
            self.state.cancel_debit(order_id)
            if state in ("SHIPPING", *SHIPPED_STATES) and order["customer"].get("shipping_address") is None:
                self._reveal_addresses(order)
                order["customer_debited_date"] = order.get("customer_debited_date") or _now_text(
                    now, millis=True
                )
            self._set_state(order, state, now)
            if state in SHIPPED_STATES:
                for line in order["order_lines"]:
                    line["shipped_date"] = line.get("shipped_date") or _now_text(now)

    def add(
        self, orders: list[dict[str, Any]], hidden: dict[str, tuple[dict[str, Any], dict[str, Any]]]
    ) -> None:
        with self.state.lock:
            for order in orders:
                order_id = order.get("order_id")
                if not isinstance(order_id, str) or not order_id:
                    raise ValueError("every order needs a string order_id")
                if order.get("order_state") not in ORDER_STATES:
                    raise ValueError(
                        f"order {order_id} has an unknown order_state {order.get('order_state')!r}"
                    )
                if order_id in self.state.orders:
                    raise ValueError(f"order {order_id} is already in the sandbox")
            for order in orders:
                self.state.add_order(copy.deepcopy(order))
                if order["order_id"] in hidden:
                    self.state.hidden_addresses[order["order_id"]] = copy.deepcopy(hidden[order["order_id"]])

    def _order(self, order_id: str) -> dict[str, Any]:
        order = self.state.orders.get(order_id)
        if order is None:
            raise MiraklError(404, f"Order with id '{order_id}' not found")
        return order

    # --- endpoints ---------------------------------------------------------------------------

    def list_orders(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        states = request.param("order_state_codes")
        wanted: list[str] | None = None
        if states:
            wanted = [code.strip() for code in states.split(",") if code.strip()]
            unknown = [code for code in wanted if code not in ORDER_STATES]
            if unknown:
                raise MiraklError(400, f"Invalid value for parameter order_state_codes: {', '.join(unknown)}")
        ids = request.param("order_ids")
        wanted_ids: list[str] | None = None
        if ids:
            wanted_ids = [order_id.strip() for order_id in ids.split(",") if order_id.strip()]
            if len(wanted_ids) > MAX_ORDER_IDS:
                raise MiraklError(
                    400, f"The limit of {MAX_ORDER_IDS} is exceeded for the parameter : order_ids"
                )
        # Look the orders up by id or by state rather than walking every order the sandbox holds.
        if wanted_ids is not None:
            known = (self.state.orders.get(order_id) for order_id in dict.fromkeys(wanted_ids))
            orders = [order for order in known if order is not None]
            if wanted is not None:
                orders = [order for order in orders if order["order_state"] in wanted]
        elif wanted is not None:
            orders = self.state.orders_in_states(wanted)
        else:
            orders = list(self.state.orders.values())
        for name, field, is_start in (
            ("start_date", "created_date", True),
            ("end_date", "created_date", False),
            ("start_update_date", "last_updated_date", True),
            ("end_update_date", "last_updated_date", False),
        ):
            value = request.param(name)
            if value:
                limit = _parse_date(name, value)
                if is_start:
                    orders = [o for o in orders if _parse_date(field, o[field]) >= limit]
                else:
                    orders = [o for o in orders if _parse_date(field, o[field]) <= limit]
        descending = (request.param("order") or "asc").lower() == "desc"
        orders.sort(key=lambda o: (o["created_date"], o["order_id"]), reverse=descending)
        offset = _integer(request, "offset", 0)
        page = min(_integer(request, "max", DEFAULT_PAGE), MAX_PAGE)
        if page < 1:
            raise MiraklError(400, "Invalid value for parameter max: it must be at least 1")
        chosen = orders[offset : offset + page]
        return json_response(200, {"orders": copy.deepcopy(chosen), "total_count": len(orders)})

    def accept_order(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        order = self._order(params["order_id"])
        decisions = _json_body(request).get("order_lines")
        if not isinstance(decisions, list) or not decisions:
            raise MiraklError(400, "order_lines: must not be empty")
        line_ids = [line["order_line_id"] for line in order["order_lines"]]
        seen: dict[str, bool] = {}
        for decision in decisions:
            if not isinstance(decision, dict) or not isinstance(decision.get("accepted"), bool):
                raise MiraklError(
                    400, "ORDER_LINE_NULL_ELEMENT: each order line needs 'accepted' (true or false)"
                )
            line_id = decision.get("id")
            if not isinstance(line_id, str) or not line_id:
                raise MiraklError(400, "ORDER_LINE_NULL_ELEMENT: each order line needs its 'id'")
            if line_id not in line_ids:
                raise MiraklError(
                    400, f"ORDER_LINE_NOT_FOUND: order line {line_id} is not in order {order['order_id']}"
                )
            if line_id in seen:
                raise MiraklError(400, f"ORDER_LINE_DUPLICATE_ID: order line {line_id} appears twice")
            seen[line_id] = decision["accepted"]
        if order["order_state"] != "WAITING_ACCEPTANCE":
            raise MiraklError(
                400,
                f"ORDER_INVALID_STATE: order {order['order_id']} is {order['order_state']}; "
                "lines can only be accepted or refused in WAITING_ACCEPTANCE",
            )
        undecided = [line_id for line_id in line_ids if line_id not in seen]
        if undecided:
            raise MiraklError(
                400,
                f"ORDER_LINE_ACCEPTANCE_DECISION_MISSING: no decision for order lines {', '.join(undecided)}",
            )
        if len(set(seen.values())) > 1:
            raise MiraklError(
                400, "ORDER_PARTIAL_ACCEPTANCE_DISABLED: accept or refuse every line of the order"
            )
        now = self.clock()
        order["acceptance_decision_date"] = _now_text(now)
        if not next(iter(seen.values())):
            self._set_state(order, "REFUSED", now)
            return ApiResponse(204)
        self._set_state(order, "WAITING_DEBIT_PAYMENT", now)
        self.state.schedule_debit(order["order_id"], now + self.config.debit_delay_s)
        self.advance(now)
        return ApiResponse(204)

    def update_tracking(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        order = self._order(params["order_id"])
        body = _json_body(request)
        carrier_code = body.get("carrier_code")
        carrier_name = body.get("carrier_name")
        carrier_url = body.get("carrier_url")
        tracking_number = body.get("tracking_number")
        for name, value in (
            ("carrier_code", carrier_code),
            ("carrier_name", carrier_name),
            ("carrier_url", carrier_url),
            ("tracking_number", tracking_number),
        ):
            if value is not None and not isinstance(value, str):
                raise MiraklError(400, f"{name}: must be a string")
        carrier = None
        if carrier_code:
            carrier = CARRIERS_BY_CODE.get(carrier_code)
            if carrier is None:
                raise MiraklError(400, f"Carrier with code '{carrier_code}' not found")
            if not tracking_number:
                raise MiraklError(400, f"tracking_number is mandatory for the carrier {carrier_code}")
        elif not carrier_name:
            raise MiraklError(400, "carrier_code or carrier_name is mandatory")
        if order["order_state"] not in ("SHIPPING", "SHIPPED", "TO_COLLECT"):
            raise MiraklError(
                400,
                f"Order {order['order_id']} is {order['order_state']}; tracking can only be set in "
                "SHIPPING (or changed in SHIPPED)",
            )
        if carrier is not None:
            order["shipping_carrier_code"] = carrier["code"]
            order["shipping_carrier_standard_code"] = carrier["standard_code"]
            order["shipping_company"] = carrier["label"]
            order["shipping_tracking"] = tracking_number
            order["shipping_tracking_url"] = carrier["tracking_url"].replace(
                "{trackingId}", tracking_number or ""
            )
        else:
            order["shipping_carrier_code"] = None
            order["shipping_carrier_standard_code"] = body.get("carrier_standard_code")
            order["shipping_company"] = carrier_name
            order["shipping_tracking"] = tracking_number or None
            order["shipping_tracking_url"] = carrier_url or None
        order["last_updated_date"] = _now_text(self.clock())
        return ApiResponse(204)

    def ship_order(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        order = self._order(params["order_id"])
        if order["order_state"] != "SHIPPING":
            raise MiraklError(400, f"Order {order['order_id']} is {order['order_state']}, not SHIPPING")
        if not order.get("shipping_tracking") and not order.get("shipping_company"):
            raise MiraklError(400, f"Order {order['order_id']} has no tracking information; call OR23 first")
        now = self.clock()
        self._set_state(order, "SHIPPED", now)
        for line in order["order_lines"]:
            line["shipped_date"] = _now_text(now)
        return ApiResponse(204)

    def list_carriers(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        return json_response(200, {"carriers": [dict(carrier) for carrier in CARRIERS]})

    def account(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        return json_response(
            200,
            {
                "shop_id": self.config.shop_id,
                "shop_name": "Sandbox Electronics",
                "shop_state": "OPEN",
                "currency_iso_code": "CAD",
                "is_professional": True,
                "channels": [],
                "domains": ["marketplace.bestbuy.ca"],
            },
        )


def _json_body(request: ApiRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise MiraklError(400, "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise MiraklError(400, "The request body must be a JSON object")
    return body


def _integer(request: ApiRequest, name: str, default: int) -> int:
    value = request.param(name)
    if value is None or value == "":
        return default
    if not re.fullmatch(r"\d+", value):
        raise MiraklError(400, f"Invalid value for parameter {name}: '{value}'")
    return int(value)


def _parse_date(name: str, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MiraklError(400, f"Invalid date for parameter {name}: '{value}'") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
