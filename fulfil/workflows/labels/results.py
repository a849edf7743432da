"""What the label commands report for each order, the settings they run with, and how a run stops."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fulfil.config import CanadaPostSettings, ParcelSettings, SenderSettings
from fulfil.manifest_settings import ManifestMode, check_manifest_mode
from fulfil.service_rules import ShippingRules
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
    # Which parcel of an order split into several the label is for ("2/3"), or None.
    parcel: str | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "outcome": self.outcome,
            "status": self.status,
            "tracking_pin": self.tracking_pin,
            "label_pdf_path": self.label_pdf_path,
            "error": self.error,
            "warnings": self.warnings,
            "parcel": self.parcel,
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
    # FULFIL_CANADAPOST_MANIFEST: end_of_day buys each contract label into its day's group
    # (fulfil.services passes fulfil.manifest_settings.manifest_mode(settings)).
    manifest_mode: ManifestMode = ManifestMode.AUTO
    # The seller's [[service_rules]] and [[option_rules]] (fulfil.service_rules); none: every label
    # is bought with the configured service and no options.
    rules: ShippingRules = field(default_factory=ShippingRules)

    def __post_init__(self) -> None:
        check_manifest_mode(self.manifest_mode, contract=self.canadapost.contract)

    def group_id(self, started_at: datetime | None) -> str | None:
        """The group a contract label whose purchase started at ``started_at`` is bought into:
        its Canada Post day's (fulfil.canadapost.groups.day_group_id) in end_of_day mode, so
        the day of its ``purchase_started_at`` names its group; None (transmitted when bought)
        otherwise."""
        if self.manifest_mode is not ManifestMode.END_OF_DAY or not self.canadapost.contract:
            return None
        from fulfil.canadapost.groups import canada_post_day, day_group_id

        return day_group_id(canada_post_day(started_at))


class StopRun(Exception):
    """Canada Post cannot take more work now (throttled, unreachable, a stop signal); the rest waits."""
