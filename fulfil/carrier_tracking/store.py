"""The one owner of the carrier tracking queries (sql/queries/carrier_tracking.sql).

A refresh is recorded in one transaction: the parcel's row locked, its events replaced by the
answer's (an event seen before keeps its row), its status, dates and last event set, its next
refresh scheduled, and the refresh logged. A failure is counted and logged the same way, and
stops the parcel's auto-refresh when the policy says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from fulfil.canadapost.tracking import CarrierStatus, TrackingDetail
from fulfil.carrier_tracking.schedule import RefreshPolicy
from fulfil.db import query

Row = dict[str, Any]


def _sql(name: str) -> str:
    return query("carrier_tracking", name)


@dataclass(frozen=True)
class Recorded:
    """What a recorded refresh left: the parcel's status, and when it is next due (None: never)."""

    carrier_status: CarrierStatus
    next_refresh_at: datetime | None
    auto_refresh: bool


class CarrierTrackingStore:
    def __init__(self, conn: psycopg.Connection[Any], *, run_id: str | None, policy: RefreshPolicy) -> None:
        self.conn = conn
        self.run_id = run_id
        self.policy = policy

    def _cursor(self) -> psycopg.Cursor[Row]:
        return self.conn.cursor(row_factory=dict_row)

    def _now(self, cur: psycopg.Cursor[Row]) -> datetime:
        row = cur.execute(_sql("database_now")).fetchone()
        assert row is not None
        now: datetime = row["now"]
        return now

    def claim_due(
        self, *, lease_seconds: float, order_ids: list[str] | None = None, due_by: datetime | None = None
    ) -> Row | None:
        """The most urgent parcel due (by ``due_by`` too, when given), taken for ``lease_seconds``
        (order_id, shipment_id, tracking_pin, carrier_status, was_due); None when nothing is due."""
        params = {
            "due_by": due_by,
            "lease_seconds": lease_seconds,
            "cutoff_seconds": self.policy.cutoff.total_seconds(),
            "order_ids": order_ids,
            "daily_calls": self.policy.daily_calls,
        }
        with self._cursor() as cur:
            row: Row | None = cur.execute(_sql("claim_due_refresh"), params).fetchone()
        return row

    def claim_parcel(self, shipment_id: int, *, lease_seconds: float) -> Row | None:
        """This parcel, taken to be asked about now (as ``claim_due`` takes one); None when another
        refresher holds it, it was asked about within the cool-down, or the day's cap is spent."""
        params = {
            "shipment_id": shipment_id,
            "lease_seconds": lease_seconds,
            "cool_down_seconds": self.policy.cool_down.total_seconds(),
            "daily_calls": self.policy.daily_calls,
        }
        with self._cursor() as cur:
            row: Row | None = cur.execute(_sql("claim_parcel"), params).fetchone()
        return row

    def last_asked(self, shipment_id: int) -> datetime | None:
        """When this parcel was last asked about, answered or not (None: never)."""
        with self._cursor() as cur:
            row = cur.execute(_sql("last_asked"), {"shipment_id": shipment_id}).fetchone()
        return row["at"] if row else None

    def daily_calls_left(self) -> tuple[int | None, float]:
        """Calls left today under the daily cap (None: no cap), and seconds until the next day."""
        with self._cursor() as cur:
            row = cur.execute(_sql("daily_calls_used")).fetchone()
        assert row is not None
        cap = self.policy.daily_calls
        left = None if cap is None else max(cap - int(row["calls"]), 0)
        return left, float(row["seconds_to_next_day"])

    def budget_outlook(self, budget: str = "canadapost:E") -> Row | None:
        """When the tracking budget admits its next call (next_slot_seconds), and its pause if any
        (paused_seconds, pause_reason); None before its first call."""
        with self._cursor() as cur:
            row: Row | None = cur.execute(_sql("budget_outlook"), {"budget": budget}).fetchone()
        return row

    def count_due(self, order_ids: list[str] | None = None) -> int:
        params = {
            "cutoff_seconds": self.policy.cutoff.total_seconds(),
            "order_ids": order_ids,
        }
        with self._cursor() as cur:
            row = cur.execute(_sql("count_due"), params).fetchone()
        return int(row["count"]) if row else 0

    def release(self, claimed: Row) -> None:
        """A parcel taken and not asked about: due again as it was (its unit of the daily cap
        given back)."""
        with self._cursor() as cur:
            cur.execute(
                _sql("release_refresh"),
                {
                    "shipment_id": claimed["shipment_id"],
                    "was_due": claimed["was_due"],
                    "quota_day": claimed.get("quota_day"),
                },
            )

    def _lock(self, cur: psycopg.Cursor[Row], shipment_id: int) -> Row:
        current: Row | None = cur.execute(_sql("lock_tracking"), {"shipment_id": shipment_id}).fetchone()
        if current is None:
            raise LookupError(f"shipment {shipment_id} has no tracked label")
        return current

    def record_answer(self, shipment_id: int, detail: TrackingDetail, *, call_id: int | None) -> Recorded:
        """Canada Post's answer for this parcel: its events, its status, its next refresh."""
        with self.conn.transaction(), self._cursor() as cur:
            current = self._lock(cur, shipment_id)
            now = self._now(cur)
            events = detail.events
            arrays = {
                "shipment_id": shipment_id,
                "event_codes": [event.code for event in events],
                "event_keys": [event.key[0] for event in events],
                "occurred_ats": [event.occurred_at for event in events],
                "time_zones": [event.time_zone for event in events],
                "local_times": [event.occurred_at.replace(tzinfo=None) for event in events],
                "descriptions": [event.description for event in events],
                "sites": [event.site or "" for event in events],
                "provinces": [event.province for event in events],
                "signatories": [event.signatory for event in events],
                "statuses": [event.status.value if event.status else None for event in events],
            }
            cur.execute(_sql("forget_events_not_in_answer"), arrays)
            if events:
                cur.execute(_sql("upsert_events"), arrays)
            last = detail.last_event
            next_at = self.policy.next_after_answer(detail.status, now)
            place = ", ".join(part for part in (last.site, last.province) if part) if last else None
            cur.execute(
                _sql("record_answer"),
                {
                    "shipment_id": shipment_id,
                    "carrier_status": detail.status.value,
                    "expected_delivery": detail.expected_delivery,
                    "delivered_at": detail.delivered_at,
                    "last_event_at": last.occurred_at if last else None,
                    "last_event_code": last.code if last else None,
                    "last_event_description": last.description if last else None,
                    "last_event_place": place or None,
                    "next_refresh_at": next_at,
                },
            )
            self._log(cur, shipment_id, "refreshed", detail.status, None, call_id)
            return Recorded(detail.status, next_at, bool(current["auto_refresh"]))

    def record_no_history(self, shipment_id: int, *, call_id: int | None) -> Recorded:
        """Error 004: no scan yet. Not a failure: asked again at the pre-transit interval."""
        with self.conn.transaction(), self._cursor() as cur:
            current = self._lock(cur, shipment_id)
            status = CarrierStatus(current["carrier_status"])
            if status is not CarrierStatus.PRE_TRANSIT:
                # Canada Post had history for it before: keep what is known, count a failure.
                return self._failure(
                    cur, shipment_id, current, "Canada Post no longer has history for this PIN (004)", call_id
                )
            next_at = self.policy.next_after_answer(CarrierStatus.PRE_TRANSIT, self._now(cur))
            cur.execute(
                _sql("record_answer"),
                {
                    "shipment_id": shipment_id,
                    "carrier_status": CarrierStatus.PRE_TRANSIT.value,
                    "expected_delivery": None,
                    "delivered_at": None,
                    "last_event_at": None,
                    "last_event_code": None,
                    "last_event_description": None,
                    "last_event_place": None,
                    "next_refresh_at": next_at,
                },
            )
            self._log(cur, shipment_id, "no_history", CarrierStatus.PRE_TRANSIT, None, call_id)
            return Recorded(CarrierStatus.PRE_TRANSIT, next_at, bool(current["auto_refresh"]))

    def record_failure(self, shipment_id: int, error: str, *, call_id: int | None) -> Recorded:
        """A refresh that got no usable answer: backed off, and auto-refresh stopped after too many."""
        with self.conn.transaction(), self._cursor() as cur:
            current = self._lock(cur, shipment_id)
            return self._failure(cur, shipment_id, current, error, call_id)

    def _failure(
        self, cur: psycopg.Cursor[Row], shipment_id: int, current: Row, error: str, call_id: int | None
    ) -> Recorded:
        status = CarrierStatus(current["carrier_status"])
        failures = int(current["consecutive_failures"]) + 1
        next_at = self.policy.next_after_failure(status, failures, self._now(cur))
        stop = self.policy.stops_after(failures)
        row = cur.execute(
            _sql("record_failure"),
            {
                "shipment_id": shipment_id,
                "next_refresh_at": next_at,
                "error": error,
                "stop": stop,
                "stop_reason": f"{failures} refreshes in a row failed; the last: {error}",
            },
        ).fetchone()
        self._log(cur, shipment_id, "failed", status, error, call_id)
        return Recorded(status, next_at, bool(row and row["auto_refresh"]))

    def _log(
        self,
        cur: psycopg.Cursor[Row],
        shipment_id: int,
        outcome: str,
        status: CarrierStatus | None,
        error: str | None,
        call_id: int | None,
    ) -> None:
        cur.execute(
            _sql("log_refresh"),
            {
                "shipment_id": shipment_id,
                "outcome": outcome,
                "carrier_status": status.value if status else None,
                "error": error,
                "run_id": self.run_id,
                "call_id": call_id,
            },
        )

    def set_auto_refresh(self, shipment_id: int, on: bool, reason: str | None = None) -> bool:
        """Turn a parcel's auto-refresh on (its failures forgiven, due now) or off (with why)."""
        if not on and not reason:
            raise ValueError("turning auto-refresh off needs a reason")
        with self._cursor() as cur:
            row = cur.execute(
                _sql("set_auto_refresh"), {"shipment_id": shipment_id, "on": on, "reason": reason}
            ).fetchone()
        return row is not None

    def pause(self, reason: str) -> datetime:
        """Every refresher, on every host, stops asking (until ``resume``)."""
        with self._cursor() as cur:
            row = cur.execute(_sql("pause_refreshes"), {"reason": reason}).fetchone()
        assert row is not None
        paused_at: datetime = row["paused_at"]
        return paused_at

    def resume(self) -> None:
        with self._cursor() as cur:
            cur.execute(_sql("resume_refreshes"))

    def paused(self) -> Row | None:
        """The pause (paused_at, reason), or None when refreshes run."""
        with self._cursor() as cur:
            row: Row | None = cur.execute(_sql("refresh_pause")).fetchone()
        return row

    def order_shipment_ids(self, order_ids: list[str]) -> dict[str, int]:
        with self._cursor() as cur:
            rows = cur.execute(_sql("shipments_of_orders_by_id"), {"order_ids": order_ids}).fetchall()
        return {row["order_id"]: int(row["shipment_id"]) for row in rows}

    def now(self) -> datetime:
        with self._cursor() as cur:
            return self._now(cur)

    def tracking_of(self, keys: list[str]) -> list[Row]:
        """The parcels of these orders or PINs, with their events (newest first)."""
        with self._cursor() as cur:
            rows = cur.execute(_sql("tracking_of_orders"), {"keys": keys}).fetchall()
            for row in rows:
                row["events"] = cur.execute(_sql("events_of"), {"shipment_id": row["shipment_id"]}).fetchall()
        return rows
