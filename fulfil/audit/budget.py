"""Rate budgets shared through PostgreSQL: every process and host that uses the database together
keeps to each service's limits, and a throttle answer seen by one stops all of them.

A budget is a row of ``rate_budgets`` (sql/0005_rate_budgets.sql): a Canada Post throttle group
(``canadapost:A`` …) or a Best Buy endpoint (``bestbuy:OR11`` …). Admission happens in the
statement that writes the request's api_calls row (``fulfil_rate_admit``, in
sql/queries/api_calls.sql): no extra statement per request while a budget has room.

**Spacing (GCRA).** A budget with a rate admits one call every ``window / (limit × headroom)``
seconds: the row's ``tat`` (theoretical arrival time) is when the next call may go, and each
admission moves it one interval on. Spacing rather than bursts: a burst of b calls would cost b
calls of every window's sustained rate (at most L calls in any window needs the interval to be
window / (L − b + 1)), and a run's bound is its sustained rate. The **headroom** (default 95 %)
is what absorbs real arrival jitter: calls spaced for ``limit × headroom`` a window may reach the
service up to ``window × (1/headroom − 1)`` seconds (3.2 s at 60 s) late relative to one another
before any rolling window holds more than the limit.

**Waiting.** A call whose slot is now (or within ``horizon``) is admitted and its row written at
once. A call whose slot is later gets a reservation instead (the slot is its, no row yet): it
sleeps until then and comes back with it, when the same statement writes its row only if no pause
came meanwhile. So a waiting call costs one more statement (never a poll per waiter), and a call
reserved before another process's throttle answer never goes out inside that pause.

**Pauses.** A throttle answer (Canada Post's "Rejected by SLM Monitor", a 429) pauses its budget
for every process (one statement, only then): for the group's window, or for ``Retry-After``. No
request is admitted into a paused budget by anyone.

**Bounded.** All the waiting of one call (every attempt) is at most ``ServiceBudgets.max_wait``;
beyond it the attempt is held back (recorded as not sent) and the caller decides. Leases count
this wait (``fulfil.audit.retry.lease_seconds``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fulfil.config import Rate

if TYPE_CHECKING:
    import psycopg

    from fulfil.audit.outcome import HttpOutcome

# A slot this close is taken at once (the call sleeps to it without coming back): the same order
# as the time any admitted call takes to reach the wire. Further: a reservation.
RESERVATION_HORIZON_SECONDS = 0.05
# The longest pause a call waits out when the service names its own (a Retry-After): as long as
# the retry policy sleeps for one (``RetryPolicy.max_retry_after``). Longer: the call is held back.
LONGEST_RETRY_AFTER_WAITED_SECONDS = 60.0


@dataclass(frozen=True)
class Budget:
    """One shared budget: its name in rate_budgets, and its rate (None: pauses only)."""

    name: str
    rate: Rate | None = None
    headroom: float = 1.0

    @property
    def interval_seconds(self) -> float | None:
        """The spacing admitted: the limit's window over the share of the limit spent."""
        if self.rate is None:
            return None
        return self.rate.seconds / (self.rate.calls * self.headroom)


@dataclass(frozen=True)
class Pause:
    """A throttle answer's verdict: the budget waits this long, for everyone, and why."""

    seconds: float
    reason: str


# Whether an answer is the service throttling (then the pause it calls for), else None.
PauseRule = Callable[[Budget, str, "HttpOutcome"], Pause | None]


@dataclass(frozen=True)
class ServiceBudgets:
    """How one service's calls are metered: the budget of each endpoint, and what a throttle
    answer looks like."""

    by_endpoint: Mapping[str, Budget]
    pause_rule: PauseRule
    # The longest pause this service imposes that a call waits out.
    longest_pause: float
    # Set: an endpoint not in ``by_endpoint`` has its own pause-only budget "<prefix>:<endpoint>".
    other_endpoints_prefix: str | None = None
    horizon: float = RESERVATION_HORIZON_SECONDS

    def budget_for(self, endpoint: str) -> Budget | None:
        budget = self.by_endpoint.get(endpoint)
        if budget is not None or self.other_endpoints_prefix is None:
            return budget
        return Budget(f"{self.other_endpoints_prefix}:{endpoint}")

    @property
    def max_wait(self) -> float:
        """The most one call (all its attempts) waits to be admitted: the longest pause or the
        longest spacing, whichever is longer, and the horizon. A lease counts it per call."""
        intervals = [b.interval_seconds for b in self.by_endpoint.values() if b.interval_seconds is not None]
        return max([self.longest_pause, *intervals]) + self.horizon

    def pause_after(self, budget: Budget, endpoint: str, outcome: HttpOutcome) -> Pause | None:
        return self.pause_rule(budget, endpoint, outcome)


