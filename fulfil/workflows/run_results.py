"""What a workflow run reports: a result per order, and whether the run stopped early or failed.

Shared by the label, tracking and order workflows, so the CLI renders and counts them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Generic, Protocol, TypeVar

from fulfil.errors import ConfigError


class HasOutcome(Protocol):
    @property
    def outcome(self) -> str: ...

    @property
    def order_id(self) -> str | None: ...


R = TypeVar("R", bound=HasOutcome)


@dataclass
class RunResults(Generic[R]):
    # Outcomes that need someone's attention (the run exits 3).
    attention: ClassVar[frozenset[str]] = frozenset()
    # Outcomes counted even when none happened, so a summary always names them.
    always_counted: ClassVar[tuple[str, ...]] = ()

    results: list[R] = field(default_factory=list)
    stopped: str | None = None  # why the run stopped before the end (a service down, throttling)
    fatal: ConfigError | None = None  # a configuration problem that stopped the run (exit 2)
    # False when whoever started the run takes each result as it comes (the command line): a run
    # of 100,000 orders then keeps its counts, not 100,000 results.
    keep_results: bool = True
    _counts: dict[str, int] = field(default_factory=dict)
    _attention: bool = False
    _order_ids: set[str] | None = None

    def record(self, result: R) -> None:
        self._counts[result.outcome] = self._counts.get(result.outcome, 0) + 1
        self._attention = self._attention or result.outcome in self.attention
        if self._order_ids is not None and result.order_id is not None:
            self._order_ids.add(result.order_id)
        if self.keep_results:
            self.results.append(result)

    def track_orders(self) -> None:
        """Remember which orders got a result (a run asked for given orders says why it left the
        others alone; the set is as large as the orders asked for)."""
        if self._order_ids is None:
            self._order_ids = set()

    def reported(self, order_id: str) -> bool:
        return self._order_ids is not None and order_id in self._order_ids

    @property
    def needs_attention(self) -> bool:
        return self.stopped is not None or self._attention

    def counts(self) -> dict[str, int]:
        return {**dict.fromkeys(self.always_counted, 0), **self._counts}
