"""Connections and named queries.

SQL lives in ``sql/``: numbered migrations at the top, named queries in ``sql/queries/*.sql``
(``-- name: claim_orders`` starts a query). Python refers to queries by name; no SQL is built by
string concatenation from input.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from fulfil.errors import ConfigError, DatabaseError

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import RowFactory

    from fulfil.config import Settings


def sql_dir() -> Path:
    """The SQL files: inside the package when installed from a wheel, else the repository's sql/."""
    packaged = Path(__file__).parent / "sql"
    if packaged.is_dir():
        return packaged
    repository = Path(__file__).parent.parent / "sql"
    if repository.is_dir():
        return repository
    raise DatabaseError(f"the SQL files are missing: looked in {packaged} and {repository}")


@functools.cache
def queries(group: str) -> dict[str, str]:
    """The named queries of ``sql/queries/<group>.sql``."""
    text = (sql_dir() / "queries" / f"{group}.sql").read_text(encoding="utf-8")
    found: dict[str, str] = {}
    for match in re.finditer(r"^-- name: (\w+)\s*\n(.*?)(?=^-- name: |\Z)", text, re.S | re.M):
        body = "\n".join(
            line for line in match.group(2).strip().splitlines() if not line.lstrip().startswith("--")
        )
        found[match.group(1)] = body.strip().rstrip(";")
    return found


def query(group: str, name: str) -> str:
    try:
        return queries(group)[name]
    except KeyError:
        raise KeyError(f"no query {name!r} in sql/queries/{group}.sql") from None


def resolve_database_url(settings: Settings, *, embedded_database: str | None = None) -> str:
    """FULFIL_DATABASE_URL, or the embedded server (started on first use)."""
    if settings.database_url:
        return settings.database_url
    from fulfil.embedded_db import DEFAULT_DATABASE, embedded_database_url

    return embedded_database_url(settings.data_dir, embedded_database or DEFAULT_DATABASE)


def connect(
    url: str,
    *,
    autocommit: bool = False,
    application_name: str = "fulfil",
    row_factory: RowFactory[Any] | None = None,
) -> psycopg.Connection[Any]:
    """A connection with a connect timeout and an ``application_name``. A malformed URL is a
    ConfigError, a failure to connect a DatabaseError; neither message holds the password."""
    import psycopg

    check_database_url(url)
    options: dict[str, Any] = {}
    if row_factory is not None:
        options["row_factory"] = row_factory
    try:
        return psycopg.connect(
            url, autocommit=autocommit, application_name=application_name, connect_timeout=10, **options
        )
    except psycopg.Error as exc:
        # libpq quotes what it could not use (a host, a port), and that can be a piece of a
        # password it misread; nothing of psycopg's text is shown unscrubbed. (The redaction, and
        # the html module it brings, only for a failure: `fulfil status` connects every time.)
        from fulfil.audit.redaction import Redactor

        reason = Redactor(database_password_forms(url)).text(first_line(exc))
        raise DatabaseError(f"cannot connect to the database ({describe_url(url)}): {reason}") from None


# --------------------------------------------------------------------------------------------
# The database URL in messages: never its password
# --------------------------------------------------------------------------------------------

_URI_PREFIX = re.compile(r"^\s*postgres(?:ql)?://", re.I)
# One keyword=value of a key/value string; the value bare (backslash escapes) or 'quoted'.
_KEYWORD_VALUE = re.compile(r"(\w+)\s*=\s*('(?:\\.?|[^'\\])*'?|(?:\\.?|[^\s'\\])*)", re.S)
# key=value in a URL's query (?password=…&…).
_QUERY_PARAMETER = re.compile(r"[?&]([^=&]*)=([^&]*)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
MASK = "***"
# libpq's keywords whose values are not secret. Any other value (password, sslpassword, a
# misspelt keyword, a stray word) is masked: it may be a password in the wrong place.
_SHOWN_KEYWORDS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "passfile",
        "channel_binding",
        "connect_timeout",
        "client_encoding",
        "options",
        "application_name",
        "fallback_application_name",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "replication",
        "gssencmode",
        "sslmode",
        "sslnegotiation",
        "sslcompression",
        "sslcert",
        "sslkey",
        "sslcertmode",
        "sslrootcert",
        "sslcrl",
        "sslcrldir",
        "sslsni",
        "requirepeer",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "krbsrvname",
        "gsslib",
        "gssdelegation",
        "service",
        "target_session_attrs",
        "load_balance_hosts",
        "require_auth",
    }
)


def _password_spans(url: str) -> list[tuple[int, int]]:
    """Where a password may be in a URL or key/value string. Generous on purpose: masking too much
    costs a less precise message, masking too little a password."""
    uri = _URI_PREFIX.match(url)
    spans = _uri_spans(url, uri.end()) if uri else _keyword_spans(url)
    return _merged([span for span in spans if span[1] > span[0]])


