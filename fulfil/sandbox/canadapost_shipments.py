"""What contract and non-contract shipments share: buying a label records a ``Shipment``, refunds.

``ContractShipments`` and ``NonContractShipments`` extend this class with their endpoints, and
``CanadaPostService`` combines both, so every handler sees the same configuration, state, faults,
schemas, clock and throttle. Like the real service, creating a shipment is not idempotent: the
same request twice buys two labels.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from lxml import etree

from fulfil.sandbox.canadapost_documents import SHIPMENT_NS, Links, refund_info
from fulfil.sandbox.canadapost_requests import (
    CanadaPostError,
    accepted_media,
    check_content_type,
    check_fields,
    parse_body,
    party,
)
from fulfil.sandbox.config import SandboxConfig
from fulfil.sandbox.faults import FaultPlan
from fulfil.sandbox.state import SandboxState, Shipment
from fulfil.sandbox.throttle import Throttle
from fulfil.sandbox.wire import ApiRequest, ApiResponse
from fulfil.sandbox.xsd import OfficialSchemas
from fulfil.xml_parsing import child, child_text, find_path

EASTERN = ZoneInfo("America/Toronto")
REFUND_REPEATED_TEXT = (
    "A refund has already been requested for this shipment. "
    "Note that refund requests may take a few days to be processed."
)


class CanadaPostShipments:
    service = "canadapost"

    def __init__(
        self,
        config: SandboxConfig,
        state: SandboxState,
        faults: FaultPlan,
        schemas: OfficialSchemas | None,
        clock: Callable[[], float],
        throttle: Throttle,
    ) -> None:
        self.config = config
        self.faults = faults
        self.state = state
        self.schemas = schemas
        self.clock = clock
        self.throttle = throttle
        self.padded_customer = config.customer_number.zfill(10)

    def _links(self, request: ApiRequest) -> Links:
        return Links(request.base_url, self.padded_customer)

    def _eastern_now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), EASTERN)

    def _request_body(
        self, request: ApiRequest, namespace: str, root_name: str, media: str
    ) -> etree._Element:
        """A body sent with the right Content-Type, well formed and valid against the schemas."""
        check_content_type(request, media)
        return parse_body(request, namespace, root_name, media, self.schemas)

    def _buy_label(
        self, request: ApiRequest, namespace: str, root_name: str, media: str
    ) -> tuple[etree._Element, Shipment]:
        """A Create Shipment request checked in full, and the shipment it buys recorded."""
        accepted_media(request, (media,))
        root = self._request_body(request, namespace, root_name, media)
        check_fields(request, root, media)
        return root, self._new_shipment(root, request.body, contract=namespace == SHIPMENT_NS)

    def _new_shipment(self, root: etree._Element, body: bytes, *, contract: bool) -> Shipment:
        spec = child(root, "delivery-spec")
        assert spec is not None  # the schema check guarantees it
        references = child(spec, "references")
        group_id = child_text(root, "group-id") if contract else None
        encoding = find_path(spec, "print-preferences", "encoding")
        output_format = find_path(spec, "print-preferences", "output-format")
        with self.state.lock:
            while True:
                pin = self.state.digits(16 if contract else 12)
                if not self.state.pin_taken(pin):
                    break
            shipment = Shipment(
                shipment_id=self.state.digits(18),
                tracking_pin=pin,
                contract=contract,
                status="created" if group_id else "transmitted",
                created_at=self.clock(),
                request_xml=body,
                label_key=self.state.hex_token(16),
                artifact_id=self.state.digits(11),
                service_code=child_text(spec, "service-code") or "",
                output_format=(output_format.text or "").strip() if output_format is not None else "8.5x11",
                encoding=(encoding.text or "PDF").strip() if encoding is not None else "PDF",
                sender=party(child(spec, "sender")),
                destination=party(child(spec, "destination")),
                customer_request_id=child_text(root, "customer-request-id") if contract else None,
                customer_ref_1=child_text(references, "customer-ref-1") if references is not None else None,
                customer_ref_2=child_text(references, "customer-ref-2") if references is not None else None,
                group_id=group_id,
            )
            self.state.add_shipment(shipment)
        return shipment

    def _refund(self, request: ApiRequest, shipment: Shipment, namespace: str, media: str) -> ApiResponse:
        """A refund request gets one service ticket; asking again is refused with 7292."""
        accepted_media(request, (media,))
        root_name = (
            "shipment-refund-request" if namespace == SHIPMENT_NS else "non-contract-shipment-refund-request"
        )
        self._request_body(request, namespace, root_name, media)
        with self.state.lock:
            if shipment.refund_ticket is not None:
                raise CanadaPostError(409, [("7292", REFUND_REPEATED_TEXT)], media)
            ticket = (self.state.digits(10), self._eastern_now().date().isoformat())
            shipment.refund_ticket = ticket
        return ApiResponse(200, refund_info(namespace, root_name + "-info", ticket), media)
