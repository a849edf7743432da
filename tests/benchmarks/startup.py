"""Benchmark: how long `fulfil --help`, `fulfil --version` and `fulfil status` take, on this machine.

Runs the installed console script (the one cron runs) N times each, interleaved with a bare
`python -c pass` so that a machine shared with other work slows all three alike, and prints the
median, the spread and each median as a ratio to bare Python's. One untimed run of each first,
with bytecode writing allowed, so the timed runs read compiled modules as an installed fulfil
does (`PYTHONDONTWRITEBYTECODE=1` in a shell would otherwise make every run compile whatever
changed since the last one); `--as-is` skips it.

    .venv/bin/python -m tests.benchmarks.startup
    .venv/bin/python -m tests.benchmarks.startup --runs 50 --command "labels create --help"
    FULFIL_DATABASE_URL=postgresql://… .venv/bin/python -m tests.benchmarks.startup --command status

A command that reads the database (`status`) runs against FULFIL_DATABASE_URL, which must be set:
the embedded PostgreSQL would be started (and, the first time, created) inside the timed runs.

Not part of the test suite: it asserts nothing about time, it only measures (tests/test_startup.py
checks the cause: what each command imports). Goals (issue 11): --help ≤ 150 ms, --version ≤ 80 ms,
`fulfil status` ≤ 300 ms at 1,000,000 orders.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CONSOLE_SCRIPT = Path(sys.executable).parent / "fulfil"
DEFAULT_COMMANDS = ("--help", "--version")
BARE_PYTHON = "python -c pass"
# Commands whose first word reads the database: they are timed against FULFIL_DATABASE_URL only.
DATABASE_COMMANDS = ("status",)
# Exit codes of a run that worked: 3 is `fulfil status` saying something needs attention (2, for
# it, is a configuration or schema problem: not the run to time); 2 is a group's help shown for
# want of a subcommand.
EXIT_CODES_OF_A_DATABASE_COMMAND = (0, 3)
EXIT_CODES_OF_HELP = (0, 2)


@dataclass(frozen=True)
class Timing:
    label: str
    milliseconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.milliseconds)

    def quantile(self, fraction: float) -> float:
        ordered = sorted(self.milliseconds)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def command_lines(commands: list[str]) -> dict[str, list[str]]:
    lines = {BARE_PYTHON: [sys.executable, "-c", "pass"]}
    for command in commands:
        lines[f"fulfil {command}"] = [str(CONSOLE_SCRIPT), *shlex.split(command)]
    return lines


def needs_database(args: list[str]) -> bool:
    words = [word for word in args if not word.startswith("-")]
    return bool(words) and words[0] in DATABASE_COMMANDS and not {"-h", "--help"} & set(args)


def run_once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    worked = EXIT_CODES_OF_A_DATABASE_COMMAND if needs_database(argv[1:]) else EXIT_CODES_OF_HELP
    if completed.returncode not in worked:
        raise SystemExit(f"{shlex.join(argv)} exited {completed.returncode}: {completed.stderr.decode()}")
    return elapsed


def measure(lines: dict[str, list[str]], runs: int, env: dict[str, str]) -> list[Timing]:
    times: dict[str, list[float]] = {label: [] for label in lines}
    for _ in range(runs):
        for label, argv in lines.items():  # interleaved: a busy moment hits every command alike
            times[label].append(run_once(argv, env))
    return [Timing(label, values) for label, values in times.items()]


def report(timings: list[Timing], runs: int) -> str:
    bare = next(t for t in timings if t.label == BARE_PYTHON).median
    rows = [f"{'command':<28}{'median':>9}{'min':>9}{'p10':>9}{'p90':>9}{'max':>9}{'× python':>10}"]
    for timing in timings:
        values = [timing.median, min(timing.milliseconds), timing.quantile(0.1), timing.quantile(0.9)]
        cells = "".join(f"{value:>7.1f}ms" for value in [*values, max(timing.milliseconds)])
        rows.append(f"{timing.label:<28}{cells}{timing.median / bare:>9.1f}×")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    rows.append(
        f"{runs} runs each, interleaved; {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load} at the end"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each command (default 30)")
    parser.add_argument(
        "--command",
        action="append",
        help="fulfil arguments to time, repeatable (default: --help and --version)",
    )
    parser.add_argument(
        "--as-is",
        action="store_true",
        help="no untimed run with bytecode writing allowed first: time the modules as they are",
    )
    args = parser.parse_args(argv)
    if not CONSOLE_SCRIPT.exists():
        raise SystemExit(f"{CONSOLE_SCRIPT} not found: `make install` first")
    commands = args.command or list(DEFAULT_COMMANDS)
    env = dict(os.environ)
    timed_on_the_database = any(needs_database(shlex.split(command)) for command in commands)
    if timed_on_the_database and not env.get("FULFIL_DATABASE_URL"):
        raise SystemExit(
            "set FULFIL_DATABASE_URL to the database to time `fulfil status` against "
            "(the embedded PostgreSQL would be started inside the timed runs)"
        )
    lines = command_lines(commands)
    if not args.as_is:
        warm = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        for argv_ in lines.values():
            run_once(argv_, warm)
    print(report(measure(lines, args.runs, env), args.runs))


if __name__ == "__main__":
    main()
