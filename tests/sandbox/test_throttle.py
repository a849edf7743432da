"""The sandbox throttles like the real services, over real sockets, on a clock the tests move.

Canada Post: per API key, per group of calls, in a rolling window; the call over the limit is
"Rejected by SLM Monitor" and its group stays blocked one window. Mirakl: 429 with Retry-After
beyond an endpoint's limit and inside a previous 429's Retry-After. Every refusal, and every
arrival inside a Retry-After window, is in the throttle report.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import requests

from fulfil.sandbox import Faults, Sandbox, SandboxConfig
from fulfil.sandbox.throttle import (
    CANADA_POST_ENDPOINT_GROUPS,
    EndpointLimit,
    EndpointLimits,
    GroupLimits,
    Throttle,
    parse_endpoint_limit,
    parse_group_limit,
)
from tests.sandbox.conftest import (
    BB_KEY,
    CP_AUTH,
    CUSTOMER,
    NCSHIPMENT_MEDIA,
    TRACK_MEDIA,
    BestBuy,
    CanadaPost,
    contract_request,
    links,
    message_codes,
    parse,
)

START = 1_760_000_000.0  # 2025-10-09 08:53 UTC
SHIPMENTS = f"/rs/{CUSTOMER}/{CUSTOMER}/shipment"


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def module_clocked_sandbox(clock: FakeClock) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(seed=13), clock=clock) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(module_clocked_sandbox: Sandbox, clock: FakeClock) -> Sandbox:
    clock.now = START
    module_clocked_sandbox.reset()
    return module_clocked_sandbox


def slm_rejected(answer: requests.Response) -> bool:
    if answer.status_code != 503:
        return False
    return parse(answer.content).findtext("{*}message/{*}description") == "Rejected by SLM Monitor"


def pin_of(answer: requests.Response) -> str:
    assert answer.status_code == 200, answer.text
    return parse(answer.content).findtext("{*}tracking-pin") or ""


def track(client: CanadaPost, pin: str, kind: str = "summary") -> requests.Response:
    return client.get(f"/vis/track/pin/{pin}/{kind}", TRACK_MEDIA)


def lookup(client: CanadaPost, request_id: str) -> requests.Response:
    return client.get(f"{SHIPMENTS}?requestId={request_id}")


# --- Canada Post ---------------------------------------------------------------------------


@pytest.mark.unit
def test_every_endpoint_is_in_the_group_canada_post_names() -> None:
    assert CANADA_POST_ENDPOINT_GROUPS == {
        "CreateShipment": "A",
        "GetShipment": "A",
        "GetShipmentDetails": "A",
        "GetArtifact": "A",
        "CreateNCShipment": "A",
        "GetNCShipment": "A",
        "GetNCShipmentDetails": "A",
        "GetShipmentPrice": "A",
        "GetNCShipmentReceipt": "A",
        "GetRates": "D",
        "GetShipments": "C",
        "GetNCShipments": "C",
        "TransmitShipments": "C",
        "GetManifests": "C",
        "GetManifest": "C",
        "GetManifestDetails": "C",
        "VoidShipment": "B",
        "RefundShipment": "B",
        "RefundNCShipment": "B",
        "TrackingSummary": "E",
        "TrackingDetail": "E",
    }


def test_on_by_default_with_canada_posts_published_limits(sandbox: Sandbox) -> None:
    report = requests.get(f"{sandbox.base_url}/_sandbox/state", timeout=5).json()["throttle"]
    canadapost = report["canadapost"]
    assert (canadapost["enabled"], canadapost["window_s"], canadapost["scale"]) == (True, 60.0, 1.0)
    limits = {group: values["limit"] for group, values in canadapost["groups"].items()}
    assert limits == {"A": 646, "B": 468, "C": 730, "D": 840, "E": 20, "F": 6}
    assert report["rejection_count"] == 0
    assert report["inside_retry_after_count"] == 0


def test_the_21st_tracking_call_in_a_minute_is_rejected_as_canada_post_does(
    sandbox: Sandbox, canadapost: CanadaPost, clock: FakeClock
) -> None:
    pin = pin_of(canadapost.create())
    sandbox.script_faults("canadapost", "TrackingSummary", ["rate_limit"])
    injected = track(canadapost, pin)  # the sandbox's answer for the rate_limit fault: call 1 of 20
    for second in range(1, 20):
        clock.now = START + second * 2.5
        assert track(canadapost, pin, "summary" if second % 2 else "detail").status_code == 200
    clock.now = START + 55
    rejected = track(canadapost, pin)
    assert (rejected.status_code, rejected.content) == (injected.status_code, injected.content)
    assert rejected.headers["Content-Type"] == injected.headers["Content-Type"]
    assert message_codes(rejected) == ["Server"]
    assert slm_rejected(rejected)
    report = sandbox.throttle_report()
    assert report["rejection_count"] == 1
    [event] = report["rejections"]
    assert event == {
        "service": "canadapost",
        "endpoint": "TrackingSummary",
        "group": "E",
        "at": START + 55,
        "reason": "limit",
        "refused": True,
        "retry_after_s": None,
    }
    assert report["rejections_by_group"] == {"canadapost.E": 1}
    assert report["canadapost"]["groups"]["E"]["in_window"] == 20
    assert report["canadapost"]["groups"]["E"]["blocked_for_s"] == 60.0
    # The injected fault is a fault, not the client's doing: it is not a throttle rejection.
    assert [entry["fault"] for entry in sandbox.request_log()].count("rate_limit") == 1


def test_the_block_lasts_one_window_from_the_rejection_then_lifts(
    sandbox: Sandbox, canadapost: CanadaPost, clock: FakeClock
) -> None:
    sandbox.set_canadapost_limits(GroupLimits(limits={"E": 2}, window_s=10.0))
    pin = pin_of(canadapost.create())
    assert track(canadapost, pin).status_code == 200  # t = 0
    clock.now = START + 5
    assert track(canadapost, pin).status_code == 200
    clock.now = START + 6
    assert slm_rejected(track(canadapost, pin))  # the third in (−4, 6]: blocked until 16
    clock.now = START + 10.5
    # The first call has left the window, so the window alone would let one through: the block does not.
    assert slm_rejected(track(canadapost, pin, "detail"))
    clock.now = START + 15.9
    assert slm_rejected(track(canadapost, pin))
    clock.now = START + 16
    assert track(canadapost, pin).status_code == 200  # lifted; the calls before the block are gone
    assert track(canadapost, pin).status_code == 200
    assert slm_rejected(track(canadapost, pin))
    reasons = [event["reason"] for event in sandbox.throttle_report()["rejections"]]
    assert reasons == ["limit", "blocked", "blocked", "limit"]


def test_the_window_rolls_rather_than_restarting_each_period(
    sandbox: Sandbox, canadapost: CanadaPost, clock: FakeClock
) -> None:
    sandbox.set_canadapost_limits(GroupLimits(limits={"C": 3}, window_s=10.0))
    for offset in (0, 4, 8, 10):  # at 10 the call made at 0 has left the window (10 − 10, 10]
        clock.now = START + offset
        assert lookup(canadapost, "nothing").status_code == 200, offset
    clock.now = START + 13  # 4, 8 and 10 are still inside: a fixed 10 s period would have room
    assert slm_rejected(lookup(canadapost, "nothing"))


def test_a_rejected_create_buys_no_label_and_other_groups_still_answer(
    sandbox: Sandbox, canadapost: CanadaPost, clock: FakeClock
) -> None:
    sandbox.set_canadapost_limits(GroupLimits(limits={"A": 2}))
    first = canadapost.create(contract_request(request_id="req-1", reference="R-1"))
    second = canadapost.create(contract_request(request_id="req-2", reference="R-2", group_id="G1"))
    assert (first.status_code, second.status_code) == (200, 200)
    clock.now = START + 30
    third = canadapost.create(contract_request(request_id="req-3", reference="R-3"))
    assert slm_rejected(third)
    assert sandbox.state()["canadapost"]["labels_bought"] == 2
    assert sandbox.labels_bought_per_order() == {"R-1": 1, "R-2": 1}
    # Group A is blocked: its other calls are refused too, the label download among them.
    label = links(first.content)["label"].get("href")
    assert slm_rejected(canadapost.get(label, "application/pdf"))
    assert slm_rejected(canadapost.get(links(first.content)["self"].get("href")))
    # Groups C (search), E (tracking) and B (void) have budgets of their own.
    assert lookup(canadapost, "req-3").status_code == 200
    assert parse(lookup(canadapost, "req-3").content).findall("{*}link") == []
    assert track(canadapost, pin_of(first)).status_code == 200
    assert canadapost.delete(links(second.content)["self"].get("href")).status_code == 204
    assert sandbox.throttle_report()["rejections_by_group"] == {"canadapost.A": 3}
    clock.now = START + 90  # the block ends 60 s after the rejection at 30
    fourth = canadapost.create(contract_request(request_id="req-3", reference="R-3"))
    assert fourth.status_code == 200
    assert canadapost.get(label, "application/pdf").status_code == 200
    assert sandbox.labels_bought_per_order() == {"R-1": 1, "R-3": 1}


def test_a_rejected_call_draws_no_fault_and_leaves_the_script_alone(
    sandbox: Sandbox, canadapost: CanadaPost, clock: FakeClock
) -> None:
    sandbox.set_canadapost_limits(GroupLimits(limits={"A": 1}))
    assert canadapost.create(contract_request(request_id="req-1", reference="R-1")).status_code == 200
    sandbox.script_faults("canadapost", "CreateShipment", ["commit_then_drop"])
    assert slm_rejected(canadapost.create(contract_request(request_id="req-2", reference="R-2")))
    assert sandbox.fault_plan.pending_script("canadapost", "CreateShipment") == ["commit_then_drop"]
    clock.now = START + 60
    with pytest.raises(requests.ConnectionError):
        canadapost.create(contract_request(request_id="req-2", reference="R-2"))
    assert sandbox.labels_bought_per_order() == {"R-1": 1, "R-2": 1}
    rejected = [entry for entry in sandbox.request_log() if entry["status"] == 503]
    assert [(entry["endpoint"], entry["fault"]) for entry in rejected] == [("CreateShipment", None)]


def test_a_call_with_wrong_credentials_counts_against_no_key(
    sandbox: Sandbox, canadapost: CanadaPost
) -> None:
    sandbox.set_canadapost_limits(GroupLimits(limits={"C": 1}))
    for _ in range(3):
        refused = canadapost.request("GET", f"{SHIPMENTS}?requestId=x", auth=(CP_AUTH[0], "wrong"))
        assert message_codes(refused) == ["E002"]
    assert lookup(canadapost, "x").status_code == 200
    assert slm_rejected(lookup(canadapost, "x"))


def test_calls_that_fail_still_count(sandbox: Sandbox, canadapost: CanadaPost) -> None:
    sandbox.set_canadapost_limits(GroupLimits(limits={"E": 2}))
    assert track(canadapost, "999999999999").status_code == 404  # No Pin History: still a call
    assert canadapost.get("/vis/track/pin/1/summary", "*/*").status_code == 406
    assert slm_rejected(track(canadapost, "999999999999"))


def test_scaled_limits_from_the_config(clock: FakeClock) -> None:
    clock.now = START
    config = SandboxConfig(canadapost_limits=GroupLimits(scale=0.01, window_s=2.0, limits={"B": 3}))
    with Sandbox(config, clock=clock) as sandbox:
        client = CanadaPost(sandbox.base_url)
        groups = sandbox.throttle_report()["canadapost"]["groups"]
        # 1 % of Canada Post's defaults, rounded down but never below one call; B given outright.
        assert {group: values["limit"] for group, values in groups.items()} == {
            "A": 6,
            "B": 3,
            "C": 7,
            "D": 8,
            "E": 1,
            "F": 1,
        }
        pin = pin_of(client.create())
        assert track(client, pin).status_code == 200
        assert slm_rejected(track(client, pin))
        clock.now = START + 1.9
        assert slm_rejected(track(client, pin))
        clock.now = START + 2.0
        assert track(client, pin).status_code == 200
        # A reset goes back to the configured (scaled) limits, not to Canada Post's defaults.
        sandbox.set_canadapost_limits(GroupLimits())
        sandbox.reset()
        assert sandbox.throttle_report()["canadapost"]["groups"]["E"]["limit"] == 1
        assert sandbox.throttle_report()["rejection_count"] == 0
        client.session.close()


def test_throttling_can_be_turned_off(sandbox: Sandbox, canadapost: CanadaPost) -> None:
    sandbox.set_canadapost_limits(GroupLimits(enabled=False, limits={"E": 1}))
    pin = pin_of(canadapost.create())
    assert [track(canadapost, pin).status_code for _ in range(25)] == [200] * 25
    assert sandbox.throttle_report()["rejection_count"] == 0


def test_the_control_api_sets_and_reports_the_limits(sandbox: Sandbox, canadapost: CanadaPost) -> None:
    control = f"{sandbox.base_url}/_sandbox/throttle"
    answer = requests.put(
        f"{control}/canadapost", json={"limits": {"E": 1}, "scale": 0.5, "window_s": 5}, timeout=5
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["throttle"] == {"enabled": True, "limits": {"E": 1}, "scale": 0.5, "window_s": 5.0}
    pin = pin_of(canadapost.create())
    track(canadapost, pin)
    assert slm_rejected(track(canadapost, pin))
    report = requests.get(control, timeout=5).json()
    assert report["canadapost"]["groups"]["A"]["limit"] == 323
    assert report["canadapost"]["groups"]["E"] == {
        "limit": 1,
        "in_window": 1,
        "peak_in_window": 1,
        "blocked_for_s": 5.0,
    }
    assert report["rejection_count"] == 1
    for body in ({"limits": {"Z": 1}}, {"scale": 0}, {"window": 60}, {"limits": {"E": 0}}):
        refused = requests.put(f"{control}/canadapost", json=body, timeout=5)
        assert refused.status_code == 400, body
        assert "error" in refused.json()
    assert requests.put(f"{control}/ups", json={}, timeout=5).status_code == 400


def test_concurrent_calls_never_get_past_the_limit(sandbox: Sandbox) -> None:
    sandbox.set_canadapost_limits(GroupLimits(limits={"A": 10}))
    statuses: list[int] = []
    lock = threading.Lock()

    def buy(worker: int) -> None:
        client = CanadaPost(sandbox.base_url)
        for attempt in range(4):
            reference = f"W{worker}-{attempt}"
            answer = client.create(contract_request(request_id=reference, reference=reference))
            with lock:
                statuses.append(answer.status_code)
        client.session.close()

    workers = [threading.Thread(target=buy, args=(worker,)) for worker in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(statuses) == [200] * 10 + [503] * 22
    assert sandbox.state()["canadapost"]["labels_bought"] == 10
    assert sandbox.throttle_report()["rejection_count"] == 22


@pytest.mark.unit
def test_the_limits_are_per_api_key() -> None:
    now = [START]
    throttle = Throttle(GroupLimits(limits={"A": 2}), EndpointLimits(), lambda: now[0])
    assert [throttle.admit_canadapost("key-1", "CreateShipment") for _ in range(3)] == [True, True, False]
    assert [throttle.admit_canadapost("key-2", "GetArtifact") for _ in range(2)] == [True, True]
    assert throttle.admit_canadapost("key-1", "GetShipment") is False
    assert throttle.admit_canadapost("key-2", "GetShipment") is False
    now[0] += 60
    assert throttle.admit_canadapost("key-1", "GetShipment") is True
    groups = throttle.report()["canadapost"]["groups"]
    assert (groups["A"]["in_window"], groups["A"]["peak_in_window"]) == (1, 2)


@pytest.mark.unit
def test_settings_are_checked() -> None:
    for bad, complaint in (
        ({"limits": {"G": 5}}, "unknown Canada Post throttle group 'G'"),
        ({"limits": {"A": 0}}, "limit of group A"),
        ({"limits": {"A": 2.5}}, "limit of group A"),
        ({"scale": 0.0}, "rate scale"),
        ({"scale": -1.0}, "rate scale"),
        ({"window_s": 0.0}, "throttle window"),
    ):
        with pytest.raises(ValueError, match=complaint):
            GroupLimits(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="OR99"):
        Sandbox(SandboxConfig(bestbuy_limits=EndpointLimits({"OR99": EndpointLimit(1, 60.0)})))
    with pytest.raises(ValueError, match="whole number of calls"):
        EndpointLimit(0, 60.0)
    with pytest.raises(ValueError, match="positive window"):
        EndpointLimit(1, 0.0)
    assert parse_group_limit("e=5") == ("E", 5)
    assert parse_endpoint_limit("or11=1/60") == ("OR11", EndpointLimit(1, 60.0))
    for text in ("E", "E=x", "E=-1"):
        with pytest.raises(ValueError, match="GROUP=CALLS"):
            parse_group_limit(text)
    for text in ("OR11", "OR11=1", "OR11=x/60", "=1/60", "OR11=1/x"):
        with pytest.raises(ValueError, match="ENDPOINT=CALLS/SECONDS"):
            parse_endpoint_limit(text)


# --- Best Buy ------------------------------------------------------------------------------


def test_or11_beyond_its_limit_is_429_with_the_seconds_until_the_window_allows_one(
    sandbox: Sandbox, bestbuy: BestBuy, clock: FakeClock
) -> None:
    sandbox.set_bestbuy_limits(EndpointLimits({"OR11": EndpointLimit(1, 60.0)}))
    assert bestbuy.orders().status_code == 200
    clock.now = START + 20.5
    limited = bestbuy.orders()
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "40"  # the first call leaves the window at 60
    assert limited.json() == {"status": 429, "message": "Too Many Requests"}
    clock.now = START + 45
    inside = bestbuy.orders()
    assert (inside.status_code, inside.headers["Retry-After"]) == (429, "16")  # until 60.5, not later
    clock.now = START + 60.2
    assert (bestbuy.orders().status_code, bestbuy.orders().headers["Retry-After"]) == (429, "1")
    clock.now = START + 60.5  # what the first 429 said: obeying it is not counted
    assert bestbuy.orders().status_code == 200
    report = sandbox.throttle_report()
    assert report["inside_retry_after_count"] == 3
    assert [(event["at"], event["refused"]) for event in report["inside_retry_after"]] == [
        (START + 45, True),
        (START + 60.2, True),
        (START + 60.2, True),
    ]
    assert [event["reason"] for event in report["rejections"]] == [
        "limit",
        "retry_after",
        "retry_after",
        "retry_after",
    ]
    assert report["rejections"][0]["retry_after_s"] == 40
    assert report["rejections_by_group"] == {"bestbuy.OR11": 4}
    assert sandbox.state()["requests"]["counts"]["bestbuy.OR11"] == 6


def test_a_refused_update_is_not_performed_and_endpoints_are_independent(
    sandbox: Sandbox, bestbuy: BestBuy, clock: FakeClock
) -> None:
    sandbox.set_bestbuy_limits(
        EndpointLimits({"OR23": EndpointLimit(1, 10.0), "OR11": EndpointLimit(1, 60.0)})
    )
    [order] = sandbox.generate_orders(1, seed=70, state="SHIPPING")
    path = f"/api/orders/{order['order_id']}/tracking"
    first = bestbuy.request("PUT", path, json={"carrier_code": "CPCL", "tracking_number": "111111111111"})
    assert first.status_code == 204
    clock.now = START + 3
    second = bestbuy.request("PUT", path, json={"carrier_code": "CPCL", "tracking_number": "222222222222"})
    assert (second.status_code, second.headers["Retry-After"]) == (429, "7")
    assert sandbox.state()["bestbuy"]["orders"][order["order_id"]]["tracking_number"] == "111111111111"
    # OR11 and OR24 have windows of their own.
    assert bestbuy.orders().status_code == 200
    assert bestbuy.request("PUT", f"/api/orders/{order['order_id']}/ship").status_code == 204
    clock.now = START + 10
    third = bestbuy.request("PUT", path, json={"carrier_code": "CPCL", "tracking_number": "333333333333"})
    assert third.status_code == 204  # performed once the window allows it (a shipped order's change)
    assert sandbox.state()["bestbuy"]["orders"][order["order_id"]]["tracking_number"] == "333333333333"
    assert sandbox.throttle_report()["inside_retry_after_count"] == 0


def test_an_injected_429_is_a_retry_after_window_that_is_counted(
    sandbox: Sandbox, bestbuy: BestBuy, clock: FakeClock
) -> None:
    sandbox.set_faults("bestbuy", Faults(retry_after_s=5))
    sandbox.script_faults("bestbuy", "OR11", ["rate_limit"])
    assert bestbuy.orders().status_code == 429
    clock.now = START + 2
    # No Retry-After mode for OR11: the call is answered, but it came too early and is recorded.
    assert bestbuy.orders().status_code == 200
    assert bestbuy.request("GET", "/api/account").status_code == 200  # another endpoint: not inside
    clock.now = START + 5
    assert bestbuy.orders().status_code == 200
    report = sandbox.throttle_report()
    assert report["rejection_count"] == 0  # an injected 429 is a fault, not a throttle rejection
    assert report["inside_retry_after"] == [
        {
            "service": "bestbuy",
            "endpoint": "OR11",
            "group": None,
            "at": START + 2,
            "reason": "retry_after",
            "refused": False,
            "retry_after_s": None,
        }
    ]
    # In Retry-After mode the injected 429's window is enforced too.
    sandbox.set_bestbuy_limits(EndpointLimits({"OR11": EndpointLimit(100, 60.0)}))
    sandbox.script_faults("bestbuy", "OR11", ["rate_limit"])
    assert bestbuy.orders().status_code == 429
    clock.now = START + 7
    early = bestbuy.orders()
    assert (early.status_code, early.headers["Retry-After"]) == (429, "3")
    clock.now = START + 10
    assert bestbuy.orders().status_code == 200
    assert sandbox.throttle_report()["inside_retry_after_count"] == 2


def test_the_best_buy_mode_through_the_control_api(sandbox: Sandbox, bestbuy: BestBuy) -> None:
    control = f"{sandbox.base_url}/_sandbox/throttle/bestbuy"
    body = {"limits": {"OR11": {"calls": 1, "window_s": 60}}}
    answer = requests.put(control, json=body, timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.json()["throttle"] == {"limits": {"OR11": {"calls": 1, "window_s": 60.0}}}
    bestbuy.orders()
    assert bestbuy.orders().status_code == 429
    state = requests.get(f"{sandbox.base_url}/_sandbox/state", timeout=5).json()["throttle"]
    assert state["bestbuy"]["endpoints"] == {
        "OR11": {
            "limit": {"calls": 1, "window_s": 60.0},
            "in_window": 1,
            "peak_in_window": 1,
            "retry_after_for_s": 60.0,
        }
    }
    for bad in ({"limits": {"OR99": {"calls": 1, "window_s": 60}}}, {"limits": {"OR11": 1}}, {"OR11": {}}):
        refused = requests.put(control, json=bad, timeout=5)
        assert refused.status_code == 400, bad
    requests.post(f"{sandbox.base_url}/_sandbox/reset", timeout=5)
    assert bestbuy.orders().status_code == 200
    assert bestbuy.orders().status_code == 200
    assert requests.get(f"{sandbox.base_url}/_sandbox/throttle", timeout=5).json()["rejection_count"] == 0


# --- fulfil sandbox serve ------------------------------------------------------------------


def printed_until_ready(process: subprocess.Popen[str]) -> list[str]:
    """The lines `serve` prints before it waits (the last one names the state URL)."""
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("# state:"):
        line = process.stdout.readline()
        assert line, f"serve stopped early: {lines}"
        lines.append(line.strip())
    return lines


def test_serve_options_set_the_throttles() -> None:
    code = "from fulfil.sandbox.cli import sandbox_app; sandbox_app()"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FULFIL_")}
    options = ["--cp-throttle-scale", "0.5", "--cp-throttle-limit", "E=1", "--cp-throttle-window-s", "30"]
    options += ["--bb-throttle-limit", "OR11=1/60", "--bb-throttle-limit", "OR23=2/10"]
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        printed = printed_until_ready(process)
        url = printed[0].rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:"), url
        assert "# Canada Post throttles per 30 s: A 323, B 234, C 365, D 420, E 1, F 3" in printed
        assert "# Best Buy OR11: at most 1 per 60 s, then 429 with Retry-After" in printed
        report = requests.get(f"{url}/_sandbox/throttle", timeout=5).json()
        assert (report["canadapost"]["scale"], report["canadapost"]["window_s"]) == (0.5, 30.0)
        assert report["canadapost"]["groups"]["A"]["limit"] == 323
        assert report["canadapost"]["groups"]["E"]["limit"] == 1
        assert report["bestbuy"]["limits"] == {
            "OR11": {"calls": 1, "window_s": 60.0},
            "OR23": {"calls": 2, "window_s": 10.0},
        }
        client = CanadaPost(url)
        assert track(client, "999999999999").status_code == 404
        assert slm_rejected(track(client, "999999999999"))
        client.session.close()
        headers = {"Authorization": BB_KEY}
        assert requests.get(f"{url}/api/orders", headers=headers, timeout=5).status_code == 200
        limited = requests.get(f"{url}/api/orders", headers=headers, timeout=5)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        process.send_signal(signal.SIGTERM)
        _output, errors = process.communicate(timeout=10)
        assert process.returncode == 0, errors
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_serve_can_turn_the_canada_post_throttle_off() -> None:
    code = "from fulfil.sandbox.cli import sandbox_app; sandbox_app()"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FULFIL_")}
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", "0", "--no-cp-throttle"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        printed = printed_until_ready(process)
        url = printed[0].rsplit(" ", 1)[-1]
        assert not any("Canada Post throttles" in line for line in printed)
        assert requests.get(f"{url}/_sandbox/throttle", timeout=5).json()["canadapost"]["enabled"] is False
        process.send_signal(signal.SIGINT)
        _output, errors = process.communicate(timeout=10)
        assert process.returncode == 0, errors
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_nc_shipments_and_refunds_are_throttled_in_their_groups(
    sandbox: Sandbox, canadapost: CanadaPost
) -> None:
    sandbox.set_canadapost_limits(GroupLimits(limits={"A": 1, "B": 1, "C": 1}))
    created = canadapost.create_nc()
    assert created.status_code == 200
    refund = links(created.content)["refund"].get("href")
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<non-contract-shipment-refund-request xmlns="http://www.canadapost.ca/ws/ncshipment-v4">'
        b"<email>desk@example.com</email></non-contract-shipment-refund-request>"
    )
    headers = {"Accept": NCSHIPMENT_MEDIA, "Content-Type": NCSHIPMENT_MEDIA}
    assert canadapost.request("POST", refund, data=body, headers=headers).status_code == 200
    assert slm_rejected(canadapost.request("POST", refund, data=body, headers=headers))
    assert canadapost.get(f"/rs/{CUSTOMER}/ncshipment?trackingPIN=1", NCSHIPMENT_MEDIA).status_code == 200
    assert slm_rejected(canadapost.get(f"/rs/{CUSTOMER}/ncshipment?trackingPIN=1", NCSHIPMENT_MEDIA))
    assert slm_rejected(canadapost.get(links(created.content)["details"].get("href"), NCSHIPMENT_MEDIA))
    assert slm_rejected(canadapost.create())  # a contract create is group A as well
    assert sandbox.throttle_report()["rejections_by_group"] == {
        "canadapost.A": 2,
        "canadapost.B": 1,
        "canadapost.C": 1,
    }
