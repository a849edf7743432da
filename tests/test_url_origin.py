"""The origin (scheme, host, port) of a URL, as the HTTP layer compares it before sending credentials."""

from __future__ import annotations

import pytest

from fulfil.url_origin import origin_of, same_origin

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://ct.soa-gw.canadapost.ca", "https://ct.soa-gw.canadapost.ca:443"),
        ("https://ct.soa-gw.canadapost.ca/rs/artifact/6e93/1/0", "https://ct.soa-gw.canadapost.ca:443"),
        ("HTTPS://CT.Soa-GW.CanadaPost.CA/Path?Q=1", "https://ct.soa-gw.canadapost.ca:443"),
        ("https://soa-gw.canadapost.ca:443/rs", "https://soa-gw.canadapost.ca:443"),
        ("https://soa-gw.canadapost.ca:8443/rs", "https://soa-gw.canadapost.ca:8443"),
        ("http://127.0.0.1:38123/rs/1/1/shipment", "http://127.0.0.1:38123"),
        ("http://localhost", "http://localhost:80"),
        ("http://localhost:80/", "http://localhost:80"),
        ("http://sandbox_cp:8080/x", "http://sandbox_cp:8080"),  # docker-compose service names
        ("http://h:0080/", "http://h:80"),
        ("https://h/a#fragment", "https://h:443"),
        ("https://h?x=@evil.example", "https://h:443"),  # the authority ends at "?"
        ("https://h/{{placeholder}}/x", "https://h:443"),
        ("http://[::1]:8080/x", "http://[::1]:8080"),
        ("http://[::1]/x", "http://[::1]:80"),
        ("https://[2001:DB8:0:0::1]/", "https://[2001:db8::1]:443"),
        ("https://[::ffff:127.0.0.1]/", "https://[::ffff:7f00:1]:443"),
    ],
)
def test_origin_of(url: str, origin: str) -> None:
    assert origin_of(url) == origin


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "no scheme"),
        ("ct.soa-gw.canadapost.ca/rs", "no scheme"),
        ("//evil.example/rs", "no scheme"),
        ("/rs/1/1/shipment", "no scheme"),
        ("javascript:alert(1)", "no scheme"),
        ("mailto:a@b.example", "no scheme"),
        ("ftp://files.example/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("https:///path", "no host"),
        ("https://", "no host"),
        ("https://:443/", "no host"),
        ("https://user:pass@h.example/", "user name or password"),
        ("https://user@h.example/", "user name or password"),
        ("https://h.example@evil.example/", "user name or password"),
        ("https://h.example:443@evil.example/", "user name or password"),
        ("https://h.example\\@evil.example/", "character"),
        ("https://h.example\\evil.example/", "character"),
        ("https://h .example/", "character"),
        ("https://h.example/a b", "character"),
        (" https://h.example/", "character"),
        ("https://h.example/\n", "character"),
        ("https://h.example\r\nX-Injected: 1", "character"),
        ("https://h.example/\x00", "character"),
        ("https://h.example/\x7f", "character"),
        ("https://h\u00e9.example/", "character"),
        ("https://xn--h-9fa.example\u200b/", "character"),
        ("https://h.example\uff0fevil/", "character"),  # a full-width solidus
        ("https://%65vil.example/", "host"),
        ("https://h.example;evil/", "host"),
        ("https://-h.example/", "host"),
        ("https://h..example/", "host"),
        ("https://" + "a" * 64 + ".example/", "host"),
        ("https://h.example:/", "port"),
        ("https://h.example:0/", "port"),
        ("https://h.example:65536/", "port"),
        ("https://h.example:99999999999999999999/", "port"),
        ("https://h.example:44a/", "port"),
        ("https://h.example:-1/", "port"),
        ("http://[::1/", "IPv6"),
        ("http://[::1]x/", "port"),
        ("http://[not:an:address]/", "IPv6"),
        ("http://[fe80::1%25eth0]/", "IPv6"),
        ("http://[127.0.0.1]/", "IPv6"),
        ("http://::1/", "IPv6"),
    ],
)
def test_origin_of_refuses(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        origin_of(url)


def test_refusals_never_echo_a_long_value() -> None:
    with pytest.raises(ValueError, match="character") as caught:
        origin_of("https://h.example/" + "x" * 1_000_000 + "\n")
    assert len(str(caught.value)) < 300
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cret@h.example/",
        "https://user:s3cret/x@h.example/",  # an unencoded "/" ends the authority early
        "https://user:s3cret?@h.example/",
        "https://s3cret%41/",
        "https://[s3cret]/",
        "https://h.example:s3cret/",
        "https://h.example:1/\ns3cret",
    ],
)
def test_refusals_never_show_the_authority(url: str) -> None:
    """A malformed URL from the configuration may carry a password: no part of it is repeated."""
    with pytest.raises(ValueError) as caught:  # noqa: PT011 (the messages differ; the point is what they lack)
        origin_of(url)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://ct.soa-gw.canadapost.ca/rs/artifact/1/2/0", "https://ct.soa-gw.canadapost.ca"),
        ("https://CT.SOA-GW.CANADAPOST.CA:443/x", "https://ct.soa-gw.canadapost.ca"),
        ("https://ct.soa-gw.canadapost.ca/x", "https://ct.soa-gw.canadapost.ca:443"),
        ("https://ct.soa-gw.canadapost.ca/x", "https://ct.soa-gw.canadapost.ca/rs/other"),
        ("http://127.0.0.1:38123/rs/1", "http://127.0.0.1:38123"),
        ("http://[::1]:80/", "http://[0::1]"),
    ],
)
def test_same_origin(url: str, origin: str) -> None:
    assert same_origin(url, origin)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://ct.soa-gw.canadapost.ca/x", "https://ct.soa-gw.canadapost.ca"),  # scheme
        ("https://soa-gw.canadapost.ca/x", "https://ct.soa-gw.canadapost.ca"),  # production vs test
        ("https://ct.soa-gw.canadapost.ca.evil.example/x", "https://ct.soa-gw.canadapost.ca"),
        ("https://ct.soa-gw.canadapost.ca:8443/x", "https://ct.soa-gw.canadapost.ca"),  # port
        ("http://127.0.0.1:38124/rs/1", "http://127.0.0.1:38123"),
        ("http://localhost:38123/rs/1", "http://127.0.0.1:38123"),  # names are not resolved
        ("https://user:pass@ct.soa-gw.canadapost.ca/x", "https://ct.soa-gw.canadapost.ca"),  # invalid url
        ("//ct.soa-gw.canadapost.ca/x", "https://ct.soa-gw.canadapost.ca"),
        ("https://ct.soa-gw.canadapost.ca\\@evil.example/", "https://ct.soa-gw.canadapost.ca"),
    ],
)
def test_not_same_origin(url: str, origin: str) -> None:
    assert not same_origin(url, origin)


def test_same_origin_refuses_an_unusable_origin() -> None:
    """The origin is fulfil's own configuration: a bad one is an error, not a quiet "no"."""
    with pytest.raises(ValueError, match="no scheme"):
        same_origin("https://h.example/", "h.example")
