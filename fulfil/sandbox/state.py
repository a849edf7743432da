"""Everything the sandbox remembers, behind one lock: shipments, orders, the request log.

Handlers run on the HTTP server's threads; every read or change of this state happens while
holding ``SandboxState.lock`` (a re-entrant lock, so helpers may nest). Identifiers come from a
generator seeded with the sandbox seed, so a test that makes the same calls gets the same ids.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Shipment:
    shipment_id: str
    tracking_pin: str
    contract: bool
    status: str  # "created" (group flow) or "transmitted"; non-contract labels are final at once
    created_at: float
    request_xml: bytes  # the body as received, echoed by the details call
    label_key: str
    artifact_id: str
    service_code: str
    output_format: str
    encoding: str
    sender: dict[str, str]
    destination: dict[str, str]
    customer_request_id: str | None = None
    customer_ref_1: str | None = None
    customer_ref_2: str | None = None
    group_id: str | None = None
    voided: bool = False
    label_fetches: int = 0
    refund_ticket: tuple[str, str] | None = None  # (service-ticket-id, service-ticket-date)

    def summary(self) -> dict[str, Any]:
        return {
            "shipment_id": self.shipment_id,
            "tracking_pin": self.tracking_pin,
            "customer_request_id": self.customer_request_id,
            "customer_ref_1": self.customer_ref_1,
            "contract": self.contract,
            "status": self.status,
            "voided": self.voided,
            "label_fetches": self.label_fetches,
            "created_at": datetime.fromtimestamp(self.created_at, UTC).isoformat(timespec="milliseconds"),
            "refund_requested": self.refund_ticket is not None,
        }


@dataclass
class RequestRecord:
    service: str
    endpoint: str | None
    method: str
    path: str
    status: int | None  # None: the connection was dropped without an answer
    started_at: float
    finished_at: float
    fault: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "endpoint": self.endpoint,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "fault": self.fault,
        }


@dataclass
class SandboxState:
    seed: int
    lock: threading.RLock = field(default_factory=threading.RLock)
    shipments: dict[str, Shipment] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Addresses of orders that do not show them yet (before acceptance), revealed on payment.
    hidden_addresses: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    # order id -> epoch second at which its simulated debit completes.
    debit_due: dict[str, float] = field(default_factory=dict)
    log: list[RequestRecord] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    # Answers the sandbox produced that failed the official XSDs: sandbox bugs, reported loudly.
    invalid_responses: list[str] = field(default_factory=list)
    # Bumped by clear(): a request held across a reset (late_commit) belongs to a forgotten world.
    generation: int = 0
    ids: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.ids = random.Random(f"fulfil-sandbox-ids:{self.seed}")

    def clear(self) -> None:
        with self.lock:
            self.shipments.clear()
            self.orders.clear()
            self.hidden_addresses.clear()
            self.debit_due.clear()
            self.log.clear()
            self.counts.clear()
            self.invalid_responses.clear()
            self.generation += 1
            self.ids = random.Random(f"fulfil-sandbox-ids:{self.seed}")

    def digits(self, count: int, *, first_nonzero: bool = True) -> str:
        with self.lock:
            first = str(self.ids.randint(1, 9)) if first_nonzero else str(self.ids.randint(0, 9))
            return first + "".join(str(self.ids.randint(0, 9)) for _ in range(count - 1))

    def hex_token(self, count: int) -> str:
        with self.lock:
            return "".join(self.ids.choice("0123456789abcdef") for _ in range(count))

    def record(self, record: RequestRecord) -> None:
        with self.lock:
            self.log.append(record)
            if record.endpoint is not None:
                self.counts[f"{record.service}.{record.endpoint}"] += 1

    def shipment_by_pin(self, pin: str) -> Shipment | None:
        with self.lock:
            for shipment in self.shipments.values():
                if shipment.tracking_pin == pin and not shipment.voided:
                    return shipment
            return None

    def labels_bought(self) -> int:
        with self.lock:
            return sum(1 for shipment in self.shipments.values() if not shipment.voided)

    def labels_bought_per_order(self) -> dict[str, int]:
        with self.lock:
            per_order: Counter[str] = Counter()
            for shipment in self.shipments.values():
                if not shipment.voided and shipment.customer_ref_1 is not None:
                    per_order[shipment.customer_ref_1] += 1
            return dict(per_order)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "canadapost": {
                    "shipments": [shipment.summary() for shipment in self.shipments.values()],
                    "labels_bought": self.labels_bought(),
                },
                "bestbuy": {
                    "orders": {order_id: order_summary(order) for order_id, order in self.orders.items()},
                },
                "requests": {
                    "counts": dict(self.counts),
                    "log": [record.as_dict() for record in self.log],
                },
            }


def order_summary(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": order["order_state"],
        "carrier_code": order.get("shipping_carrier_code"),
        "tracking_number": order.get("shipping_tracking"),
        "shipped": order["order_state"] in ("SHIPPED", "TO_COLLECT", "RECEIVED", "CLOSED"),
    }
