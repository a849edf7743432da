"""What requests used to do for fulfil, now done by fulfil/audit/transport.py and the sender: the
URL and query as sent, Basic auth's encoding, and the proxy the environment names for an origin."""

from __future__ import annotations

import base64

import pytest
import urllib3

from fulfil.audit.sender import with_query
from fulfil.audit.transport import BasicAuth, RawKeyAuth, pools_for

pytestmark = pytest.mark.unit


def test_the_query_is_appended_with_lists_repeated_and_none_left_out() -> None:
    url = with_query(
        "https://h.example/api/orders", {"order_ids": ["A-1", "B 2"], "max": 100, "paginate": None}
    )
    assert url == "https://h.example/api/orders?order_ids=A-1&order_ids=B+2&max=100"
    assert with_query("https://h.example/a?x=1", {"y": "2"}) == "https://h.example/a?x=1&y=2"
    assert with_query("https://h.example/a", {"y": None}) == "https://h.example/a"


def test_characters_a_url_cannot_hold_are_quoted_and_escapes_kept() -> None:
    assert with_query("https://h.example/a b/é?q=%2F", None) == "https://h.example/a%20b/%C3%A9?q=%2F"


def test_basic_auth_is_latin_1_when_it_can_be_else_utf_8() -> None:
    assert BasicAuth("user", "pässword").header_value() == "Basic " + base64.b64encode(
        "user:pässword".encode("latin-1")
    ).decode("ascii")
    assert BasicAuth("user", "пароль").header_value() == "Basic " + base64.b64encode(
        "user:пароль".encode()
    ).decode("ascii")
    assert RawKeyAuth("shop-key").header_value() == "shop-key"


def _clear_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


def test_no_proxy_named_means_direct_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_proxies(monkeypatch)
    manager = pools_for("https://soa-gw.canadapost.ca", True)
    assert not isinstance(manager, urllib3.ProxyManager)


def test_the_environment_proxy_carries_its_credentials_in_its_own_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://alice:s%40cret@proxy.internal:3128")
    manager = pools_for("https://soa-gw.canadapost.ca", True)
    assert isinstance(manager, urllib3.ProxyManager)
    assert manager.proxy is not None
    assert (manager.proxy.host, manager.proxy.port, manager.proxy.auth) == ("proxy.internal", 3128, None)
    expected = "Basic " + base64.b64encode(b"alice:s@cret").decode("ascii")
    assert manager.proxy_headers == {"Proxy-Authorization": expected}


def test_no_proxy_exempts_the_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.canadapost.ca")
    assert not isinstance(pools_for("https://soa-gw.canadapost.ca", True), urllib3.ProxyManager)
    proxied = pools_for("https://marketplace.bestbuy.ca", True)
    assert isinstance(proxied, urllib3.ProxyManager)
    assert proxied.proxy is not None
    assert proxied.proxy.scheme == "http"  # a proxy named without a scheme is an HTTP proxy


def test_every_pool_reports_to_the_wire_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    from fulfil.audit.wire import ProbedHTTPConnection, ProbedHTTPSConnection

    _clear_proxies(monkeypatch)
    manager = pools_for("https://soa-gw.canadapost.ca", True)
    assert manager.connection_from_url("https://soa-gw.canadapost.ca").ConnectionCls is ProbedHTTPSConnection
    assert manager.connection_from_url("http://localhost:1").ConnectionCls is ProbedHTTPConnection


@pytest.mark.parametrize("proxy", ["http://alice:s3cret@[bad", "ftp://alice:s3cret@proxy.internal:21"])
def test_an_unusable_proxy_setting_is_a_configuration_error_without_its_password(
    monkeypatch: pytest.MonkeyPatch, proxy: str
) -> None:
    from fulfil.errors import ConfigError

    _clear_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    with pytest.raises(ConfigError, match="HTTPS_PROXY") as refused:
        pools_for("https://soa-gw.canadapost.ca", True)
    assert "s3cret" not in str(refused.value)
