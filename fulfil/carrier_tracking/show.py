"""What `fulfil tracking show` says of a parcel: its status, expected delivery, last event and
events, and how fresh that is (fulfil.carrier_tracking.schedule), from the database; a stale
parcel is asked about first when nothing stands in the way (cache-aside)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from fulfil.canadapost.tracking import CarrierStatus
from fulfil.carrier_tracking.schedule import FRESH, RefreshPolicy
from fulfil.errors import ConfigError

if TYPE_CHECKING:
    # Not at run time: a look-up from the cache must not import the HTTP client and the audit
    # layer (the refresh path imports them when it asks).
    from fulfil.carrier_tracking.refresh import RefreshResult
    from fulfil.carrier_tracking.store import CarrierTrackingStore


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


# How `tracking show` treats the cache: never call; call for a stale parcel when the budget
# allows (the default); call for every parcel named (each within its cool-down).
CACHED = "cached"
AUTO = "auto"
FORCE = "refresh"
# A stale parcel is asked about only if the tracking budget admits a call this soon: a person
# waiting at a terminal is shown the cached answer rather than kept waiting for the budget.
SHOW_LONGEST_WAIT_SECONDS = 5.0


@dataclass
class Lookup:
    """What `tracking show` found: a record per parcel, the keys it did not find, and how many
    parcels were answered from the cache (hits) or asked about first (misses)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    hits: int = 0
    misses: int = 0
    # Canada Post could not be asked at all (not configured, or the key refused): the cached
    # answers are still shown, and the command says why and exits 2.
    config_error: ConfigError | None = None


class ParcelAsker(Protocol):
    def refresh_parcel(self, shipment_id: int) -> RefreshResult | None: ...


def wants_asking(row: dict[str, Any], policy: RefreshPolicy, now: datetime, mode: str) -> bool:
    """Whether this parcel is asked about before it is shown."""
    if mode == CACHED:
        return False
    if mode == FORCE:
        return True
    status = CarrierStatus(row["carrier_status"])
    return (
        row["auto_refresh"]
        and status is not CarrierStatus.DELIVERED
        and not policy.past_cutoff(row["label_created_at"], now)
        and policy.freshness(status, row["refreshed_at"], now) != FRESH
    )


def look_up(
    store: CarrierTrackingStore,
    keys: list[str],
    mode: str,
    open_asker: Callable[[], AbstractContextManager[ParcelAsker]],
) -> Lookup:
    """The parcels of ``keys`` (order ids or PINs), each asked about first as ``mode`` says, and
    only when nothing stands in the way (a pause, a busy budget, the cool-down, another refresher
    holding it): then the cached answer is shown with why it was not refreshed."""
    rows = store.tracking_of(keys)
    now = store.now()
    to_ask = [row for row in rows if wants_asking(row, store.policy, now, mode)]
    held: dict[int, str] = {}
    config_error: ConfigError | None = None
    if to_ask:
        blocker = _why_not_now(store, mode)
        if blocker is not None:
            held = {row["shipment_id"]: blocker for row in to_ask}
        else:
            try:
                with open_asker() as asker:
                    for row in to_ask:
                        if config_error is not None:
                            held[row["shipment_id"]] = f"not refreshed: {config_error}"
                            continue
                        try:
                            why = _ask_first(store, asker, row)
                        except ConfigError as exc:
                            config_error, why = exc, f"not refreshed: {exc}"
                        if why is not None:
                            held[row["shipment_id"]] = why
            except ConfigError as exc:  # Canada Post not configured: nothing can be asked
                config_error = exc
                held = {row["shipment_id"]: f"not refreshed: {exc}" for row in to_ask}
            rows = store.tracking_of(keys)
            now = store.now()
    asked = {row["shipment_id"] for row in to_ask} - set(held)
    lookup = Lookup(config_error=config_error)
    for row in rows:
        record = parcel_record(row, store.policy, now)
        record["asked_now"] = row["shipment_id"] in asked
        record["not_refreshed"] = held.get(row["shipment_id"])
        lookup.records.append(record)
        if record["asked_now"]:
            lookup.misses += 1
        else:
            lookup.hits += 1
    found = {record["order_id"] for record in lookup.records} | {
        record["tracking_pin"] for record in lookup.records
    }
    lookup.missing = [key for key in keys if key not in found]
    return lookup


def _why_not_now(store: CarrierTrackingStore, mode: str) -> str | None:
    pause = store.paused()
    if pause is not None:
        return f"not refreshed: tracking refreshes are paused ({pause['reason']})"
    outlook = store.budget_outlook()
    if outlook is None:
        return None
    if outlook["paused_seconds"]:
        return (
            f"not refreshed: the tracking budget is paused for {outlook['paused_seconds']:.0f} s "
            f"({outlook['pause_reason']})"
        )
    if mode == AUTO and outlook["next_slot_seconds"] > SHOW_LONGEST_WAIT_SECONDS:
        return f"not refreshed: the tracking budget's next slot is in {outlook['next_slot_seconds']:.0f} s"
    return None


def _ask_first(store: CarrierTrackingStore, asker: ParcelAsker, row: dict[str, Any]) -> str | None:
    """Ask about one parcel; why it was not refreshed, or None when it was."""
    from fulfil.carrier_tracking.refresh import NO_HISTORY, REFRESHED

    result = asker.refresh_parcel(row["shipment_id"])
    if result is None:
        last = store.last_asked(row["shipment_id"])
        now = store.now()
        cool_down = store.policy.cool_down
        if last is not None and now - last < cool_down:
            wait = int((cool_down - (now - last)).total_seconds()) + 1
            return f"not refreshed: asked {age_text(int((now - last).total_seconds()))}; again in {wait} s"
        left, _ = store.daily_calls_left()
        if left == 0:
            return "not refreshed: the daily tracking budget (FULFIL_TRACKING_DAILY_CALLS) is spent"
        return "not refreshed: another fulfil process is asking about it right now"
    if result.outcome in (REFRESHED, NO_HISTORY):
        return None
    return f"not refreshed: {result.error}"
