"""Whose claim may be taken over at once: only a lease owner provably dead on this machine.

Unknown liveness means alive (defect 4 of issue 9): when a process cannot be inspected, when its
owner string comes from another machine, container, boot or an older fulfil, only the lease
expiry frees the work.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from fulfil import runs
from fulfil.runs import HOSTNAME, NODE, Run, owner_is_dead


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


def owner_of(pid: int, started: str) -> str:
    return f"{HOSTNAME}/{pid}/{started}/0123456789ab/{NODE}"


def started_of(pid: int) -> str:
    return f"{psutil.Process(pid).create_time():.2f}"


def test_a_running_process_is_alive(sleeper: subprocess.Popen[bytes]) -> None:
    assert not owner_is_dead(owner_of(sleeper.pid, started_of(sleeper.pid)))
    assert not owner_is_dead(Run("labels create").lease_owner)  # ourselves


def test_a_process_that_exited_is_dead(sleeper: subprocess.Popen[bytes]) -> None:
    owner = owner_of(sleeper.pid, started_of(sleeper.pid))
    sleeper.kill()
    sleeper.wait()
    assert owner_is_dead(owner)


def test_a_zombie_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = owner_of(child.pid, started_of(child.pid))
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.02)  # exited, not yet collected by us: a zombie
    try:
        assert owner_is_dead(owner)
    finally:
        child.wait()


def test_a_reused_pid_is_not_mistaken_for_the_owner(sleeper: subprocess.Popen[bytes]) -> None:
    # Same PID, another start time: the process that held the claim is gone.
    assert owner_is_dead(owner_of(sleeper.pid, "12345.00"))


def test_an_unknown_start_time_with_a_live_pid_counts_as_alive(sleeper: subprocess.Popen[bytes]) -> None:
    assert not owner_is_dead(owner_of(sleeper.pid, "?"))


@pytest.mark.unit
@pytest.mark.parametrize(
    "owner",
    [
        "another-host/1/1.00/0123456789ab/ffffffffffff",  # another machine
        f"{HOSTNAME}/999999999/1.00/0123456789ab/ffffffffffff",  # another container or boot
        f"{HOSTNAME}/999999999/1.00/0123456789ab/?",  # kernel identity unknown when claimed
        f"{HOSTNAME}/999999999/1/deadbeef0000",  # an older fulfil's owner string
        "psql by hand",
        "",
    ],
)
def test_owners_that_cannot_be_judged_here_count_as_alive(owner: str) -> None:
    assert not owner_is_dead(owner)


def test_a_process_we_may_not_inspect_counts_as_alive(
    monkeypatch: pytest.MonkeyPatch, sleeper: subprocess.Popen[bytes]
) -> None:
    # What /proc mounted with hidepid, or another user's process under some kernels, looks like.
    def refused(pid: int) -> psutil.Process:
        raise psutil.AccessDenied(pid)

    monkeypatch.setattr(runs.psutil, "Process", refused)
    assert not owner_is_dead(owner_of(sleeper.pid, "1.00"))
    assert not owner_is_dead(owner_of(999_999_999, "1.00"))


@pytest.mark.unit
def test_the_lease_owner_names_host_process_start_run_and_node() -> None:
    run = Run("labels create")
    host, pid, started, run_id, node = run.lease_owner.split("/")
    assert (host, int(pid), run_id) == (HOSTNAME, run.pid, run.run_id[:12])
    assert started == started_of(run.pid)
    assert node == NODE != "?"
