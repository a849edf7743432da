"""Everything the sandbox remembers, behind one lock: shipments, orders, the request log.

Handlers run on the HTTP server's threads; every read or change of this state happens while
holding ``SandboxState.lock`` (a re-entrant lock, so helpers may nest). Identifiers come from a
generator seeded with the sandbox seed, so a test that makes the same calls gets the same ids.

A benchmark buys 100,000 labels from one sandbox, so no request may walk every shipment or order:
beside ``shipments`` and ``orders`` (keyed by shipment id and order id) the state keeps indexes by
every key a request looks things up by. They change only through the methods here (add, void,
move to a state, schedule a debit), under the same lock, so they never disagree with the dicts.
"""

from __future__ import annotations

import heapq
import random
import threading
from collections import Counter
from collections.abc import Iterable
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
    manifest_id: str | None = None  # the manifest it was transmitted on (group flow)

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
            "group_id": self.group_id,
            "manifest_id": self.manifest_id,
        }


@dataclass
class Manifest:
    """What one Transmit Shipments made: the shipments of its groups transmitted together."""

    manifest_id: str
    po_number: str
    created_at: float
    manifest_date: str  # YYYY-MM-DD, Canada Post's (Eastern) day it was made
    manifest_time: str  # HH:MM and the zone's name, as manifest details write it
    group_ids: tuple[str, ...]
    shipment_ids: tuple[str, ...]
    service_code: str
    shipping_point: str  # the requested shipping point (postal code)
    method_of_payment: str
    address: dict[str, str]  # the manifest-address of the transmit, flattened
    artifact_key: str
    artifact_id: str
    excluded: tuple[str, ...] = ()
    customer_reference: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "manifest_id": self.manifest_id,
            "po_number": self.po_number,
            "manifest_date": self.manifest_date,
            "group_ids": list(self.group_ids),
            "shipment_ids": list(self.shipment_ids),
            "excluded": list(self.excluded),
            "created_at": datetime.fromtimestamp(self.created_at, UTC).isoformat(timespec="milliseconds"),
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
    # Manifests made by Transmit Shipments, by manifest id, in the order made.
    manifests: dict[str, Manifest] = field(default_factory=dict)
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
    # --- indexes, kept in step with ``shipments``, ``orders`` and ``debit_due`` -----------------
    # Every shipment ever bought, voided ones too: a PIN is never issued twice.
    _by_pin: dict[str, Shipment] = field(default_factory=dict)
    # Lists in purchase order, the order of ``shipments``, so searches answer in the same order.
    _by_request_id: dict[str, list[Shipment]] = field(default_factory=dict)
    _by_group: dict[str, list[Shipment]] = field(default_factory=dict)
    _by_label: dict[tuple[str, str], list[Shipment]] = field(default_factory=dict)
    _by_manifest: dict[str, list[Shipment]] = field(default_factory=dict)
    _manifest_by_artifact: dict[tuple[str, str], Manifest] = field(default_factory=dict)
    # customer-ref-1 -> labels bought and not voided; an order with none has no entry.
    _labels_per_order: Counter[str] = field(default_factory=Counter)
    _labels_bought: int = 0
    # order_state -> the orders in it, by order id.
    _orders_by_state: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # (due, order id) for every scheduled debit; an entry that no longer matches debit_due is stale.
    _debit_queue: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ids = random.Random(f"fulfil-sandbox-ids:{self.seed}")

    def clear(self) -> None:
        with self.lock:
            self.shipments.clear()
            self._by_pin.clear()
            self._by_request_id.clear()
            self._by_group.clear()
            self._by_label.clear()
            self.manifests.clear()
            self._by_manifest.clear()
            self._manifest_by_artifact.clear()
            self._labels_per_order.clear()
            self._labels_bought = 0
            self.orders.clear()
            self._orders_by_state.clear()
            self.hidden_addresses.clear()
            self.debit_due.clear()
            self._debit_queue.clear()
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

    # --- shipments ---------------------------------------------------------------------------

    def add_shipment(self, shipment: Shipment) -> None:
        """Record a bought label; its PIN must be new (``pin_taken``)."""
        with self.lock:
            assert shipment.tracking_pin not in self._by_pin, "a PIN is never issued twice"
            self.shipments[shipment.shipment_id] = shipment
            self._by_pin[shipment.tracking_pin] = shipment
            if shipment.customer_request_id is not None:
                self._by_request_id.setdefault(shipment.customer_request_id, []).append(shipment)
            if shipment.group_id is not None:
                self._by_group.setdefault(shipment.group_id, []).append(shipment)
            self._by_label.setdefault((shipment.label_key, shipment.artifact_id), []).append(shipment)
            if not shipment.voided:
                self._count_label(shipment, 1)

    def void(self, shipment: Shipment) -> None:
        with self.lock:
            if shipment.voided:
                return
            shipment.voided = True
            self._count_label(shipment, -1)

    def _count_label(self, shipment: Shipment, change: int) -> None:
        self._labels_bought += change
        order = shipment.customer_ref_1
        if order is None:
            return
        self._labels_per_order[order] += change
        if self._labels_per_order[order] == 0:
            del self._labels_per_order[order]

    def pin_taken(self, pin: str) -> bool:
        """Whether any shipment, voided or not, already has this PIN."""
        with self.lock:
            return pin in self._by_pin

    def shipment_by_pin(self, pin: str) -> Shipment | None:
        """The shipment a PIN tracks, unless it was voided."""
        with self.lock:
            shipment = self._by_pin.get(pin)
            return shipment if shipment is not None and not shipment.voided else None

    def shipment_with_pin(self, pin: str) -> Shipment | None:
        """The shipment that has this PIN, voided or not."""
        with self.lock:
            return self._by_pin.get(pin)

    def shipments_with_request_id(self, request_id: str) -> list[Shipment]:
        with self.lock:
            return list(self._by_request_id.get(request_id, ()))

    def shipments_in_group(self, group_id: str) -> list[Shipment]:
        with self.lock:
            return list(self._by_group.get(group_id, ()))

    def regroup(self, group_id: str, into: str) -> None:
        """Move a group's shipments into another group (tests: labels bought on an earlier day,
        whose group is that day's)."""
        with self.lock:
            moved = self._by_group.pop(group_id, [])
            for shipment in moved:
                shipment.group_id = into
            self._by_group.setdefault(into, []).extend(moved)

    def shipment_by_label(self, label_key: str, artifact_id: str) -> Shipment | None:
        """The first shipment, not voided, whose label is this artifact."""
        with self.lock:
            candidates = self._by_label.get((label_key, artifact_id), ())
            return next((shipment for shipment in candidates if not shipment.voided), None)

    # --- manifests ---------------------------------------------------------------------------

    def add_manifest(self, manifest: Manifest, shipments: list[Shipment]) -> None:
        """Record a manifest and transmit its shipments (a transmitted shipment cannot be voided)."""
        with self.lock:
            assert manifest.manifest_id not in self.manifests
            self.manifests[manifest.manifest_id] = manifest
            self._manifest_by_artifact[(manifest.artifact_key, manifest.artifact_id)] = manifest
            self._by_manifest[manifest.manifest_id] = list(shipments)
            for shipment in shipments:
                shipment.status = "transmitted"
                shipment.manifest_id = manifest.manifest_id

    def shipments_in_manifest(self, manifest_id: str) -> list[Shipment]:
        with self.lock:
            return list(self._by_manifest.get(manifest_id, ()))

    def manifest_by_artifact(self, artifact_key: str, artifact_id: str) -> Manifest | None:
        with self.lock:
            return self._manifest_by_artifact.get((artifact_key, artifact_id))

    def manifests_between(self, start: str, end: str) -> list[Manifest]:
        """The manifests made from day ``start`` to day ``end`` (YYYY-MM-DD, both included)."""
        with self.lock:
            return [m for m in self.manifests.values() if start <= m.manifest_date <= end]

    def labels_bought(self) -> int:
        with self.lock:
            return self._labels_bought

    def labels_bought_per_order(self) -> dict[str, int]:
        with self.lock:
            return dict(self._labels_per_order)

    # --- orders ------------------------------------------------------------------------------

    def add_order(self, order: dict[str, Any]) -> None:
        """Record an order (replacing one with the same id), filed under its order_state."""
        with self.lock:
            order_id = order["order_id"]
            replaced = self.orders.get(order_id)
            if replaced is not None:
                self._orders_by_state.get(replaced["order_state"], {}).pop(order_id, None)
            self.orders[order_id] = order
            self._orders_by_state.setdefault(order["order_state"], {})[order_id] = order

    def move_order(self, order: dict[str, Any], state: str) -> None:
        """Set an order's order_state, and file it under the new one."""
        with self.lock:
            order_id = order["order_id"]
            filed = self.orders.get(order_id) is order
            if filed:
                self._orders_by_state.get(order["order_state"], {}).pop(order_id, None)
            order["order_state"] = state
            if filed:
                self._orders_by_state.setdefault(state, {})[order_id] = order

    def orders_in_states(self, states: Iterable[str]) -> list[dict[str, Any]]:
        with self.lock:
            return [
                order
                for state in dict.fromkeys(states)
                for order in self._orders_by_state.get(state, {}).values()
            ]

    def schedule_debit(self, order_id: str, due: float) -> None:
        with self.lock:
            self.debit_due[order_id] = due
            heapq.heappush(self._debit_queue, (due, order_id))

    def cancel_debit(self, order_id: str) -> None:
        with self.lock:
            self.debit_due.pop(order_id, None)

    def take_due_debits(self, now: float) -> list[str]:
        """The orders whose debit is due at ``now``, forgotten as scheduled debits, soonest first."""
        with self.lock:
            due: list[str] = []
            while self._debit_queue and self._debit_queue[0][0] <= now:
                moment, order_id = heapq.heappop(self._debit_queue)
                if self.debit_due.get(order_id) == moment:
                    del self.debit_due[order_id]
                    due.append(order_id)
            return due

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
