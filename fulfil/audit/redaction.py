"""Removing credentials from anything about to be stored, logged or printed.

A secret rarely comes back the way it was configured. A gateway's error page may repeat the
``Authorization`` header (base64 of ``user:password``), a template engine HTML-escapes it, a JSON
serializer writes ``/`` as ``\\/`` and non-ASCII as ``\\uXXXX``, a link percent-encodes it. A
``Redactor`` therefore expands every secret into each form it can take on the wire or in an echoed
page and scrubs all of them, from text and from raw bytes alike.

Scrubbing must stay cheap on a 20 MB answer: the forms are grouped by their first few characters,
a group is skipped with one substring search when its prefix is absent (the usual case), and only
the forms of the groups present are looked for.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

REDACTED = "[redacted]"
REDACTED_BYTES = REDACTED.encode()
# Shorter values would scrub ordinary words and numbers, and are not credentials anyone issues.
MIN_SECRET_LENGTH = 4
# Header and query-parameter names whose values are credentials, whatever their case.
SENSITIVE_NAME = re.compile(r"authorization|cookie|api[-_]?key|token|secret|password|passwd|credential", re.I)
# The characters left alone when a URL is quoted for sending (fulfil.audit.sender.with_query,
# the same set requests re-quoted with).
URL_SAFE_CHARACTERS = "!#$%&'()*+,/:;=?@[]~"
_PREFIX_LENGTH = 4

Scrubbable = TypeVar("Scrubbable", str, bytes)


def _lower_hex(encoded: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)


def _url_forms(value: str) -> set[str]:
    forms: set[str] = set()
    for encoded in (
        quote(value, safe=""),
        quote(value, safe="/"),
        quote(value, safe=URL_SAFE_CHARACTERS),
        quote_plus(value),
        quote_plus(value, safe="/"),
    ):
        forms |= {encoded, _lower_hex(encoded)}
    return forms


def _html_forms(value: str) -> set[str]:
    forms = {html.escape(value), html.escape(value, quote=False)}
    # Other escapers spell the quotes differently.
    for form in list(forms):
        forms |= {form.replace("&#x27;", "&#39;"), form.replace("&#x27;", "&apos;")}
    for form in list(forms):
        forms.add(form.replace("&quot;", "&#34;"))
    return forms


def _json_forms(value: str) -> set[str]:
    forms: set[str] = set()
    for encoded in (json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
        upper = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), encoded)
        forms |= {encoded, upper, encoded.replace("/", "\\/"), upper.replace("/", "\\/")}
    return forms


def _encoded_forms(value: str) -> set[str]:
    """The value as it may appear in a URL, an HTML page or a JSON document."""
    return {value} | _url_forms(value) | _html_forms(value) | _json_forms(value)


def _base64_tokens(value: str) -> set[str]:
    """Base64 of the value, standard and URL-safe, with and without padding. Latin-1 too, because
    that is how Basic auth encodes a user name and password that Latin-1 can hold (transport.BasicAuth)."""
    tokens: set[str] = set()
    for encoding in ("utf-8", "latin-1"):
        try:
            raw = value.encode(encoding)
        except UnicodeEncodeError:
            continue
        for token in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
            tokens |= {token, token.rstrip("=")}
    return tokens


@functools.lru_cache(maxsize=256)
def secret_forms(secret: str) -> frozenset[str]:
    """Every form of one secret to scrub: itself and its base64, each raw or encoded."""
    forms = _encoded_forms(secret)
    for token in _base64_tokens(secret):
        forms |= _encoded_forms(token)
    return frozenset(forms)


class _FormIndex(Generic[Scrubbable]):
    """The forms to scrub from one kind of value (str or bytes), grouped by their first characters."""

    def __init__(self, forms: Iterable[Scrubbable]) -> None:
        groups: dict[Scrubbable, list[Scrubbable]] = {}
        for form in forms:
            groups.setdefault(form[:_PREFIX_LENGTH], []).append(form)
        self._groups: dict[Scrubbable, tuple[Scrubbable, ...]] = {
            prefix: tuple(sorted(items, key=len, reverse=True)) for prefix, items in groups.items()
        }
        self.longest = max((len(form) for items in self._groups.values() for form in items), default=0)

    def scrub(self, value: Scrubbable, marker: Scrubbable) -> Scrubbable:
        present = [forms for prefix, forms in self._groups.items() if prefix in value]
        if not present:
            return value
        spans: list[tuple[int, int]] = []
        for forms in present:
            for form in forms:
                start = value.find(form)
                while start != -1:
                    spans.append((start, start + len(form)))
                    start = value.find(form, start + 1)
        if not spans:
            return value
        # Overlapping matches (a password inside user:password, one secret inside another) become
        # one marker, so no piece of the longer one is left behind.
        spans.sort()
        pieces: list[Scrubbable] = []
        position = 0
        current_start, current_end = spans[0]
        for start, end in spans[1:]:
            if start < current_end:
                current_end = max(current_end, end)
                continue
            pieces += [value[position:current_start], marker]
            position = current_end
            current_start, current_end = start, end
        pieces += [value[position:current_start], marker, value[current_end:]]
        return value[:0].join(pieces)


class Redactor:
    """Removes credentials from anything about to be stored or printed. Immutable: ``with_*``
    return a new one."""

    def __init__(self, secrets: Iterable[str] = (), credential_pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._secrets = tuple(sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}))
        self._pairs = tuple(
            dict.fromkeys((user, password) for user, password in credential_pairs if password)
        )
        forms: set[str] = set()
        for secret in self._secrets:
            forms |= secret_forms(secret)
        for user, password in self._pairs:
            # user:password and its base64 (what Basic auth sends), each raw or encoded; the
            # password alone too.
            forms |= secret_forms(f"{user}:{password}")
            if len(password) >= MIN_SECRET_LENGTH:
                forms |= secret_forms(password)
        self._text_index = _FormIndex(forms)
        self._bytes_index = _FormIndex({form.encode("utf-8") for form in forms})

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    @property
    def credential_pairs(self) -> tuple[tuple[str, str], ...]:
        return self._pairs

    @property
    def longest_form(self) -> int:
        """Bytes in the longest form scrubbed: how far past a cut a secret may reach."""
        return self._bytes_index.longest

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        return Redactor([*self._secrets, *secrets], self._pairs)

    def with_credentials(self, user: str, password: str) -> Redactor:
        return Redactor(self._secrets, [*self._pairs, (user, password)])

    @staticmethod
    def basic_auth_forms(username: str, password: str) -> list[str]:
        """The ways a user/password pair can appear on the wire (prefer ``credential_pairs``,
        which also scrubs their encoded forms)."""
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        return [password, token, f"{username}:{password}"]

    def text(self, value: str | None) -> str | None:
        if value is None:
            return None
        return self._text_index.scrub(value, REDACTED)

    def bytes(self, data: bytes) -> bytes:
        """The same scrubbing on raw bytes (an answer before anyone decodes or parses it)."""
        return self._bytes_index.scrub(data, REDACTED_BYTES)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Credential-named headers kept as a marker that they were present; other values scrubbed."""
        scrubbed: dict[str, str] = {}
        for name, value in headers.items():
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            scrubbed[name] = REDACTED if SENSITIVE_NAME.search(name) else (self.text(value) or "")
        return scrubbed

    def url(self, url: str) -> str:
        """The URL without user information, credential-named query values or known secrets."""
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:  # user:password@host
            netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(SENSITIVE_NAME.search(name) for name, _ in pairs):
            query_string = urlencode([(n, REDACTED if SENSITIVE_NAME.search(n) else v) for n, v in pairs])
        else:
            query_string = parts.query
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, query_string, parts.fragment))) or ""


def redactor_from_environment(environ: Mapping[str, str] | None = None) -> Redactor:
    """Every FULFIL_* secret the environment sets, the Canada Post key pair, and the password in
    FULFIL_DATABASE_URL in any form: for scrubbing any message before it is printed."""
    from fulfil.config import SETTINGS
    from fulfil.db import database_password_forms

    environ = os.environ if environ is None else environ
    secrets: list[str] = []
    for spec in SETTINGS:
        value = environ.get(spec.env)
        if spec.secret and value:
            secrets += [value, value.strip()]
    pairs: list[tuple[str, str]] = []
    user = (environ.get("FULFIL_CANADAPOST_USERNAME") or "").strip()
    password = (environ.get("FULFIL_CANADAPOST_PASSWORD") or "").strip()
    if user and password:
        pairs.append((user, password))
    database_url = environ.get("FULFIL_DATABASE_URL")
    if database_url:
        secrets += database_password_forms(database_url)
    return Redactor(secrets, credential_pairs=pairs)
