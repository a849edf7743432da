"""What a sandbox is started with: credentials, customer number, seeds, XSDs, time scale, tracking
scenarios, faults, throttle limits.

The sandbox accepts the credentials fulfil itself reads (the same environment variables), so a
shell that is set up for fulfil is set up for the sandbox. When they are unset, the documented
fake defaults below apply; they are printed by ``fulfil sandbox serve`` and never valid anywhere
else.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from fulfil.sandbox.faults import Faults
from fulfil.sandbox.throttle import EndpointLimits, GroupLimits
from fulfil.sandbox.tracking import DEFAULT_SCENARIO, check_scenario

SERVICES = ("canadapost", "bestbuy")

# Fake credentials: obviously not Canada Post's or Best Buy's, accepted only by the sandbox.
DEFAULT_CREDENTIALS: dict[str, str] = {
    "FULFIL_CANADAPOST_USERNAME": "sandbox",
    "FULFIL_CANADAPOST_PASSWORD": "sandbox-not-a-real-key",
    "FULFIL_CANADAPOST_CUSTOMER_NUMBER": "2004381",
    "FULFIL_BESTBUY_API_KEY": "sandbox-shop-key",
}
XSD_DIR_VARIABLE = "FULFIL_SANDBOX_XSD_DIR"
DEFAULT_SHOP_ID = 2004
# One real second is one simulated hour: a parcel is delivered about a minute after its label.
DEFAULT_TIME_SCALE = 3600.0


@dataclass(frozen=True)
class SandboxConfig:
    """Everything a Sandbox starts from; ``reset()`` returns to exactly this."""

    canadapost_username: str = DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_USERNAME"]
    canadapost_password: str = DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_PASSWORD"]
    customer_number: str = DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_CUSTOMER_NUMBER"]
    bestbuy_api_key: str = DEFAULT_CREDENTIALS["FULFIL_BESTBUY_API_KEY"]
    shop_id: int = DEFAULT_SHOP_ID
    seed: int = 0
    xsd_dir: Path | None = None
    # Simulated seconds of parcel travel per real second (tracking events follow this clock).
    time_scale: float = DEFAULT_TIME_SCALE
    # Order id (customer-ref-1) -> the tracking scenario its parcels follow (see tracking.py).
    tracking_scenarios: Mapping[str, str] = field(default_factory=dict)
    # The scenario of every other parcel, or "mix" (one per PIN, by a stable hash). "delivered" by
    # default, so a test that buys a label knows how its parcel's life goes; `serve` mixes.
    tracking_default: str = DEFAULT_SCENARIO
    # Simulated hours after the label during which tracking answers 004 (No Pin History). 0 by
    # default: tests of fulfil's refresh expect the electronic notice the moment a label is bought.
    tracking_no_history_hours: float = 0.0
    # Seconds an accepted order spends in WAITING_DEBIT_PAYMENT before it reaches SHIPPING.
    debit_delay_s: float = 0.0
    canadapost_faults: Faults = field(default_factory=Faults)
    bestbuy_faults: Faults = field(default_factory=Faults)
    # Canada Post always throttles: on by default, with its published limits (see throttle.py).
    canadapost_limits: GroupLimits = field(default_factory=GroupLimits)
    # Mirakl's Retry-After mode, per endpoint; none by default.
    bestbuy_limits: EndpointLimits = field(default_factory=EndpointLimits)
    generated_orders: int = 0
    orders_seed: int = 1
    orders_state: str = "SHIPPING"
    problem_orders: int = 0

    def __post_init__(self) -> None:
        if not self.customer_number.isdigit() or len(self.customer_number) > 10:
            raise ValueError(f"customer number must be 1 to 10 digits, not {self.customer_number!r}")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if self.debit_delay_s < 0 or self.generated_orders < 0 or self.problem_orders < 0:
            raise ValueError("debit_delay_s, generated_orders and problem_orders must not be negative")
        if self.problem_orders > self.generated_orders:
            raise ValueError("problem_orders cannot exceed generated_orders")
        self._check_tracking()

    def _check_tracking(self) -> None:
        chosen: dict[str, str] = {}
        for order_id, name in self.tracking_scenarios.items():
            if not isinstance(order_id, str) or not order_id.strip():
                raise ValueError(f"tracking_scenarios needs order ids, not {order_id!r}")
            try:
                chosen[order_id] = check_scenario(name)
            except ValueError as error:
                raise ValueError(f"order {order_id!r}: {error}") from None
        # A copy nobody can change behind the sandbox's back (the config is frozen, and reset to).
        object.__setattr__(self, "tracking_scenarios", MappingProxyType(chosen))
        try:
            check_scenario(self.tracking_default, allow_mix=True)
        except ValueError as error:
            raise ValueError(f"tracking_default: {error}") from None
        if not math.isfinite(self.tracking_no_history_hours) or self.tracking_no_history_hours < 0:
            raise ValueError("tracking_no_history_hours must be a number of hours, 0 or more")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> SandboxConfig:
        """Credentials and the XSD directory from fulfil's environment variables, defaults otherwise."""
        env = os.environ if environ is None else environ

        def read(name: str) -> str:
            value = env.get(name, "").strip()
            return value or DEFAULT_CREDENTIALS[name]

        xsd = env.get(XSD_DIR_VARIABLE, "").strip()
        values: dict[str, object] = {
            "canadapost_username": read("FULFIL_CANADAPOST_USERNAME"),
            "canadapost_password": read("FULFIL_CANADAPOST_PASSWORD"),
            "customer_number": read("FULFIL_CANADAPOST_CUSTOMER_NUMBER"),
            "bestbuy_api_key": read("FULFIL_BESTBUY_API_KEY"),
            "xsd_dir": Path(xsd) if xsd else None,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def uses_default_credentials(self) -> bool:
        return (
            self.canadapost_username == DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_USERNAME"]
            and self.canadapost_password == DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_PASSWORD"]
            and self.bestbuy_api_key == DEFAULT_CREDENTIALS["FULFIL_BESTBUY_API_KEY"]
        )

    def faults_for(self, service: str) -> Faults:
        if service == "canadapost":
            return self.canadapost_faults
        if service == "bestbuy":
            return self.bestbuy_faults
        raise ValueError(f"unknown service {service!r}; services: {', '.join(SERVICES)}")
