"""Contract shipments (``/rs/{mailed-by}/{mobo}/shipment``): create, search, get, details, price,
void, refund.

A shipment with a ``group-id`` is ``created`` (it waits for a manifest); one without is
``transmitted`` at once. Voiding works until a shipment is transmitted (``8064`` afterwards, when a
refund is the way out); a voided shipment is gone for every later call (404, empty ``<messages>``).
"""

from __future__ import annotations

from collections.abc import Callable

from fulfil.sandbox.canadapost_documents import (
    SHIPMENT_MEDIA,
    SHIPMENT_NS,
    shipment_details,
    shipment_info,
    shipment_list,
    shipment_price,
)
from fulfil.sandbox.canadapost_requests import CanadaPostError, accepted_media, field_error
from fulfil.sandbox.canadapost_shipments import CanadaPostShipments
from fulfil.sandbox.state import SandboxState, Shipment
from fulfil.sandbox.wire import ApiRequest, ApiResponse
from fulfil.xml_parsing import child

VOID_TRANSMITTED_TEXT = (
    "A Shipment can only be void if it is in a PROCESSED or PRINTED state. "
    "If it has been transmitted, a Refund request should be submitted."
)
# GetShipments takes exactly one criterion; the first one given wins, in this order. Each reads
# its own index of the state: the shipments with that value, in purchase order.
SEARCH_CRITERIA: dict[str, Callable[[SandboxState, str], list[Shipment]]] = {
    "requestId": SandboxState.shipments_with_request_id,
    "trackingPIN": lambda state, pin: [found] if (found := state.shipment_with_pin(pin)) is not None else [],
    "groupId": SandboxState.shipments_in_group,
    "manifestId": SandboxState.shipments_in_manifest,
}


class ContractShipments(CanadaPostShipments):
    def create_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        root, shipment = self._buy_label(request, SHIPMENT_NS, "shipment", SHIPMENT_MEDIA)
        priced = child(root, "provide-pricing-info") is not None
        return ApiResponse(200, self._shipment_info(request, shipment, priced=priced), SHIPMENT_MEDIA)

    def _shipment_info(self, request: ApiRequest, shipment: Shipment, *, priced: bool = False) -> bytes:
        # A method rather than a direct call, so a test can break this answer on purpose.
        return shipment_info(shipment, self._links(request), priced=priced)

    def _contract_shipment(self, params: dict[str, str]) -> Shipment:
        with self.state.lock:
            shipment = self.state.shipments.get(params["shipment_id"])
            if shipment is None or not shipment.contract or shipment.voided:
                # Canada Post answers an unknown or voided shipment with an empty <messages/>.
                raise CanadaPostError(404, [], SHIPMENT_MEDIA)
            return shipment

    def get_shipments(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        media = accepted_media(request, (SHIPMENT_MEDIA,))
        chosen = [(name, request.param(name)) for name in SEARCH_CRITERIA if request.param(name) is not None]
        if not chosen:
            raise field_error(
                request,
                "one of the query parameters requestId, trackingPIN, groupId or manifestId is required.",
                media,
            )
        name, value = chosen[0]
        assert value is not None  # chosen keeps only the parameters given
        with self.state.lock:
            found = [
                shipment
                for shipment in SEARCH_CRITERIA[name](self.state, value)
                if shipment.contract and not shipment.voided
            ]
        document = shipment_list(SHIPMENT_NS, "shipments", found, self._links(request), SHIPMENT_MEDIA)
        return ApiResponse(200, document, SHIPMENT_MEDIA)

    def get_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        accepted_media(request, (SHIPMENT_MEDIA,))
        shipment = self._contract_shipment(params)
        return ApiResponse(200, self._shipment_info(request, shipment), SHIPMENT_MEDIA)

    def get_shipment_details(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        accepted_media(request, (SHIPMENT_MEDIA,))
        shipment = self._contract_shipment(params)
        return ApiResponse(200, shipment_details(shipment), SHIPMENT_MEDIA)

    def get_shipment_price(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """The price document (rel="price"): what the label cost, priced as its Create Shipment
        answer would have been with ``<provide-pricing-info>``."""
        accepted_media(request, (SHIPMENT_MEDIA,))
        shipment = self._contract_shipment(params)
        return ApiResponse(200, self._shipment_price(shipment), SHIPMENT_MEDIA)

    def _shipment_price(self, shipment: Shipment) -> bytes:
        # A method rather than a direct call, so a test can break this answer on purpose.
        return shipment_price(shipment)

    def void_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        accepted_media(request, (SHIPMENT_MEDIA,))
        with self.state.lock:
            shipment = self._contract_shipment(params)
            if shipment.status == "transmitted":
                raise CanadaPostError(400, [("8064", VOID_TRANSMITTED_TEXT)], SHIPMENT_MEDIA)
            self.state.void(shipment)
        return ApiResponse(204)

    def refund_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        return self._refund(request, self._contract_shipment(params), SHIPMENT_NS, SHIPMENT_MEDIA)
