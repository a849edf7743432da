"""Reading back the orders table, and the real Best Buy samples, for the order tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.shared_reference import mirakl_samples

# The real Best Buy Canada answers and Mirakl's own OR11 example, with what each state becomes.
ORDER_SAMPLES = {
    "bestbuy-ca.OR11-orders.WAITING_ACCEPTANCE.redacted.json": "waiting_acceptance",
    "bestbuy-ca.OR11-orders.SHIPPING.redacted.json": "accepted",
    "bestbuy-ca.OR11-orders.SHIPPED.redacted.json": "shipped",
    "spec-example.OR11.response-200.json": "shipped",  # RECEIVED
}
# Samples of other calls: not order objects at all.
OTHER_SAMPLES = (
    "spec-example.OR21.request.json",
    "spec-example.OR23.request.json",
    "spec-example.SH21.response-200.json",
)


def sample_path(name: str) -> Path:
    return mirakl_samples() / name


def sample_orders(name: str) -> list[dict[str, Any]]:
    document = json.loads(sample_path(name).read_text(encoding="utf-8"))
    return document["orders"] if isinstance(document, dict) else document


def orders_table(db: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """Every order row, every column (updated_at included: an untouched row keeps it)."""
    with db.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM orders ORDER BY order_id").fetchall()
    return {row["order_id"]: row for row in rows}


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
