"""What `fulfil tracking show` says of a parcel, from the database alone: its status, expected
delivery, last event and events, and how fresh that is (fulfil.carrier_tracking.schedule)."""

from __future__ import annotations

from datetime import UTC, datetime, timezone
from typing import Any

from fulfil.canadapost.tracking import CarrierStatus
from fulfil.carrier_tracking.schedule import RefreshPolicy


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def scan_time(event: dict[str, Any]) -> str:
    """When the scan was made, on the clock of the place it was made (as Canada Post gives it)."""
    occurred: datetime = event["occurred_at"]
    offset = event["local_time"] - occurred.astimezone(UTC).replace(tzinfo=None)
    return occurred.astimezone(timezone(offset)).isoformat()


def parcel_record(row: dict[str, Any], policy: RefreshPolicy, now: datetime) -> dict[str, Any]:
    status = CarrierStatus(row["carrier_status"])
    refreshed_at: datetime | None = row["refreshed_at"]
    newest = row["events"][0] if row["events"] else None
    return {
        "order_id": row["order_id"],
        "tracking_pin": row["tracking_pin"],
        "carrier_status": status.value,
        "expected_delivery": row["expected_delivery"].isoformat() if row["expected_delivery"] else None,
        "delivered_at": _iso(row["delivered_at"]),
        "last_event": {
            "at": scan_time(newest) if newest is not None else _iso(row["last_event_at"]),
            "code": row["last_event_code"],
            "description": row["last_event_description"],
            "place": row["last_event_place"],
        }
        if row["last_event_code"]
        else None,
        "freshness": policy.freshness(status, refreshed_at, now),
        "age_seconds": int((now - refreshed_at).total_seconds()) if refreshed_at else None,
        "refreshed_at": _iso(refreshed_at),
        "next_refresh_at": _iso(row["next_refresh_at"])
        if row["auto_refresh"] and status is not CarrierStatus.DELIVERED
        else None,
        "auto_refresh": row["auto_refresh"],
        "auto_refresh_stopped_reason": row["auto_refresh_stopped_reason"],
        "events": [
            {
                "at": scan_time(event),
                "time_zone": event["time_zone"],
                "code": event["event_code"],
                "description": event["description"],
                "place": ", ".join(part for part in (event["site"], event["province"]) if part) or None,
                "carrier_status": event["carrier_status"],
            }
            for event in row["events"]
        ],
    }


def age_text(seconds: int | None) -> str:
    if seconds is None:
        return "never asked"
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 90 * 60:
        return f"{seconds // 60} min ago"
    if seconds < 36 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"
