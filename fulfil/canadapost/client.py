"""Canada Post's endpoints, as fulfil calls them: through the audited HTTP layer, never directly.

The client sends and reads; it decides nothing about shipments. What an answer means for an
order (bought, refused, unknown) is the label workflow's business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fulfil.audit.log import SendGuard
from fulfil.audit.outcome import FailureClass, HttpOutcome
from fulfil.audit.retry import RetryPolicy
from fulfil.audit.sender import AuditedHttp
from fulfil.canadapost.prices import LabelPrice, parse_price_document, parse_receipt
from fulfil.canadapost.refund_request import build_refund_request
from fulfil.canadapost.responses import (
    ErrorKind,
    Link,
    RefundTicket,
    ResponseFormatError,
    ShipmentDetails,
    ShipmentInfo,
    classify_error,
    messages_in,
    parse_refund_request_info,
    parse_shipment_details,
    parse_shipment_info,
    parse_shipment_links,
    stored_link,
)
from fulfil.canadapost.schema import (
    NCSHIPMENT_MEDIA_TYPE,
    PDF_MEDIA_TYPE,
    RATE_MEDIA_TYPE,
    SHIPMENT_MEDIA_TYPE,
    TRACK_MEDIA_TYPE,
)
from fulfil.canadapost.shipment_request import ShipmentRequest
from fulfil.config import CanadaPostSettings
from fulfil.errors import ConfigError
from fulfil.label_files import looks_like_pdf

T = TypeVar("T")

SERVICE = "CanadaPost"
EASTERN = ZoneInfo("America/Toronto")

# A connection refused or a connect timeout provably sent nothing: trying again cannot buy twice.
# A purchase is sent again only when it provably was not performed: it never reached Canada Post,
# or Canada Post's gateway refused it ("Rejected by SLM Monitor": the next attempt waits for the
# group's pause to end, which every process then shares).
RETRY_NOT_SENT = RetryPolicy(
    max_attempts=3,
    retry_on=frozenset({FailureClass.NOT_SENT, FailureClass.RATE_LIMITED}),
    backoff_base=1.0,
)
# Reads change nothing, so anything but a definitive answer is worth another try.
RETRY_READS = RetryPolicy(
    max_attempts=3,
    retry_on=frozenset({FailureClass.NOT_SENT, FailureClass.INDETERMINATE, FailureClass.RATE_LIMITED}),
    backoff_base=1.0,
)


# A label not rendered yet (202) or an answer that is not a complete PDF is asked for again, with
# the waits growing (1, 2, 4 s); a label still not ready after that is fetched by the next run.
RETRY_LABEL_FETCH = RetryPolicy(
    max_attempts=4,
    retry_on=frozenset({FailureClass.NOT_SENT, FailureClass.INDETERMINATE, FailureClass.RATE_LIMITED}),
    backoff_base=1.0,
)


def label_pdf(status: int, headers: Mapping[str, str], body: bytes) -> str | None:
    """Get Artifact answers 200 with the PDF; anything else in 2xx is not the label (yet)."""
    if status == 202:
        return "Canada Post has not finished the label yet (202)"
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    media = content_type.split(";")[0].strip().lower()
    if media != PDF_MEDIA_TYPE:
        return f"expected a PDF, got {media or 'no content type'}"
    if not looks_like_pdf(body):
        return "the answer is not a complete PDF"
    return None


class CanadaPostUnavailable(Exception):
    """A look-up could not be completed; nothing can be concluded from it."""

    def __init__(self, message: str, failure: FailureClass | None = None) -> None:
        super().__init__(message)
        # How the call failed (None: it was answered, and the answer could not be used): a caller
        # with more to do stops when nothing could be sent (unreachable) or Canada Post throttles.
        self.failure = failure


class UnusableLink(Exception):
    """A shipment's recorded link that the credentials will not follow (another host, say):
    nothing is sent to it."""


@dataclass(frozen=True)
class ShipmentStanding:
    """What Canada Post holds for a label now: read to settle a void or refund whose answer is
    unknown, or an answer (404) that does not say by itself whether the label is gone."""

    exists: bool
    status: str | None = None  # contract: "created", "transmitted" …; None when not read
    tracking_pin: str | None = None
    refund: RefundTicket | None = None  # a refund was requested: its service ticket
    # How Canada Post was read, for messages ("its details", "its PIN listed at …").
    seen: str = ""


def shipment_link(
    settings: CanadaPostSettings, *, contract: bool, self_url: str | None, shipment_id: str | None
) -> str:
    """A shipment's own URL (void: DELETE it; details and refund: below it): the self link
    recorded from Canada Post's answer, checked again as answers' links are (on the configured
    host, or the credentials would go elsewhere); for a label recorded without one, built from the
    configured host and the shipment id as Canada Post's links are. UnusableLink otherwise."""
    if self_url:
        try:
            return stored_link("the shipment's self link", self_url, link_origin=settings.base_url)
        except ResponseFormatError as exc:
            raise UnusableLink(str(exc)) from None
    if not shipment_id:
        raise UnusableLink("no Canada Post shipment id or link is recorded for the label")
    number = settings.customer_number
    base = (
        f"{settings.base_url}/rs/{number}/{number}/shipment"
        if contract
        else f"{settings.base_url}/rs/{number}/ncshipment"
    )
    return f"{base}/{quote(shipment_id, safe='')}"


