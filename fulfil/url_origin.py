"""The origin of an http(s) URL (scheme, host, port), for deciding where credentials may be sent.

A URL is judged strictly, so the host compared here is the host the HTTP library connects to:
parsers disagree about backslashes, ``@`` inside the authority, percent-encoded or non-ASCII host
names (which IDNA would fold into other characters), so all of those are refused rather than
interpreted. Host names are compared as written (lower-cased), never resolved: ``localhost`` and
``127.0.0.1`` are different origins, which errs on the side of not sending.

Errors never repeat the URL or any part of its authority: a malformed one may hold a password
(``https://user:pa/ss@host``), and a URL may be megabytes long. Only the scheme is shown.
"""

from __future__ import annotations

import functools
import ipaddress
import re

DEFAULT_PORTS = {"http": 80, "https": 443}

_SCHEME_AND_AUTHORITY = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)")
# Letters, digits and hyphens (RFC 1123), plus the underscore found in container service names.
_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_MAX_HOST_LENGTH = 253
_PORT = re.compile(r"[0-9]{1,5}")
_SHOWN_LENGTH = 60
# What has no place in a URL: anything outside printable ASCII, and the backslash.
_OUT_OF_PLACE = re.compile(r"[^!-~]|\\")
# URLs up to this long are remembered: a run asks about the same few origins thousands of times.
_REMEMBERED_LENGTH = 2048


def origin_of(url: str) -> str:
    """``scheme://host:port`` of an http or https URL: lower-case scheme and host, explicit port.

    IPv6 hosts come back in brackets, in their compressed form (``http://[::1]:80``). Raises
    ValueError for a URL without scheme or host, with a scheme other than http or https, with a
    user name or password, with a character that has no place in a URL (space, control,
    non-ASCII, backslash), or with a host or port that is not well-formed.
    """
    if len(url) <= _REMEMBERED_LENGTH:
        return _remembered_origin_of(url)
    return _origin_of(url)


@functools.lru_cache(maxsize=512)
def _remembered_origin_of(url: str) -> str:
    return _origin_of(url)


def _origin_of(url: str) -> str:
    out_of_place = _OUT_OF_PLACE.search(url)
    if out_of_place is not None:
        position = out_of_place.start()
        raise ValueError(f"a URL cannot contain the character {url[position]!a} (position {position})")
    match = _SCHEME_AND_AUTHORITY.match(url)
    if match is None:
        raise ValueError("the URL has no scheme://host (it must be an absolute http or https URL)")
    scheme = match.group(1).lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"the URL's scheme {_shown(scheme)} is not http or https")
    authority = match.group(2)
    if "@" in authority:
        raise ValueError("the URL carries a user name or password (user:password@host)")
    host, port_text = _split_authority(authority)
    if port_text is None:
        port = DEFAULT_PORTS[scheme]
    elif _PORT.fullmatch(port_text) and 1 <= int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise ValueError("the URL's port is not a number from 1 to 65535")
    return f"{scheme}://{host}:{port}"


def same_origin(url: str, origin: str) -> bool:
    """Whether ``url`` is on ``origin`` (an origin or any URL on it: only scheme, host, port count).

    A ``url`` that is not a usable http(s) URL is on no origin (False). An unusable ``origin`` is
    fulfil's own configuration gone wrong, so it raises ValueError rather than answering.
    """
    wanted = origin_of(origin)
    try:
        return origin_of(url) == wanted
    except ValueError:
        return False


def _split_authority(authority: str) -> tuple[str, str | None]:
    """(normalised host, port text or None when absent) of ``host[:port]``."""
    if authority.startswith("["):
        closing = authority.find("]")
        if closing < 0:
            raise ValueError("the URL's IPv6 address has no closing ]")
        host = _ipv6_host(authority[1:closing])
        rest = authority[closing + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError("only :port may follow the URL's IPv6 address")
        return host, rest[1:]
    name, colon, port_text = authority.partition(":")
    if ":" in port_text:
        raise ValueError("the URL's host looks like an IPv6 address, which must be in [brackets]")
    if not name:
        raise ValueError("the URL has no host")
    labels = name.split(".")
    if len(name) > _MAX_HOST_LENGTH or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            "the URL's host is not a host name (letters, digits, '-' and '_' in dot-separated labels)"
        )
    return name.lower(), port_text if colon else None


def _ipv6_host(text: str) -> str:
    # A zone (fe80::1%25eth0) names an interface of this machine: never a service's address.
    if "%" in text:
        raise ValueError("the URL's IPv6 address has a zone identifier, which is not accepted")
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise ValueError("the URL's IPv6 address is not valid") from None
    return f"[{address.compressed}]"


def _shown(value: str) -> str:
    if len(value) <= _SHOWN_LENGTH:
        return ascii(value)
    return f"{value[:_SHOWN_LENGTH]!a}… ({len(value)} characters)"
