"""What a label cost, when the answer that proved its purchase did not say: asked afterwards.

A contract label's price comes in its Create Shipment answer (fulfil asks with
``<provide-pricing-info>``). Every other label is recorded without one: a non-contract label (its
price is only on its card receipt), a contract label whose answer carried no price or one that
could not be read, a label adopted after a lost answer. Right after such a label is recorded (and
its PDF fetched), its price is read from Canada Post: the contract price document (Get Shipment
Price) or the non-contract receipt (Get Non-Contract Shipment Receipt), and kept in label_costs.

Those are reads of a label already bought. A failure there (a timeout, a 5xx, a document that
cannot be read) is a warning on the label's result naming the order and what was wrong: the label
stays recorded, is never bought again, and its price stays unknown until `fulfil labels prices`
(``PriceCatchUp``) fetches it. That command asks only for labels with no price on record, and
record_price keeps the first price of a label, so running it again (or two at once) changes
nothing already known.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fulfil.audit.outcome import FailureClass
from fulfil.canadapost.client import CanadaPostClient, CanadaPostUnavailable, FetchedPrice
from fulfil.canadapost.prices import LabelPrice, parse_shipment_price
from fulfil.canadapost.responses import ResponseFormatError
from fulfil.errors import ConfigError
from fulfil.label_costs import UnpricedLabel, labels_without_price, price_standing, record_price
from fulfil.shipments.states import ShipmentState
from fulfil.shipments.store import ShipmentStore
from fulfil.stop_signals import StopRequest
from fulfil.workflows.run_results import RunResults

# Outcomes of `fulfil labels prices`, one per label (or order asked for).
PRICED = "priced"
FAILED = "failed"
WOULD_FETCH = "would_fetch"
ALREADY_PRICED = "already_priced"
NOT_ELIGIBLE = "not_eligible"

# A failure that says Canada Post cannot take more calls now: the rest of the run waits.
_STOPS_THE_RUN = frozenset({FailureClass.NOT_SENT, FailureClass.RATE_LIMITED})


def document_name(*, contract: bool) -> str:
    """What the price is read from, for messages."""
    return "price document (Get Shipment Price)" if contract else "receipt"


def price_in_answer(body: bytes | str, *, contract: bool) -> tuple[LabelPrice | None, str | None]:
    """The price a Create Shipment answer carries, and why it could not be read if it could not.

    Only a contract answer can carry one: a non-contract answer never does (its price is on the
    receipt), so it is not looked for there rather than reported as unreadable.
    """
    if not contract:
        return None, None
    try:
        return parse_shipment_price(body), None
    except ResponseFormatError as exc:
        return None, str(exc)


def fetch_price(client: CanadaPostClient, store: ShipmentStore, label: UnpricedLabel) -> FetchedPrice:
    """Read the label's price from Canada Post and keep it. CanadaPostUnavailable when it cannot
    be had or read; refused credentials are a ConfigError."""
    fetched = client.label_price(label.order_id, label.cp_shipment_id, contract=label.contract)
    record_price(
        store.conn,
        shipment_id=label.shipment_id,
        order_id=label.order_id,
        tracking_pin=label.tracking_pin,
        cp_shipment_id=label.cp_shipment_id,
        price=fetched.price,
        call_id=fetched.call_id,
        bought_at=label.bought_at,
    )
    return fetched


def price_after_purchase(
    client: CanadaPostClient, store: ShipmentStore, label: UnpricedLabel, *, answer_problem: str | None
) -> str | None:
    """Fetch and keep the price of a label just recorded without one. None when it is kept; else
    the warning for the label's result (``answer_problem``: why the answer's own price could not
    be read, when that is why it is fetched)."""
    try:
        fetch_price(client, store, label)
        return None
    except (CanadaPostUnavailable, ConfigError) as exc:
        # Refused credentials too: the label is bought and recorded all the same, and the next
        # purchase, not this read, is where a refusal stops the run.
        problem = str(exc)
    answer = (
        f"the price in Canada Post's answer could not be read ({answer_problem}), and "
        if answer_problem
        else ""
    )
    return (
        f"order {label.order_id}: {answer}its {document_name(contract=label.contract)} could not be "
        f"fetched ({problem}): the label is recorded, its price unknown until `fulfil labels prices`"
    )


@dataclass
class PriceResult:
    order_id: str
    outcome: str
    tracking_pin: str | None = None
    document: str | None = None  # "price" or "receipt": where the price was (or is to be) read
    due: Decimal | None = None
    error: str | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "outcome": self.outcome,
            "tracking_pin": self.tracking_pin,
            "document": self.document,
            # Dollars as an exact decimal string ("31.58"), never a float.
            "due": str(self.due) if self.due is not None else None,
            "error": self.error,
        }


class PriceRun(RunResults[PriceResult]):
    # A price not fetched, or an order asked for whose price cannot be: exit 3.
    attention = frozenset({FAILED, NOT_ELIGIBLE})


class PriceCatchUp:
    """`fulfil labels prices`: fetch the price of every label that has none on record."""

    def __init__(
        self,
        *,
        database_url: str,
        client: CanadaPostClient | None,
        lease_owner: str,
        run_id: str | None = None,
        on_result: Callable[[PriceResult], None] | None = None,
        stop: StopRequest | None = None,
        keep_results: bool = True,
    ) -> None:
        self.database_url = database_url
        self.client = client
        self.owner = lease_owner
        self.run_id = run_id
        self.on_result = on_result or (lambda result: None)
        self.stop = stop or StopRequest()
        self.keep_results = keep_results

    @contextlib.contextmanager
    def _store(self) -> Iterator[ShipmentStore]:
        with ShipmentStore.open(
            self.database_url, owner=self.owner, run_id=self.run_id, purpose="labels-prices"
        ) as store:
            yield store

    def count(self, order_ids: list[str] | None) -> int:
        """How many labels a run would fetch a price for (for a progress bar)."""
        with self._store() as store:
            return len(labels_without_price(store.conn, order_ids))

    def prices(self, order_ids: list[str] | None = None) -> PriceRun:
        run = PriceRun(keep_results=self.keep_results)
        assert self.client is not None, "fetching prices needs a Canada Post client"
        with self._store() as store:
            labels = labels_without_price(store.conn, order_ids)
            for label in labels:
                if self.stop.requested:
                    run.stopped = self.stop.describe()
                    break
                try:
                    result = self._fetch(store, label)
                except ConfigError as exc:
                    run.fatal = exc
                    break
                except CanadaPostUnavailable as exc:
                    self._report(run, self._failed(label, exc))
                    if exc.failure in _STOPS_THE_RUN:
                        run.stopped = f"Canada Post cannot be asked now ({exc}); the other prices wait"
                        break
                    continue
                self._report(run, result)
            self._report_left_alone(run, store, order_ids, labels)
        return run

    def dry_run(self, order_ids: list[str] | None = None) -> PriceRun:
        """The labels a run would fetch a price for; no HTTP, no writes."""
        run = PriceRun(keep_results=self.keep_results)
        with self._store() as store:
            labels = labels_without_price(store.conn, order_ids)
            for label in labels:
                document = "price" if label.contract else "receipt"
                self._report(run, PriceResult(label.order_id, WOULD_FETCH, label.tracking_pin, document))
            self._report_left_alone(run, store, order_ids, labels)
        return run

    def _fetch(self, store: ShipmentStore, label: UnpricedLabel) -> PriceResult:
        assert self.client is not None
        fetched = fetch_price(self.client, store, label)
        return PriceResult(
            label.order_id, PRICED, label.tracking_pin, fetched.document, due=fetched.price.due
        )

    @staticmethod
    def _failed(label: UnpricedLabel, exc: CanadaPostUnavailable) -> PriceResult:
        message = (
            f"order {label.order_id}: the {document_name(contract=label.contract)} of its label "
            f"{label.tracking_pin} could not be fetched ({exc}); its price stays unknown"
        )
        document = "price" if label.contract else "receipt"
        return PriceResult(label.order_id, FAILED, label.tracking_pin, document, error=message)

    def _report(self, run: PriceRun, result: PriceResult) -> None:
        run.record(result)
        self.on_result(result)

    def _report_left_alone(
        self, run: PriceRun, store: ShipmentStore, order_ids: list[str] | None, labels: list[UnpricedLabel]
    ) -> None:
        """Say why an order asked for by id had no price to fetch, rather than stay silent."""
        if not order_ids:
            return
        seen = {label.order_id for label in labels}
        missing = [order_id for order_id in order_ids if order_id not in seen]
        if missing:
            for row in price_standing(store.conn, missing):
                self._report(run, _left_alone(row))


def _left_alone(row: dict[str, Any]) -> PriceResult:
    order_id, pin = row["order_id"], row["tracking_pin"]
    if row["due_amount"] is not None:
        return PriceResult(order_id, ALREADY_PRICED, pin, due=row["due_amount"])
    if pin is None:
        why = "has no label" if row["status"] is None else f"has no label ({row['status']})"
    elif row["status"] == ShipmentState.LABEL_VOIDED:
        why = f"had its label {pin} voided at Canada Post: it was not charged, so it has no price"
    else:
        why = f"has a label ({pin}) bought before fulfil, with no Canada Post shipment id on record"
    return PriceResult(order_id, NOT_ELIGIBLE, pin, error=f"order {order_id} {why}")
