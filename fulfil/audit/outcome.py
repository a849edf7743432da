"""What one HTTP call came to: its answer, or the class of its failure (which says what may be
done next: nothing, send again, or look up what happened)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class FailureClass(StrEnum):
    DEFINITIVE = "definitive"
    NOT_SENT = "not_sent"
    INDETERMINATE = "indeterminate"
    RATE_LIMITED = "rate_limited"


@dataclass
class HttpOutcome:
    call_id: int
    method: str
    url: str
    status_code: int | None
    headers: Mapping[str, str]
    body: bytes
    failure: FailureClass | None
    error: str | None
    duration_ms: int
    # False when sending the same request again cannot give another answer (an answer over the
    # size cap, a link refused for naming another host): retry policies leave it alone.
    repeatable: bool = True

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def retry_after(self) -> float | None:
        """Seconds from a Retry-After header (delta-seconds or HTTP date), if any."""
        raw = self.headers.get("Retry-After")
        if raw is None:
            return None
        raw = raw.strip()
        if raw.isdigit():
            return float(raw)
        try:
            moment = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, moment.timestamp() - time.time())

    def describe(self) -> str:
        """One line for messages: what happened, never a credential."""
        if self.status_code is not None and self.error and self.error != f"HTTP {self.status_code}":
            return f"HTTP {self.status_code}, then {self.error}"
        if self.status_code is not None:
            return f"HTTP {self.status_code}"
        return self.error or "no answer"
