"""Best Buy's seller endpoints, as fulfil calls them: through the audited HTTP layer, never directly.

The client sends, retries what is safe to retry, and reads; it decides nothing about shipments or
orders. Every attempt is its own api_calls row (the audit layer redacts the key).

Retries: a 429 waits the ``Retry-After`` Best Buy gives (and gives up at once when that is longer
than a run should sleep); 5xx answers and connection failures wait 0.5, 1, 2 … seconds. Repeating
OR23 is harmless (it sets the same tracking number again) and repeating OR24 is too (a second
ship confirmation is refused with a 400, which the tracking workflow resolves by reading the
order), so both are retried like reads. A 4xx other than 429 is never retried here.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fulfil.audit.log import SendGuard
from fulfil.audit.outcome import FailureClass, HttpOutcome
from fulfil.audit.retry import RetryPolicy
from fulfil.audit.sender import AnswerCheck, AuditedHttp
from fulfil.bestbuy.errors import BestBuyUnavailable, auth_error, interpret_error
from fulfil.config import BestBuySettings
from fulfil.untrusted_json import NotJson, load_untrusted_json

SERVICE = "BestBuy"
JSON_TYPE = "application/json"
MAX_IDS_PER_READ = 100  # Mirakl refuses more than 100 order_ids in one OR11
PAGE_SIZE = 100  # the largest page Mirakl serves

# Endpoint names in api_calls: Mirakl's own operation ids, as its documentation names them.
LIST_ORDERS = "OR11"
UPDATE_TRACKING = "OR23"
SHIP = "OR24"
ACCOUNT = "A01"


# Repeating OR23 or OR24 is harmless (see above), and so is reading again; a definitive 4xx is
# never sent again. 429s wait the Retry-After Best Buy gives, up to a minute (a longer one ends the
# retries: the run stops and cron comes back); the rest wait 0.5, 1, 2 s.
RETRY = RetryPolicy(
    max_attempts=4,
    retry_on=frozenset({FailureClass.NOT_SENT, FailureClass.INDETERMINATE, FailureClass.RATE_LIMITED}),
    backoff_base=0.5,
    backoff_max=8.0,
    max_retry_after=60.0,
)


@dataclass(frozen=True)
class OrderPage:
    orders: list[Any]  # as Best Buy sent them: callers check each one
    total_count: int | None


class BestBuyClient:
    def __init__(
        self,
        settings: BestBuySettings,
        http: AuditedHttp,
        *,
        retry: RetryPolicy = RETRY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.http = http
        self.retry = dataclasses.replace(retry, sleep=sleep)

    # --- writes -----------------------------------------------------------------------------

    def update_tracking(
        self, order_id: str, tracking_number: str, carrier_code: str, *, guard: SendGuard | None = None
    ) -> HttpOutcome:
        """OR23: the carrier and tracking number of an order (204 when accepted)."""
        body = json.dumps({"carrier_code": carrier_code, "tracking_number": tracking_number})
        return self._send(
            "PUT",
            self._order_url(order_id, "tracking"),
            endpoint=UPDATE_TRACKING,
            related_id=order_id,
            headers={"Accept": JSON_TYPE, "Content-Type": JSON_TYPE},
            data=body,
            expect=no_content,
            guard=guard,
        )

    def ship(self, order_id: str, *, guard: SendGuard | None = None) -> HttpOutcome:
        """OR24: confirm the order shipped (204); Best Buy e-mails the customer. No body."""
        return self._send(
            "PUT",
            self._order_url(order_id, "ship"),
            endpoint=SHIP,
            related_id=order_id,
            headers={"Accept": JSON_TYPE},
            data=None,  # requests sends Content-Length: 0, which some Mirakl front ends insist on
            expect=no_content,
            guard=guard,
        )

    # --- reads ------------------------------------------------------------------------------

    def orders_by_id(self, order_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """OR11 ``?order_ids=``, 100 ids per call: the orders Best Buy knows, by id.

        Raises BestBuyUnavailable when no usable answer came, ConfigError when the key is refused.
        """
        wanted = list(dict.fromkeys(order_ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), MAX_IDS_PER_READ):
            batch = wanted[start : start + MAX_IDS_PER_READ]
            page = self._read_orders(
                {"order_ids": ",".join(batch), "max": str(MAX_IDS_PER_READ)},
                related_id=",".join(batch),
            )
            for order in page.orders:
                if isinstance(order, dict) and isinstance(order.get("order_id"), str):
                    found[order["order_id"]] = order
        return found

    def list_orders(self, states: Sequence[str], offset: int, page_size: int = PAGE_SIZE) -> OrderPage:
        """One OR11 page of the orders in ``states``, oldest first (stable paging by offset)."""
        params = {
            "order_state_codes": ",".join(states),
            "max": str(page_size),
            "offset": str(offset),
            "sort": "dateCreated",
            "order": "asc",
        }
        return self._read_orders(params, related_id=None)

    def account(self) -> dict[str, Any]:
        """A01: the shop the key belongs to (shop_id, shop_name, shop_state): a credentials check."""
        outcome = self._send(
            "GET", f"{self.settings.base_url}/api/account", endpoint=ACCOUNT, headers={"Accept": JSON_TYPE}
        )
        self._raise_for_failure(outcome, "read the shop account (A01)")
        document = _json_object(outcome)
        if document is None:
            raise BestBuyUnavailable("Best Buy's answer to A01 is not a JSON object")
        return document

    def _read_orders(self, params: dict[str, str], *, related_id: str | None) -> OrderPage:
        outcome = self._send(
            "GET",
            f"{self.settings.base_url}/api/orders",
            endpoint=LIST_ORDERS,
            related_id=related_id,
            headers={"Accept": JSON_TYPE},
            params=params,
            expect=order_list,
        )
        self._raise_for_failure(outcome, "read orders (OR11)")
        document = _json_object(outcome)
        assert document is not None  # order_list checked it
        total = document.get("total_count")
        return OrderPage(
            document["orders"], total if isinstance(total, int) and not isinstance(total, bool) else None
        )

    def _raise_for_failure(self, outcome: HttpOutcome, what: str) -> None:
        if outcome.ok:
            return
        error = interpret_error(outcome)
        if error.is_auth:
            raise auth_error(error)
        raise BestBuyUnavailable(f"could not {what}: {error}")

    # --- sending ----------------------------------------------------------------------------

    def _order_url(self, order_id: str, action: str) -> str:
        return f"{self.settings.base_url}/api/orders/{quote(order_id, safe='')}/{action}"

    def _send(
        self,
        method: str,
        url: str,
        *,
        endpoint: str,
        related_id: str | None = None,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        data: str | None = None,
        expect: AnswerCheck | None = None,
        guard: SendGuard | None = None,
    ) -> HttpOutcome:
        """One call, sent again while the failure is one that waiting can cure (bounded)."""
        query = dict(params or {})
        if self.settings.shop_id:
            query["shop_id"] = self.settings.shop_id
        return self.http.send(
            method,
            url,
            endpoint=endpoint,
            related_id=related_id,
            headers=headers,
            params=query,
            data=data,
            retry=self.retry,
            expect=expect,
            guard=guard,
        )


def order_list(status: int, headers: Mapping[str, str], body: bytes) -> str | None:
    """OR11 answers a JSON object with an ``orders`` list. A 200 whose body cannot be read (cut off,
    garbled, a proxy's page) says nothing: it is unclear, and the retry policy reads it again."""
    try:
        document = load_untrusted_json(body)
    except NotJson:
        return f"HTTP {status}, but not JSON: not Best Buy's order list"
    if not isinstance(document, dict) or not isinstance(document.get("orders"), list):
        return f"HTTP {status}, but not an order list"
    return None


def no_content(status: int, headers: Mapping[str, str], body: bytes) -> str | None:
    """OR23 and OR24 answer 204 No Content and nothing else. Any other 2xx (a proxy's or captive
    portal's HTML page, say) does not prove Best Buy took the call: it is indeterminate, settled
    by reading the order."""
    if status == 204:
        return None
    content_type = (
        next((v for k, v in headers.items() if k.lower() == "content-type"), "") or "no content type"
    )
    return f"HTTP {status} ({content_type.split(';')[0].strip()}), not Mirakl's 204 No Content"


def _json_object(outcome: HttpOutcome) -> dict[str, Any] | None:
    # Untrusted: an order holding a NUL, a lone surrogate, bytes that are not UTF-8, 1e400 or
    # 100,000-deep nesting still parses, and is refused alone by the order checks (order_problem).
    try:
        document = load_untrusted_json(outcome.body)
    except NotJson:
        return None
    return document if isinstance(document, dict) else None
