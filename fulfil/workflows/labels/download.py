"""Label PDFs: fetched once a label is bought, and again whenever the file is missing or changed.

A failed download never loses the purchase: the shipment stays label_created without a file
(``download_failed``, with the reason) until ``fulfil labels download`` fetches it. Canada Post's
202 ("not ready yet") and answers that are not a whole PDF are asked again by the client's retry
policy (canadapost.client.RETRY_LABEL_FETCH), with what waiting can cure; an answer too large or
refused is not asked again.
"""

from __future__ import annotations

from typing import Any

from fulfil.audit.outcome import HttpOutcome
from fulfil.canadapost.client import interpret_error
from fulfil.label_files import file_matches, write_label
from fulfil.runs import owner_is_dead
from fulfil.shipments.states import ShipmentState
from fulfil.workflows.labels.context import LabelContext
from fulfil.workflows.labels.results import DOWNLOAD_FAILED, DOWNLOADED, LabelResult


class Downloads:
    def __init__(self, ctx: LabelContext) -> None:
        self.ctx = ctx

    def download_all(self, order_ids: list[str] | None) -> None:
        """Every bought label without its file, each claimed (leased) while it is fetched so no
        other run or worker fetches it too. A label whose download failed in this run waits for
        the next one."""
        ctx = self.ctx
        dead = [owner for owner in ctx.store.owners_of_open_shipments() if owner_is_dead(owner)]
        while not ctx.halted:
            ctx.stop_if_asked()
            row = ctx.store.claim_next_download(
                lease_seconds=ctx.settings.download_lease_seconds,
                dead_owners=dead,
                order_ids=order_ids,
                skip=ctx.failed_downloads.snapshot(),
            )
            if row is None:
                return
            self._fetch(row)

    def verify_files(self, order_ids: list[str] | None) -> None:
        """Every label whose file is missing, gone or changed on disk, fetched again (``labels
        download``, after the claimed downloads; one that failed in this run is not asked again)."""
        failed = set(self.ctx.failed_downloads.snapshot())
        for row in self.ctx.store.bought_labels(order_ids):
            self.ctx.stop_if_asked()
            if row["shipment_id"] in failed:
                continue
            if not file_matches(row["label_pdf_path"], row["label_pdf_sha256"]):
                self._fetch(row)

    def _fetch(self, row: dict[str, Any]) -> None:
        ctx = self.ctx
        if not row["cp_api_label_url"]:
            message = f"order {row['order_id']}: no label link recorded; fetch it from Canada Post by hand"
            ctx.store.record_download_failed(row["shipment_id"], error=message)
            ctx.failed_downloads.add(row["shipment_id"])
            ctx.report(LabelResult(row["order_id"], DOWNLOAD_FAILED, error=message))
            return
        result = self.download(
            row["shipment_id"], row["order_id"], row["cp_api_label_url"], row["cp_label_media_type"]
        )
        result.tracking_pin = row["tracking_pin"]
        ctx.report(result)

    def download(self, shipment_id: int, order_id: str, href: str, media_type: str | None) -> LabelResult:
        ctx = self.ctx
        # One call: the client asks again while the label is not ready (202) or not whole.
        outcome = ctx.client.fetch_label(order_id, href, media_type)
        error = label_problem(outcome)
        if not error:
            try:
                saved = write_label(
                    ctx.settings.labels_dir, order_id, outcome.body, ctx.store.parcel_of(shipment_id)
                )
            except OSError as exc:
                # The label is bought and recorded; only its file is missing. The run goes on.
                error = f"the PDF could not be written to {ctx.settings.labels_dir}: {exc.strerror or exc}"
            else:
                ctx.store.record_label_file(
                    shipment_id, path=str(saved.path), sha256=saved.sha256, size=saved.size
                )
                return LabelResult(
                    order_id, DOWNLOADED, ShipmentState.LABEL_CREATED, label_pdf_path=str(saved.path)
                )
        message = (
            f"order {order_id}: label not downloaded: {error}; `fulfil labels download` fetches it later"
        )
        ctx.store.record_download_failed(shipment_id, error=message)
        # Tried once in this run: it waits for the next run (or `labels download`).
        ctx.failed_downloads.add(shipment_id)
        return LabelResult(order_id, DOWNLOAD_FAILED, ShipmentState.LABEL_CREATED, error=message)


def label_problem(outcome: HttpOutcome) -> str:
    """Why an answer to Get Artifact is not a label PDF to save ("" when it is one: the client
    checked it, canadapost.client.label_pdf)."""
    if outcome.failure is None:
        return ""
    if outcome.status_code == 404:
        return "Canada Post no longer has it (404: link older than 90 days, or the label was voided)"
    return interpret_error(outcome).description