@dataclass(frozen=True)
class FetchedPrice:
    """A label's price as Get Shipment Price or the non-contract receipt gave it, and the call."""

    price: LabelPrice
    call_id: int | None
    document: str  # "price" (contract) or "receipt" (non-contract)


@dataclass(frozen=True)
class CanadaPostError:
    kind: ErrorKind
    code: str | None
    description: str

    def __str__(self) -> str:
        return f"{self.code}: {self.description}" if self.code else self.description


def interpret_error(outcome: HttpOutcome) -> CanadaPostError:
    """Canada Post's own words for a failed call, with what kind of failure it is."""
    messages = messages_in(outcome.body) if outcome.body else None
    kind = classify_error(outcome.status_code, messages)
    if messages:
        first = messages[0]
        text = "; ".join(f"{m.code} {m.description}".strip() for m in messages)
        return CanadaPostError(kind, first.code or None, f"Canada Post {outcome.describe()}: {text}")
    body = " ".join(outcome.text.split())[:200] if outcome.body else ""
    detail = f": {body}" if body and outcome.content_type not in ("text/html",) else ""
    if outcome.content_type == "text/html":
        detail = " (an HTML error page, not Canada Post's XML)"
    return CanadaPostError(kind, None, f"Canada Post {outcome.describe()}{detail}")


def auth_error(error: CanadaPostError) -> ConfigError:
    return ConfigError(
        f"Canada Post refused the credentials ({error.description}); check FULFIL_CANADAPOST_USERNAME, "
        "FULFIL_CANADAPOST_PASSWORD, FULFIL_CANADAPOST_CUSTOMER_NUMBER and that the key matches "
        "FULFIL_CANADAPOST_ENV (development keys only work in development)"
    )


