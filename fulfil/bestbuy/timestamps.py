"""Mirakl's timestamps ("2025-09-06T06:59:59.999Z") as aware datetimes, from untrusted order data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

# Far longer than any ISO 8601 timestamp: anything beyond is not one, and is not parsed.
_LONGEST = 40


def mirakl_timestamp(value: Any) -> datetime | None:
    """The moment ``value`` names; None for anything else (not text, not a timestamp, no zone)."""
    if not isinstance(value, str) or len(value) > _LONGEST:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
