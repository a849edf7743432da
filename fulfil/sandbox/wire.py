"""The request and answer types the HTTP layer hands to, and gets back from, each simulated service."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from fulfil.sandbox.faults import FaultDecision


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    base_url: str  # scheme://host:port as the client addressed us: links point back here
    received_at: float
    fault: FaultDecision | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @staticmethod
    def parse_query(raw: str) -> dict[str, list[str]]:
        return parse_qs(raw, keep_blank_values=True)


@dataclass
class ApiResponse:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[ApiRequest, dict[str, str]], ApiResponse]


@dataclass(frozen=True)
class Route:
    """One endpoint: method, a path pattern with named groups, its name in the request log."""

    method: str
    pattern: re.Pattern[str]
    endpoint: str
    handler: Handler


@dataclass(frozen=True)
class RouteMatch:
    endpoint: str | None  # None: the path exists but not for this method
    handler: Handler | None
    params: dict[str, str]
    allowed: tuple[str, ...] = ()


def match_route(routes: list[Route], method: str, path: str) -> RouteMatch | None:
    allowed: list[str] = []
    for route in routes:
        found = route.pattern.fullmatch(path)
        if not found:
            continue
        if route.method == method:
            return RouteMatch(route.endpoint, route.handler, found.groupdict())
        allowed.append(route.method)
    if allowed:
        return RouteMatch(None, None, {}, tuple(sorted(set(allowed))))
    return None


def media_types(header: str | None) -> list[str]:
    """The media types of an Accept or Content-Type header, parameters and case removed."""
    if not header:
        return []
    return [part.split(";", 1)[0].strip().lower() for part in header.split(",") if part.strip()]
