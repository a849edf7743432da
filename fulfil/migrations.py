"""Numbered plain-SQL migrations (``sql/NNNN_description.sql``), applied in order, once.

Each applied file is recorded with its sha256 in ``fulfil_schema_migrations``. The whole run
holds a PostgreSQL advisory lock, so two ``fulfil db migrate`` at once (on one host or many) apply
each file exactly once: the second waits, then finds nothing left to do. A file that was applied
and has changed since is refused: shipped migrations are never edited, a new one is added.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fulfil.db import connect, query, sql_dir
from fulfil.errors import MigrationError

if TYPE_CHECKING:
    import psycopg

# Any constant works; it only has to be the same for every fulfil process (hashtext('fulfil.migrate')).
MIGRATION_LOCK_KEY = 0x66756C66696C  # "fulfil" in ASCII
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    checksum: str

    @property
    def filename(self) -> str:
        return self.path.name

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class MigrationState:
    version: int
    name: str
    state: str  # "applied", "pending", "changed" (applied, file differs) or "missing" (no file)
    applied_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "name": self.name,
            "state": self.state,
            "applied_at": self.applied_at.isoformat() if self.applied_at else None,
        }


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_dir()
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            continue
        found.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                path=path,
                checksum=hashlib.sha256(path.read_bytes()).hexdigest(),
            )
        )
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"two migration files share a number in {directory}")
    return found


def _applied(conn: psycopg.Connection[Any]) -> dict[int, tuple[str, str, datetime]]:
    row = conn.execute(query("migrations", "migrations_table_exists")).fetchone()
    exists = row is not None and row[0]
    if not exists:
        return {}
    rows = conn.execute(query("migrations", "applied_migrations")).fetchall()
    return {version: (name, checksum, applied_at) for version, name, checksum, applied_at in rows}


def status(url: str, directory: Path | None = None) -> list[MigrationState]:
    migrations = {m.version: m for m in discover(directory)}
    with connect(url, autocommit=True) as conn:
        applied = _applied(conn)
    states: list[MigrationState] = []
    for version in sorted(set(migrations) | set(applied)):
        migration = migrations.get(version)
        record = applied.get(version)
        if migration and record:
            state = "applied" if record[1] == migration.checksum else "changed"
            states.append(MigrationState(version, migration.name, state, record[2]))
        elif migration:
            states.append(MigrationState(version, migration.name, "pending", None))
        else:
            assert record is not None
            states.append(MigrationState(version, record[0], "missing", record[2]))
    return states


def migrate(url: str, directory: Path | None = None) -> list[Migration]:
    """Apply every pending migration; returns those applied by this call (empty: up to date)."""
    migrations = discover(directory)
    applied_now: list[Migration] = []
    with connect(url, autocommit=True) as conn:
        conn.execute(query("migrations", "lock_migrations"), {"key": MIGRATION_LOCK_KEY})
        try:
            conn.execute(query("migrations", "create_migrations_table"))
            applied = _applied(conn)
            _refuse_changed(migrations, applied)
            for migration in migrations:
                if migration.version in applied:
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.sql())
                        conn.execute(
                            query("migrations", "record_migration"),
                            {
                                "version": migration.version,
                                "name": migration.name,
                                "checksum": migration.checksum,
                            },
                        )
                except Exception as exc:
                    raise MigrationError(
                        f"migration {migration.filename} failed and was rolled back: {_describe(exc)}"
                    ) from exc
                applied_now.append(migration)
        finally:
            conn.execute(query("migrations", "unlock_migrations"), {"key": MIGRATION_LOCK_KEY})
    return applied_now


def ensure_current(url: str) -> None:
    """Refuse to work on a database whose schema is behind (or ahead of) this fulfil."""
    states = status(url)
    problems = [s for s in states if s.state != "applied"]
    if not problems:
        return
    if all(s.state == "pending" for s in states):
        # Never migrated: said plainly, not as a list of every migration there is.
        raise MigrationError("the database has no fulfil tables yet: run `fulfil db migrate` to create them")
    pending = [f"{s.version:04d}_{s.name}" for s in problems if s.state == "pending"]
    if pending and len(pending) == len(problems):
        raise MigrationError(
            f"the database schema is not up to date ({', '.join(pending)} pending): run `fulfil db migrate`"
        )
    described = ", ".join(f"{s.version:04d}_{s.name} {s.state}" for s in problems)
    raise MigrationError(f"the database schema does not match this fulfil: {described}")


def _refuse_changed(migrations: list[Migration], applied: dict[int, tuple[str, str, datetime]]) -> None:
    for migration in migrations:
        record = applied.get(migration.version)
        if record and record[1] != migration.checksum:
            raise MigrationError(
                f"migration {migration.filename} was applied on {record[2]:%Y-%m-%d} and its file has "
                "changed since; applied migrations must not be edited (restore the file, and add a new "
                "migration instead)"
            )


def _describe(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if diag is not None and getattr(diag, "context", None):
        return f"{text} ({diag.context.splitlines()[0]})"
    return text
