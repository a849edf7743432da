"""The fault servers themselves, over real sockets: the TLS front end relays and breaks on cue, the
trickle server never lets a per-read timeout fire, the recording server sees everything."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree

from fulfil.sandbox import Faults, Sandbox
from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from tests.fault_servers import RecordingServer, TlsFrontend, trickle_server
from tests.sandbox.conftest import contract_request

CUSTOMER = DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_CUSTOMER_NUMBER"]
CP_AUTH = (
    DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_USERNAME"],
    DEFAULT_CREDENTIALS["FULFIL_CANADAPOST_PASSWORD"],
)
BB_HEADERS = {"Authorization": DEFAULT_CREDENTIALS["FULFIL_BESTBUY_API_KEY"], "Accept": "application/json"}
SHIPMENT_MEDIA = "application/vnd.cpc.shipment-v8+xml"
SHIPMENTS = f"/rs/{CUSTOMER}/{CUSTOMER}/shipment"
CREATE_HEADERS = {"Content-Type": SHIPMENT_MEDIA, "Accept": SHIPMENT_MEDIA}


def hrefs(body: bytes) -> list[str]:
    root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    return [link.get("href") for link in root.iter("{*}link")]


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


def creates_seen(sandbox: Sandbox) -> int:
    return sum(1 for entry in sandbox.request_log() if entry["endpoint"] == "CreateShipment")


@pytest.fixture
def frontend(sandbox: Sandbox) -> Iterator[TlsFrontend]:
    with TlsFrontend(sandbox.base_url) as front:
        yield front


class TrustingSession(requests.Session):
    """A session that trusts one CA file on every request.

    ``Session.verify`` alone is not enough: requests lets ``REQUESTS_CA_BUNDLE`` override it.
    """

    def __init__(self, ca_pem_path: Path) -> None:
        super().__init__()
        self.ca_pem_path = ca_pem_path

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("verify", str(self.ca_pem_path))
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def session(frontend: TlsFrontend) -> Iterator[requests.Session]:
    with TrustingSession(frontend.ca_pem_path) as client:
        yield client


def test_requests_pass_through_with_https_links_on_one_kept_alive_connection(
    sandbox: Sandbox, frontend: TlsFrontend, session: requests.Session
) -> None:
    created = session.post(
        frontend.base_url + SHIPMENTS,
        data=contract_request(),
        headers=CREATE_HEADERS,
        auth=CP_AUTH,
        timeout=10,
    )
    assert created.status_code == 200, created.text
    links = hrefs(created.content)
    assert links
    assert all(link.startswith(f"{frontend.base_url}/rs/") for link in links)
    found = session.get(
        f"{frontend.base_url}{SHIPMENTS}?requestId=order-1-a1",
        headers={"Accept": SHIPMENT_MEDIA},
        auth=CP_AUTH,
        timeout=10,
    )
    assert hrefs(found.content) == [links[0]]
    sandbox.generate_orders(1, seed=3)
    orders = session.get(f"{frontend.base_url}/api/orders", headers=BB_HEADERS, timeout=10)
    assert orders.status_code == 200
    assert orders.json()["total_count"] == 1
    received = frontend.received
    assert [(entry.method, entry.behaviour) for entry in received] == [
        ("POST", "pass"),
        ("GET", "pass"),
        ("GET", "pass"),
    ]
    assert received[1].path == f"{SHIPMENTS}?requestId=order-1-a1"
    assert {entry.connection for entry in received} == {1}  # keep-alive, like a real gateway
    assert sandbox.labels_bought_per_order() == {"261250893-A": 1}


def test_corrupt_after_headers_gives_the_status_then_an_ssl_error_and_the_backend_performed_once(
    sandbox: Sandbox, frontend: TlsFrontend, session: requests.Session
) -> None:
    frontend.script("POST", r"/rs/\d+/\d+/shipment", ["corrupt_after_headers"])
    answer = session.post(
        frontend.base_url + SHIPMENTS,
        data=contract_request(),
        headers=CREATE_HEADERS,
        auth=CP_AUTH,
        timeout=10,
        stream=True,
    )
    assert answer.status_code == 200
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        _ = answer.content
    assert sandbox.labels_bought_per_order() == {"261250893-A": 1}
    assert creates_seen(sandbox) == 1
    assert [entry.behaviour for entry in frontend.requests_for("POST", r"/rs/.*")] == [
        "corrupt_after_headers"
    ]
    # The script is used up: the next request passes.
    again = session.get(
        f"{frontend.base_url}{SHIPMENTS}?requestId=order-1-a1",
        headers={"Accept": SHIPMENT_MEDIA},
        auth=CP_AUTH,
        timeout=10,
    )
    assert len(hrefs(again.content)) == 1


def test_fail_handshake_reaches_nothing_even_for_a_kept_alive_client(
    sandbox: Sandbox, frontend: TlsFrontend, session: requests.Session
) -> None:
    url = f"{frontend.base_url}/api/account"
    assert session.get(url, headers=BB_HEADERS, timeout=10).status_code == 200  # a pooled connection
    frontend.script("GET", r"/api/account", ["fail_handshake", "pass", "fail_handshake"])
    with pytest.raises(requests.exceptions.SSLError):
        session.get(url, headers=BB_HEADERS, timeout=10)
    assert session.get(url, headers=BB_HEADERS, timeout=10).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        session.get(url, headers=BB_HEADERS, timeout=10)
    assert session.get(url, headers=BB_HEADERS, timeout=10).status_code == 200
    assert [entry.behaviour for entry in frontend.received] == [
        "pass",
        "fail_handshake",
        "pass",
        "fail_handshake",
        "pass",
    ]
    assert frontend.failed_handshakes == 2
    assert [entry["endpoint"] for entry in sandbox.request_log()] == ["A01", "A01", "A01"]


def test_drop_after_request_performs_and_answers_nothing(
    sandbox: Sandbox, frontend: TlsFrontend, session: requests.Session
) -> None:
    frontend.script("POST", r"/rs/.*/shipment", ["drop_after_request"])
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.SSLError)):
        session.post(
            frontend.base_url + SHIPMENTS,
            data=contract_request(),
            headers=CREATE_HEADERS,
            auth=CP_AUTH,
            timeout=10,
        )
    assert sandbox.labels_bought_per_order() == {"261250893-A": 1}
    assert creates_seen(sandbox) == 1


def test_an_untrusted_client_never_reaches_the_backend(sandbox: Sandbox, frontend: TlsFrontend) -> None:
    # Verification stays on: without the throwaway CA the certificate is refused.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{frontend.base_url}/api/account", headers=BB_HEADERS, timeout=10)
    assert sandbox.request_log() == []


def test_frontend_leaves_no_thread_behind(sandbox: Sandbox) -> None:
    threads_before = threading.active_count()
    with TlsFrontend(sandbox.base_url) as front, TrustingSession(front.ca_pem_path) as client:
        assert client.get(f"{front.base_url}/api/account", headers=BB_HEADERS, timeout=10).ok
        # Still connected (keep-alive) when the front end closes.
    assert wait_for(lambda: threading.active_count() <= threads_before)
    assert not front.ca_pem_path.exists()


def test_trickle_server_never_lets_a_read_timeout_fire() -> None:
    body = b'{"ok": true}'
    interval = 0.02
    with trickle_server(body, interval) as url:
        started = time.monotonic()
        answer = requests.get(url, timeout=(1, 0.5))
        elapsed = time.monotonic() - started
        assert url.requests_received == 1
    assert answer.status_code == 200
    assert answer.json() == {"ok": True}
    head = len(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n")
    # Every byte waited its interval; the whole took far longer than the read timeout.
    assert elapsed >= 0.9 * interval * (head + len(body))
    assert elapsed > 0.5


def test_recording_server_sees_every_request_and_its_headers(sandbox: Sandbox) -> None:
    with RecordingServer() as recorder:
        sandbox.set_faults("canadapost", Faults(foreign_base_url=recorder.url))
        sandbox.script_faults("canadapost", "CreateShipment", ["foreign_links"])
        created = requests.post(
            sandbox.base_url + SHIPMENTS,
            data=contract_request(),
            headers=CREATE_HEADERS,
            auth=CP_AUTH,
            timeout=10,
        )
        label = next(href for href in hrefs(created.content) if "/artifact/" in href)
        assert label.startswith(recorder.url + "/rs/artifact/")
        assert recorder.requests() == []
        assert requests.get(label, timeout=5).status_code == 404
        assert requests.get(label, headers={"Authorization": "Basic c2VjcmV0"}, timeout=5).status_code == 404
    assert [request.path for request in recorder.requests()] == [label[len(recorder.url) :]] * 2
    assert recorder.authorization_headers() == ["Basic c2VjcmV0"]
