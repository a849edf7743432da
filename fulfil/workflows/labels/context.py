"""What every phase of a label run shares: its settings, Canada Post, the store, and its results."""

from __future__ import annotations

from dataclasses import dataclass, field

from fulfil.canadapost.client import CanadaPostClient
from fulfil.shipments.store import ShipmentStore
from fulfil.stop_signals import StopRequest
from fulfil.workflows.labels.results import LabelResult, LabelRun, LabelSettings, Listener, StopRun


@dataclass
class LabelContext:
    settings: LabelSettings
    client: CanadaPostClient
    store: ShipmentStore
    run: LabelRun
    on_result: Listener
    stop: StopRequest = field(default_factory=StopRequest)

    def report(self, result: LabelResult) -> None:
        self.run.results.append(result)
        self.on_result(result)

    def stop_if_asked(self) -> None:
        """Between orders: a stop signal ends the run here, with the order in flight finished."""
        if self.stop.requested:
            raise StopRun(self.stop.describe())
