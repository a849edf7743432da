"""When a parcel is next asked about: by how urgent its status is, later after each failure.

The budget is small (throttle group E: 20 tracking calls a minute per API key by default), so the
interval follows what a seller needs to know soon: a parcel out for delivery changes within the
hour; one waiting for its first scan, within the day. A failure doubles the wait, up to a cap, and
after ``max_failures`` in a row the parcel's auto-refresh stops (``fulfil status`` shows it) until
someone turns it back on. A delivered parcel is never asked about again, and neither is one older
than ``cutoff`` (counted from its label).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fulfil.canadapost.tracking import CarrierStatus
from fulfil.config import TrackingSettings

DEFAULT_INTERVALS: Mapping[CarrierStatus, timedelta] = {
    CarrierStatus.OUT_FOR_DELIVERY: timedelta(minutes=30),
    CarrierStatus.DELIVERY_ATTEMPTED: timedelta(minutes=60),
    CarrierStatus.EXCEPTION: timedelta(minutes=60),
    CarrierStatus.IN_TRANSIT: timedelta(minutes=120),
    CarrierStatus.UNKNOWN: timedelta(minutes=120),
    CarrierStatus.PRE_TRANSIT: timedelta(minutes=240),
    CarrierStatus.RETURNED: timedelta(minutes=240),
}


FRESH = "fresh"
STALE = "stale"
EXPIRED = "expired"
# How many of its status's intervals an answer may be old before it is expired rather than stale.
STALE_INTERVALS = 4


@dataclass(frozen=True)
class RefreshPolicy:
    intervals: Mapping[CarrierStatus, timedelta] = field(default_factory=lambda: dict(DEFAULT_INTERVALS))
    max_backoff: timedelta = timedelta(hours=24)
    max_failures: int = 5
    cutoff: timedelta = timedelta(days=30)
    # Tracking calls a day at most, for every process and host together (None: no daily cap).
    daily_calls: int | None = None
    # A parcel asked about this recently is not asked again by `tracking show` (stale or --refresh):
    # a person pressing up-arrow-enter must not spend the budget the refresher schedules.
    cool_down: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        missing = [status.value for status in CarrierStatus if status is not CarrierStatus.DELIVERED
                   and status not in self.intervals]  # fmt: skip
        if missing:
            raise ValueError(f"no refresh interval for {', '.join(missing)}")
        if any(interval <= timedelta(0) for interval in self.intervals.values()):
            raise ValueError("refresh intervals must be positive")
        if self.max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if self.daily_calls is not None and self.daily_calls < 1:
            raise ValueError("daily_calls must be at least 1 (or None: no daily cap)")

    @classmethod
    def from_settings(cls, settings: TrackingSettings) -> RefreshPolicy:
        def minutes(value: int) -> timedelta:
            return timedelta(minutes=value)

        return cls(
            intervals={
                CarrierStatus.OUT_FOR_DELIVERY: minutes(settings.out_for_delivery_minutes),
                CarrierStatus.DELIVERY_ATTEMPTED: minutes(settings.attempted_minutes),
                CarrierStatus.EXCEPTION: minutes(settings.attempted_minutes),
                CarrierStatus.IN_TRANSIT: minutes(settings.in_transit_minutes),
                CarrierStatus.UNKNOWN: minutes(settings.in_transit_minutes),
                CarrierStatus.PRE_TRANSIT: minutes(settings.pre_transit_minutes),
                CarrierStatus.RETURNED: minutes(settings.pre_transit_minutes),
            },
            max_failures=settings.max_failures,
            cutoff=timedelta(days=settings.cutoff_days),
            daily_calls=settings.daily_calls,
        )

    def interval(self, status: CarrierStatus) -> timedelta | None:
        """How long a fresh answer stays fresh (None: delivered, never asked again)."""
        if status is CarrierStatus.DELIVERED:
            return None
        return self.intervals[status]

    def next_after_answer(self, status: CarrierStatus, now: datetime) -> datetime | None:
        interval = self.interval(status)
        return None if interval is None else now + interval

    def next_after_failure(self, status: CarrierStatus, failures: int, now: datetime) -> datetime:
        """``failures``: in a row, this one included. The status's interval, doubled per failure
        after the first, capped."""
        interval = self.interval(status) or self.intervals[CarrierStatus.IN_TRANSIT]
        wait = min(interval * (2 ** min(max(failures - 1, 0), 30)), self.max_backoff)
        return now + wait

    def freshness(self, status: CarrierStatus, refreshed_at: datetime | None, now: datetime) -> str:
        """``fresh`` within its status's interval (a delivered parcel always: it is final),
        ``stale`` past it, ``expired`` past four intervals or never answered."""
        if status is CarrierStatus.DELIVERED and refreshed_at is not None:
            return FRESH
        interval = self.interval(status)
        if refreshed_at is None or interval is None:
            return EXPIRED
        age = now - refreshed_at
        if age <= interval:
            return FRESH
        return STALE if age <= interval * STALE_INTERVALS else EXPIRED

    def stops_after(self, failures: int) -> bool:
        return failures >= self.max_failures

    def past_cutoff(self, label_created_at: datetime, now: datetime) -> bool:
        return now - label_created_at > self.cutoff
