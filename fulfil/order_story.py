"""`fulfil orders show`: everything fulfil knows about one order, in one place.

The order as Best Buy sent it (buyer, address, lines, state, shipping deadline), its shipment and
every move of it with its time and reason, its label, where the parcel is (the carrier tracking
cache), the calls made for it (ids for `fulfil calls show`), and the next step. Everything is read
from the database; nothing is asked of Canada Post or Best Buy.

The order's JSON came from outside: every value shown from it is text made displayable (bounded,
no control or invisible characters), whatever type it arrived as.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from fulfil.canadapost.responses import displayable
from fulfil.db import query
from fulfil.shipments.states import STATE_INFO, ShipmentState

Row = dict[str, Any]

# Longest text shown from the order's JSON (a product title, a street): enough to read, bounded.
_LONGEST_FIELD = 200


def _sql(name: str) -> str:
    return query("order_story", name)


def text_of(value: Any) -> str | None:
    """A value from the order's JSON as displayable text (None when absent)."""
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list)):
        return None
    return displayable(str(value), _LONGEST_FIELD)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _field(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def order_part(row: Row) -> Row:
    raw = row["raw_order_data"] if isinstance(row["raw_order_data"], dict) else {}
    address = _field(raw, "customer", "shipping_address")
    found = raw.get("order_lines")
    lines: list[Any] = found if isinstance(found, list) else []
    buyer = " ".join(
        part
        for part in (
            text_of(_field(raw, "customer", "firstname")),
            text_of(_field(raw, "customer", "lastname")),
        )
        if part
    )
    return {
        "order_id": row["order_id"],
        "status": row["status"],
        "best_buy_state": text_of(raw.get("order_state")),
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "shipping_deadline": text_of(raw.get("shipping_deadline")),
        "buyer": buyer or None,
        "shipping_address": {
            key: text_of(_field(address, key))
            for key in (
                "firstname",
                "lastname",
                "company",
                "street_1",
                "street_2",
                "city",
                "state",
                "zip_code",
                "country",
                "phone",
            )
        }
        if isinstance(address, dict)
        else None,
        "lines": [
            {
                "sku": text_of(_field(line, "offer_sku")),
                "product": text_of(_field(line, "product_title")),
                "quantity": text_of(_field(line, "quantity")),
                "price": text_of(_field(line, "price")),
                "state": text_of(_field(line, "order_line_state")),
            }
            for line in lines
            if isinstance(line, dict)
        ],
        "total_price": text_of(raw.get("total_price")),
    }


def next_step(order: Row, shipment: Row | None) -> str:
    """What happens next, or what to do: the shipment state's way out, with this order's id."""
    order_id = order["order_id"]
    if shipment is None:
        if order["status"] == "accepted":
            return f"`fulfil labels create --order {order_id}` buys its label"
        return f"nothing: the order is {order['status']} and has no shipment"
    info = STATE_INFO[ShipmentState(shipment["status"])]
    return info.way_out.replace("ORDER", order_id)


def _shipment_part(shipment: Row) -> Row:
    info = STATE_INFO[ShipmentState(shipment["status"])]
    return {
        "status": shipment["status"],
        "meaning": info.meaning,
        "tracking_pin": shipment["tracking_pin"],
        "mode": shipment["cp_mode"],
        "cp_shipment_id": shipment["cp_shipment_id"],
        "label_pdf_path": shipment["label_pdf_path"],
        "attempts": shipment["attempts"],
        "last_error_code": shipment["last_error_code"],
        "last_error": shipment["last_error"],
        "label_created_at": _iso(shipment["label_created_at"]),
        "tracking_sent_at": _iso(shipment["tracking_sent_at"]),
        "shipped_at": _iso(shipment["shipped_at"]),
        "in_flight": shipment["lease_owner"] is not None,
        # What the label is (or was last tried) bought as, and why (0019; none before it).
        "service_code": shipment["service_code"],
        "service_rule": shipment["service_rule"],
        "label_choice": shipment["label_choice"],
        "parcel_no": shipment["parcel_no"],
        "parcel_count": shipment["parcel_count"],
    }


def order_story(conn: psycopg.Connection[Any], order_id: str, tracking: Row | None) -> Row | None:
    """The whole story of ``order_id`` (None when fulfil has no such order). ``tracking``: the
    parcel's record from the tracking cache (fulfil.carrier_tracking.show.parcel_record), if any."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_sql("order_of"), {"order_id": order_id}).fetchone()
        if row is None:
            return None
        parcels = cur.execute(_sql("shipment_of"), {"order_id": order_id}).fetchall()
        shipment = parcels[0] if parcels else None
        events = cur.execute(_sql("events_of_order"), {"order_id": order_id}).fetchall()
        calls = cur.execute(_sql("calls_of_order"), {"order_id": order_id}).fetchall()
        surplus = cur.execute(_sql("surplus_labels_of_order"), {"order_id": order_id}).fetchall()
        labels = cur.execute(_sql("labels_of_order"), {"order_id": order_id}).fetchall()
    order = order_part(row)
    story: Row = {
        "order": order,
        "shipment": None,
        "history": [
            {
                "at": _iso(event["at"]),
                "from": event["from_status"],
                "to": event["to_status"],
                "move": event["move"],
                "reason": event["reason"],
                "run_id": event["run_id"],
                "parcel_no": event["parcel_no"],
            }
            for event in events
        ],
        "tracking": tracking,
        "calls": [
            {
                "call_id": call["call_id"],
                "at": _iso(call["started_at"]),
                "service": call["service"],
                "endpoint": call["endpoint"],
                "status_code": call["status_code"],
                "outcome": "ok"
                if call["is_success"]
                else (call["failure_class"] or ("error" if call["status_code"] else "no answer")),
                "duration_ms": call["duration_ms"],
                "error": call["error"],
            }
            for call in calls
        ],
        "surplus_labels": [
            {
                "cp_shipment_id": label["cp_shipment_id"],
                "tracking_pin": label["tracking_pin"],
                "reason": label["reason"],
                "found_at": _iso(label["found_at"]),
                "resolved_at": _iso(label["resolved_at"]),
            }
            for label in surplus
        ],
        "labels": [
            {
                "tracking_pin": label["tracking_pin"],
                "cp_shipment_id": label["cp_shipment_id"],
                "label_pdf_path": label["label_pdf_path"],
                "bought_at": _iso(label["label_created_at"]),
                "outcome": label["outcome"],  # active, voided or refund_requested
                "voided_at": _iso(label["voided_at"]),
                "refund_requested_at": _iso(label["refund_requested_at"]),
                "refund_ticket_id": label["refund_ticket_id"],
                "reason": label["reason"],
                "service_code": label["service_code"],
                # An exact decimal string, as `fulfil report costs --json` gives amounts.
                "cost": str(label["due_amount"]) if label["due_amount"] is not None else None,
            }
            for label in labels
        ],
        "next_step": next_step(order, shipment),
    }
    if shipment is not None:
        # Parcel 1: the shipment Best Buy hears of. An order split into several parcels (0020)
        # also lists every parcel, each with its own label and state.
        story["shipment"] = _shipment_part(shipment)
        if len(parcels) > 1:
            story["parcels"] = [_shipment_part(parcel) for parcel in parcels]
    return story
