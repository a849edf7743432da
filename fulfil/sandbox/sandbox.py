"""The sandbox as tests and ``fulfil demo`` use it: start, point fulfil at it, inspect, stop.

with Sandbox(SandboxConfig(seed=7), port=0) as sandbox:
    os.environ["FULFIL_CANADAPOST_BASE_URL"] = sandbox.base_url
    ...
    assert sandbox.state()["canadapost"]["labels_bought"] == 1
    assert sandbox.throttle_report()["rejection_count"] == 0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from fulfil.sandbox.bestbuy import BestBuyService
from fulfil.sandbox.canadapost import CanadaPostService
from fulfil.sandbox.config import SERVICES, SandboxConfig
from fulfil.sandbox.faults import FaultPlan, Faults
from fulfil.sandbox.orders import generate_order_set
from fulfil.sandbox.server import SandboxHTTPServer
from fulfil.sandbox.state import SandboxState
from fulfil.sandbox.throttle import CANADA_POST_ENDPOINT_GROUPS, EndpointLimits, GroupLimits, Throttle
from fulfil.sandbox.wire import Route
from fulfil.sandbox.xsd import OfficialSchemas


class Sandbox:
    """A local Canada Post + Best Buy (Mirakl) server on one port, with fault injection."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self.port = port
        self.clock = clock
        self.schemas = OfficialSchemas(self.config.xsd_dir) if self.config.xsd_dir is not None else None
        self.sandbox_state = SandboxState(seed=self.config.seed)
        self.fault_plan = FaultPlan(
            self.config.seed, {service: self.config.faults_for(service) for service in SERVICES}
        )
        self.throttle = Throttle(self.config.canadapost_limits, self.config.bestbuy_limits, clock)
        self.canadapost = CanadaPostService(
            self.config, self.sandbox_state, self.fault_plan, self.schemas, clock, self.throttle
        )
        self.bestbuy = BestBuyService(self.config, self.sandbox_state, clock, self.throttle)
        self.services: tuple[CanadaPostService | BestBuyService, ...] = (self.canadapost, self.bestbuy)
        self.routes: dict[str, list[Route]] = {service.service: service.routes() for service in self.services}
        unthrottled = {route.endpoint for route in self.routes["canadapost"]} - set(
            CANADA_POST_ENDPOINT_GROUPS
        )
        if unthrottled:
            raise RuntimeError(
                f"sandbox bug: no Canada Post throttle group for {', '.join(sorted(unthrottled))}"
            )
        self._check_bestbuy_endpoints(self.config.bestbuy_limits)
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._seed_configured_orders()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Sandbox:
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        server = SandboxHTTPServer((self.host, self.port), self)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"fulfil-sandbox:{self.port}"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.stopping.set()
        server.interrupt_holds()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start() if self._server is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        return f"http://{self.authority}"

    # --- inspection --------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self.sandbox_state.lock:
            self.bestbuy.advance(self.clock())
            snapshot = self.sandbox_state.snapshot()
        snapshot["throttle"] = self.throttle_report()
        return snapshot

    def throttle_report(self) -> dict[str, Any]:
        """Throttle settings and windows, every refusal, every arrival inside a Retry-After window.

        ``rejection_count`` and ``inside_retry_after_count`` are what a client must keep at 0.
        """
        return self.throttle.report()

    def request_log(self) -> list[dict[str, Any]]:
        with self.sandbox_state.lock:
            return [record.as_dict() for record in self.sandbox_state.log]

    def labels_bought_per_order(self) -> dict[str, int]:
        return self.sandbox_state.labels_bought_per_order()

    def manifests(self) -> list[dict[str, Any]]:
        """Every manifest Transmit Shipments made since the last reset, in the order made."""
        with self.sandbox_state.lock:
            return [manifest.summary() for manifest in self.sandbox_state.manifests.values()]

    def invalid_responses(self) -> list[str]:
        """Answers that failed the official XSDs (always empty unless the sandbox has a bug)."""
        with self.sandbox_state.lock:
            return list(self.sandbox_state.invalid_responses)

    # --- steering ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every shipment, order and request; faults and generated orders as configured."""
        self.sandbox_state.clear()
        self.fault_plan.reset()
        self.throttle.reset()
        if self._server is not None:
            # A request held by a fault (late_commit, a late answer, a trickle) is abandoned.
            self._server.interrupt_holds()
        self._seed_configured_orders()

    def set_faults(self, service: str, faults: Faults) -> None:
        self.fault_plan.set_faults(service, faults)

    def set_canadapost_limits(self, limits: GroupLimits) -> None:
        """Replace Canada Post's throttle limits (until ``reset()``); windows and blocks start afresh."""
        self.throttle.set_canadapost(limits)

    def set_bestbuy_limits(self, limits: EndpointLimits) -> None:
        """Replace Best Buy's per-endpoint limits (until ``reset()``); windows start afresh."""
        self._check_bestbuy_endpoints(limits)
        self.throttle.set_bestbuy(limits)

    def _check_bestbuy_endpoints(self, limits: EndpointLimits) -> None:
        known = {route.endpoint for route in self.routes["bestbuy"]}
        unknown = sorted(set(limits.limits) - known)
        if unknown:
            endpoints = ", ".join(sorted(known))
            raise ValueError(f"unknown bestbuy endpoint {unknown[0]!r} in the limits; endpoints: {endpoints}")

    def script_faults(self, service: str, endpoint: str, faults: list[str]) -> None:
        """The next len(faults) calls of one endpoint get exactly these faults ("none" = no fault)."""
        known = {route.endpoint for route in self.routes.get(service, [])}
        if endpoint not in known:
            raise ValueError(
                f"unknown {service} endpoint {endpoint!r}; endpoints: {', '.join(sorted(known))}"
            )
        self.fault_plan.script(service, endpoint, faults)

    def clear_script(self, service: str, endpoint: str) -> None:
        self.fault_plan.clear_script(service, endpoint)

    def add_orders(self, orders: list[dict[str, Any]]) -> None:
        self.bestbuy.add(orders, {})

    def generate_orders(
        self, n: int, seed: int = 1, state: str = "SHIPPING", *, problems: int = 0
    ) -> list[dict[str, Any]]:
        generated = generate_order_set(n, seed, state, problems=problems)
        hidden = {item.order["order_id"]: (item.shipping_address, item.billing_address) for item in generated}
        orders = [item.order for item in generated]
        self.bestbuy.add(orders, hidden)
        return orders

    def set_order_state(self, order_id: str, state: str) -> None:
        self.bestbuy.force_state(order_id, state)

    def _seed_configured_orders(self) -> None:
        if self.config.generated_orders:
            self.generate_orders(
                self.config.generated_orders,
                seed=self.config.orders_seed,
                state=self.config.orders_state,
                problems=self.config.problem_orders,
            )
