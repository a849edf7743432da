"""Finding non-contract purchases whose answer was lost, at the cost of one listing per run.

Non-contract shipments carry no request id: the only way to find one is Canada Post's listing of
the shipments created in a time window, then each listed shipment's details, matched on
customer-ref-1 (our order id). Done per purchase, a run with many unsettled purchases reads the
details of every shipment in the window once per purchase. Here the listing is read once and
reused while it is fresh enough for the question asked, and each shipment's details (which never
change) are read at most once per run, so every unsettled purchase is matched against one index.

Freshness is on the database's clock, the one the settle window is computed on: a listing proves
a purchase is absent only if it was read after that purchase's settle point, and can only show a
purchase that had started before it was read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fulfil.canadapost.client import CanadaPostClient
from fulfil.canadapost.responses import Link, ShipmentDetails, ShipmentInfo
from fulfil.canadapost.schema import NCSHIPMENT_MEDIA_TYPE

# The listing is by creation time to the minute in Eastern time; the window is widened on both
# sides so clock differences between us and Canada Post cannot hide a shipment.
WINDOW_BEFORE = timedelta(minutes=5)
WINDOW_AFTER = timedelta(minutes=2)


@dataclass(frozen=True)
class _Listing:
    start: datetime
    read_at: datetime  # database clock, just before the listing was asked for
    links: tuple[Link, ...]


class NonContractIndex:
    """One run's view of the non-contract shipments Canada Post holds in a time window."""

    def __init__(self, client: CanadaPostClient, database_now: Callable[[], datetime]) -> None:
        self.client = client
        self.database_now = database_now
        self._listing: _Listing | None = None
        self._details: dict[str, ShipmentDetails] = {}
        self._infos: dict[str, ShipmentInfo] = {}
        self.listings_read = 0

    def find(
        self, order_id: str, since: datetime, *, listed_after: datetime, parcel_reference: str | None = None
    ) -> tuple[list[ShipmentInfo], datetime]:
        """The shipments whose customer-ref-1 is ``order_id``, created from ``since`` on, from a
        listing read after ``listed_after``; also returns when that listing was read. With
        ``parcel_reference`` (one parcel of a split order, "2/3"), only those whose customer-ref-2
        is that parcel's: its order's other parcels are other purchases."""
        listing = self._listing_for(order_id, since - WINDOW_BEFORE, listed_after)
        found: list[ShipmentInfo] = []
        for link in listing.links:
            details = self._details.get(link.href)
            if details is None:
                details = self.client.noncontract_details(order_id, link)
                self._details[link.href] = details
            if details.customer_ref_1 != order_id:
                continue
            if parcel_reference is not None and details.customer_ref_2 != parcel_reference:
                continue
            info = self._infos.get(link.href)
            if info is None:
                info = self.client.shipment_info(order_id, link, NCSHIPMENT_MEDIA_TYPE)
                self._infos[link.href] = info
            found.append(info)
        return found, listing.read_at

    def _listing_for(self, order_id: str, start: datetime, listed_after: datetime) -> _Listing:
        current = self._listing
        if current is not None and current.start <= start and current.read_at >= listed_after:
            return current
        if current is not None:
            start = min(start, current.start)
        read_at = self.database_now()
        links = self.client.list_noncontract_shipments(order_id, start, read_at + WINDOW_AFTER)
        self.listings_read += 1
        self._listing = _Listing(start, read_at, tuple(links))
        return self._listing
