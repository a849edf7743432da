"""The Canada Post REST/XML services, as fulfil calls them: shipping, labels, tracking.

Wire behaviour follows the reference brief. The service is split by concept:

- ``canadapost_requests``: what an incoming request must look like (auth, customer number, media
  types, body validation, field rules) and ``CanadaPostError``, answered as ``<messages>``;
- ``canadapost_shipments``: what both kinds of shipment share (recording a bought label, refunds);
- ``canadapost_contract`` and ``canadapost_noncontract``: the endpoints of each kind;
- ``canadapost_manifests``: Transmit Shipments and the manifests (the group flow's end of day);
- ``canadapost_documents``: the XML answers, their links and the ``<messages>`` documents;
- ``canadapost_rates``: Get Rates, its quotes and the price model behind them;
- this module: the routing table, the checks every call passes, the throttle (per API key and
  group of calls, see ``throttle``), labels and tracking.

HTTP statuses Canada Post does not document are the sandbox's choice (see
``canadapost_requests``); 404 for tracking code 004 (a PIN never sold, voided, or not yet scanned:
see ``tracking``) and for an unknown path.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fulfil.sandbox import canadapost_rates, tracking
from fulfil.sandbox.canadapost_contract import ContractShipments
from fulfil.sandbox.canadapost_documents import TRACK_MEDIA_TYPES, address_lines, error_response, label_media
from fulfil.sandbox.canadapost_documents import refusal as refusal_response
from fulfil.sandbox.canadapost_manifests import ManifestShipments
from fulfil.sandbox.canadapost_noncontract import NonContractShipments
from fulfil.sandbox.canadapost_requests import (
    CanadaPostError,
    accepted_media,
    authenticate,
    check_customer,
    media_for_path,
)
from fulfil.sandbox.config import SandboxConfig
from fulfil.sandbox.faults import FaultKind, FaultPlan
from fulfil.sandbox.pdf import LabelContent, render_label_pdf, render_label_zpl
from fulfil.sandbox.state import Manifest, SandboxState, Shipment
from fulfil.sandbox.throttle import Throttle
from fulfil.sandbox.wire import ApiRequest, ApiResponse, Handler, Route
from fulfil.sandbox.xsd import OfficialSchemas

NO_PIN_HISTORY = ("004", "No Pin History")


class CanadaPostService(ContractShipments, NonContractShipments, ManifestShipments):
    def __init__(
        self,
        config: SandboxConfig,
        state: SandboxState,
        faults: FaultPlan,
        schemas: OfficialSchemas | None,
        clock: Callable[[], float],
        throttle: Throttle,
    ) -> None:
        super().__init__(config, state, faults, schemas, clock, throttle)
        self.tracking_scenarios = tracking.ScenarioBook(
            config.tracking_scenarios, config.tracking_default, lambda: state.generation
        )

    # --- routing -----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        number = r"(?P<mailed_by>[^/]+)"
        contract = rf"/rs/{number}/(?P<mobo>[^/]+)/shipment"
        non_contract = rf"/rs/{number}/ncshipment"
        manifest = rf"/rs/{number}/(?P<mobo>[^/]+)/manifest"
        identifier = r"(?P<shipment_id>[^/]+)"
        manifest_identifier = r"(?P<manifest_id>[^/]+)"
        table: list[tuple[str, str, str, Handler]] = [
            (
                "GET",
                r"/(?:e?rs)/artifact/(?P<key>[^/]+)/(?P<artifact>[^/]+)/(?P<page>[^/]+)",
                "GetArtifact",
                self.get_artifact,
            ),
            ("POST", contract, "CreateShipment", self.create_shipment),
            ("GET", contract, "GetShipments", self.get_shipments),
            ("GET", rf"{contract}/{identifier}", "GetShipment", self.get_shipment),
            ("DELETE", rf"{contract}/{identifier}", "VoidShipment", self.void_shipment),
            ("GET", rf"{contract}/{identifier}/details", "GetShipmentDetails", self.get_shipment_details),
            ("GET", rf"{contract}/{identifier}/price", "GetShipmentPrice", self.get_shipment_price),
            ("POST", rf"{contract}/{identifier}/refund", "RefundShipment", self.refund_shipment),
            ("POST", non_contract, "CreateNCShipment", self.create_nc_shipment),
            ("GET", non_contract, "GetNCShipments", self.get_nc_shipments),
            ("GET", rf"{non_contract}/{identifier}", "GetNCShipment", self.get_nc_shipment),
            (
                "GET",
                rf"{non_contract}/{identifier}/details",
                "GetNCShipmentDetails",
                self.get_nc_shipment_details,
            ),
            (
                "GET",
                rf"{non_contract}/{identifier}/receipt",
                "GetNCShipmentReceipt",
                self.get_nc_shipment_receipt,
            ),
            ("POST", rf"{non_contract}/{identifier}/refund", "RefundNCShipment", self.refund_nc_shipment),
            ("POST", manifest, "TransmitShipments", self.transmit_shipments),
            ("GET", manifest, "GetManifests", self.get_manifests),
            ("GET", rf"{manifest}/{manifest_identifier}", "GetManifest", self.get_manifest),
            (
                "GET",
                rf"{manifest}/{manifest_identifier}/details",
                "GetManifestDetails",
                self.get_manifest_details,
            ),
            ("POST", r"/rs/ship/price", "GetRates", self.get_rates),
            ("GET", r"/vis/track/pin/(?P<pin>[^/]+)/summary", "TrackingSummary", self.tracking_summary),
            ("GET", r"/vis/track/pin/(?P<pin>[^/]+)/detail", "TrackingDetail", self.tracking_detail),
        ]
        return [
            Route(method, re.compile(pattern), endpoint, self._guard(handler))
            for method, pattern, endpoint, handler in table
        ]

    def owns(self, path: str) -> bool:
        return path.startswith(("/rs/", "/ers/", "/vis/"))

    def not_found(self, request: ApiRequest) -> ApiResponse:
        return error_response(404, [], "application/xml")

    def method_not_allowed(self, request: ApiRequest, allowed: tuple[str, ...]) -> ApiResponse:
        response = error_response(
            405,
            [("Server", f"HTTP method {request.method} is not supported by this resource.")],
            "application/xml",
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response

    def refusal(self, kind: FaultKind, request: ApiRequest) -> ApiResponse:
        return refusal_response(kind, media_for_path(request.path))

    def throttled(self, request: ApiRequest, endpoint: str) -> ApiResponse | None:
        """Canada Post's "Rejected by SLM Monitor" when this key's group is over or blocked, else None.

        Only a call with valid credentials counts (the limits are per API key); any other is
        left to the guard, which answers E002.
        """
        try:
            authenticate(request, self.config.canadapost_username, self.config.canadapost_password)
        except CanadaPostError:
            return None
        if self.throttle.admit_canadapost(self.config.canadapost_username, endpoint):
            return None
        return self.refusal(FaultKind.RATE_LIMIT, request)

    def _guard(self, handler: Handler) -> Handler:
        """Every call is authenticated and its customer numbers checked before the handler runs."""

        def guarded(request: ApiRequest, params: dict[str, str]) -> ApiResponse:
            try:
                authenticate(request, self.config.canadapost_username, self.config.canadapost_password)
                check_customer(params, self.config.customer_number)
                return handler(request, params)
            except CanadaPostError as error:
                return error_response(error.status, error.messages, error.media_type)

        return guarded

    # --- labels ------------------------------------------------------------------------------

    def get_artifact(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        with self.state.lock:
            shipment = self.state.shipment_by_label(params["key"], params["artifact"])
            if shipment is None:
                manifest = self.state.manifest_by_artifact(params["key"], params["artifact"])
                if manifest is not None and params["page"] == "0":
                    return self._manifest_artifact(request, manifest)
            if shipment is None or params["page"] != "0":
                raise CanadaPostError(404, [], "application/xml")
            media = label_media(shipment)
            accepted_media(request, (media,))
            shipment.label_fetches += 1
            scripted_not_ready = request.fault is not None and request.fault.kind is FaultKind.LABEL_NOT_READY
            not_ready_fetches = self.faults.faults(self.service).label_not_ready_fetches
            not_ready = scripted_not_ready or shipment.label_fetches <= not_ready_fetches
        if not_ready:
            # Canada Post's own answer while the label is still being rendered: 202, no body.
            return ApiResponse(202)
        label = LabelContent(
            tracking_pin=shipment.tracking_pin,
            shipment_id=shipment.shipment_id,
            service_code=shipment.service_code,
            sender_lines=address_lines(shipment.sender),
            destination_lines=address_lines(shipment.destination),
            reference=shipment.customer_ref_1,
            output_format=shipment.output_format,
        )
        body = render_label_zpl(label) if shipment.encoding == "ZPL" else render_label_pdf(label)
        return ApiResponse(200, body, media)

    def _manifest_artifact(self, request: ApiRequest, manifest: Manifest) -> ApiResponse:
        """A manifest's PDF, fetched like a label (a scripted label_not_ready answers 202 too)."""
        accepted_media(request, ("application/pdf",))
        if request.fault is not None and request.fault.kind is FaultKind.LABEL_NOT_READY:
            return ApiResponse(202)
        return ApiResponse(200, self.manifest_pdf(manifest), "application/pdf")

    # --- rate quotes (see canadapost_rates) ----------------------------------------------------

    def get_rates(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        today = self._eastern_now().date()
        return canadapost_rates.get_rates(request, self.schemas, self.config.customer_number, today)

    # --- tracking ----------------------------------------------------------------------------

    def set_tracking_scenario(self, order_id: str, scenario: str | None) -> None:
        """The order's parcels follow ``scenario`` from now on (None: as configured), until a reset.

        Their whole history is told anew by the scenario's timeline, from the label's time.
        """
        self.tracking_scenarios.choose(order_id, scenario)

    def tracking_scenario(self, pin: str) -> str | None:
        """The scenario the PIN's parcel follows now; None for a PIN the sandbox has not sold."""
        shipment = self.state.shipment_by_pin(pin)
        return None if shipment is None else self.tracking_scenarios.name_for(shipment)

    def _tracked(self, request: ApiRequest, params: dict[str, str]) -> tuple[Shipment, str]:
        """The shipment a tracking call asks about; 004 while Canada Post has no history for it."""
        media = accepted_media(request, TRACK_MEDIA_TYPES)
        shipment = self.state.shipment_by_pin(params["pin"])
        if shipment is None or not tracking.has_history(
            shipment, self.clock(), self.config.time_scale, self.config.tracking_no_history_hours
        ):
            raise CanadaPostError(404, [NO_PIN_HISTORY], media)
        return shipment, media

    def tracking_summary(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        shipment, media = self._tracked(request, params)
        body = tracking.summary_document(
            shipment,
            self.clock(),
            self.config.time_scale,
            scenario=self.tracking_scenarios.scenario_for(shipment),
        )
        return ApiResponse(200, body, media)

    def tracking_detail(self, request: ApiRequest, params: dict[str, str]) -> ApiResponse:
        shipment, media = self._tracked(request, params)
        body = tracking.detail_document(
            shipment,
            self.clock(),
            self.config.time_scale,
            self.config.customer_number,
            scenario=self.tracking_scenarios.scenario_for(shipment),
        )
        return ApiResponse(200, body, media)
