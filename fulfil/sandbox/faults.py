"""Fault injection: what can go wrong between fulfil and the two services, reproducibly.

Every API request draws the same three numbers from its service's random generator, whatever
happens to it, so the same seed and the same request sequence give the same faults. Scripted
faults (``FaultPlan.script``) are consumed first, in order, per endpoint, and draw nothing. Faults
never apply to the control API (``/_sandbox/*``), nor to a call the throttle refuses (it never
reaches the fault plan: see ``throttle``).

Faults fall in three groups:

* *refusals*: the request is not performed. 5xx in the service's own format, an HTML gateway
  page, rate limiting, a label that is not ready yet, and two scripted-only pages:
  ``echo_headers`` (HTTP 500, an HTML error page that repeats the request line and every request
  header verbatim, ``Authorization`` included, plus a "report this" link carrying them
  URL-encoded) and ``html_200`` (HTTP 200 with an HTML page, as a captive portal or a proxy
  answers: a 2xx that is not the service's answer);
* *after-commit* faults: the request IS performed (a label bought, a tracking number set, an
  order shipped) and only the answer is lost or mangled. These are the ones that test
  exactly-once behaviour. By rate or script: commit-then-drop, late answer, truncated or garbage
  body. Scripted only:

  - ``trickle``: the whole answer (status line, headers, body) is sent one byte every
    ``trickle_interval_s`` seconds, so a per-read timeout never fires; only an overall deadline
    stops the client;
  - ``nul_body``: the body arrives with NUL bytes inserted (status and content type as usual; a
    204 cannot carry a body, so it becomes a 200 whose body is a NUL);
  - ``foreign_links``: every ``href`` in an XML body points at ``foreign_base_url`` instead
    (same path and query), as if the service named another host in its links;
  - ``bad_pin``: the tracking PIN elements (``tracking-pin``, and ``pin`` in tracking answers)
    read ``hostile_pin`` instead; the shipment keeps the PIN it was sold with;

* *late commit* (``late_commit``, scripted only): the request is held ``late_answer_s`` seconds
  before it is performed, then answered normally: a purchase that completes after the client
  gave up. While it is held it does not exist, so no lookup finds it. A held request is
  abandoned, never performed, if the sandbox is reset or stopped meanwhile.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, fields
from enum import StrEnum
from urllib.parse import urlsplit


class FaultKind(StrEnum):
    HTTP_500 = "http_500"
    HTTP_502 = "http_502"
    HTTP_503 = "http_503"
    GATEWAY_502 = "gateway_502"
    GATEWAY_504 = "gateway_504"
    RATE_LIMIT = "rate_limit"
    LABEL_NOT_READY = "label_not_ready"
    COMMIT_THEN_DROP = "commit_then_drop"
    COMMIT_THEN_LATE = "commit_then_late"
    TRUNCATE = "truncate"
    GARBAGE = "garbage"
    # Scripted only (no rates): see the module docstring.
    ECHO_HEADERS = "echo_headers"
    HTML_200 = "html_200"
    TRICKLE = "trickle"
    NUL_BODY = "nul_body"
    FOREIGN_LINKS = "foreign_links"
    BAD_PIN = "bad_pin"
    LATE_COMMIT = "late_commit"
    # A scripted "nothing goes wrong this time", so a script can say "fail, succeed, fail".
    NONE = "none"


REFUSALS = frozenset(
    {
        FaultKind.HTTP_500,
        FaultKind.HTTP_502,
        FaultKind.HTTP_503,
        FaultKind.GATEWAY_502,
        FaultKind.GATEWAY_504,
        FaultKind.RATE_LIMIT,
        FaultKind.ECHO_HEADERS,
        FaultKind.HTML_200,
    }
)
AFTER_COMMIT = frozenset(
    {
        FaultKind.COMMIT_THEN_DROP,
        FaultKind.COMMIT_THEN_LATE,
        FaultKind.TRUNCATE,
        FaultKind.GARBAGE,
        FaultKind.TRICKLE,
        FaultKind.NUL_BODY,
        FaultKind.FOREIGN_LINKS,
        FaultKind.BAD_PIN,
    }
)

DROP_MODES = ("close", "late")


@dataclass(frozen=True)
class Faults:
    """Fault rates and parameters for one service. All rates are probabilities per request.

    ``drop_mode`` chooses what commit-then-drop does after performing the request: ``close`` the
    connection without a byte of answer, or answer ``late`` (after ``late_answer_s`` seconds, longer
    than a client's read timeout). ``label_not_ready_fetches`` makes the first K fetches of every
    label answer 202 with an empty body (Canada Post only). ``late_answer_s`` is also how long a
    ``late_commit`` request is held before it is performed. ``trickle_interval_s`` is the pause
    between two bytes of a ``trickle`` answer, ``foreign_base_url`` the origin (and optional path
    prefix) ``foreign_links`` points hrefs at, ``hostile_pin`` the text ``bad_pin`` puts in place of
    the PIN.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    gateway_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_s: int = 2
    drop_rate: float = 0.0
    drop_mode: str = "close"
    late_answer_s: float = 65.0
    truncate_rate: float = 0.0
    garbage_rate: float = 0.0
    label_not_ready_fetches: int = 0
    trickle_interval_s: float = 1.0
    # Port 9 (discard) on a loopback address other than the sandbox's: nothing answers there.
    foreign_base_url: str = "http://127.0.0.2:9"
    hostile_pin: str = "../../x\n"

    def __post_init__(self) -> None:
        rates = {
            "error_rate": self.error_rate,
            "gateway_rate": self.gateway_rate,
            "rate_limit_rate": self.rate_limit_rate,
            "drop_rate": self.drop_rate,
            "truncate_rate": self.truncate_rate,
            "garbage_rate": self.garbage_rate,
        }
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {sum(rates.values()):.3f}, more than 1")
        for name in ("latency_ms", "jitter_ms", "late_answer_s", "trickle_interval_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.retry_after_s < 0 or self.label_not_ready_fetches < 0:
            raise ValueError("retry_after_s and label_not_ready_fetches must not be negative")
        if self.drop_mode not in DROP_MODES:
            raise ValueError(f"drop_mode must be one of {', '.join(DROP_MODES)}, not {self.drop_mode!r}")
        if any(ord(char) < 0x20 and char not in "\t\n\r" for char in self.hostile_pin):
            raise ValueError("hostile_pin must be text XML can carry (no control characters but tab, CR, LF)")
        foreign = urlsplit(self.foreign_base_url)
        if foreign.scheme not in ("http", "https") or not foreign.netloc or foreign.query or foreign.fragment:
            raise ValueError(
                f"foreign_base_url must be http(s)://host[:port][/prefix], not {self.foreign_base_url!r}"
            )

    def as_dict(self) -> dict[str, object]:
        return {item.name: getattr(self, item.name) for item in fields(self)}


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request: its extra latency and at most one fault."""

    kind: FaultKind | None
    latency_s: float
    scripted: bool = False
    # Seeds the garbage bytes and the truncation point, so those are reproducible too.
    variant: float = 0.0


def parse_fault_kind(name: str) -> FaultKind:
    try:
        return FaultKind(name)
    except ValueError:
        known = ", ".join(kind.value for kind in FaultKind)
        raise ValueError(f"unknown fault {name!r}; known faults: {known}") from None


class FaultPlan:
    """The faults in force for every service, their random generators and their scripts."""

    def __init__(self, seed: int, initial: dict[str, Faults]) -> None:
        self._seed = seed
        self._initial = dict(initial)
        self._lock = threading.Lock()
        self._faults: dict[str, Faults] = {}
        self._random: dict[str, random.Random] = {}
        self._scripts: dict[tuple[str, str], deque[FaultKind]] = {}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._faults = dict(self._initial)
            self._random = {service: self._generator(service) for service in self._initial}
            self._scripts = {}

    def _generator(self, service: str) -> random.Random:
        # One generator per service, so Best Buy traffic never shifts Canada Post's faults.
        return random.Random(f"{self._seed}:{service}")

    def faults(self, service: str) -> Faults:
        with self._lock:
            return self._faults[service]

    def set_faults(self, service: str, faults: Faults) -> None:
        """Replace a service's faults and restart its random sequence from the seed."""
        with self._lock:
            self._require(service)
            self._faults[service] = faults
            self._random[service] = self._generator(service)

    def script(self, service: str, endpoint: str, kinds: list[str] | list[FaultKind]) -> None:
        parsed = [kind if isinstance(kind, FaultKind) else parse_fault_kind(kind) for kind in kinds]
        with self._lock:
            self._require(service)
            self._scripts.setdefault((service, endpoint), deque()).extend(parsed)

    def clear_script(self, service: str, endpoint: str) -> None:
        """Forget the faults still scripted for one endpoint (what a run left unconsumed)."""
        with self._lock:
            self._require(service)
            self._scripts.pop((service, endpoint), None)

    def pending_script(self, service: str, endpoint: str) -> list[str]:
        with self._lock:
            return [kind.value for kind in self._scripts.get((service, endpoint), ())]

    def _require(self, service: str) -> None:
        if service not in self._initial:
            raise ValueError(f"unknown service {service!r}; services: {', '.join(sorted(self._initial))}")

    def decide(self, service: str, endpoint: str) -> FaultDecision:
        with self._lock:
            faults = self._faults[service]
            script = self._scripts.get((service, endpoint))
            if script:
                kind = script.popleft()
                return FaultDecision(
                    kind=None if kind is FaultKind.NONE else kind,
                    latency_s=faults.latency_ms / 1000.0,
                    scripted=True,
                    variant=0.5,
                )
            generator = self._random[service]
            draw_latency, draw_fault, draw_variant = (
                generator.random(),
                generator.random(),
                generator.random(),
            )
        latency_s = (faults.latency_ms + faults.jitter_ms * draw_latency) / 1000.0
        return FaultDecision(
            kind=_pick(faults, draw_fault, draw_variant), latency_s=latency_s, variant=draw_variant
        )


def _pick(faults: Faults, draw: float, variant: float) -> FaultKind | None:
    """Map one uniform draw onto the configured rates, laid end to end on [0, 1)."""
    error_kinds = (FaultKind.HTTP_500, FaultKind.HTTP_502, FaultKind.HTTP_503)
    gateway_kinds = (FaultKind.GATEWAY_502, FaultKind.GATEWAY_504)
    drop_kind = FaultKind.COMMIT_THEN_DROP if faults.drop_mode == "close" else FaultKind.COMMIT_THEN_LATE
    bands: list[tuple[float, FaultKind]] = [
        (faults.error_rate, error_kinds[min(int(variant * 3), 2)]),
        (faults.gateway_rate, gateway_kinds[min(int(variant * 2), 1)]),
        (faults.rate_limit_rate, FaultKind.RATE_LIMIT),
        (faults.drop_rate, drop_kind),
        (faults.truncate_rate, FaultKind.TRUNCATE),
        (faults.garbage_rate, FaultKind.GARBAGE),
    ]
    upper = 0.0
    for rate, kind in bands:
        upper += rate
        if draw < upper:
            return kind
    return None
