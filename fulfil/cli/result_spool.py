"""The results of a run, kept for the summary after it without growing with the run: the first
thousand in memory, the rest in a temporary file of JSON lines (read back once, in order)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import IO, Any

IN_MEMORY = 1000


class ResultSpool:
    def __init__(self, in_memory: int = IN_MEMORY) -> None:
        self._limit = in_memory
        self._head: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        self._count = 0

    def append(self, record: dict[str, Any]) -> None:
        self._count += 1
        if len(self._head) < self._limit:
            self._head.append(record)
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._file.write(json.dumps(record, default=str) + "\n")

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self._head
        if self._file is not None:
            self._file.seek(0)
            for line in self._file:
                yield json.loads(line)
            self._file.seek(0, 2)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
