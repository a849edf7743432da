"""How commands talk: data on stdout, talk on stderr.

``--json`` (or ``--format json``) makes stdout one JSON object per line. On a terminal, tables and
progress bars (rich); elsewhere (cron, pipes) tab-separated text and no progress, and talk only when
something is wrong or -v was given, so cron mails only failures. ``--format table|csv|tsv`` picks
the tables' form whatever stdout is, and ``--no-headers`` leaves out their header row (sqlite-utils'
shared output options are the model). NO_COLOR is honoured.
"""

from __future__ import annotations

import csv
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
    def __call__(self, advance: int = 1, item: str | None = None) -> None: ...


# Columns of free text (messages, reasons, titles): wrapped at word boundaries on a narrow terminal.
# Every other column holds an identifier (an order id, a PIN, a path, a code, a number), which is
# never broken across lines: on a narrow terminal it is shortened with an ellipsis instead
# (`--json`, or a pipe, always has it whole).
TEXT_COLUMNS = frozenset(
    {
        "error",
        "warnings",
        "reason",
        "message",
        "product",
        "meaning",
        "next",
        "value",
        "fix",
        "description",
        "last event",
        "event",
        "last error",
        "summary",
        "service_name",
        "where",
        "note",
    }
)


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


# What `--format` takes. "json" is `--json`; the others are how a table is written.
OUTPUT_FORMATS = ("table", "json", "csv", "tsv")


@dataclass
class Output:
    json_mode: bool = False
    verbose: int = 0
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    # `--format table|csv|tsv`: tables in that form wherever stdout goes. None: a rich table on a
    # terminal, tab-separated text elsewhere.
    table_format: str | None = None
    headers: bool = True  # False with --no-headers
    _tables_written: int = field(default=0, init=False, repr=False)

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

    @property
    def _form(self) -> str:
        return self.table_format or ("table" if self.stdout_is_terminal else "tsv")

    def prose(self, text: str) -> None:
        """A sentence for a person beside a command's tables ("Next: …", "Nothing needs
        attention."): on stdout where a person reads tables (a terminal, --format table); left out
        of CSV and TSV, which hold tables only (--json carries the same facts)."""
        if self._form == "table":
            self.line(text)

    def table(self, title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """One table. In CSV and TSV a command that shows several (`status`, `orders show`) writes
        them one after another, a blank line between, each with its header: one paragraph a table
        (`awk -v RS= …`)."""
        form = self._form
        cells = [["" if v is None else str(v) for v in row] for row in rows]
        if form in ("csv", "tsv") and self._tables_written:
            self.line("")
        self._tables_written += 1
        if form == "csv":
            writer = csv.writer(self.stdout, lineterminator="\n")
            if self.headers:
                writer.writerow(columns)
            writer.writerows(cells)
            self.stdout.flush()
            return
        if form == "tsv":
            # Header first (unless --no-headers): easy for cut/awk, stable for tests. A tab or a
            # line break inside a value is escaped as PostgreSQL's COPY text format does, so every
            # row stays one line of as many fields as there are columns.
            if self.headers:
                self.line("\t".join(columns))
            for row in cells:
                self.line("\t".join(_tsv_field(value) for value in row))
            return
        from rich.console import Console
        from rich.table import Table

        console = Console(file=self.stdout, no_color=not self.color, highlight=False)
        natural = [max([len(column), *(len(row[i]) for row in cells)]) for i, column in enumerate(columns)]
        text = [column in TEXT_COLUMNS for column in columns]
        kept = list(range(len(columns)))
        while True:
            # each column's padding and border (3), and the table's last border
            available = console.width - 3 * len(kept) - 1
            widths = fit_widths([natural[i] for i in kept], available, [text[i] for i in kept])
            identifiers = [i for i in kept[1:] if not text[i]]
            if sum(widths) <= available or not identifiers:
                break
            # Too narrow for every column even shortened: the rightmost identifier column (never
            # the row's key, never free text such as an error) is left out whole, rather than
            # every column squeezed to a few characters and an ellipsis.
            kept.remove(identifiers[-1])
        table = Table(title=title, show_lines=False, header_style="bold", show_header=self.headers)
        for i, width in zip(kept, widths, strict=True):
            if text[i]:
                table.add_column(columns[i], width=width, overflow="fold")
            else:
                table.add_column(columns[i], width=width, no_wrap=True, overflow="ellipsis")
        for row in cells:
            table.add_row(*(row[i] for i in kept))
        console.print(table)
        left_out = [column for i, column in enumerate(columns) if i not in kept]
        if left_out:
            self.info(
                f"({', '.join(left_out)} left out at {console.width} columns: a wider terminal, "
                "--format tsv or --json shows every column)"
            )

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

            def nothing(advance: int = 1, item: str | None = None) -> None:
                return None

            yield nothing
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = Console(file=self.stderr, no_color=not self.color)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[item]}"),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(description, total=total, rate="", item="")

            def tick(advance: int = 1, item: str | None = None) -> None:
                bar.advance(task, advance)
                speed = next(t.speed for t in bar.tasks if t.id == task)
                bar.update(
                    task,
                    rate=f"{speed:.1f}/s" if speed else "",
                    # The order just done: a person sees the run move, and where it is.
                    item=f"{item[:24]}" if item else "",
                )

            yield tick


# A column is never narrowed below this (or its own width, when less) to fit the terminal; a text
# column keeps this much while any identifier column can still give way.
MIN_COLUMN_WIDTH = 10
TEXT_COLUMN_ROOM = 24


def fit_widths(natural: list[int], available: int, text: list[bool]) -> list[int]:
    """Column widths that fit ``available`` characters, narrowing in this order: free text (it
    wraps) down to TEXT_COLUMN_ROOM; then the identifier columns other than the first (the row's
    key, an order id), widest first, down to MIN_COLUMN_WIDTH (shown with an ellipsis); then the
    text down to MIN_COLUMN_WIDTH; the first column last. Below that the terminal is too narrow
    and rich squeezes what is left."""
    widths = list(natural)
    count = len(widths)
    phases = [
        ([i for i in range(count) if text[i]], TEXT_COLUMN_ROOM),
        ([i for i in range(1, count) if not text[i]], MIN_COLUMN_WIDTH),
        ([i for i in range(count) if text[i]], MIN_COLUMN_WIDTH),
        ([0] if count and not text[0] else [], MIN_COLUMN_WIDTH),
    ]
    for columns, floor in phases:
        while sum(widths) > available:
            room = [i for i in columns if widths[i] > min(natural[i], floor)]
            if not room:
                break
            widths[max(room, key=lambda i: widths[i])] -= 1
    return widths


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _tsv_field(value: str) -> str:
    return value.translate(_TSV_ESCAPES)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
