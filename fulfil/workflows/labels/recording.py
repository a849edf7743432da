"""Recording what Canada Post sold: on the shipment, or, when the shipment already holds another
label, as a surplus label (paid for, never forgotten; one of them must be voided). A label on the
shipment keeps its price too: the answer's, or else the one fetched afterwards (price_fetch.py).

A purchase that succeeded is always recorded, even when another run took the claim over while it
was in flight (a paused machine, a Canada Post that completes late): on the shipment if it holds no
label yet, else in ``surplus_labels`` with the shipment parked in ``needs_review`` while it has not
been pushed to Best Buy.
"""

from __future__ import annotations

import psycopg

from fulfil.canadapost.prices import LabelPrice
from fulfil.canadapost.responses import ShipmentInfo
from fulfil.canadapost.schema import PDF_MEDIA_TYPE
from fulfil.label_costs import UnpricedLabel, record_price
from fulfil.shipments.states import ShipmentState
from fulfil.workflows.labels.context import LabelContext
from fulfil.workflows.labels.download import Downloads
from fulfil.workflows.labels.price_fetch import price_after_purchase
from fulfil.workflows.labels.results import ADOPTED, DOWNLOAD_FAILED, RETRYABLE, REVIEW, SKIPPED, LabelResult

# A shipment in these states has not been pushed to Best Buy: a second label parks it for review.
_NOT_PUSHED = (ShipmentState.LABEL_CREATED, ShipmentState.NEEDS_REVIEW)


def label_values(info: ShipmentInfo) -> dict[str, str | None]:
    """The columns a bought label is recorded in."""
    label = info.label_links[0] if info.label_links else None
    self_link = info.links.get("self")
    return {
        "tracking_pin": info.tracking_pin,
        "cp_shipment_id": info.shipment_id,
        "cp_self_url": self_link.href if self_link else None,
        "cp_label_url": label.href if label else None,
        "cp_label_media_type": (label.media_type if label else None) or PDF_MEDIA_TYPE,
        "cp_group_id": info.group_id,
    }


