"""Reading the api_calls audit table: list with filters, show one call readably.

Answers "what exactly did we send Canada Post for order X, and what did it say?" without SQL.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.rows import dict_row

from fulfil.db import connect, query
from fulfil.errors import UsageError

SERVICES = {"canadapost": "CanadaPost", "bestbuy": "BestBuy"}


@dataclass(frozen=True)
class CallFilter:
    service: str | None = None
    order_id: str | None = None
    failed: bool = False
    since: datetime | None = None
    endpoint: str | None = None
    limit: int = 50


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`2h`, `30m`, `7d`, or an ISO date/time (UTC when no zone is given)."""
    now = now or datetime.now(UTC)
    relative = re.fullmatch(r"(\d+)\s*([mhd])", text.strip().lower())
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        unit_name = {"m": "minutes", "h": "hours", "d": "days"}[unit]
        return now - timedelta(**{unit_name: amount})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected 30m, 2h, 7d or an ISO date like 2026-11-23T08:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def normalise_service(name: str | None) -> str | None:
    if name is None:
        return None
    key = name.replace("_", "").replace("-", "").replace(" ", "").lower()
    if key not in SERVICES:
        raise UsageError(f"--service {name!r}: expected canadapost or bestbuy")
    return SERVICES[key]


def list_calls(database_url: str, filters: CallFilter) -> list[dict[str, Any]]:
    with connect(database_url, row_factory=dict_row, application_name="fulfil-calls") as conn:
        return conn.execute(
            query("calls", "list_calls"),
            {
                "service": filters.service,
                "order_id": filters.order_id,
                "failed": filters.failed,
                "since": filters.since,
                "endpoint": filters.endpoint,
                "limit": filters.limit,
            },
        ).fetchall()


def get_call(database_url: str, call_id: int) -> dict[str, Any] | None:
    with connect(database_url, row_factory=dict_row, application_name="fulfil-calls") as conn:
        return conn.execute(query("calls", "get_call"), {"call_id": call_id}).fetchone()


def outcome_of(call: dict[str, Any]) -> str:
    if call.get("finished_at") is None and call.get("status_code") is None and call.get("is_success") is None:
        return "no answer recorded"
    if call.get("is_success"):
        return "ok"
    return call.get("failure_class") or "failed"


def pretty_body(body: Any) -> tuple[str, str]:
    """A stored body made readable, with the language to highlight it as: xml, json or text."""
    if body is None:
        return "", "text"
    if not isinstance(body, str):
        return json.dumps(body, indent=2, ensure_ascii=False), "json"
    stripped = body.strip()
    if stripped.startswith("<"):
        return _indent_xml(stripped), "xml"
    if stripped.startswith(("{", "[")):
        try:
            return json.dumps(json.loads(stripped), indent=2, ensure_ascii=False), "json"
        except ValueError:
            pass
    return body, "text"


def _indent_xml(text: str) -> str:
    from lxml import etree

    from fulfil.xml_parsing import UntrustedXmlError, parse_untrusted

    try:
        root = parse_untrusted(text)
    except UntrustedXmlError:
        return text
    etree.indent(root, space="  ")
    return str(etree.tostring(root, encoding="unicode"))
