"""A run: one invocation of a command that works on orders, recorded in `runs`.

api_calls point at the run that made them; `fulfil status` shows when each command last ran and
how it ended. The lease owner a run writes on the rows it claims names the host and the process
(with its start time, so a reused PID is not mistaken for the original), which lets a later run on
the same host see at once that a claim's owner is dead instead of waiting for the lease to expire.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from fulfil.db import connect, query


def _process_start_ticks(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (Linux), None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


HOSTNAME = socket.gethostname()


@dataclass
class Run:
    command: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    pid: int = field(default_factory=os.getpid)

    @property
    def lease_owner(self) -> str:
        ticks = _process_start_ticks(self.pid) or "?"
        return f"{HOSTNAME}/{self.pid}/{ticks}/{self.run_id[:12]}"

    def start(self, url: str) -> None:
        with connect(url, autocommit=True) as conn:
            conn.execute(
                query("runs", "start_run"),
                {"run_id": self.run_id, "command": self.command, "hostname": HOSTNAME, "pid": self.pid},
            )

    def finish(self, url: str, exit_code: int, summary: dict[str, Any]) -> None:
        from psycopg.types.json import Jsonb

        with connect(url, autocommit=True) as conn:
            conn.execute(
                query("runs", "finish_run"),
                {"run_id": self.run_id, "exit_code": exit_code, "summary": Jsonb(summary)},
            )


def owner_is_dead(owner: str | None) -> bool:
    """True only when the owner is a process on this host that no longer runs (or was replaced)."""
    if not owner:
        return False
    parts = owner.split("/")
    if len(parts) != 4 or parts[0] != HOSTNAME or not parts[1].isdigit():
        return False  # another host's process: only its lease expiry can tell
    ticks = _process_start_ticks(int(parts[1]))
    return ticks is None or (parts[2] != "?" and ticks != parts[2])