class Recorder:
    def __init__(self, ctx: LabelContext, downloads: Downloads) -> None:
        self.ctx = ctx
        self.downloads = downloads

    def adopt(
        self,
        shipment_id: int,
        order_id: str,
        info: ShipmentInfo,
        outcome: str,
        warnings: list[str],
        *,
        contract: bool,
        call_id: int | None = None,
        price: LabelPrice | None = None,
        price_problem: str | None = None,
    ) -> LabelResult:
        """Record a label Canada Post sold for this shipment (and its price, when the answer gave
        one), then fetch its PDF, and its price when the answer gave none (``price_problem``: why
        the answer's price could not be read, if it could not). ``contract``: the kind of label,
        which says where its price is."""
        store = self.ctx.store
        values = label_values(info)
        try:
            recorded = store.record_purchase(
                shipment_id,
                values,
                warnings=warnings,
                download_lease_seconds=self.ctx.settings.download_lease_seconds,
            )
            if not recorded:
                # Our claim was taken over while the purchase was in flight. It was paid for all
                # the same, so it is recorded, never dropped.
                taken_over = self._record_after_takeover(
                    shipment_id, order_id, info, values, call_id, warnings
                )
                if taken_over is not None:
                    return taken_over
        except psycopg.errors.UniqueViolation:
            message = (
                f"order {order_id}: Canada Post returned PIN {info.tracking_pin} "
                f"(shipment {info.shipment_id}), which another shipment already holds"
            )
            store.park_purchase(shipment_id, code="pin-conflict", error=message)
            return LabelResult(order_id, REVIEW, ShipmentState.NEEDS_REVIEW, error=message, warnings=warnings)
        if price is not None:
            # After the label: a price that cannot be kept (a crash here) leaves the label
            # recorded and its cost unknown, never the other way round.
            record_price(
                store.conn,
                shipment_id=shipment_id,
                order_id=order_id,
                tracking_pin=info.tracking_pin,
                cp_shipment_id=info.shipment_id,
                price=price,
                call_id=call_id,
            )
        result = LabelResult(
            order_id, outcome, ShipmentState.LABEL_CREATED, tracking_pin=info.tracking_pin, warnings=warnings
        )
        label = info.label_links[0] if info.label_links else None
        if label is None:
            result.error = "Canada Post's answer has no label link; the label must be fetched by hand"
        else:
            download = self.downloads.download(shipment_id, order_id, label.href, label.media_type)
            result.label_pdf_path = download.label_pdf_path
            if download.error:
                result.outcome = DOWNLOAD_FAILED
                result.error = download.error
        if price is None:
            # After the PDF, which the download lease taken with the label is for: the price is a
            # read of a label already bought, and what it finds (or not) is only a warning.
            unpriced = UnpricedLabel(
                shipment_id, order_id, info.tracking_pin, info.shipment_id, contract, bought_at=None
            )
            warning = price_after_purchase(self.ctx.client, store, unpriced, answer_problem=price_problem)
            if warning is not None:
                result.warnings.append(warning)
        return result

    def _record_after_takeover(
        self,
        shipment_id: int,
        order_id: str,
        info: ShipmentInfo,
        values: dict[str, str | None],
        call_id: int | None,
        warnings: list[str],
    ) -> LabelResult | None:
        """Where a purchase goes whose claim another run took over. None: it was recorded on the
        shipment (which held no label), carry on as for any purchase."""
        store = self.ctx.store
        with store.transaction():
            row = store.lock_label(shipment_id)
            if row["cp_shipment_id"] == info.shipment_id:
                # The other run found this very label at Canada Post and recorded it already.
                return LabelResult(
                    order_id,
                    ADOPTED,
                    row["status"],
                    tracking_pin=info.tracking_pin,
                    error=f"order {order_id}: the label was recorded by another fulfil run meanwhile",
                    warnings=warnings,
                )
            if row["cp_shipment_id"] is None and store.record_purchase_after_takeover(
                shipment_id, values, contract=self.ctx.client.contract
            ):
                return None
            extra = f"shipment {info.shipment_id} (PIN {info.tracking_pin})"
            pushed = row["status"] not in _NOT_PUSHED
            if row["cp_shipment_id"] is None:
                message = (
                    f"order {order_id}: Canada Post sold {extra} for this order after another run "
                    f"took it over, and the shipment is now {row['status']}: void {extra} at Canada Post"
                )
            else:
                held = f"shipment {row['cp_shipment_id']} (PIN {row['tracking_pin']})"
                message = (
                    f"order {order_id}: Canada Post sold two labels for this order: {held}, recorded on "
                    f"the shipment, and {extra}, bought by a run whose claim had been taken over. "
                    + (
                        f"The recorded one was already sent to Best Buy: void {extra} at Canada Post, then "
                        f"`fulfil labels keep {order_id} {row['cp_shipment_id']}`"
                        if pushed
                        else (
                            "Void one of them at Canada Post, then "
                            f"`fulfil labels keep {order_id} SHIPMENT_ID` with the one kept"
                        )
                    )
                )
            self.record_surplus(order_id, shipment_id, info, call_id, message)
            status = row["status"]
            if not pushed:
                store.park_two_labels(shipment_id, error=message)
                status = ShipmentState.NEEDS_REVIEW
        return LabelResult(
            order_id, REVIEW, status, tracking_pin=info.tracking_pin, error=message, warnings=warnings
        )

    def record_surplus(
        self, order_id: str, shipment_id: int, info: ShipmentInfo, call_id: int | None, reason: str
    ) -> None:
        values = label_values(info)
        self.ctx.store.record_surplus_label(
            order_id=order_id,
            shipment_id=shipment_id,
            cp_shipment_id=info.shipment_id,
            tracking_pin=info.tracking_pin,
            cp_self_url=values["cp_self_url"],
            cp_label_url=values["cp_label_url"],
            call_id=call_id,
            reason=reason,
        )

    def release_result(self, shipment_id: int, order_id: str, why: str) -> LabelResult:
        """Proven not bought: eligible to buy again."""
        message = f"order {order_id}: previous attempt {why}; eligible to buy"
        if not self.ctx.store.release_purchase(shipment_id, code="not-bought", error=message):
            return self.taken_over(shipment_id, order_id)
        return LabelResult(order_id, RETRYABLE, ShipmentState.LABEL_PENDING, error=message)

    def taken_over(self, shipment_id: int, order_id: str) -> LabelResult:
        row = self.ctx.store.shipment_result(shipment_id)
        message = (
            f"order {order_id}: another fulfil run took this shipment over (this run's lease had expired)"
        )
        return LabelResult(order_id, SKIPPED, row["status"] if row else None, error=message)

    def result_of_order(self, order_id: str, outcome: str) -> LabelResult:
        row = self.ctx.store.shipment_of_order(order_id)
        if row is None:
            return LabelResult(order_id, outcome)
        return LabelResult(
            order_id, outcome, row["status"], row["tracking_pin"], row["label_pdf_path"], row["last_error"]
        )
