"""Starting and stopping, the /_sandbox control API, configuration, and thread safety."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from fulfil.sandbox import Faults, Sandbox, SandboxConfig
from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from tests.sandbox.conftest import CUSTOMER, SHIPMENT_MEDIA, BestBuy, CanadaPost, contract_request, parse


def sandbox_threads(port: int) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == f"fulfil-sandbox:{port}"]


def test_start_stop_frees_the_port_and_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    sandbox = Sandbox(SandboxConfig()).start()
    port = sandbox.port
    assert port > 0
    assert sandbox.base_url == f"http://127.0.0.1:{port}"
    session = requests.Session()  # keeps a keep-alive connection open across stop()
    assert session.get(f"{sandbox.base_url}/_sandbox/state", timeout=5).status_code == 200
    started = time.monotonic()
    sandbox.stop()
    assert time.monotonic() - started < 3
    session.close()
    assert not sandbox.running
    assert sandbox_threads(port) == []
    assert set(threading.enumerate()) <= before  # handler threads were joined too
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))
    sandbox.stop()  # a second stop is harmless
    with pytest.raises(RuntimeError, match="not running"):
        _ = sandbox.base_url


def test_context_manager_and_a_late_answer_do_not_hold_up_stop() -> None:
    before = set(threading.enumerate())
    with Sandbox(
        SandboxConfig(bestbuy_faults=Faults(drop_rate=1.0, drop_mode="late", late_answer_s=60))
    ) as sandbox:
        client = BestBuy(sandbox.base_url)
        with pytest.raises(requests.ReadTimeout):
            client.request("GET", "/api/account", timeout=0.2)
        client.session.close()
        started = time.monotonic()
    assert time.monotonic() - started < 3
    assert set(threading.enumerate()) <= before


def test_state_has_exactly_the_documented_keys(sandbox: Sandbox, canadapost: CanadaPost) -> None:
    sandbox.generate_orders(1, seed=60)
    canadapost.create()
    state = requests.get(f"{sandbox.base_url}/_sandbox/state", timeout=5).json()
    assert set(state) == {"canadapost", "bestbuy", "requests", "throttle"}
    assert set(state["canadapost"]) == {"shipments", "labels_bought"}
    assert set(state["bestbuy"]) == {"orders"}
    assert set(state["requests"]) == {"counts", "log"}
    assert set(state["throttle"]) == {
        "canadapost",
        "bestbuy",
        "rejection_count",
        "rejections_by_group",
        "rejections",
        "inside_retry_after_count",
        "inside_retry_after",
    }
    assert set(state["throttle"]["canadapost"]) == {"enabled", "limits", "scale", "window_s", "groups"}
    assert set(state["throttle"]["canadapost"]["groups"]["A"]) == {
        "limit",
        "in_window",
        "peak_in_window",
        "blocked_for_s",
    }
    assert set(state["throttle"]["bestbuy"]) == {"limits", "endpoints"}
    shipment = state["canadapost"]["shipments"][0]
    assert {
        "shipment_id",
        "tracking_pin",
        "customer_request_id",
        "customer_ref_1",
        "contract",
        "status",
        "voided",
        "label_fetches",
        "created_at",
    } <= set(shipment)
    [order] = state["bestbuy"]["orders"].values()
    assert set(order) == {"state", "carrier_code", "tracking_number", "shipped"}
    [entry] = state["requests"]["log"]
    assert {"service", "endpoint", "method", "path", "status", "started_at", "finished_at"} <= set(entry)
    assert entry["started_at"] <= entry["finished_at"]
    assert state == sandbox.state()
    assert sandbox.request_log() == state["requests"]["log"]


def test_control_api_resets_and_steers(sandbox: Sandbox) -> None:
    base = f"{sandbox.base_url}/_sandbox"
    client = CanadaPost(sandbox.base_url)
    try:
        client.create()
        added = requests.post(
            f"{base}/orders/generate", json={"n": 2, "seed": 61, "state": "SHIPPING"}, timeout=5
        )
        assert added.status_code == 200
        order_id = added.json()["added"][0]
        canceled = requests.put(f"{base}/orders/{order_id}/state", json={"state": "CANCELED"}, timeout=5)
        assert canceled.status_code == 200
        assert sandbox.state()["bestbuy"]["orders"][order_id]["state"] == "CANCELED"
        faults = requests.put(f"{base}/faults/canadapost", json={"error_rate": 1.0}, timeout=5)
        assert faults.status_code == 200
        assert client.get(f"/rs/{CUSTOMER}/{CUSTOMER}/shipment?requestId=x").status_code in (500, 502, 503)
        scripted = requests.post(f"{base}/script/canadapost/GetShipments", json=["none"], timeout=5)
        assert scripted.status_code == 200
        assert client.get(f"/rs/{CUSTOMER}/{CUSTOMER}/shipment?requestId=x").status_code == 200
        assert requests.put(f"{base}/faults/canadapost", json={"error_rate": 7}, timeout=5).status_code == 400
        assert requests.get(f"{base}/nothing", timeout=5).status_code == 404
        reset = requests.post(f"{base}/reset", timeout=5)
        assert reset.status_code == 200
        state = sandbox.state()
        assert state["canadapost"] == {"shipments": [], "labels_bought": 0}
        assert state["bestbuy"]["orders"] == {}
        assert state["requests"] == {"counts": {}, "log": []}
        assert (
            client.get(f"/rs/{CUSTOMER}/{CUSTOMER}/shipment?requestId=x").status_code == 200
        )  # faults reset too
    finally:
        client.session.close()


def test_reset_restores_the_configured_orders_and_ids() -> None:
    config = SandboxConfig(seed=3, generated_orders=4, orders_seed=9, problem_orders=1)
    with Sandbox(config) as sandbox:
        first_orders = sandbox.state()["bestbuy"]["orders"]
        assert len(first_orders) == 4
        client = CanadaPost(sandbox.base_url)
        first_pin = parse(client.create().content).findtext("{*}tracking-pin")
        sandbox.reset()
        assert sandbox.state()["bestbuy"]["orders"] == first_orders
        assert parse(client.create().content).findtext("{*}tracking-pin") == first_pin  # same seed, same ids
        client.session.close()


def test_credentials_come_from_fulfils_environment() -> None:
    environment = {
        "FULFIL_CANADAPOST_USERNAME": "ops-user",
        "FULFIL_CANADAPOST_PASSWORD": "ops-pass-123",
        "FULFIL_CANADAPOST_CUSTOMER_NUMBER": "0009001",
        "FULFIL_BESTBUY_API_KEY": "shop-key-from-env",
    }
    config = SandboxConfig.from_environment(environment, seed=4)
    assert (config.canadapost_username, config.customer_number, config.seed) == ("ops-user", "0009001", 4)
    assert not config.uses_default_credentials()
    with Sandbox(config) as sandbox:
        headers = {"Content-Type": SHIPMENT_MEDIA, "Accept": SHIPMENT_MEDIA}
        url = f"{sandbox.base_url}/rs/9001/9001/shipment"
        good = requests.post(
            url, data=contract_request(), headers=headers, auth=("ops-user", "ops-pass-123"), timeout=5
        )
        assert good.status_code == 200
        assert "/rs/0000009001/0000009001/shipment/" in good.text
        default = (
            DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_USERNAME"],
            DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_PASSWORD"],
        )
        assert (
            requests.post(url, data=contract_request(), headers=headers, auth=default, timeout=5).status_code
            == 401
        )
        account = f"{sandbox.base_url}/api/account"
        assert (
            requests.get(account, headers={"Authorization": "shop-key-from-env"}, timeout=5).status_code
            == 200
        )
        assert requests.get(account, headers={"Authorization": DEFAULT_CREDENTIALS["FULFIL_BESTBUY_API_KEY"]},
                            timeout=5).status_code == 401  # fmt: skip
    assert SandboxConfig.from_environment({}).uses_default_credentials()
    assert SandboxConfig.from_environment({"FULFIL_SANDBOX_XSD_DIR": "/x"}).xsd_dir is not None


@pytest.mark.unit
def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="customer number"):
        SandboxConfig(customer_number="20-04")
    with pytest.raises(ValueError, match="problem_orders"):
        SandboxConfig(generated_orders=1, problem_orders=2)
    with pytest.raises(ValueError, match="time_scale"):
        SandboxConfig(time_scale=0)


def test_concurrent_purchases_are_all_recorded(sandbox: Sandbox) -> None:
    def buy(index: int) -> str:
        with requests.Session() as session:
            answer = session.post(
                f"{sandbox.base_url}/rs/{CUSTOMER}/{CUSTOMER}/shipment",
                data=contract_request(request_id=f"req-{index}", reference=f"ORDER-{index % 5}"),
                headers={"Content-Type": SHIPMENT_MEDIA, "Accept": SHIPMENT_MEDIA},
                auth=(
                    DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_USERNAME"],
                    DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_PASSWORD"],
                ),
                timeout=10,
            )
            assert answer.status_code == 200
            return parse(answer.content).findtext("{*}tracking-pin")

    with ThreadPoolExecutor(max_workers=8) as pool:
        pins = list(pool.map(buy, range(40)))
    assert len(set(pins)) == 40
    state = sandbox.state()
    assert state["canadapost"]["labels_bought"] == 40
    assert state["requests"]["counts"] == {"canadapost.CreateShipment": 40}
    assert sandbox.labels_bought_per_order() == {f"ORDER-{i}": 8 for i in range(5)}
