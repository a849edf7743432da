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

    @property
    def needs_attention(self) -> bool:
        return self.stopped is not None or any(r.outcome in self.attention for r in self.results)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.always_counted, 0)
        for result in self.results:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        return counts
