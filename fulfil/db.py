"""Connections and named queries.

SQL lives in ``sql/``: numbered migrations at the top, named queries in ``sql/queries/*.sql``
(``-- name: claim_orders`` starts a query). Python refers to queries by name; no SQL is built by
string concatenation from input.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from fulfil.errors import DatabaseError

if TYPE_CHECKING:
    import psycopg

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


def connect(url: str, *, autocommit: bool = False, application_name: str = "fulfil") -> psycopg.Connection:
    import psycopg

    try:
        return psycopg.connect(
            url, autocommit=autocommit, application_name=application_name, connect_timeout=10
        )
    except psycopg.OperationalError as exc:
        raise DatabaseError(
            f"cannot connect to the database ({describe_url(url)}): {first_line(exc)}"
        ) from exc


def describe_url(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