def endpoint_budgets(
    prefix: str,
    rates: Mapping[str, Rate],
    *,
    headroom: float,
    default_retry_after: float,
    longest_pause: float = LONGEST_RETRY_AFTER_WAITED_SECONDS,
) -> ServiceBudgets:
    """A budget per endpoint, as Mirakl meters: a rate where one is set (OR11), pauses only for
    every other endpoint; a 429 pauses its endpoint for everyone for its ``Retry-After`` (or
    ``default_retry_after`` seconds when it gives none)."""
    return ServiceBudgets(
        by_endpoint={
            endpoint: Budget(f"{prefix}:{endpoint}", rate, headroom) for endpoint, rate in rates.items()
        },
        pause_rule=retry_after_pause(default_retry_after),
        longest_pause=longest_pause,
        other_endpoints_prefix=prefix,
    )


def retry_after_pause(default_seconds: float) -> PauseRule:
    """The pause of a 429: its Retry-After, else ``default_seconds``."""

    def rule(budget: Budget, endpoint: str, outcome: HttpOutcome) -> Pause | None:
        if outcome.status_code != 429:
            return None
        hinted = outcome.retry_after()
        if hinted is None:
            return Pause(default_seconds, f"HTTP 429 to {endpoint}, no Retry-After")
        return Pause(hinted, f"HTTP 429 to {endpoint}, Retry-After {hinted:g} s")

    return rule


@dataclass(frozen=True)
class Admission:
    """What the statement that admits a call and writes its row answered."""

    call_id: int | None  # the row written: the call may go (after ``wait_seconds``, ≤ the horizon)
    slot: datetime | None  # when the call may go; with no row: a reservation held until then
    wait_seconds: float  # until the slot, or until the pause ends
    paused_until: datetime | None  # refused: the budget is paused until then
    pause_reason: str | None

    @property
    def reserved(self) -> bool:
        return self.call_id is None and self.slot is not None


def admission_parameters(
    budget: Budget, *, horizon: float, longest_wait: float, reserved: bool
) -> dict[str, Any]:
    """The statement parameters that name the budget and how the call may be admitted."""
    return {
        "budget": budget.name,
        "budget_calls": budget.rate.calls if budget.rate is not None else None,
        "budget_window": budget.rate.seconds if budget.rate is not None else None,
        "budget_interval": budget.interval_seconds,
        "budget_horizon": horizon,
        "budget_longest_wait": max(0.0, longest_wait),
        "budget_reserved": reserved,
    }


def record_pause(conn: psycopg.Connection[Any], budget: Budget, pause: Pause) -> datetime:
    """Pause the budget for everyone (never shortening a pause already there); returns its end."""
    from fulfil.db import query

    row = conn.execute(
        query("budgets", "pause_budget"),
        {"budget": budget.name, "seconds": pause.seconds, "reason": pause.reason},
    ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


# --- reading, for `fulfil status` ----------------------------------------------------------------


@dataclass(frozen=True)
class BudgetState:
    """One budget as `fulfil status` shows it."""

    name: str
    limit: int | None  # calls per window (None: pauses only)
    window_seconds: float | None
    interval_seconds: float | None  # the spacing admitted (limit and headroom)
    calls_in_window: int  # calls admitted in the last window (60 s for a pause-only budget)
    reserved_ahead: int  # slots taken beyond now by calls waiting for them
    paused_until: datetime | None  # set while the budget is paused
    pause_reason: str | None
    last_pause_at: datetime | None
    last_pause_reason: str | None

    def as_record(self) -> dict[str, Any]:
        return {
            "type": "budget",
            "name": self.name,
            "limit": self.limit,
            "window_seconds": self.window_seconds,
            "interval_seconds": self.interval_seconds,
            "calls_in_window": self.calls_in_window,
            "reserved_ahead": self.reserved_ahead,
            "paused_until": self.paused_until,
            "pause_reason": self.pause_reason,
            "last_pause_at": self.last_pause_at,
            "last_pause_reason": self.last_pause_reason,
        }


def budget_states(conn: psycopg.Connection[Any]) -> list[BudgetState]:
    """Every budget in use: its limit, its use in the last window, the slots reserved ahead, and
    its pause (current, or the last one)."""
    from psycopg.rows import dict_row

    from fulfil.db import query

    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(query("budgets", "budget_states")).fetchall()
    return [
        BudgetState(
            name=row["name"],
            limit=row["limit_per_window"],
            window_seconds=row["window_seconds"],
            interval_seconds=row["interval_seconds"],
            calls_in_window=row["calls_in_window"],
            reserved_ahead=row["reserved_ahead"],
            paused_until=row["paused_until"],
            pause_reason=row["pause_reason"],
            last_pause_at=row["last_pause_at"],
            last_pause_reason=row["last_pause_reason"],
        )
        for row in rows
    ]