def _uri_spans(url: str, start: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    # Everything between the first ':' after scheme://user and the last '@': libpq reads the
    # password only up to the first '@' (or not at all after a '/'), but the user meant it to run
    # to the host.
    last_at = url.rfind("@")
    if last_at >= start:
        colon = url.find(":", start, last_at)
        if colon != -1:
            spans.append((colon + 1, last_at))
    for match in _QUERY_PARAMETER.finditer(url, start):
        if unquote(match.group(1)).strip().lower() not in _SHOWN_KEYWORDS:
            spans.append(match.span(2))
    return spans


def _keyword_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    position = 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        match = _KEYWORD_VALUE.match(text, position)
        if match:
            if match.group(1).lower() not in _SHOWN_KEYWORDS:
                spans.append(match.span(2))
            position = max(match.end(), position + 1)
            continue
        # Not keyword=value: a stray word, perhaps a password that lost its keyword.
        end = position
        while end < len(text) and not text[end].isspace():
            end += 1
        spans.append((position, end))
        position = end
    return spans


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def describe_url(url: str) -> str:
    """The URL or key/value string as it may be shown: every password masked, on one line."""
    shown = url
    for start, end in reversed(_password_spans(url)):
        shown = shown[:start] + MASK + shown[end:]
    shown = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", shown.strip())
    return shown if len(shown) <= 300 else shown[:300] + "…"


def database_password_forms(url: str) -> list[str]:
    """Every string the password in this URL may appear as, for scrubbing messages: as written,
    percent-decoded, unquoted, as libpq parses it, and (when an unencoded '/' or '@' makes libpq
    misread it) its pieces, which an error may quote as a host or port."""
    forms: list[str] = []
    for start, end in _password_spans(url):
        written = url[start:end]
        forms += [written, unquote(written), _unquoted_keyword_value(written)]
        forms += [piece for piece in re.split(r"\s+", _unquoted_keyword_value(written)) if piece]
        if re.search(r"[/@?]", written):
            forms += [piece for part in re.split(r"[/@?]", written) for piece in (part, unquote(part))]
    try:
        from psycopg.conninfo import conninfo_to_dict

        parsed = conninfo_to_dict(url)
    except Exception:  # a malformed URL has no parsed password to add
        parsed = {}
    forms += [str(parsed[key]) for key in ("password", "sslpassword") if parsed.get(key)]
    return [form for form in dict.fromkeys(forms) if form]


def _unquoted_keyword_value(written: str) -> str:
    value = written[1:-1] if len(written) >= 2 and written[0] == written[-1] == "'" else written.lstrip("'")
    return re.sub(r"\\(.)", r"\1", value, flags=re.S)


def check_database_url(url: str, *, name: str = "FULFIL_DATABASE_URL") -> None:
    """Refuse, as a ConfigError naming the setting, a database URL that libpq would misread or
    cannot read. The message shows the URL masked and says what to fix, never psycopg's own text
    (which quotes pieces of the password)."""
    _check_once(url, name)


# Only URLs that passed are cached (an exception is never cached): workflows connect often.
@functools.lru_cache(maxsize=64)
def _check_once(url: str, name: str) -> None:
    shown = describe_url(url)
    if not url.strip():
        raise ConfigError(f"{name} is empty")
    if _CONTROL.search(url):
        raise ConfigError(f"{name} ({shown}) contains a control character (a line break, a tab, a NUL)")
    uri = _URI_PREFIX.match(url)
    if uri:
        _check_userinfo(url[uri.end() :], name, shown)
    try:
        from psycopg.conninfo import conninfo_to_dict

        conninfo_to_dict(url)
    except Exception:  # whatever psycopg raises, its text is not shown
        raise ConfigError(f"{name} ({shown}) is not a valid {_parse_hint(url, bool(uri))}") from None


def _check_userinfo(rest: str, name: str, shown: str) -> None:
    """An unencoded '/' or '@' in the user name or password: libpq cuts the URL at the first of
    them, then reads the rest of the password as a port, a host or a database name."""
    head = rest.split("?", 1)[0]
    last_at = head.rfind("@")
    if last_at == -1:
        return
    userinfo = head[:last_at]
    found = [(c, code) for c, code in (("/", "%2F"), ("@", "%40")) if c in userinfo]
    if found:
        characters = " and ".join(f"'{c}'" for c, _ in found)
        encodings = " and ".join(f"'{c}' as {code}" for c, code in found)
        raise ConfigError(
            f"{name} ({shown}) has an unencoded {characters} before the host, which PostgreSQL would "
            f"misread as part of the host, port or database: percent-encode {encodings} in the user "
            "name and password"
        )


def _parse_hint(url: str, uri: bool) -> str:
    if not uri:
        return (
            "postgresql:// URL or key=value connection string: expected e.g. "
            "postgresql://user:password@host:5432/database or host=… dbname=… user=…, "
            "with a value holding spaces or quotes in single quotes"
        )
    if _BAD_PERCENT.search(url):
        return "URL: a '%' must start a percent-encoded byte (%XX); write a literal '%' as %25"
    if re.search(r"%00", url):
        return "URL: %00 (a NUL byte) is not allowed"
    return (
        "URL: expected postgresql://user:password@host:5432/database?option=value, with '/', '@', "
        "':', '%' and spaces in the user name or password percent-encoded"
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
