"""Chaos: the real command line under faults, kills and parallel runs, then the promise checked.

One chaos run (the suite test in tests/chaos/test_chaos.py, the longer benchmark in
tests/benchmarks/chaos.py), all real: `python -m fulfil …` in child processes, a real PostgreSQL,
the sandbox over real sockets.

1. A seeded set of orders, a few of them unshippable, is inserted as accepted in the database and
   given to the sandbox's Best Buy.
2. Waves of processes at once, under faults on both services (5xx, gateway pages, throttling
   with a short Retry-After, and requests carried out whose answer is lost), with SIGKILLs at
   seeded moments and some killed processes restarted (ChaosPlan.waves):
   - wave 1: several `fulfil labels create`, each taking a share of about half the orders
     (``--limit``); a carried-out request's answer is dropped (drop_mode "close");
   - wave 2: several `fulfil labels create` for the rest and, from a little later, several
     `fulfil tracking push` started again whenever one ends, as two cron hosts overlap; a carried-out
     request is answered only after the client's deadline (drop_mode "late"), and each label's
     first fetch answers 202 (not ready), so a bought label waits seconds for its PDF;
   - wave 3: several `fulfil tracking push` for what is left, drop_mode "close".
   With ``overlap=False`` the commands never run at once: labels close, labels late, tracking
   close, tracking late.
3. Faults off, the operator's commands (`labels reconcile`, `labels create`, `labels download`,
   `tracking push`) run in turn until a whole pass changes nothing in the database and no purchase
   is in flight, within a bounded number of passes, sleeping when a purchase waits for its settle
   window. Faults are off here because this phase proves that whatever the chaos left behind is
   driven to an end state by ordinary runs; with faults still on, "a pass changed nothing" could
   just mean every run was throttled, and convergence would be a matter of luck, not of bounds.
4. The invariants are checked against what the sandbox saw (its purchases, its request log, its
   copy of each order) and what the database holds (shipments, api_calls), and every violation is
   reported naming the order, with the evidence from both sides.

The seed drives the orders, the sandbox's fault draws and the kill plan (which process is killed,
after how long, and whether it is restarted). Process scheduling is the operating system's, so a
replay repeats the plan, not every interleaving to the microsecond.

Everything is bounded: each child has a timeout, each wave and the whole run a time budget (a run
out of time stops, says where, and still checks what happened), and every child still running at
the end is killed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from fulfil.sandbox import Faults, Sandbox, SandboxConfig
from fulfil.sandbox.config import DEFAULT_CREDENTIALS, SERVICES
from fulfil.sandbox.orders import GeneratedOrder, generate_order_set

DEFAULT_SEED = 20261124
SEED_VARIABLE = "FULFIL_CHAOS_SEED"

SENDER_ENV = {
    "FULFIL_SENDER_NAME": "Shipping Desk",
    "FULFIL_SENDER_COMPANY": "Chaos Électronique",
    "FULFIL_SENDER_PHONE": "514-555-0100",
    "FULFIL_SENDER_ADDRESS_LINE_1": "502 Main St N",
    "FULFIL_SENDER_CITY": "Montréal",
    "FULFIL_SENDER_PROVINCE": "QC",
    "FULFIL_SENDER_POSTAL_CODE": "H2B 1A0",
    "FULFIL_PARCEL_WEIGHT_KG": "1.2",
    "FULFIL_PARCEL_LENGTH_CM": "30",
    "FULFIL_PARCEL_WIDTH_CM": "20",
    "FULFIL_PARCEL_HEIGHT_CM": "10",
}
CONTRACT_ID = "0042708517"
# Small timeouts keep the settle windows short. FULFIL_HTTP_DEADLINE is the overall deadline of one
# HTTP call (issue 9); a fulfil that does not know it yet ignores it.
CLIENT_DEADLINE_S = 3.0
HTTP_ENV = {
    "FULFIL_HTTP_CONNECT_TIMEOUT": "1",
    "FULFIL_HTTP_READ_TIMEOUT": "2",
    "FULFIL_HTTP_DEADLINE": f"{CLIENT_DEADLINE_S:g}",
}

LABELS_CREATE = ("labels", "create")
TRACKING_PUSH = ("tracking", "push")
OPERATOR_PASS = (("labels", "reconcile"), ("labels", "create"), ("labels", "download"), ("tracking", "push"))
NORMAL_EXIT_CODES = frozenset({0, 3})
PARKED_STATUSES = ("label_failed", "needs_review", "tracking_failed")
BESTBUY_SHIPPED_STATES = ("SHIPPED", "TO_COLLECT", "RECEIVED", "CLOSED")
# Sandbox faults after which the request WAS carried out (only the answer was lost or mangled).
CARRIED_OUT_FAULTS = frozenset({"commit_then_drop", "commit_then_late", "truncate", "garbage"})
TRACEBACK = "Traceback (most recent call last)"
UNSETTLED_AT = re.compile(r"after (\d{2}):(\d{2}):(\d{2}) UTC")

# Invariant names, as reported.
ONE_PURCHASE = "at most one purchase per order"
NO_LOST_LABEL = "every label sold is recorded"
END_STATE = "every order shipped with its PIN, or parked with a reason"
TRACKING_FIRST = "OR24 only after an OR23 Best Buy accepted"
LABEL_FIRST = "OR24 only after the label PDF was fetched"
AUDIT_FIRST = "api_calls rows >= requests the sandbox saw"
NO_LEASE = "no lease left behind"
CLEAN_EXITS = "no process crashed (exit 1, traceback) or hung"
CONVERGED = "the operator's commands converge"


def seed_from_environment(environ: Mapping[str, str] | None = None, default: int = DEFAULT_SEED) -> int:
    """The chaos seed: FULFIL_CHAOS_SEED when set, else the default."""
    raw = (os.environ if environ is None else environ).get(SEED_VARIABLE, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{SEED_VARIABLE} must be an integer, not {raw!r}") from None


def chaos_env(
    base: Mapping[str, str], *, database_url: str, base_url: str, labels_dir: Path, workers: int
) -> dict[str, str]:
    """The environment of every child: this database, the sandbox for both services, contract
    shipping, ``workers`` workers inside each process."""
    return {
        **base,
        **DEFAULT_CREDENTIALS,
        **SENDER_ENV,
        **HTTP_ENV,
        "FULFIL_DATABASE_URL": database_url,
        "FULFIL_CANADAPOST_BASE_URL": base_url,
        "FULFIL_BESTBUY_BASE_URL": base_url,
        "FULFIL_CANADAPOST_CONTRACT_ID": CONTRACT_ID,
        "FULFIL_LABELS_DIR": str(labels_dir),
        "FULFIL_CONCURRENCY": str(workers),
        # Canada Post's limits over a 1 s window: an injected "Rejected by SLM Monitor" pauses the
        # group for every process for one second, not the published minute (the waves last ~10 s).
        **{f"FULFIL_CANADAPOST_RATE_{group}": "1000/1" for group in "ABCDEF"},
    }


@dataclass(frozen=True)
class WaveGroup:
    """Processes of one command in a wave."""

    command: tuple[str, ...]
    processes: int
    limit: int | None = None
    # Each process starts a seeded moment up to this long after the wave began (0: at once).
    stagger_s: float = 0.0
    # Start another whenever one ends, while the wave's other processes still run.
    repeat: bool = False

    def arguments(self) -> tuple[str, ...]:
        return (*self.command, "--limit", str(self.limit)) if self.limit else self.command


@dataclass(frozen=True)
class Wave:
    """Processes running at once under one set of faults (drop_mode: "close" or "late")."""

    drop_mode: str
    groups: tuple[WaveGroup, ...]
    # The first K fetches of every label bought in this wave answer 202 (not ready yet), as Canada
    # Post does while it renders a label: the label is bought and its PDF comes seconds later.
    labels_not_ready: int = 0

    @property
    def name(self) -> str:
        commands = " + ".join(f"{group.processes} x {' '.join(group.command)}" for group in self.groups)
        return f"{commands}, drop_mode={self.drop_mode}"


@dataclass(frozen=True)
class ChaosPlan:
    """What one chaos run does. The defaults are the suite test's (about a minute on 2 cores)."""

    seed: int = DEFAULT_SEED
    orders: int = 45
    problems: int = 3
    label_processes: int = 3
    push_processes: int = 3
    # Workers inside each process (FULFIL_CONCURRENCY): a kill lands on several orders in flight.
    workers: int = 3
    # Each process of a wave is SIGKILLed with this chance, this long after it started; a killed one
    # is restarted (once, not killed again) with restart_chance.
    kill_chance: float = 0.5
    kill_after_s: tuple[float, float] = (0.4, 3.0)
    restart_chance: float = 0.75
    # Faults, the same on both services. The latency makes kills land mid-call.
    latency_ms: float = 40.0
    jitter_ms: float = 120.0
    error_rate: float = 0.05
    gateway_rate: float = 0.03
    rate_limit_rate: float = 0.03
    retry_after_s: int = 1
    drop_rate: float = 0.06
    late_answer_s: float = CLIENT_DEADLINE_S + 1.5
    # True: the middle wave runs `labels create` and `tracking push` at once, as two cron hosts do
    # (one buying and downloading while the other pushes); False: every wave runs one command.
    overlap: bool = True
    # In a wave of both commands, each push process starts up to this long after the wave began,
    # and another starts this long after one ends, for as long as the label processes run.
    push_stagger_s: float = 2.5
    repeat_pause_s: float = 1.0
    # In that wave, the first K fetches of each label answer 202 (fulfil waits 2 s, 4 s… between).
    labels_not_ready: int = 1
    # Bounds.
    wave_timeout_s: float = 40.0
    command_timeout_s: float = 60.0
    max_passes: int = 10
    max_settle_wait_s: float = 15.0
    budget_s: float = 85.0

    def waves(self) -> list[Wave]:
        """The chaos waves in order. The first wave of each command takes about half the orders
        (``--limit``), so the waves after it, with the other drop mode, still have work."""
        half_labels = max(1, -(-self.orders // (2 * self.label_processes)))
        half_pushes = max(1, -(-self.orders // (2 * self.push_processes)))
        labels_first = WaveGroup(LABELS_CREATE, self.label_processes, limit=half_labels)
        if self.overlap:
            return [
                Wave("close", (labels_first,)),
                Wave(
                    "late",
                    (
                        WaveGroup(LABELS_CREATE, self.label_processes),
                        WaveGroup(
                            TRACKING_PUSH, self.push_processes, stagger_s=self.push_stagger_s, repeat=True
                        ),
                    ),
                    labels_not_ready=self.labels_not_ready,
                ),
                Wave("close", (WaveGroup(TRACKING_PUSH, self.push_processes),)),
            ]
        return [
            Wave("close", (labels_first,)),
            Wave("late", (WaveGroup(LABELS_CREATE, self.label_processes),)),
            Wave("close", (WaveGroup(TRACKING_PUSH, self.push_processes, limit=half_pushes),)),
            Wave("late", (WaveGroup(TRACKING_PUSH, self.push_processes),)),
        ]

    def faults(self, drop_mode: str, *, labels_not_ready: int = 0) -> Faults:
        return Faults(
            latency_ms=self.latency_ms,
            jitter_ms=self.jitter_ms,
            error_rate=self.error_rate,
            gateway_rate=self.gateway_rate,
            rate_limit_rate=self.rate_limit_rate,
            retry_after_s=self.retry_after_s,
            drop_rate=self.drop_rate,
            drop_mode=drop_mode,
            late_answer_s=self.late_answer_s,
            label_not_ready_fetches=labels_not_ready,
        )


def is_unshippable(generated: GeneratedOrder) -> bool:
    """Whether no label can be made for a generated order. A bad postal code or no street never
    makes one; a street too long for one line does when address line 2 is free (README: the
    overflow continues on line 2) and fails otherwise."""
    if generated.problem is None:
        return False
    if generated.problem == "line_too_long":
        address = generated.order["customer"].get("shipping_address") or generated.shipping_address
        return bool((address.get("street_2") or "").strip())
    return True


def chaos_sandbox(plan: ChaosPlan, xsd_dir: Path | None = None) -> Sandbox:
    """A sandbox of the run's own (its fault draws seeded by the plan), not started yet."""
    return Sandbox(SandboxConfig(seed=plan.seed, xsd_dir=xsd_dir), host="127.0.0.1", port=0)


# ==============================================================================================
# Child processes
# ==============================================================================================


@dataclass
class Child:
    """One `python -m fulfil …` process and what became of it."""

    number: int
    arguments: tuple[str, ...]
    phase: str
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    started: float
    kill_after: float | None = None
    restart: bool = False
    killed_after: float | None = None
    timed_out: bool = False
    returncode: int | None = None
    ended: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def command(self) -> str:
        """The command without its options: "labels create"."""
        return " ".join(word for word in self.arguments if not word.startswith("-") and not word.isdigit())

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def records(self) -> list[dict[str, Any]]:
        """The JSON lines it printed (a line cut short by a kill is skipped)."""
        records = []
        for line in self.stdout().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def describe(self) -> str:
        what = f"pid {self.pid} `fulfil {' '.join(self.arguments)}` ({self.phase}"
        if self.killed_after is not None:
            what += f", SIGKILLed after {self.killed_after:.2f} s"
        elif self.timed_out:
            what += ", killed: out of time"
        elif self.returncode is not None:
            what += f", exit {self.returncode}"
        return what + ")"


class ChildProcesses:
    """Starts the CLI in child processes, its output in files; kills whatever still runs on close."""

    def __init__(self, env: Mapping[str, str], logs_dir: Path) -> None:
        self.env = dict(env)
        self.logs_dir = logs_dir
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.all: list[Child] = []

    def start(
        self, command: tuple[str, ...], phase: str, *, kill_after: float | None = None, restart: bool = False
    ) -> Child:
        number = len(self.all) + 1
        stem = f"{number:04d}-{'-'.join(command)}"
        stdout_path = self.logs_dir / f"{stem}.out"
        stderr_path = self.logs_dir / f"{stem}.err"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "fulfil", *command, "--json"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        child = Child(
            number=number,
            arguments=command,
            phase=phase,
            process=process,
            stdout_path=stdout_path,
            stderr_path=stderr_path,
            started=time.monotonic(),
            kill_after=kill_after,
            restart=restart,
        )
        self.all.append(child)
        return child

    def poll(self, child: Child) -> bool:
        """True once the child has ended (its exit code recorded)."""
        if child.returncode is not None:
            return True
        code = child.process.poll()
        if code is None:
            return False
        child.returncode = code
        child.ended = time.monotonic()
        return True

    def kill(self, child: Child) -> None:
        if self.poll(child):
            return
        with contextlib.suppress(ProcessLookupError):
            child.process.kill()
        child.process.wait(timeout=10)
        self.poll(child)

    def run_to_end(self, command: tuple[str, ...], phase: str, timeout: float) -> Child:
        child = self.start(command, phase)
        try:
            child.process.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            child.timed_out = True
            self.kill(child)
        self.poll(child)
        return child

    def close(self) -> None:
        for child in self.all:
            if not self.poll(child):
                child.timed_out = True
                self.kill(child)


# ==============================================================================================
# What the run found
# ==============================================================================================


@dataclass(frozen=True)
class Violation:
    invariant: str
    order_id: str | None
    message: str
    evidence: str = ""


@dataclass(frozen=True)
class SoldLabel:
    """A label the sandbox's Canada Post sold (not voided)."""

    order_id: str | None
    shipment_id: str
    tracking_pin: str
    request_id: str | None
    created_at: float
    label_key: str
    artifact_id: str


@dataclass
class Evidence:
    """Both sides' records at the end of the run."""

    started_epoch: float
    shipments: dict[str, dict[str, Any]]
    order_status: dict[str, str]
    surplus_pins: set[str]
    api_calls: list[dict[str, Any]]
    run_pids: dict[str, int]
    sold: list[SoldLabel]
    voided: int
    bestbuy_orders: dict[str, dict[str, Any]]
    log: list[dict[str, Any]]

    def sold_to(self, order_id: str) -> list[SoldLabel]:
        return self._sold_by_order.get(order_id, [])

    def calls_of(self, order_id: str) -> list[dict[str, Any]]:
        return self._calls_by_order.get(order_id, [])

    def log_of(self, order_id: str) -> list[dict[str, Any]]:
        """The sandbox's log entries about one order: its OR23/OR24, and fetches of its labels."""
        entries = list(self.log_by_order.get(order_id, []))
        for label in self.sold_to(order_id):
            entries += self.log_by_label_key.get(label.label_key, [])
        return sorted(entries, key=lambda entry: entry["started_at"])

    @cached_property
    def _sold_by_order(self) -> dict[str, list[SoldLabel]]:
        grouped: dict[str, list[SoldLabel]] = defaultdict(list)
        for label in self.sold:
            grouped[label.order_id or ""].append(label)
        return grouped

    @cached_property
    def _calls_by_order(self) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for call in self.api_calls:
            grouped[call["related_id"] or ""].append(call)
        return grouped

    @cached_property
    def log_by_order(self) -> dict[str, list[dict[str, Any]]]:
        """Best Buy log entries by the order id in their path (/api/orders/{id}/…)."""
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in self.log:
            parts = entry["path"].split("?")[0].split("/")
            if entry["service"] == "bestbuy" and len(parts) > 4 and parts[1:3] == ["api", "orders"]:
                grouped[parts[3]].append(entry)
        return grouped

    @cached_property
    def log_by_label_key(self) -> dict[str, list[dict[str, Any]]]:
        """Label fetches by label key (/rs/artifact/{key}/{artifact}/{page})."""
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in self.log:
            if entry["endpoint"] == "GetArtifact":
                parts = entry["path"].split("?")[0].split("/")
                if len(parts) > 3:
                    grouped[parts[3]].append(entry)
        return grouped

    def order_log(self, order_id: str, endpoint: str) -> list[dict[str, Any]]:
        return [entry for entry in self.log_by_order.get(order_id, []) if entry["endpoint"] == endpoint]

    def label_fetches(self, order_id: str) -> list[dict[str, Any]]:
        keys = [label.label_key for label in self.sold_to(order_id)]
        return [entry for key in keys for entry in self.log_by_label_key.get(key, [])]

    def at(self, moment: float | datetime | None) -> str:
        if moment is None:
            return "t=?"
        epoch = moment.timestamp() if isinstance(moment, datetime) else moment
        return f"t={epoch - self.started_epoch:7.2f}s"


@dataclass
class ChaosResult:
    plan: ChaosPlan
    violations: list[Violation]
    figures: dict[str, Any]
    children: list[Child]
    work_dir: Path

    @property
    def ok(self) -> bool:
        return not self.violations

    def by_invariant(self) -> dict[str, list[Violation]]:
        grouped: dict[str, list[Violation]] = defaultdict(list)
        for violation in self.violations:
            grouped[violation.invariant].append(violation)
        return dict(grouped)

    def summary(self) -> str:
        f = self.figures
        lines = [
            f"chaos run, seed {self.plan.seed}: {f['orders']} orders ({f['unshippable']} unshippable)",
            f"  labels bought at the sandbox: {f['labels_bought']} ({f['labels_voided']} voided); "
            f"orders with more than one: {f['duplicate_orders']}",
            f"  shipped: {f['shipped']} of {f['orders'] - f['unshippable']} valid orders; "
            f"unshippable parked as label_failed: {f['unshippable_failed']}",
            f"  parked: {_counts(f['parked'])}",
            f"  other end states: {_counts(f['other_end_states'])}",
            f"  processes: {f['processes']} started, {self.plan.workers} workers each "
            f"({f['repeats']} cron-like repeats), "
            f"{f['kills']} SIGKILLed, {f['restarts']} restarted, "
            f"{f['timeouts']} out of time; exit codes {_counts(f['exit_codes'])}",
            f"  operator loop: {f['passes']} passes, converged: {f['converged']}",
            f"  sandbox requests: {_counts(f['sandbox_requests'])}",
            f"  faults injected: {_counts(f['faults_injected'])}",
            f"  api_calls rows: {f['api_calls_rows']} ({_counts(f['api_calls'])})",
            f"  outcomes reported: {_counts(f['outcomes'])}",
            f"  wall time: {f['wall_s']:.1f} s ({_counts(f['phase_s'], '{:.1f} s', ordered=False)})",
            f"  invariants broken: {_counts(f['violations']) if f['violations'] else 'none'}",
            f"  child logs: {self.work_dir}",
        ]
        return "\n".join(lines)

    def report(self, replay: str, evidence_per_invariant: int = 3, messages_per_invariant: int = 25) -> str:
        """Every broken invariant with all the orders it names, the first violations with their
        messages and the first few of those with their evidence."""
        parts = [
            f"chaos run with seed {self.plan.seed}: {len(self.violations)} violations of "
            f"{len(self.by_invariant())} invariants",
            f"replay: {replay}",
        ]
        for invariant, violations in self.by_invariant().items():
            orders = sorted({v.order_id for v in violations if v.order_id})
            parts.append(f"\n== {invariant}: {len(violations)} ({len(orders)} orders: {', '.join(orders)})")
            for index, violation in enumerate(violations[:messages_per_invariant]):
                parts.append(f"- {violation.message}")
                if violation.evidence and index < evidence_per_invariant:
                    parts.append(_indent(violation.evidence, "    "))
            if len(violations) > messages_per_invariant:
                parts.append(f"- … and {len(violations) - messages_per_invariant} more")
        parts.append("\n" + self.summary())
        return "\n".join(parts)


def _counts(values: Mapping[str, Any], fmt: str = "{}", *, ordered: bool = True) -> str:
    if not values:
        return "none"
    items = sorted(values.items()) if ordered else list(values.items())
    return ", ".join(f"{key} {fmt.format(value)}" for key, value in items)


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


# ==============================================================================================
# The run
# ==============================================================================================


@dataclass(frozen=True)
class _Planned:
    """One process of a wave as the seed planned it."""

    arguments: tuple[str, ...]
    start_after: float
    kill_after: float | None
    restart: bool
    repeat: bool
    phase: str | None = None

    def again(self, start_after: float, phase: str, kill_after: float | None = None) -> _Planned:
        """The same command once more: a restart (never killed again) or a repeat."""
        return _Planned(self.arguments, start_after, kill_after, False, self.repeat, phase)


class ChaosRun:
    """One chaos run: seed the orders, run the waves, then the operator's loop, then check."""

    def __init__(
        self,
        plan: ChaosPlan,
        *,
        database_url: str,
        sandbox: Sandbox,
        env: Mapping[str, str],
        work_dir: Path,
    ) -> None:
        self.plan = plan
        self.database_url = database_url
        self.sandbox = sandbox
        self.env = dict(env)
        self.work_dir = work_dir
        self.kill_plan = random.Random(f"fulfil-chaos-kills:{plan.seed}")
        self.children = ChildProcesses(self.env, work_dir / "children")
        self.violations: list[Violation] = []
        self.phase_seconds: dict[str, float] = {}
        self.passes = 0
        self.converged = False
        self.faults_off_at: float | None = None
        self.valid_ids: list[str] = []
        self.problem_ids: list[str] = []
        self.budget_end = time.monotonic() + plan.budget_s

    # --- driving ------------------------------------------------------------------------------

    def run(self) -> ChaosResult:
        started = time.monotonic()
        started_epoch = time.time()
        self.budget_end = started + self.plan.budget_s
        try:
            self._seed_orders()
            for number, wave in enumerate(self.plan.waves(), start=1):
                self._wave(number, wave)
            self._faults_off()
            self._operator_loop()
        finally:
            self.children.close()
            self._faults_off()
        self._wait_for_late_answers()
        evidence = self._evidence(started_epoch)
        self.violations.extend(self._check(evidence))
        figures = self._figures(evidence, time.monotonic() - started)
        return ChaosResult(self.plan, list(self.violations), figures, self.children.all, self.work_dir)

    def _remaining(self) -> float:
        return self.budget_end - time.monotonic()

    def _out_of_time(self, where: str) -> bool:
        if self._remaining() > 0:
            return False
        if not any(v.invariant == CONVERGED and "time budget" in v.message for v in self.violations):
            self.violations.append(
                Violation(
                    CONVERGED,
                    None,
                    f"the chaos run used its whole time budget ({self.plan.budget_s:g} s) and stopped "
                    f"{where}",
                )
            )
        return True

    def _seed_orders(self) -> None:
        # The same orders as generate_orders(n, seed=…, problems=k), with the problem each one carries.
        generated = generate_order_set(self.plan.orders, self.plan.seed, problems=self.plan.problems)
        orders = [item.order for item in generated]
        self.valid_ids = [item.order["order_id"] for item in generated if not is_unshippable(item)]
        self.problem_ids = [item.order["order_id"] for item in generated if is_unshippable(item)]
        with psycopg.connect(self.database_url) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO orders (order_id, status, raw_order_data, created_at) "
                "VALUES (%s, 'accepted', %s, %s)",
                [(order["order_id"], Jsonb(order), order["created_date"]) for order in orders],
            )
        self.sandbox.add_orders(orders)

    def _set_faults(self, faults: Faults) -> None:
        for service in SERVICES:
            self.sandbox.set_faults(service, faults)

    def _faults_off(self) -> None:
        if self.faults_off_at is None:
            self._set_faults(Faults())
            self.faults_off_at = time.monotonic()

    def _wave(self, number: int, wave: Wave) -> None:
        """Processes at once under faults; some killed at seeded moments, some of those restarted.
        A repeating group starts a new process whenever one of its own ends, as long as the
        others of the wave still run (cron on another host)."""
        phase = f"wave {number}: {wave.name}"
        # Draw the whole plan first, so it depends on the seed alone, not on timing.
        waiting: list[_Planned] = []
        for group in wave.groups:
            for _ in range(group.processes):
                killed = self.kill_plan.random() < self.plan.kill_chance
                after = self.kill_plan.uniform(*self.plan.kill_after_s)
                restart = self.kill_plan.random() < self.plan.restart_chance
                start_after = self.kill_plan.uniform(0.0, group.stagger_s) if group.stagger_s else 0.0
                kill_after = after if killed else None
                item = _Planned(group.arguments(), start_after, kill_after, killed and restart, group.repeat)
                waiting.append(item)
        if self._out_of_time(f"before {phase}"):
            return
        self._set_faults(self.plan.faults(wave.drop_mode, labels_not_ready=wave.labels_not_ready))
        began = time.monotonic()
        deadline = min(began + self.plan.wave_timeout_s, self.budget_end)
        running: dict[int, tuple[Child, _Planned]] = {}
        repeats = 0

        def others_busy() -> bool:
            return any(not item.repeat for item in waiting) or any(
                not item.repeat for _, item in running.values()
            )

        def repeat(item: _Planned, now: float) -> None:
            nonlocal repeats
            if not item.repeat or not others_busy():
                return
            # The n-th repeat of a wave has its own seeded draw, whatever the timing.
            repeats += 1
            draw = random.Random(f"fulfil-chaos-kills:{self.plan.seed}:{number}:{repeats}")
            killed = draw.random() < self.plan.kill_chance
            after = draw.uniform(*self.plan.kill_after_s) if killed else None
            waiting.append(item.again(now - began + self.plan.repeat_pause_s, f"{phase}, again", after))

        while waiting or running:
            now = time.monotonic()
            waiting.sort(key=lambda item: item.start_after)
            while waiting and now - began >= waiting[0].start_after:
                item = waiting.pop(0)
                child = self.children.start(
                    item.arguments, item.phase or phase, kill_after=item.kill_after, restart=item.restart
                )
                running[child.number] = (child, item)
            for child, item in list(running.values()):
                if self.children.poll(child):
                    del running[child.number]
                    repeat(item, now)
                elif child.kill_after is not None and now - child.started >= child.kill_after:
                    self.children.kill(child)
                    child.killed_after = now - child.started
                    del running[child.number]
                    if child.restart:
                        waiting.append(item.again(now - began, f"{phase}, restarted"))
                    else:
                        repeat(item, now)
            if (waiting or running) and now >= deadline:
                for child, _ in running.values():
                    child.timed_out = True
                    self.children.kill(child)
                self.violations.append(
                    Violation(
                        CLEAN_EXITS,
                        None,
                        f"{len(running)} processes still ran {deadline - began:.0f} s into {phase}: "
                        + "; ".join(child.describe() for child, _ in running.values()),
                    )
                )
                break
            time.sleep(0.02)
        self.phase_seconds[phase] = time.monotonic() - began

    def _operator_loop(self) -> None:
        """The operator's commands, in turn, until a whole pass changes nothing."""
        began = time.monotonic()
        try:
            previous = self._snapshot()
            for number in range(1, self.plan.max_passes + 1):
                if self._out_of_time(f"before operator pass {number}"):
                    return
                ran = [
                    self.children.run_to_end(
                        command,
                        f"operator pass {number}",
                        min(self.plan.command_timeout_s, self._remaining()),
                    )
                    for command in OPERATOR_PASS
                ]
                self.passes = number
                current = self._snapshot()
                in_flight = self._in_flight()
                if current == previous and not in_flight:
                    self.converged = True
                    return
                previous = current
                if in_flight:
                    self._wait_for_settle_window(ran)
            in_flight = self._in_flight()
            self.violations.append(
                Violation(
                    CONVERGED,
                    None,
                    f"the operator's commands did not converge in {self.plan.max_passes} passes "
                    f"(still changing the shipments table; {len(in_flight)} purchases in flight: "
                    f"{', '.join(in_flight) or 'none'})",
                )
            )
        finally:
            self.phase_seconds["operator loop"] = time.monotonic() - began

    def _snapshot(self) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(
                "SELECT o.order_id, o.status, to_jsonb(s) - 'updated_at' FROM orders o "
                "LEFT JOIN shipments s ON s.order_id = o.order_id ORDER BY o.order_id"
            ).fetchall()

    def _in_flight(self) -> list[str]:
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT order_id FROM shipments WHERE status = 'label_creation_initiated' ORDER BY order_id"
            ).fetchall()
        return [row[0] for row in rows]

    def _wait_for_settle_window(self, ran: list[Child]) -> None:
        """Sleep until the last purchase reported unsettled may be settled (bounded)."""
        now = datetime.now(UTC)
        moments: list[datetime] = []
        for child in ran:
            for record in child.records():
                match = UNSETTLED_AT.search(str(record.get("error") or ""))
                if record.get("outcome") == "unsettled" and match:
                    hour, minute, second = (int(part) for part in match.groups())
                    moment = now.replace(hour=hour, minute=minute, second=second, microsecond=0)
                    if moment < now - timedelta(hours=12):
                        moment += timedelta(days=1)
                    moments.append(moment + timedelta(seconds=1))  # the message is to the second
        if moments:
            wait = (max(moments) - now).total_seconds()
        else:
            # Nothing said when: the claims in flight expire at the latest by their lease.
            with psycopg.connect(self.database_url) as conn:
                row = conn.execute(
                    "SELECT extract(epoch FROM max(lease_expires_at) - now()) FROM shipments "
                    "WHERE status = 'label_creation_initiated'"
                ).fetchone()
            wait = float(row[0]) if row and row[0] is not None else 1.0
        time.sleep(max(0.2, min(wait + 0.2, self.plan.max_settle_wait_s, self._remaining())))

    def _wait_for_late_answers(self) -> None:
        """Requests the sandbox was still answering late when faults went off get into its log first."""
        if self.faults_off_at is None:
            return
        quiet_at = (
            self.faults_off_at
            + self.plan.late_answer_s
            + (self.plan.latency_ms + self.plan.jitter_ms) / 1000.0
            + 0.5
        )
        time.sleep(max(0.0, min(quiet_at - time.monotonic(), 10.0)))

    # --- evidence -----------------------------------------------------------------------------

    def _evidence(self, started_epoch: float) -> Evidence:
        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            shipments = {
                row["order_id"]: row
                for row in conn.execute("SELECT * FROM shipments ORDER BY shipment_id").fetchall()
            }
            order_status = {
                row["order_id"]: row["status"]
                for row in conn.execute("SELECT order_id, status FROM orders").fetchall()
            }
            surplus: set[str] = set()
            exists = conn.execute("SELECT to_regclass('surplus_labels') IS NOT NULL AS present").fetchone()
            if exists and exists["present"]:
                surplus = {
                    row["tracking_pin"]
                    for row in conn.execute("SELECT tracking_pin FROM surplus_labels").fetchall()
                }
            calls = conn.execute(
                "SELECT call_id, service, endpoint, related_id, method, url, status_code, is_success, "
                "failure_class, error, started_at, finished_at, run_id FROM api_calls ORDER BY call_id"
            ).fetchall()
            run_pids = {
                row["run_id"]: row["pid"] for row in conn.execute("SELECT run_id, pid FROM runs").fetchall()
            }
        state = self.sandbox.sandbox_state
        with state.lock:
            sold = [
                SoldLabel(
                    order_id=s.customer_ref_1,
                    shipment_id=s.shipment_id,
                    tracking_pin=s.tracking_pin,
                    request_id=s.customer_request_id,
                    created_at=s.created_at,
                    label_key=s.label_key,
                    artifact_id=s.artifact_id,
                )
                for s in state.shipments.values()
                if not s.voided
            ]
            voided = sum(1 for s in state.shipments.values() if s.voided)
        snapshot = self.sandbox.state()
        return Evidence(
            started_epoch=started_epoch,
            shipments=shipments,
            order_status=order_status,
            surplus_pins=surplus,
            api_calls=calls,
            run_pids=run_pids,
            sold=sold,
            voided=voided,
            bestbuy_orders=snapshot["bestbuy"]["orders"],
            log=snapshot["requests"]["log"],
        )

    # --- checks -------------------------------------------------------------------------------

    def _check(self, ev: Evidence) -> list[Violation]:
        children_by_pid = {child.pid: child for child in self.children.all}
        story = OrderStory(ev, children_by_pid)
        found: list[Violation] = []
        found += check_one_purchase_per_order(ev, story)
        found += check_every_label_recorded(ev, story)
        found += check_end_states(ev, story, self.valid_ids, self.problem_ids)
        found += check_tracking_before_ship(ev, story)
        found += check_label_before_ship(ev, story)
        found += check_audit_covers_sandbox(ev, story)
        found += check_no_lease_left(ev, story)
        found += check_processes(self.children.all)
        return found

    def _figures(self, ev: Evidence, wall_s: float) -> dict[str, Any]:
        per_order = Counter(label.order_id for label in ev.sold)
        shipped = {o for o in self.valid_ids if is_shipped(ev, o)}
        parked: Counter[str] = Counter()
        other: Counter[str] = Counter()
        for order_id in self.valid_ids + self.problem_ids:
            row = ev.shipments.get(order_id)
            status = row["status"] if row else "no shipment"
            if order_id in shipped:
                continue
            if row and status in PARKED_STATUSES and row["last_error"]:
                parked[f"{status} ({row['last_error_code'] or 'no code'})"] += 1
            else:
                other[status] += 1
        outcomes: Counter[str] = Counter()
        for child in self.children.all:
            for record in child.records():
                outcomes[f"{child.command}: {record.get('outcome')}"] += 1
        return {
            "seed": self.plan.seed,
            "orders": len(self.valid_ids) + len(self.problem_ids),
            "unshippable": len(self.problem_ids),
            "labels_bought": len(ev.sold),
            "labels_voided": ev.voided,
            "duplicate_orders": sum(1 for count in per_order.values() if count > 1),
            "shipped": len(shipped),
            "unshippable_failed": sum(
                1
                for o in self.problem_ids
                if (ev.shipments.get(o) or {}).get("status") == "label_failed"
                and (ev.shipments.get(o) or {}).get("last_error")
            ),
            "parked": dict(parked),
            "other_end_states": dict(other),
            "processes": len(self.children.all),
            "kills": sum(1 for c in self.children.all if c.killed_after is not None),
            "restarts": sum(1 for c in self.children.all if c.phase.endswith("restarted")),
            "repeats": sum(1 for c in self.children.all if c.phase.endswith("again")),
            "timeouts": sum(1 for c in self.children.all if c.timed_out),
            "exit_codes": dict(
                Counter(
                    "killed" if c.killed_after is not None else str(c.returncode) for c in self.children.all
                )
            ),
            "passes": self.passes,
            "converged": self.converged,
            "sandbox_requests": dict(Counter(f"{e['service']}.{e['endpoint']}" for e in ev.log)),
            "faults_injected": dict(Counter(e["fault"] for e in ev.log if e["fault"])),
            "api_calls_rows": len(ev.api_calls),
            "api_calls": dict(Counter(f"{c['service']}.{c['endpoint']}" for c in ev.api_calls)),
            "outcomes": dict(outcomes),
            "wall_s": wall_s,
            "phase_s": dict(self.phase_seconds),
            "violations": dict(Counter(v.invariant for v in self.violations)),
        }


# ==============================================================================================
# The invariants
# ==============================================================================================


class OrderStory:
    """One order's records from both sides, as lines of evidence for a violation message."""

    def __init__(self, ev: Evidence, children_by_pid: Mapping[int, Child]) -> None:
        self.ev = ev
        self.children_by_pid = children_by_pid

    def run_of(self, run_id: str | None) -> str:
        pid = self.ev.run_pids.get(run_id or "")
        child = self.children_by_pid.get(pid) if pid is not None else None
        if child is None:
            return f"run {str(run_id)[:8]}"
        return child.describe()

    def __call__(self, order_id: str, limit: int = 40) -> str:
        ev = self.ev
        lines: list[str] = []
        row = ev.shipments.get(order_id)
        if row is None:
            lines.append("shipment: none")
        else:
            lines.append(
                f"shipment: {row['status']}, PIN {row['tracking_pin']}, CP shipment {row['cp_shipment_id']}, "
                f"request id {row['cp_request_id']}, attempts {row['attempts']}, "
                f"pdf {row['label_pdf_path'] or 'none'}, lease {row['lease_owner'] or 'none'}, "
                f"last error [{row['last_error_code']}] {_short(row['last_error'], 300)}"
            )
        lines.append(f"order: {ev.order_status.get(order_id)}; Best Buy: {ev.bestbuy_orders.get(order_id)}")
        for label in ev.sold_to(order_id):
            lines.append(
                f"sold at the sandbox: CP shipment {label.shipment_id}, PIN {label.tracking_pin}, "
                f"request id {label.request_id}, {ev.at(label.created_at)}"
            )
        events: list[tuple[float, str]] = []
        for call in ev.calls_of(order_id):
            started = call["started_at"].timestamp() if call["started_at"] else 0.0
            events.append(
                (
                    started,
                    f"{ev.at(call['started_at'])} api_calls {call['call_id']}: {call['service']} "
                    f"{call['endpoint']} → {call['status_code'] if call['status_code'] is not None else '-'} "
                    f"{call['failure_class'] or ('ok' if call['is_success'] else 'no answer recorded')}"
                    f"{' ' + _short(call['error'], 120) if call['error'] else ''}, "
                    f"finished {ev.at(call['finished_at']) if call['finished_at'] else 'never'}, "
                    f"by {self.run_of(call['run_id'])}",
                )
            )
        for entry in ev.log_of(order_id):
            events.append(
                (
                    entry["started_at"],
                    f"{ev.at(entry['started_at'])} sandbox saw {entry['service']} {entry['endpoint']} → "
                    f"{entry['status']} fault {entry['fault'] or 'none'}, done {ev.at(entry['finished_at'])}",
                )
            )
        events.sort(key=lambda event: event[0])
        lines += [text for _, text in events]
        if len(lines) > limit:
            lines = [*lines[: limit - 1], f"… {len(lines) - limit + 1} more lines"]
        return "\n".join(lines)


def _short(text: str | None, length: int) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


def purchase_calls(ev: Evidence, order_id: str) -> list[dict[str, Any]]:
    return [c for c in ev.calls_of(order_id) if c["endpoint"] in ("CreateShipment", "CreateNCShipment")]


def check_one_purchase_per_order(ev: Evidence, story: OrderStory) -> list[Violation]:
    per_order = Counter(label.order_id for label in ev.sold)
    return [
        Violation(
            ONE_PURCHASE,
            order_id,
            f"order {order_id}: the sandbox sold {count} labels for it "
            f"(PINs {', '.join(label.tracking_pin for label in ev.sold_to(order_id))}); "
            f"{len(purchase_calls(ev, order_id))} Create Shipment calls in api_calls",
            story(order_id),
        )
        for order_id, count in sorted(per_order.items(), key=lambda item: str(item[0]))
        if count > 1 and order_id is not None
    ]


def check_every_label_recorded(ev: Evidence, story: OrderStory) -> list[Violation]:
    """A label paid for is on its shipment, kept as a surplus label to void, or named in the reason
    its shipment is parked for review: never only in api_calls."""
    found = []
    for label in ev.sold:
        row = ev.shipments.get(label.order_id or "")
        reason = (row["last_error"] or "") if row else ""
        if (
            (row and row["tracking_pin"] == label.tracking_pin)
            or label.tracking_pin in ev.surplus_pins
            or (row and row["status"] == "needs_review" and label.shipment_id in reason)
        ):
            continue
        found.append(
            Violation(
                NO_LOST_LABEL,
                label.order_id,
                f"order {label.order_id}: label PIN {label.tracking_pin} (CP shipment {label.shipment_id}) "
                f"was sold at {ev.at(label.created_at)} but is on no shipment and in no surplus_labels row "
                f"(the shipment holds PIN {row['tracking_pin'] if row else None}, "
                f"status {row['status'] if row else None})",
                story(label.order_id or ""),
            )
        )
    return found


def pdf_on_disk(row: Mapping[str, Any]) -> bool:
    path, expected = row.get("label_pdf_path"), row.get("label_pdf_sha256")
    if not path or not expected:
        return False
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() == expected
    except OSError:
        return False


def shipped_problems(ev: Evidence, order_id: str) -> list[str]:
    """Why an order is not shipped the way the promise says (empty: it is)."""
    row = ev.shipments.get(order_id)
    if row is None:
        return ["it has no shipment"]
    problems = []
    pins = {label.tracking_pin for label in ev.sold_to(order_id)}
    bestbuy = ev.bestbuy_orders.get(order_id) or {}
    if row["status"] != "tracking_updated":
        problems.append(f"shipment is {row['status']}, not tracking_updated")
    if ev.order_status.get(order_id) != "shipped":
        problems.append(f"order is {ev.order_status.get(order_id)}, not shipped")
    if bestbuy.get("state") not in BESTBUY_SHIPPED_STATES:
        problems.append(f"Best Buy has it {bestbuy.get('state')}, not SHIPPED")
    if bestbuy.get("tracking_number") != row["tracking_pin"]:
        problems.append(
            f"Best Buy's tracking number is {bestbuy.get('tracking_number')}, the shipment's PIN "
            f"{row['tracking_pin']}"
        )
    if row["tracking_pin"] not in pins:
        problems.append(f"PIN {row['tracking_pin']} is not one the sandbox sold for it ({sorted(pins)})")
    if not pdf_on_disk(row):
        problems.append(f"no label PDF matching its sha256 on disk ({row['label_pdf_path']})")
    return problems


def is_shipped(ev: Evidence, order_id: str) -> bool:
    return not shipped_problems(ev, order_id)


def check_end_states(
    ev: Evidence, story: OrderStory, valid_ids: list[str], problem_ids: list[str]
) -> list[Violation]:
    found = []
    for order_id in valid_ids:
        row = ev.shipments.get(order_id)
        problems = shipped_problems(ev, order_id)
        if not problems:
            continue
        if row and row["status"] in PARKED_STATUSES and row["last_error"]:
            continue  # parked for a person, with the reason
        if row and row["status"] == "tracking_updated":
            message = f"order {order_id} is tracking_updated but not as promised: {'; '.join(problems)}"
        else:
            message = (
                f"order {order_id} ends {row['status'] if row else 'with no shipment'}, neither shipped nor "
                f"parked with a reason: {'; '.join(problems)}"
            )
        found.append(Violation(END_STATE, order_id, message, story(order_id)))
    for order_id in problem_ids:
        row = ev.shipments.get(order_id)
        if row and row["status"] == "label_failed" and row["last_error"] and not ev.sold_to(order_id):
            continue
        found.append(
            Violation(
                END_STATE,
                order_id,
                f"unshippable order {order_id} ends {row['status'] if row else 'with no shipment'} "
                f"({len(ev.sold_to(order_id))} labels sold), not label_failed with a reason",
                story(order_id),
            )
        )
    return found


def _first_ships(ev: Evidence) -> dict[str, dict[str, Any]]:
    """The first OR24 the sandbox received, per order."""
    first: dict[str, dict[str, Any]] = {}
    for order_id in ev.log_by_order:
        ships = ev.order_log(order_id, "OR24")
        if ships:
            first[order_id] = min(ships, key=lambda entry: entry["started_at"])
    return first


def _carried_out_by(entry: Mapping[str, Any]) -> float:
    """When the sandbox had at the latest carried out a request it logged (answers go out after the log;
    a late answer's entry is written after the wait, so its start is used)."""
    return entry["started_at"] if entry["fault"] == "commit_then_late" else entry["finished_at"]


def check_tracking_before_ship(ev: Evidence, story: OrderStory) -> list[Violation]:
    found = []
    for order_id, ship in sorted(_first_ships(ev).items()):
        accepted = [
            entry
            for entry in ev.order_log(order_id, "OR23")
            if (
                (entry["status"] is not None and 200 <= entry["status"] < 300)
                or (entry["status"] is None and entry["fault"] in CARRIED_OUT_FAULTS)
            )
            and _carried_out_by(entry) <= ship["started_at"]
        ]
        if not accepted:
            found.append(
                Violation(
                    TRACKING_FIRST,
                    order_id,
                    f"order {order_id}: the first OR24 reached Best Buy at {ev.at(ship['started_at'])} "
                    "before any OR23 Best Buy had accepted",
                    story(order_id),
                )
            )
    return found


def check_label_before_ship(ev: Evidence, story: OrderStory) -> list[Violation]:
    """Issue 9, defect 7: the ship confirmation tells the customer the parcel left; no PDF, no parcel."""
    found = []
    for order_id, ship in sorted(_first_ships(ev).items()):
        whole = sorted(
            entry["finished_at"]
            for entry in ev.label_fetches(order_id)
            if entry["status"] == 200 and entry["fault"] is None
        )
        if whole and whole[0] <= ship["started_at"]:
            continue
        fetched = f"first fetched whole at {ev.at(whole[0])}" if whole else "never fetched whole"
        found.append(
            Violation(
                LABEL_FIRST,
                order_id,
                f"order {order_id}: OR24 (the customer is told it shipped) was sent at "
                f"{ev.at(ship['started_at'])} (answered {ship['status']}, fault {ship['fault'] or 'none'}); "
                f"its label PDF was {fetched}",
                story(order_id),
            )
        )
    return found


def check_audit_covers_sandbox(ev: Evidence, story: OrderStory) -> list[Violation]:
    """Write-ahead audit: every request that reached a service has its api_calls row."""
    found = []
    audited = Counter(str(call["service"]).lower() for call in ev.api_calls)
    seen = Counter(entry["service"] for entry in ev.log)
    for service in sorted(seen):
        if audited[service] < seen[service]:
            found.append(
                Violation(
                    AUDIT_FIRST,
                    None,
                    f"{service}: the sandbox saw {seen[service]} requests, "
                    f"api_calls has {audited[service]} rows",
                )
            )
    audited_endpoints = Counter((str(c["service"]).lower(), c["endpoint"]) for c in ev.api_calls)
    seen_endpoints = Counter((e["service"], e["endpoint"]) for e in ev.log if e["endpoint"])
    for (service, endpoint), count in sorted(seen_endpoints.items()):
        if audited_endpoints[(service, endpoint)] < count:
            found.append(
                Violation(
                    AUDIT_FIRST,
                    None,
                    f"{service} {endpoint}: the sandbox saw {count} requests, api_calls has "
                    f"{audited_endpoints[(service, endpoint)]} rows",
                )
            )
    # Per order, where the sandbox's record names the order: Best Buy's OR23/OR24, purchases.
    audited_orders = Counter(
        (c["endpoint"], c["related_id"]) for c in ev.api_calls if c["endpoint"] in ("OR23", "OR24")
    )
    seen_orders = Counter(
        (e["endpoint"], e["path"].split("?")[0].split("/")[3])
        for e in ev.log
        if e["service"] == "bestbuy" and e["endpoint"] in ("OR23", "OR24")
    )
    for (endpoint, order_id), count in sorted(seen_orders.items()):
        if audited_orders[(endpoint, order_id)] < count:
            found.append(
                Violation(
                    AUDIT_FIRST,
                    order_id,
                    f"order {order_id}: Best Buy saw {count} {endpoint}, api_calls has "
                    f"{audited_orders[(endpoint, order_id)]}",
                    story(order_id),
                )
            )
    purchases = Counter(
        c["related_id"] for c in ev.api_calls if c["endpoint"] in ("CreateShipment", "CreateNCShipment")
    )
    for order_id, count in sorted(Counter(label.order_id for label in ev.sold).items(), key=str):
        if order_id is not None and purchases[order_id] < count:
            found.append(
                Violation(
                    AUDIT_FIRST,
                    order_id,
                    f"order {order_id}: {count} labels sold, "
                    f"{purchases[order_id]} Create Shipment rows in api_calls",
                    story(order_id),
                )
            )
    return found


def check_no_lease_left(ev: Evidence, story: OrderStory) -> list[Violation]:
    return [
        Violation(
            NO_LEASE,
            order_id,
            f"order {order_id}: shipment {row['status']} still leased to {row['lease_owner']} "
            f"until {row['lease_expires_at']}",
            story(order_id),
        )
        for order_id, row in sorted(ev.shipments.items())
        if row["lease_owner"] is not None
    ]


def check_processes(children: list[Child]) -> list[Violation]:
    found = []
    for child in children:
        if child.killed_after is not None:
            continue
        stderr = child.stderr()
        tail = _indent("\n".join(stderr.strip().splitlines()[-12:]), "    ")
        if child.timed_out:
            found.append(Violation(CLEAN_EXITS, None, f"{child.describe()} ran out of time", tail))
        elif child.returncode not in NORMAL_EXIT_CODES:
            found.append(
                Violation(
                    CLEAN_EXITS,
                    None,
                    f"{child.describe()} exited {child.returncode}: {_last_line(stderr)}",
                    tail,
                )
            )
        elif TRACEBACK in stderr:
            found.append(Violation(CLEAN_EXITS, None, f"{child.describe()} printed a traceback", tail))
    return found


def _last_line(text: str) -> str:
    """The line that says what went wrong (fulfil's own error line when there is one)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("fulfil: ") and "error" in line]
    chosen = said[0] if said else (lines[-1] if lines else "(nothing on stderr)")
    return _short(chosen, 300)
