"""Throttling as the real services do it: Canada Post's group limits, Mirakl's Retry-After.

Canada Post (its "Throttle limits" page): each API key may make so many calls per group of calls
in a rolling 60 s window. The call that would exceed its group's limit is answered ``Server``
"Rejected by SLM Monitor" and the group is blocked for that key; Canada Post says "for up to a
minute", and the sandbox takes the upper bound: the group stays blocked one whole window from
that rejection (calls during the block do not extend it), then every earlier call has aged out of
the window and the key starts afresh. Throttling is on by default with Canada Post's default
limits, which no test comes near; ``GroupLimits`` scales them for short tests and benchmarks.

Mirakl answers 429 with ``Retry-After``. With a limit set for an endpoint (Mirakl asks for at most
one OR11 a minute), a call beyond it is answered 429 with the whole seconds until the window
takes one again, and so is every call that arrives before a previous 429's ``Retry-After`` has
elapsed. Without a limit (the default) nothing is refused, but an arrival inside the window of
an injected 429 (the ``rate_limit`` fault) is still recorded: that is what a client must never do.

A refused call is not performed: it draws no fault and consumes no scripted one. Every refusal
and every arrival inside a Retry-After window is recorded, so a test or a benchmark can assert
that the client caused none. Time is the sandbox's clock, so tests move it instead of sleeping.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Canada Post's published limits and the group of every endpoint the sandbox serves: one table,
# the one fulfil's budgets use (tests/sandbox/test_throttle.py pins its contents).
from fulfil.canadapost.throttle_groups import (
    CANADA_POST_ENDPOINT_GROUPS,
    CANADA_POST_GROUP_LIMITS,
    CANADA_POST_WINDOW_S,
)


@dataclass(frozen=True)
class GroupLimits:
    """Canada Post's throttle: on or off, per-group limits (scaled defaults or given), the window.

    A group named in ``limits`` gets exactly that many calls per window; every other group gets
    Canada Post's default times ``scale``, rounded down but at least one.
    """

    enabled: bool = True
    limits: Mapping[str, int] = field(default_factory=dict)
    scale: float = 1.0
    window_s: float = CANADA_POST_WINDOW_S

    def __post_init__(self) -> None:
        object.__setattr__(self, "limits", dict(self.limits))
        for group, limit in self.limits.items():
            if group not in CANADA_POST_GROUP_LIMITS:
                known = ", ".join(CANADA_POST_GROUP_LIMITS)
                raise ValueError(f"unknown Canada Post throttle group {group!r}; groups: {known}")
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"the limit of group {group} must be a whole number of calls, 1 or more")
        if not self.scale > 0 or math.isinf(self.scale):
            raise ValueError(f"the Canada Post rate scale must be a positive number, not {self.scale}")
        if not self.window_s > 0 or math.isinf(self.window_s):
            raise ValueError(f"the Canada Post throttle window must be positive seconds, not {self.window_s}")

    def per_group(self) -> dict[str, int]:
        return {
            group: self.limits.get(group, max(1, math.floor(default * self.scale)))
            for group, default in CANADA_POST_GROUP_LIMITS.items()
        }

    def as_dict(self) -> dict[str, object]:
        return {
            "enabled": self.enabled,
            "limits": dict(self.limits),
            "scale": self.scale,
            "window_s": self.window_s,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> GroupLimits:
        unknown = set(payload) - {"enabled", "limits", "scale", "window_s"}
        if unknown:
            raise ValueError(f"unknown Canada Post throttle settings: {', '.join(sorted(unknown))}")
        return cls(
            enabled=bool(payload.get("enabled", True)),
            limits=dict(payload.get("limits") or {}),
            scale=float(payload.get("scale", 1.0)),
            window_s=float(payload.get("window_s", CANADA_POST_WINDOW_S)),
        )


@dataclass(frozen=True)
class EndpointLimit:
    calls: int
    window_s: float

    def __post_init__(self) -> None:
        if isinstance(self.calls, bool) or not isinstance(self.calls, int) or self.calls < 1:
            raise ValueError(
                f"an endpoint limit needs a whole number of calls, 1 or more, not {self.calls!r}"
            )
        if not self.window_s > 0 or math.isinf(self.window_s):
            raise ValueError(f"an endpoint limit needs a positive window in seconds, not {self.window_s!r}")


@dataclass(frozen=True)
class EndpointLimits:
    """Mirakl's Retry-After mode: the endpoints (OR11, OR23, …) that have a limit, and the limit."""

    limits: Mapping[str, EndpointLimit] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "limits", dict(self.limits))

    def as_dict(self) -> dict[str, object]:
        return {
            "limits": {
                endpoint: {"calls": limit.calls, "window_s": limit.window_s}
                for endpoint, limit in self.limits.items()
            }
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> EndpointLimits:
        unknown = set(payload) - {"limits"}
        if unknown:
            raise ValueError(f"unknown Best Buy throttle settings: {', '.join(sorted(unknown))}")
        limits: dict[str, EndpointLimit] = {}
        for endpoint, limit in (payload.get("limits") or {}).items():
            if not isinstance(limit, Mapping) or set(limit) != {"calls", "window_s"}:
                raise ValueError(f'the limit of {endpoint} must be {{"calls": N, "window_s": SECONDS}}')
            limits[str(endpoint)] = EndpointLimit(limit["calls"], float(limit["window_s"]))
        return cls(limits)


def parse_group_limit(text: str) -> tuple[str, int]:
    """``E=5`` (a command-line option) as (group, calls)."""
    group, separator, calls = text.partition("=")
    if not separator or not calls.strip().isdigit():
        raise ValueError(f"a Canada Post group limit reads GROUP=CALLS (e.g. E=5), not {text!r}")
    return group.strip().upper(), int(calls)


def parse_endpoint_limit(text: str) -> tuple[str, EndpointLimit]:
    """``OR11=1/60`` (a command-line option) as (endpoint, at most 1 call per 60 s)."""
    endpoint, separator, rule = text.partition("=")
    calls, slash, seconds = rule.partition("/")
    try:
        if not (separator and slash and endpoint.strip() and calls.strip().isdigit()):
            raise ValueError(text)
        return endpoint.strip().upper(), EndpointLimit(int(calls), float(seconds))
    except ValueError:
        raise ValueError(
            f"a Best Buy endpoint limit reads ENDPOINT=CALLS/SECONDS (e.g. OR11=1/60), not {text!r}"
        ) from None


@dataclass(frozen=True)
class ThrottleEvent:
    """One refusal by a throttle, or one arrival inside a Retry-After window."""

    service: str
    endpoint: str
    group: str | None  # Canada Post's throttle group; None for Mirakl (its limits are per endpoint)
    at: float  # the sandbox clock when the call arrived
    # "limit": this call went over the limit; "blocked": its group was blocked (Canada Post);
    # "retry_after": it came before a 429's Retry-After elapsed (refused in Retry-After mode,
    # only recorded otherwise).
    reason: str
    refused: bool = True
    retry_after_s: int | None = None  # what a 429 told the client

    def as_dict(self) -> dict[str, object]:
        return {
            "service": self.service,
            "endpoint": self.endpoint,
            "group": self.group,
            "at": self.at,
            "reason": self.reason,
            "refused": self.refused,
            "retry_after_s": self.retry_after_s,
        }


class Throttle:
    """Both services' throttles and their records, behind one lock (handlers run on many threads)."""

    def __init__(self, canadapost: GroupLimits, bestbuy: EndpointLimits, clock: Callable[[], float]) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._initial = (canadapost, bestbuy)
        self._canadapost = canadapost
        self._bestbuy = bestbuy
        # (API key, group) -> times of the calls let through in the current window, oldest first.
        self._group_calls: dict[tuple[str, str], deque[float]] = {}
        self._blocked_until: dict[tuple[str, str], float] = {}
        self._peaks: Counter[str] = Counter()
        self._endpoint_calls: dict[str, deque[float]] = {}
        self._retry_after_until: dict[str, float] = {}
        self._rejections: list[ThrottleEvent] = []
        self._inside_retry_after: list[ThrottleEvent] = []

    # --- steering ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the configured limits, nothing counted, nothing recorded."""
        with self._lock:
            self._canadapost, self._bestbuy = self._initial
            self._forget_canadapost()
            self._forget_bestbuy()
            self._peaks.clear()
            self._rejections.clear()
            self._inside_retry_after.clear()

    def set_canadapost(self, limits: GroupLimits) -> None:
        """New limits; the windows and blocks start afresh (the records stay)."""
        with self._lock:
            self._canadapost = limits
            self._forget_canadapost()

    def set_bestbuy(self, limits: EndpointLimits) -> None:
        with self._lock:
            self._bestbuy = limits
            self._forget_bestbuy()

    def _forget_canadapost(self) -> None:
        self._group_calls.clear()
        self._blocked_until.clear()

    def _forget_bestbuy(self) -> None:
        self._endpoint_calls.clear()
        self._retry_after_until.clear()

    # --- Canada Post -------------------------------------------------------------------------

    def admit_canadapost(self, key: str, endpoint: str) -> bool:
        """Whether this key's call may be performed now; a refusal is recorded (and may block)."""
        group = CANADA_POST_ENDPOINT_GROUPS.get(endpoint)
        with self._lock:
            settings = self._canadapost
            if group is None or not settings.enabled:
                return True
            now = self._clock()
            slot = (key, group)
            if now < self._blocked_until.get(slot, -math.inf):
                self._rejections.append(ThrottleEvent("canadapost", endpoint, group, now, "blocked"))
                return False
            calls = self._group_calls.setdefault(slot, deque())
            _forget_before(calls, now - settings.window_s)
            if len(calls) >= settings.per_group()[group]:
                self._blocked_until[slot] = now + settings.window_s
                self._rejections.append(ThrottleEvent("canadapost", endpoint, group, now, "limit"))
                return False
            calls.append(now)
            self._peaks[f"canadapost.{group}"] = max(self._peaks[f"canadapost.{group}"], len(calls))
            return True

    # --- Mirakl ------------------------------------------------------------------------------

    def admit_bestbuy(self, endpoint: str) -> int | None:
        """None when the call may be performed, else the Retry-After seconds of its 429."""
        with self._lock:
            now = self._clock()
            limit = self._bestbuy.limits.get(endpoint)
            until = self._retry_after_until.get(endpoint, -math.inf)
            if now < until:
                # Not extended: a client that waits what an earlier 429 said is not refused again.
                wait = math.ceil(until - now) if limit is not None else None
                event = ThrottleEvent(
                    "bestbuy",
                    endpoint,
                    None,
                    now,
                    "retry_after",
                    refused=limit is not None,
                    retry_after_s=wait,
                )
                self._inside_retry_after.append(event)
                if limit is not None:
                    self._rejections.append(event)
                    return wait
            if limit is None:
                return None
            calls = self._endpoint_calls.setdefault(endpoint, deque())
            _forget_before(calls, now - limit.window_s)
            if len(calls) >= limit.calls:
                # Whole seconds until the oldest call leaves the window: then one more fits.
                wait = max(1, math.ceil(calls[0] + limit.window_s - now))
                self._retry_after_until[endpoint] = now + wait
                self._rejections.append(
                    ThrottleEvent("bestbuy", endpoint, None, now, "limit", retry_after_s=wait)
                )
                return wait
            calls.append(now)
            self._peaks[f"bestbuy.{endpoint}"] = max(self._peaks[f"bestbuy.{endpoint}"], len(calls))
            return None

    def retry_after_sent(self, endpoint: str, seconds: int) -> None:
        """An injected 429 told the client to wait ``seconds``: arrivals before then are recorded."""
        if seconds <= 0:
            return
        with self._lock:
            until = self._clock() + seconds
            self._retry_after_until[endpoint] = max(self._retry_after_until.get(endpoint, -math.inf), until)

    # --- inspection --------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Settings, what each window holds now, every refusal and every arrival inside a window."""
        with self._lock:
            now = self._clock()
            by_group = Counter(
                f"{event.service}.{event.group or event.endpoint}" for event in self._rejections
            )
            return {
                "canadapost": {**self._canadapost.as_dict(), "groups": self._group_report(now)},
                "bestbuy": {**self._bestbuy.as_dict(), "endpoints": self._endpoint_report(now)},
                "rejection_count": len(self._rejections),
                "rejections_by_group": dict(sorted(by_group.items())),
                "rejections": [event.as_dict() for event in self._rejections],
                "inside_retry_after_count": len(self._inside_retry_after),
                "inside_retry_after": [event.as_dict() for event in self._inside_retry_after],
            }

    def _group_report(self, now: float) -> dict[str, dict[str, object]]:
        """Per Canada Post group, over every key: its limit, calls in the window now, the block."""
        horizon = now - self._canadapost.window_s
        groups: dict[str, dict[str, object]] = {}
        for group, group_limit in self._canadapost.per_group().items():
            in_window = sum(
                sum(1 for moment in calls if moment > horizon)
                for (_key, slot_group), calls in self._group_calls.items()
                if slot_group == group
            )
            blocked_for = max(
                (
                    until - now
                    for (_key, slot_group), until in self._blocked_until.items()
                    if slot_group == group
                ),
                default=0.0,
            )
            groups[group] = {
                "limit": group_limit,
                "in_window": in_window,
                "peak_in_window": self._peaks[f"canadapost.{group}"],
                "blocked_for_s": max(0.0, blocked_for),
            }
        return groups

    def _endpoint_report(self, now: float) -> dict[str, dict[str, object]]:
        """Per Mirakl endpoint with a limit or a Retry-After window: the limit, the window, the wait."""
        endpoints: dict[str, dict[str, object]] = {}
        for endpoint in sorted(set(self._bestbuy.limits) | set(self._retry_after_until)):
            endpoint_limit = self._bestbuy.limits.get(endpoint)
            calls = self._endpoint_calls.get(endpoint, deque())
            in_window = (
                0
                if endpoint_limit is None
                else sum(1 for moment in calls if moment > now - endpoint_limit.window_s)
            )
            endpoints[endpoint] = {
                "limit": None
                if endpoint_limit is None
                else {"calls": endpoint_limit.calls, "window_s": endpoint_limit.window_s},
                "in_window": in_window,
                "peak_in_window": self._peaks[f"bestbuy.{endpoint}"],
                "retry_after_for_s": max(0.0, self._retry_after_until.get(endpoint, now) - now),
            }
        return endpoints


def _forget_before(calls: deque[float], horizon: float) -> None:
    """Drop the calls at or before ``horizon``: the rolling window is (now - window, now]."""
    while calls and calls[0] <= horizon:
        calls.popleft()
