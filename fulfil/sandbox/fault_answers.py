"""The answers scripted faults put on the wire: hostile pages, and real answers mangled after commit.

Each function is pure (an answer in, an answer out), so a fault is the same bytes every time.
``fulfil.sandbox.faults`` says what each fault models; the server decides when one applies.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from urllib.parse import quote, urlencode, urlsplit

from lxml import etree

from fulfil.sandbox.wire import ApiResponse

HTML = "text/html; charset=utf-8"
# Local names of the elements that carry a tracking PIN in Canada Post answers.
PIN_ELEMENTS = frozenset({"tracking-pin", "pin"})


def echo_headers_page(request_line: str, headers: Iterable[tuple[str, str]]) -> ApiResponse:
    """An HTTP 500 error page that repeats the request, headers verbatim, as careless servers do.

    The values are deliberately not escaped: that is what such pages do, and escaping would hide
    the exact bytes a client must scrub. The "report" link carries the same lines URL-encoded,
    so both forms of every header value reach the client.
    """
    lines = [request_line, *(f"{name}: {value}" for name, value in headers)]
    report = "/support/report?" + urlencode({"request": "\n".join(lines)}, quote_via=quote)
    body = (
        "<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n"
        "<h1>Internal Server Error</h1>\r\n<p>The server could not process this request:</p>\r\n"
        "<pre>\r\n" + "\r\n".join(lines) + "\r\n</pre>\r\n"
        f'<p><a href="{html.escape(report, quote=True)}">Report this error</a></p>\r\n'
        "</body>\r\n</html>\r\n"
    )
    return ApiResponse(500, body.encode("utf-8"), HTML)


def html_200_page() -> ApiResponse:
    """A captive portal or proxy login page: HTTP 200, but not the service's answer."""
    body = (
        "<!DOCTYPE html>\r\n<html>\r\n<head><title>Network sign-in</title></head>\r\n<body>\r\n"
        "<h1>Sign in to continue</h1>\r\n"
        "<p>Your session has expired. Sign in to use this network.</p>\r\n"
        '<form method="post" action="/portal/login"><input name="user"><input name="password" '
        'type="password"><button>Sign in</button></form>\r\n'
        "</body>\r\n</html>\r\n"
    )
    return ApiResponse(200, body.encode("utf-8"), HTML)


def with_nul_bytes(response: ApiResponse) -> ApiResponse:
    """The same answer with NUL bytes at a third and two thirds of the body."""
    if response.status == 204 or not response.body:
        # A 204 cannot carry a body, so a NUL-bearing "no content" arrives as a 200.
        status = 200 if response.status == 204 else response.status
        return ApiResponse(
            status, b"\x00", response.content_type or "application/octet-stream", dict(response.headers)
        )
    body = response.body
    first, second = len(body) // 3, 2 * len(body) // 3
    mangled = body[:first] + b"\x00" + body[first:second] + b"\x00\x00" + body[second:]
    return ApiResponse(response.status, mangled, response.content_type, dict(response.headers))


def with_foreign_links(response: ApiResponse, foreign_base_url: str) -> ApiResponse:
    """Every ``href`` in an XML answer moved to another origin, path and query kept."""
    root = _xml(response)
    if root is None:
        return response
    base = foreign_base_url.rstrip("/")
    changed = False
    for element in root.iter():
        href = element.get("href") if isinstance(element.tag, str) else None
        if href is None:
            continue
        split = urlsplit(href)
        element.set("href", base + split.path + (f"?{split.query}" if split.query else ""))
        changed = True
    return _reserialized(response, root) if changed else response


def with_hostile_pin(response: ApiResponse, hostile_pin: str) -> ApiResponse:
    """Every PIN element of an XML answer reads ``hostile_pin``; nothing else changes."""
    root = _xml(response)
    if root is None:
        return response
    changed = False
    for element in root.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname in PIN_ELEMENTS:
            element.text = hostile_pin
            changed = True
    return _reserialized(response, root) if changed else response


def _xml(response: ApiResponse) -> etree._Element | None:
    media = (response.content_type or "").split(";", 1)[0].strip().lower()
    if not response.body or not (media.endswith("+xml") or media in ("application/xml", "text/xml")):
        return None
    try:
        # The sandbox's own answer, but parsed as carefully as anything else.
        return etree.fromstring(
            response.body, parser=etree.XMLParser(resolve_entities=False, no_network=True)
        )
    except etree.XMLSyntaxError:
        return None


def _reserialized(response: ApiResponse, root: etree._Element) -> ApiResponse:
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return ApiResponse(response.status, body, response.content_type, dict(response.headers))
