"""The statements a piece of code really runs, recorded on its own connection, and their plans.

A connection made with ``cursor_factory=recording_cursor(into)`` appends every statement run on it
(its text and parameters) to ``into`` and then runs it as usual. ``plan_of`` asks PostgreSQL how
it would run one of them now, with the same parameters: the plans checked are those of the SQL the
code executes, not of a copy that could drift from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

# The tables that grow with every order: none may be read from end to end by a per-order query or
# by `fulfil status`.
BIG_TABLES = ("orders", "shipments", "api_calls", "shipment_events", "carrier_tracking", "tracking_events")
_SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")


@dataclass(frozen=True)
class Statement:
    text: str
    params: Any


def recording_cursor(into: list[Statement]) -> type[psycopg.Cursor[Any]]:
    class RecordingCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> RecordingCursor:  # type: ignore[override]
            text = query.as_string(self) if isinstance(query, sql.Composable) else str(query)
            into.append(Statement(text, params))
            super().execute(query, params, **kwargs)
            return self

    return RecordingCursor


def plan_of(conn: psycopg.Connection[Any], statement: Statement) -> str:
    """EXPLAIN of the statement with its own parameters (planned, not run)."""
    rows = conn.execute("EXPLAIN " + statement.text, statement.params).fetchall()  # type: ignore[call-overload]
    return "\n".join(str(row[0]) for row in rows)


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def generic_plan_of(conn: psycopg.Connection[Any], statement: Statement) -> str:
    """EXPLAIN (GENERIC_PLAN): the plan a prepared statement keeps once psycopg has prepared it
    (after a few runs) and PostgreSQL stops planning it for each call's parameters."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    rows = conn.execute("EXPLAIN (GENERIC_PLAN) " + _PLACEHOLDER.sub(number, statement.text)).fetchall()  # type: ignore[call-overload]
    return "\n".join(str(row[0]) for row in rows)


def big_tables_scanned(plan: str) -> list[str]:
    return [table for table in _SEQ_SCAN.findall(plan) if table in BIG_TABLES]
