"""A run: one invocation of a command that works on orders, recorded in `runs`.

api_calls point at the run that made them; `fulfil status` shows when each command last ran and
how it ended. The lease owner a run writes on the rows it claims names the host, the process (with
its start time, so a reused PID is not mistaken for the original) and the kernel instance and PID
namespace it runs in. That lets a later run on the same machine see at once that a claim's owner
is dead instead of waiting for the lease to expire, and keeps two containers that share a host
name (or one host after a reboot) from judging each other's process ids.

Liveness is judged conservatively: an owner is dead only when psutil says its process is gone,
a zombie, or a different process that reused the PID. Anything that cannot be checked (another
machine, an owner written by an older version, a process we may not inspect) counts as alive, and
only its lease expiry frees the work.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import psutil

from fulfil.db import connect, query

HOSTNAME = socket.gethostname()


def _read_first_line(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.readline().strip() or None
    except OSError:
        return None


def _node_identity() -> str:
    """Which kernel instance (boot) and PID namespace this process sees PIDs in; '?' if unknown."""
    boot_id = _read_first_line("/proc/sys/kernel/random/boot_id")
    try:
        pid_namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        pid_namespace = None
    if boot_id is None or pid_namespace is None:
        return "?"
    return hashlib.sha256(f"{boot_id}:{pid_namespace}".encode()).hexdigest()[:12]


NODE = _node_identity()


def _start_time(pid: int) -> str:
    """The process's start time as recorded in a lease owner ('?' when it cannot be read)."""
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.Error, OSError):
        return "?"


@dataclass
class Run:
    command: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    pid: int = field(default_factory=os.getpid)

    @property
    def lease_owner(self) -> str:
        return f"{HOSTNAME}/{self.pid}/{_start_time(self.pid)}/{self.run_id[:12]}/{NODE}"

    def start(self, url: str) -> None:
        with connect(url, autocommit=True) as conn:
            conn.execute(
                query("runs", "start_run"),
                {
                    "run_id": self.run_id,
                    "command": self.command,
                    "hostname": HOSTNAME,
                    "pid": self.pid,
                    "lease_owner": self.lease_owner,
                },
            )

    def finish(self, url: str, exit_code: int, summary: dict[str, Any]) -> None:
        from psycopg.types.json import Jsonb

        with connect(url, autocommit=True) as conn:
            conn.execute(
                query("runs", "finish_run"),
                {"run_id": self.run_id, "exit_code": exit_code, "summary": Jsonb(summary)},
            )


def owner_is_dead(owner: str | None) -> bool:
    """True only when the owner is provably a process of this machine that no longer runs."""
    if not owner:
        return False
    parts = owner.split("/")
    if len(parts) != 5:
        return False  # written by an older fulfil, or not by fulfil: only the lease can tell
    host, pid_text, started, _, node = parts
    if host != HOSTNAME or node == "?" or node != NODE or not pid_text.isdigit():
        return False  # another machine, container or boot: its PIDs mean nothing here
    pid = int(pid_text)
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True  # exited, only waiting for its parent to collect it
        if started == "?":
            return False  # the process exists and we cannot tell whether it is the same one
        return f"{process.create_time():.2f}" != started
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, OSError):
        return False  # we may not look at it (AccessDenied, a hidepid /proc): assume it is alive
