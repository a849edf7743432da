"""The one retry policy: which failures are sent again, how often, how long to wait; and, from it,
how long a claim must last (every attempt to its deadline, every wait at its longest, the longest
wait for a rate budget) and how long an unanswered purchase needs before its absence proves
nothing was bought. Every retry, backoff, lease and settle window in fulfil is computed here."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fulfil.audit.outcome import FailureClass, HttpOutcome


@dataclass
class RetryPolicy:
    """Which failures to send again, how often and how long to wait. Each attempt is its own row."""

    max_attempts: int = 1
    retry_on: frozenset[FailureClass] = frozenset()
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    # A Retry-After longer than this is not slept through: the caller gets the 429 and stops
    # (cron comes back later) rather than sleeping past what a run should.
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep)

    def backoff(self, attempt: int) -> float:
        return float(min(self.backoff_base * (2 ** (attempt - 1)), self.backoff_max))

    def delay(self, outcome: HttpOutcome, attempt: int) -> float | None:
        """Seconds to wait before the next attempt; None when waiting is not worth it."""
        if outcome.failure is FailureClass.RATE_LIMITED:
            hinted = outcome.retry_after()
            if hinted is not None:
                return hinted if hinted <= self.max_retry_after else None
        return self.backoff(attempt)

    def longest_wait(self) -> float:
        """The most this policy can sleep in all between its attempts."""
        total = 0.0
        for attempt in range(1, self.max_attempts):
            wait = self.backoff(attempt)
            if FailureClass.RATE_LIMITED in self.retry_on:
                wait = max(wait, self.max_retry_after)
            total += wait
        return total

    def longest_call(self, deadline: float) -> float:
        """The longest one call under this policy can take: every attempt to its deadline, every
        wait at its longest."""
        return self.max_attempts * deadline + self.longest_wait()


NO_RETRY = RetryPolicy()
# What a lease adds to the longest its calls can take: the database writes around them.
LEASE_MARGIN_SECONDS = 30.0


def lease_seconds(deadline: float, *calls: RetryPolicy, admission_wait: float = 0.0) -> float:
    """How long a claim on a piece of work must last so that every call made under it, each with
    all its attempts and waits, has ended before anyone else may take the work over. Both
    workflows size their leases here.

    ``admission_wait``: the most one call waits for its rate budget over all its attempts
    (``ServiceBudgets.max_wait`` of the service called; 0 when its calls are not metered)."""
    if admission_wait < 0:
        raise ValueError("a budget wait cannot be negative")
    return sum(policy.longest_call(deadline) + admission_wait for policy in calls) + LEASE_MARGIN_SECONDS


def settle_seconds(deadline: float, service_allowance: float) -> float:
    """How long after the start of a purchase's last attempt the seller's absence at the carrier
    proves nothing was bought: the attempt cannot be on the wire after its deadline, and the
    carrier is given ``service_allowance`` more to finish what it received."""
    return deadline + service_allowance
