"""How commands talk: data on stdout, talk on stderr.

``--json`` makes stdout one JSON object per line. On a terminal, tables and progress bars (rich);
elsewhere (cron, pipes) plain text and no progress, and talk only when something is wrong or -v
was given, so cron mails only failures. NO_COLOR is honoured.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Protocol


class ProgressTick(Protocol):
    def __call__(self, advance: int = 1) -> None: ...


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, default=_default, ensure_ascii=False, separators=(",", ":"))


@dataclass
class Output:
    json_mode: bool = False
    verbose: int = 0
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)

    @property
    def stdout_is_terminal(self) -> bool:
        return _isatty(self.stdout)

    @property
    def stderr_is_terminal(self) -> bool:
        return _isatty(self.stderr)

    @property
    def interactive(self) -> bool:
        """A person is watching: worth telling them what is going on."""
        return self.stderr_is_terminal or self.verbose > 0

    @property
    def color(self) -> bool:
        return "NO_COLOR" not in os.environ

    # --- data (stdout) ---------------------------------------------------------------------

    def record(self, record: dict[str, Any]) -> None:
        """One result. JSON line in --json mode; otherwise callers render tables instead."""
        self.stdout.write(to_json_line(record) + "\n")
        self.stdout.flush()

    def line(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def table(self, title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not self.stdout_is_terminal:
            # Plain, tab-separated, header first: easy for cut/awk, stable for tests.
            self.line("\t".join(columns))
            for row in rows:
                self.line("\t".join("" if v is None else str(v) for v in row))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, show_lines=False, header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        Console(file=self.stdout, no_color=not self.color, highlight=False).print(table)

    # --- talk (stderr) ---------------------------------------------------------------------

    def info(self, message: str) -> None:
        """Progress talk: shown to a person, silent under cron."""
        if self.interactive:
            self.stderr.write(message + "\n")
            self.stderr.flush()

    def warn(self, message: str) -> None:
        """Something the reader must know, always shown."""
        self.stderr.write(message + "\n")
        self.stderr.flush()

    @contextmanager
    def progress(self, total: int, description: str) -> Iterator[ProgressTick]:
        """A progress bar on a terminal; nothing at all elsewhere."""
        if not self.stderr_is_terminal or total <= 1:

            def nothing(advance: int = 1) -> None:
                return None

            yield nothing
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(file=self.stderr, no_color=not self.color)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(description, total=total)

            def tick(advance: int = 1) -> None:
                bar.advance(task, advance)

            yield tick


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