class CanadaPostClient:
    def __init__(self, settings: CanadaPostSettings, http: AuditedHttp) -> None:
        self.settings = settings
        self.http = http
        number = settings.customer_number
        self._contract_base = f"{settings.base_url}/rs/{number}/{number}/shipment"
        self._noncontract_base = f"{settings.base_url}/rs/{number}/ncshipment"

    @property
    def contract(self) -> bool:
        return self.settings.contract

    def _headers(self, media_type: str, *, body: bool = False) -> dict[str, str]:
        headers = {"Accept": media_type, "Accept-language": "en-CA"}
        if body:
            headers["Content-Type"] = media_type
        return headers

    # --- buying ---------------------------------------------------------------------------

    def create_shipment(
        self, order_id: str, request: ShipmentRequest, *, guard: SendGuard | None = None
    ) -> HttpOutcome:
        """POST Create Shipment. ``guard`` runs in the transaction that records each attempt:
        an attempt whose claim was taken over is never sent (``LeaseLost``)."""
        url = self._contract_base if request.contract else self._noncontract_base
        return self.http.send(
            "POST",
            url,
            endpoint="CreateShipment" if request.contract else "CreateNCShipment",
            related_id=order_id,
            headers=self._headers(request.media_type, body=True),
            data=request.xml,
            retry=RETRY_NOT_SENT,
            guard=guard,
        )

    def shipment_info_of(self, body: bytes | str) -> ShipmentInfo:
        """A Create/Get Shipment answer, checked (PIN, ids, links on Canada Post's own host)."""
        return parse_shipment_info(body, link_origin=self.http.origin)

    # --- finding a purchase whose answer was lost ------------------------------------------

    def find_contract_shipments(self, order_id: str, request_id: str) -> list[ShipmentInfo]:
        """Every live shipment Canada Post holds under this customer-request-id."""
        outcome = self._read(
            "GET",
            self._contract_base,
            endpoint="GetShipments",
            order_id=order_id,
            media_type=SHIPMENT_MEDIA_TYPE,
            params={"requestId": request_id},
        )
        links = self._parse(self._links_of, outcome)
        return [
            self.shipment_info(order_id, link, SHIPMENT_MEDIA_TYPE)
            for link in links
            if link.rel == "shipment"
        ]

    def list_noncontract_shipments(self, order_id: str, start: datetime, end: datetime) -> list[Link]:
        """The non-contract shipments created between ``start`` and ``end`` (Canada Post lists by
        creation time in Eastern time, to the minute)."""
        outcome = self._read(
            "GET",
            self._noncontract_base,
            endpoint="GetNCShipments",
            order_id=order_id,
            media_type=NCSHIPMENT_MEDIA_TYPE,
            params={
                "from": start.astimezone(EASTERN).strftime("%Y%m%d%H%M"),
                "to": end.astimezone(EASTERN).strftime("%Y%m%d%H%M"),
            },
        )
        return self._parse(self._links_of, outcome)

    def noncontract_details(self, order_id: str, link: Link) -> ShipmentDetails:
        outcome = self._read(
            "GET",
            f"{link.href.rstrip('/')}/details",
            endpoint="GetNCShipmentDetails",
            order_id=order_id,
            media_type=link.media_type or NCSHIPMENT_MEDIA_TYPE,
        )
        return self._parse(parse_shipment_details, outcome)

    def shipment_info(self, order_id: str, link: Link, default_media_type: str) -> ShipmentInfo:
        outcome = self._read(
            "GET",
            link.href,
            endpoint="GetShipment" if default_media_type == SHIPMENT_MEDIA_TYPE else "GetNCShipment",
            order_id=order_id,
            media_type=link.media_type or default_media_type,
        )
        return self._parse(self.shipment_info_of, outcome)

    # --- what a label cost (throttle group A) ---------------------------------------------------

    def label_price(self, order_id: str, shipment_id: str, *, contract: bool) -> FetchedPrice:
        """GET what a label cost: a contract label's price document (``<shipment-price>``), a
        non-contract label's receipt (``<non-contract-shipment-receipt>``). CanadaPostUnavailable
        when it cannot be had or read; refused credentials are a ConfigError.

        The URL is built from the configured base URL and customer number, as Canada Post's own
        rel="price" and rel="receipt" links are, and never taken from an answer: the credentials
        go to the configured host only, and a label recorded without those links (every label
        bought before fulfil fetched prices) is priced the same way.
        """
        label = quote(shipment_id, safe="")
        if contract:
            url, media, document = f"{self._contract_base}/{label}/price", SHIPMENT_MEDIA_TYPE, "price"
        else:
            url, media, document = (
                f"{self._noncontract_base}/{label}/receipt",
                NCSHIPMENT_MEDIA_TYPE,
                "receipt",
            )
        outcome = self._read(
            "GET",
            url,
            endpoint="GetShipmentPrice" if contract else "GetNCShipmentReceipt",
            order_id=order_id,
            media_type=media,
        )
        parse = parse_price_document if contract else parse_receipt
        return FetchedPrice(self._parse(parse, outcome), outcome.call_id, document)

    # --- voids and refunds (throttle group B) -----------------------------------------------

    def void_shipment(self, order_id: str, link: str, *, guard: SendGuard | None = None) -> HttpOutcome:
        """DELETE a contract shipment's self link: 204 voided; 400 with 8064 once transmitted (a
        refund is the way out); 404 with an empty ``<messages/>`` for a shipment Canada Post does
        not have (voided already, or never at this link). ``guard`` as for Create Shipment."""
        return self.http.send(
            "DELETE",
            link,
            endpoint="VoidShipment",
            related_id=order_id,
            headers=self._headers(SHIPMENT_MEDIA_TYPE),
            retry=RETRY_NOT_SENT,
            guard=guard,
        )

    def refund_shipment(
        self, order_id: str, link: str, *, contract: bool, email: str, guard: SendGuard | None = None
    ) -> HttpOutcome:
        """POST a refund request below the shipment's link: 200 with the service ticket; 409 with
        7292 when one was requested already."""
        request = build_refund_request(email, contract=contract)
        return self.http.send(
            "POST",
            f"{link.rstrip('/')}/refund",
            endpoint="RefundShipment" if contract else "RefundNCShipment",
            related_id=order_id,
            headers=self._headers(request.media_type, body=True),
            data=request.xml,
            retry=RETRY_NOT_SENT,
            guard=guard,
        )

    @staticmethod
    def refund_ticket_of(body: bytes | str) -> RefundTicket:
        """A refund request's answer, checked (the ticket's id and date)."""
        return parse_refund_request_info(body)

    def shipment_standing(self, order_id: str, link: str, pin: str, *, contract: bool) -> ShipmentStanding:
        """Whether Canada Post still holds the label, and what it shows (status, refund request).
        Its details first; at a 404, Canada Post's search by tracking PIN, so a label is gone only
        when neither its link nor its PIN finds it (a 404 alone may be a link that is wrong, not a
        shipment that is gone). CanadaPostUnavailable when it cannot be told."""
        media = SHIPMENT_MEDIA_TYPE if contract else NCSHIPMENT_MEDIA_TYPE
        endpoint = "GetShipmentDetails" if contract else "GetNCShipmentDetails"
        outcome = self.http.send(
            "GET",
            f"{link.rstrip('/')}/details",
            endpoint=endpoint,
            related_id=order_id,
            headers=self._headers(media),
            retry=RETRY_READS,
        )
        if outcome.ok:
            details = self._parse(parse_shipment_details, outcome)
            return ShipmentStanding(
                True, details.status, details.tracking_pin, details.refund_request, "its details"
            )
        if outcome.status_code != 404:
            raise self._unavailable(outcome, endpoint, order_id)
        search = self._read(
            "GET",
            self._contract_base if contract else self._noncontract_base,
            endpoint="GetShipments" if contract else "GetNCShipments",
            order_id=order_id,
            media_type=media,
            params={"trackingPIN": pin},
        )
        listed = self._parse(self._links_of, search)
        if not listed:
            return ShipmentStanding(
                False, seen=f"no details at its link, and no shipment listed under PIN {pin}"
            )
        return ShipmentStanding(True, tracking_pin=pin, seen=f"its PIN {pin} listed at {listed[0].href}")

    # --- tracking ------------------------------------------------------------------------

    def tracking_detail(self, order_id: str, pin: str) -> HttpOutcome:
        """GET Tracking Details for a PIN (throttle group E). The outcome as it came: the caller
        tells an answer (parse_tracking_detail) from error 004 (no_pin_history) and a failure."""
        return self.http.send(
            "GET",
            f"{self.settings.base_url}/vis/track/pin/{quote(pin, safe='')}/detail",
            endpoint="TrackingDetail",
            related_id=order_id,
            headers=self._headers(TRACK_MEDIA_TYPE),
            retry=RETRY_READS,
        )

    # --- rate quotes (throttle group D) -------------------------------------------------------

    def get_rates(self, related_id: str, body: bytes) -> HttpOutcome:
        """POST Get Rates with a ``<mailing-scenario>`` (``build_rates_request``). The outcome as it
        came: the caller reads an answer with parse_price_quotes and a failure with interpret_error.

        A quote buys nothing and changes nothing at Canada Post, so it is retried like the reads,
        even after an answer that may have been lost (a POST here is only how the body travels).
        """
        return self.http.send(
            "POST",
            f"{self.settings.base_url}/rs/ship/price",
            endpoint="GetRates",
            related_id=related_id,
            headers=self._headers(RATE_MEDIA_TYPE, body=True),
            data=body,
            retry=RETRY_READS,
        )

    def _links_of(self, body: bytes) -> list[Link]:
        return parse_shipment_links(body, link_origin=self.http.origin)

    def _read(
        self,
        method: str,
        url: str,
        *,
        endpoint: str,
        order_id: str,
        media_type: str,
        params: dict[str, str] | None = None,
    ) -> HttpOutcome:
        outcome = self.http.send(
            method,
            url,
            endpoint=endpoint,
            related_id=order_id,
            headers=self._headers(media_type),
            params=params,
            retry=RETRY_READS,
        )
        if outcome.ok:
            return outcome
        raise self._unavailable(outcome, endpoint, order_id)

    @staticmethod
    def _unavailable(outcome: HttpOutcome, endpoint: str, order_id: str) -> CanadaPostUnavailable:
        """A failed read, as the exception to raise (refused credentials stop the run instead)."""
        error = interpret_error(outcome)
        if error.kind is ErrorKind.AUTH:
            raise auth_error(error)
        return CanadaPostUnavailable(f"{endpoint} for order {order_id}: {error.description}", outcome.failure)

    @staticmethod
    def _parse(parser: Callable[[bytes], T], outcome: HttpOutcome) -> T:
        try:
            return parser(outcome.body)
        except ResponseFormatError as exc:
            raise CanadaPostUnavailable(f"unusable answer from Canada Post ({outcome.url}): {exc}") from None

    def probe(self, since: datetime) -> HttpOutcome:
        """A cheap authenticated read that changes nothing: a credentials check."""
        if self.contract:
            return self.http.send(
                "GET",
                self._contract_base,
                endpoint="GetShipments",
                headers=self._headers(SHIPMENT_MEDIA_TYPE),
                params={"requestId": "fulfil-config-check"},
            )
        start = since.astimezone(EASTERN).strftime("%Y%m%d%H%M")
        return self.http.send(
            "GET",
            self._noncontract_base,
            endpoint="GetNCShipments",
            headers=self._headers(NCSHIPMENT_MEDIA_TYPE),
            params={"from": start},
        )

    # --- the label ------------------------------------------------------------------------

    def fetch_label(self, order_id: str, href: str, media_type: str | None) -> HttpOutcome:
        return self.http.send(
            "GET",
            href,
            endpoint="GetArtifact",
            related_id=order_id,
            headers={"Accept": media_type or PDF_MEDIA_TYPE},
            retry=RETRY_LABEL_FETCH,
            expect=label_pdf,
        )
