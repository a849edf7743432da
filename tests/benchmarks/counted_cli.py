"""The real command line, counting every SQL statement it sends (for the throughput benchmark).

    FULFIL_BENCH_STATEMENTS=/tmp/counts.json python -m tests.benchmarks.counted_cli labels create

Wraps psycopg's cursor methods in this process only, then runs ``fulfil`` unchanged; at exit the
count is written as ``{"statements": N}`` to the file the variable names.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg

_count = 0
_lock = threading.Lock()


def _add(n: int) -> None:
    global _count
    with _lock:
        _count += n


def _counted_execute(method: Any) -> Any:
    def execute(self: Any, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        _add(1)
        return method(self, query, params, *args, **kwargs)

    return execute


def _counted_executemany(method: Any) -> Any:
    # One statement per parameter set.
    def executemany(self: Any, query: Any, params_seq: Any, *args: Any, **kwargs: Any) -> Any:
        params = list(params_seq)
        _add(len(params))
        return method(self, query, params, *args, **kwargs)

    return executemany


def _write() -> None:
    target = os.environ.get("FULFIL_BENCH_STATEMENTS")
    if target:
        Path(target).write_text(json.dumps({"statements": _count}))


def main() -> None:
    psycopg.Cursor.execute = _counted_execute(psycopg.Cursor.execute)  # type: ignore[method-assign]
    psycopg.Cursor.executemany = _counted_executemany(psycopg.Cursor.executemany)  # type: ignore[method-assign]
    atexit.register(_write)
    from fulfil.cli import main as fulfil_main

    sys.argv[0] = "fulfil"
    fulfil_main()


if __name__ == "__main__":
    main()
