"""What the label commands report for each order, the settings they run with, and how a run stops."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fulfil.config import CanadaPostSettings, ParcelSettings, SenderSettings
from fulfil.shipments.states import ShipmentState
from fulfil.workflows.run_results import RunResults

# Outcomes a result can report, besides a shipment status.
BOUGHT = "bought"
ADOPTED = "adopted"
FAILED = "failed"
PENDING = "pending"
REVIEW = ShipmentState.NEEDS_REVIEW.value
UNSETTLED = "unsettled"
DOWNLOADED = "downloaded"
DOWNLOAD_FAILED = "download_failed"
SKIPPED = "skipped"
WOULD_BUY = "would_buy"
RETRYABLE = "retryable"
NOT_ELIGIBLE = "not_eligible"
KEPT = "kept"

# Outcomes that need someone's attention (exit code 3).
ATTENTION = frozenset({FAILED, PENDING, REVIEW, UNSETTLED, DOWNLOAD_FAILED, NOT_ELIGIBLE})


@dataclass
class LabelResult:
    order_id: str
    outcome: str
    status: str | None = None
    tracking_pin: str | None = None
    label_pdf_path: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "outcome": self.outcome,
            "status": self.status,
            "tracking_pin": self.tracking_pin,
            "label_pdf_path": self.label_pdf_path,
            "error": self.error,
            "warnings": self.warnings,
        }


class LabelRun(RunResults[LabelResult]):
    attention = ATTENTION


Listener = Callable[[LabelResult], None]


@dataclass(frozen=True)
class LabelSettings:
    canadapost: CanadaPostSettings
    sender: SenderSettings
    parcel: ParcelSettings
    labels_dir: Path
    # How long a claim is held: the longest Create Shipment can take with all its attempts and
    # waits (audit.retry.lease_seconds).
    lease_seconds: float
    # The overall deadline of one call, for api_calls rows written before deadline_at existed.
    deadline: float
    # How long after an attempt's deadline Canada Post is given to make a purchase it received
    # visible, before its absence proves nothing was bought (audit.retry.settle_seconds).
    settle_allowance: float
    # How long a label's download is this run's alone: one fetch with all its attempts and waits.
    download_lease_seconds: float = 120.0


class StopRun(Exception):
    """Canada Post cannot take more work now (throttled, unreachable, a stop signal); the rest waits."""
