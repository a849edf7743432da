"""What every phase of a label run shares: its settings, Canada Post, the store, and where its
results go."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fulfil.canadapost.client import CanadaPostClient
from fulfil.shipments.store import ShipmentStore
from fulfil.stop_signals import StopRequest
from fulfil.workflows.labels.results import LabelResult, LabelRun, LabelSettings, StopRun
from fulfil.workflows.workers import Halt, SharedSet


@dataclass
class LabelContext:
    """One worker's view of a run: its own store (connection) and client (HTTP session), the
    run's settings, stop request and results."""

    settings: LabelSettings
    client: CanadaPostClient
    store: ShipmentStore
    run: LabelRun
    # Where each result goes: the run's results and listener, directly or through the run's thread.
    sink: Callable[[LabelResult], None]
    stop: StopRequest = field(default_factory=StopRequest)
    halt: Halt = field(default_factory=Halt)
    # Labels whose download failed in this run (by any worker): not fetched again until the next.
    failed_downloads: SharedSet[int] = field(default_factory=SharedSet)

    def report(self, result: LabelResult) -> None:
        self.sink(result)

    def stop_if_asked(self) -> None:
        """Between orders: a stop signal ends the run here, with the order in flight finished."""
        if self.stop.requested:
            raise StopRun(self.stop.describe())

    @property
    def halted(self) -> bool:
        """Another worker of this run stopped it (throttled, unreachable, a configuration error)."""
        return self.halt.is_set
