"""The connections behind one service's audited HTTP: urllib3 pools to its one origin, whose
connections report to the wire probe, verifying TLS against the trust store, through the proxy the
environment names for that origin.

urllib3 directly, not a requests session: requests prepares, merges and wraps every call (cookies,
hooks, settings, adapters), which cost about 0.4 ms of CPU a request, as much as the HTTP itself;
fulfil uses none of it. What requests did that fulfil relies on is done here or in the sender,
once: proxies from HTTPS_PROXY/HTTP_PROXY/NO_PROXY, certifi's CA bundle by default, a default
header set, Basic auth.
"""

from __future__ import annotations

import base64
import os
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit

import urllib3

from fulfil.audit.wire import PROBED_POOLS
from fulfil.errors import ConfigError

# As requests sent them, so that what the services see (and what api_calls records) is unchanged.
DEFAULT_HEADERS = {"Accept-Encoding": "gzip, deflate", "Accept": "*/*", "Connection": "keep-alive"}
# Connections kept per origin: one worker uses one at a time; a few spare cost nothing.
POOL_SIZE = 10


class BasicAuth:
    """HTTP Basic, encoding a str user and password as Latin-1 when it can (as requests did, and
    as Canada Post's gateway expects), else UTF-8."""

    def __init__(self, username: str, password: str) -> None:
        pair = f"{username}:{password}"
        try:
            raw = pair.encode("latin-1")
        except UnicodeEncodeError:
            raw = pair.encode("utf-8")
        self._value = "Basic " + base64.b64encode(raw).decode("ascii")

    def header_value(self) -> str:
        return self._value


class RawKeyAuth:
    """Mirakl's scheme: the shop key itself in Authorization, no 'Bearer'."""

    def __init__(self, key: str) -> None:
        self.key = key

    def header_value(self) -> str:
        return self.key


Credentials = BasicAuth | RawKeyAuth


def pools_for(origin: str, trust: str | bool) -> urllib3.PoolManager:
    """The pools for ``origin`` (scheme://host[:port]): through the environment's proxy for it,
    unless NO_PROXY exempts the host; certificates verified against ``trust`` (True: certifi's
    bundle; else a PEM file or a directory of them)."""
    tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
    if trust is True:
        import certifi

        tls["ca_certs"] = certifi.where()
    elif isinstance(trust, str) and os.path.isdir(trust):
        tls["ca_cert_dir"] = trust
    elif isinstance(trust, str):
        tls["ca_certs"] = trust
    proxy = _proxy_for(origin)
    try:
        manager = _manager(proxy, tls)
    except ValueError as exc:  # urllib3's ProxySchemeUnknown and LocationParseError included
        # Never the URL itself: it may hold the proxy's password.
        scheme = urlsplit(origin).scheme.upper()
        raise ConfigError(
            f"{scheme}_PROXY (or ALL_PROXY) in the environment is not a usable proxy URL "
            f"({type(exc).__name__}); fix or unset it"
        ) from None
    manager.pool_classes_by_scheme = dict(PROBED_POOLS)
    return manager


def _manager(proxy: str | None, tls: dict[str, Any]) -> urllib3.PoolManager:
    manager: urllib3.PoolManager
    if proxy is None:
        manager = urllib3.PoolManager(num_pools=4, maxsize=POOL_SIZE, **tls)
    else:
        parts = urlsplit(proxy)
        proxy_headers = None
        if parts.username is not None:
            user = unquote(parts.username)
            password = unquote(parts.password or "")
            proxy_headers = {"Proxy-Authorization": BasicAuth(user, password).header_value()}
            proxy = proxy.replace(parts.netloc, parts.netloc.rpartition("@")[2], 1)
        manager = urllib3.ProxyManager(
            proxy, num_pools=4, maxsize=POOL_SIZE, proxy_headers=proxy_headers, **tls
        )
    return manager


def _proxy_for(origin: str) -> str | None:
    """The proxy the environment names for ``origin``, unless NO_PROXY exempts its host (the
    standard library's reading of the variables, which is curl's and requests')."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(origin)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not proxy or bypass(parts.netloc, proxies):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"
