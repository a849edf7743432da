"""Best Buy's error answers, read leniently, and the errors fulfil raises about Best Buy.

Mirakl documents ``{"status": <int>, "message": "<text>"}``; newer endpoints add a ``code`` or an
``errors`` list. The body may also be empty, plain text or a gateway's HTML page. Whatever it is,
a failed call becomes one line that names the HTTP status and Best Buy's own words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fulfil.audit.outcome import HttpOutcome
from fulfil.errors import EXIT_LOCKED, ConfigError, FulfilError

MAX_MESSAGE_CHARS = 300


@dataclass(frozen=True)
class BestBuyError:
    status_code: int | None
    message: str  # Best Buy's own words, or what happened when there were none
    code: str | None = None

    @property
    def is_auth(self) -> bool:
        return self.status_code in (401, 403)

    def __str__(self) -> str:
        where = f"HTTP {self.status_code}" if self.status_code is not None else "no answer"
        code = f" {self.code}" if self.code else ""
        return f"Best Buy {where}{code}: {self.message}" if self.message else f"Best Buy {where}{code}"


def interpret_error(outcome: HttpOutcome) -> BestBuyError:
    """Best Buy's explanation of a failed call, from whatever the body holds."""
    if outcome.status_code is None:
        return BestBuyError(None, outcome.error or "no answer")
    message, code = _message_in(outcome)
    return BestBuyError(outcome.status_code, message, code)


def _message_in(outcome: HttpOutcome) -> tuple[str, str | None]:
    text = outcome.text.strip()
    if not text:
        return "", None
    if outcome.content_type == "text/html" or text.lstrip().lower().startswith(("<!doctype", "<html")):
        return "an HTML error page, not Best Buy's JSON", None
    try:
        document = json.loads(text)
    except ValueError:
        return _one_line(text), None
    if not isinstance(document, dict):
        return _one_line(text), None
    parts: list[str] = []
    message = document.get("message")
    if isinstance(message, str) and message.strip():
        parts.append(message.strip())
    errors = document.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict):
                detail = " ".join(
                    str(item[key]) for key in ("field", "code", "message") if item.get(key) not in (None, "")
                )
                if detail:
                    parts.append(detail)
            elif isinstance(item, str) and item.strip():
                parts.append(item.strip())
    code = document.get("code")
    code_text = str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None
    if not parts:
        return _one_line(text), code_text
    return _one_line("; ".join(parts)), code_text


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[: MAX_MESSAGE_CHARS - 1] + "…"


def auth_error(error: BestBuyError) -> ConfigError:
    """One configuration error for a refused key, instead of one failure per order."""
    if error.status_code == 403:
        return ConfigError(
            f"Best Buy refused access ({error}); the API key works but may not reach this shop or "
            "lack a role: check FULFIL_BESTBUY_SHOP_ID and that the key's user is a shop administrator"
        )
    return ConfigError(
        f"Best Buy refused the API key ({error}); check FULFIL_BESTBUY_API_KEY (Best Buy seller portal: "
        "your user name → API Key) and FULFIL_BESTBUY_BASE_URL"
    )


class BestBuyUnavailable(Exception):
    """Best Buy could not give an answer now (unreachable, throttling, failing); nothing was learnt."""


class PollTooSoon(FulfilError):
    """Mirakl asks for at most one OR11 poll a minute; this one would come too soon."""

    exit_code = EXIT_LOCKED
