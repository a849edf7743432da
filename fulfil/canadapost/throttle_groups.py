"""Canada Post's throttle: which group of calls each endpoint belongs to, and each group's limit.

Canada Post (its "Throttle limits" page) meters each API key per group of calls in a rolling 60 s
window; the call over a group's limit is answered ``Server`` "Rejected by SLM Monitor" and the
group is blocked for the key for up to a minute. The published defaults are below; upgraded keys
get more (fulfil's ``FULFIL_CANADAPOST_RATE_<GROUP>`` settings). Canada Post names get shipment,
get artifact and the non-contract get and receipt in group A, so the details calls (the same
shipment, more of it) are there too, and so is a contract shipment's price document (Get Shipment
Price, the contract counterpart of the receipt, and like it a read of one shipment); searches (Get
Shipments by request id, PIN or group; the non-contract search by PIN or date) are "get
shipments", group C, and so are Transmit Shipments
and the manifest calls (Get Manifests by date, Get Manifest, its details): "transmit, manifests";
a manifest's PDF is fetched with Get Artifact (A) like a label's; void and both refunds are B;
Get Rates (a quote before buying) is D, "get rates, discover services"; tracking is E. F
(signature image, delivery certificate) has no endpoint fulfil calls, but keeps its limit.

Pure data, imported by fulfil's budgets (``canadapost_budgets``), by its settings (the defaults)
and by the sandbox, which throttles the same groups the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fulfil.audit.budget import Budget, Pause, ServiceBudgets
    from fulfil.audit.outcome import HttpOutcome
    from fulfil.config import RateBudgetSettings

# Calls per window per API key, Canada Post's published defaults.
CANADA_POST_GROUP_LIMITS: dict[str, int] = {"A": 646, "B": 468, "C": 730, "D": 840, "E": 20, "F": 6}
CANADA_POST_WINDOW_S = 60.0
# What each group is, for settings' help and status output.
CANADA_POST_GROUP_CALLS: dict[str, str] = {
    "A": "create/get shipment, price, artifact, non-contract create/get/receipt",
    "B": "void, refund",
    "C": "groups, get shipments, transmit, manifests",
    "D": "rates",
    "E": "tracking summary/details",
    "F": "signature image, delivery certificate",
}
CANADA_POST_ENDPOINT_GROUPS: dict[str, str] = {
    "CreateShipment": "A",
    "GetShipment": "A",
    "GetShipmentDetails": "A",
    "GetArtifact": "A",
    "CreateNCShipment": "A",
    "GetNCShipment": "A",
    "GetNCShipmentDetails": "A",
    "GetShipmentPrice": "A",
    "GetNCShipmentReceipt": "A",
    "GetShipments": "C",
    "GetNCShipments": "C",
    "TransmitShipments": "C",
    "GetManifests": "C",
    "GetManifest": "C",
    "GetManifestDetails": "C",
    "VoidShipment": "B",
    "RefundShipment": "B",
    "RefundNCShipment": "B",
    "GetRates": "D",
    "TrackingSummary": "E",
    "TrackingDetail": "E",
}
# How a group's budget is named in rate_budgets and api_calls.rate_budget.
BUDGET_PREFIX = "canadapost"


def budget_name(group: str) -> str:
    return f"{BUDGET_PREFIX}:{group}"


def canadapost_budgets(rates: RateBudgetSettings) -> ServiceBudgets:
    """Canada Post's budgets for AuditedHttp: one per throttle group, at the configured rates; an
    answer "Rejected by SLM Monitor" pauses its group, for every process, for the group's window
    (Canada Post blocks the key for up to that long)."""
    from fulfil.audit.budget import Budget, ServiceBudgets

    budgets = {
        group: Budget(budget_name(group), rates.canadapost[group], rates.headroom)
        for group in CANADA_POST_GROUP_LIMITS
    }
    return ServiceBudgets(
        by_endpoint={endpoint: budgets[group] for endpoint, group in CANADA_POST_ENDPOINT_GROUPS.items()},
        pause_rule=_slm_pause,
        longest_pause=max(rate.seconds for rate in rates.canadapost.values()),
    )


def _slm_pause(budget: Budget, endpoint: str, outcome: HttpOutcome) -> Pause | None:
    """The pause an answer calls for: "Rejected by SLM Monitor" (whatever its status) blocks the
    group for up to its window, so the group waits that long."""
    from fulfil.audit.budget import Pause
    from fulfil.canadapost.responses import is_throttled_answer

    if outcome.status_code is None or 200 <= outcome.status_code < 300 or budget.rate is None:
        return None
    if not is_throttled_answer(outcome.body):
        return None
    return Pause(
        budget.rate.seconds,
        f"Canada Post answered {endpoint} with HTTP {outcome.status_code} Rejected by SLM Monitor",
    )
