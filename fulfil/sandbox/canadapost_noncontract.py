"""Non-contract shipments (``/rs/{mailed-by}/ncshipment``): create, search, get, details, receipt,
refund.

A non-contract label is final the moment it is bought: there is no group, no manifest and no
void, only a refund. The search takes a tracking PIN, or a ``from``/``to`` window of Eastern-time
minutes (``YYYYMMDDHHMM``, ``to`` defaulting to now) in which the shipments were created.
"""

from __future__ import annotations

import re
from datetime import datetime

from fulfil.sandbox.canadapost_documents import (
    NCSHIPMENT_MEDIA,
    NCSHIPMENT_NS,
    non_contract_receipt,
    non_contract_shipment_details,
    non_contract_shipment_info,
    shipment_list,
)
from fulfil.sandbox.canadapost_requests import CanadaPostError, accepted_media, field_error
from fulfil.sandbox.canadapost_shipments import EASTERN, CanadaPostShipments
from fulfil.sandbox.state import Shipment
from fulfil.sandbox.wire import ApiRequest, ApiResponse


class NonContractShipments(CanadaPostShipments):
    def create_nc_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        _, shipment = self._buy_label(request, NCSHIPMENT_NS, "non-contract-shipment", NCSHIPMENT_MEDIA)
        info = non_contract_shipment_info(shipment, self._links(request))
        return ApiResponse(200, info, NCSHIPMENT_MEDIA)

    def _nc_shipment(self, params: dict[str, str]) -> Shipment:
        with self.state.lock:
            shipment = self.state.shipments.get(params["shipment_id"])
            if shipment is None or shipment.contract:
                raise CanadaPostError(404, [], NCSHIPMENT_MEDIA)
            return shipment

    def get_nc_shipments(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        media = accepted_media(request, (NCSHIPMENT_MEDIA,))
        pin = request.param("trackingPIN")
        if pin is not None:
            with_pin = self.state.shipment_with_pin(pin)
            found = [with_pin] if with_pin is not None and not with_pin.contract else []
        else:
            start = request.param("from")
            if start is None:
                raise field_error(request, "the query parameter 'from' (YYYYMMDDHHMM) is required.", media)
            lower = _eastern_minute(request, "from", start, media)
            end = request.param("to")
            upper = (
                _eastern_minute(request, "to", end, media)
                if end is not None
                else self._eastern_now().replace(second=0, microsecond=0)
            )
            # A window of creation times is a range search: it reads every non-contract shipment.
            with self.state.lock:
                candidates = [s for s in self.state.shipments.values() if not s.contract]
            found = []
            for shipment in candidates:
                minute = datetime.fromtimestamp(shipment.created_at, EASTERN).replace(second=0, microsecond=0)
                if lower <= minute <= upper:
                    found.append(shipment)
        links = self._links(request)
        document = shipment_list(NCSHIPMENT_NS, "non-contract-shipments", found, links, NCSHIPMENT_MEDIA)
        return ApiResponse(200, document, NCSHIPMENT_MEDIA)

    def get_nc_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        accepted_media(request, (NCSHIPMENT_MEDIA,))
        shipment = self._nc_shipment(params)
        return ApiResponse(200, non_contract_shipment_info(shipment, self._links(request)), NCSHIPMENT_MEDIA)

    def get_nc_shipment_details(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        accepted_media(request, (NCSHIPMENT_MEDIA,))
        shipment = self._nc_shipment(params)
        return ApiResponse(200, non_contract_shipment_details(shipment), NCSHIPMENT_MEDIA)

    def get_nc_shipment_receipt(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        """The card payment's receipt (rel="receipt"): the only place a non-contract label's price
        is. A refund requested since does not change it (the receipt is of the sale)."""
        accepted_media(request, (NCSHIPMENT_MEDIA,))
        shipment = self._nc_shipment(params)
        return ApiResponse(200, non_contract_receipt(shipment, self.padded_customer), NCSHIPMENT_MEDIA)

    def refund_nc_shipment(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        return self._refund(request, self._nc_shipment(params), NCSHIPMENT_NS, NCSHIPMENT_MEDIA)


def _eastern_minute(request: ApiRequest, name: str, value: str, media: str) -> datetime:
    try:
        if not re.fullmatch(r"\d{12}", value):
            raise ValueError(value)
        return datetime.strptime(value, "%Y%m%d%H%M").replace(tzinfo=EASTERN)
    except ValueError:
        raise field_error(
            request,
            f"cvc-pattern-valid: Value '{value}' of '{name}' is not facet-valid with respect to pattern "
            "'YYYYMMDDHHMM'.",
            media,
        ) from None
