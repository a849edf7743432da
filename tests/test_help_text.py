"""`--help` of the top level, every group and every command, as a person reads it at 80 columns
(and at 200): no sentence broken by a hard line break, no example wrapped, placeholders a person
reads, an example on every group and the top level, the commands in the order of the day's work.

Rendered in-process through click's CliRunner, on one click command tree built once (fast).
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import pytest
import typer.main
import typer.rich_utils
from typer import _click as click  # typer's own click: no click package is installed
from typer.core import TyperGroup
from typer.testing import CliRunner

from fulfil.cli import application
from fulfil.cli.help_text import COMMAND_ORDER, EXAMPLE_WIDTH, reflow

WIDTHS = (80, 200)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# What typer shows for a parameter given no metavar: a Python type, or a range in Python's terms.
PYTHON_PLACEHOLDER = re.compile(
    r"<(?:bool|int|float|str|text|path|list|tuple|dict|datetime|uuid|file|choice)\b"
    r"|\[x\s*[<>]=|<=\s*x\b|\bx\s*<=",
    re.IGNORECASE,
)
DAYS_PIPELINE = "fulfil orders pull && fulfil labels create && fulfil tracking push"
# The margin typer leaves before help text: one column; an example is indented four more.
TEXT_MARGIN = 1
EXAMPLE_INDENT = TEXT_MARGIN + 4


@cache
def root_command() -> TyperGroup:
    command = typer.main.get_command(application())
    assert isinstance(command, TyperGroup)
    return command


def _walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, TyperGroup):
        for name, subcommand in command.commands.items():
            yield from _walk(subcommand, (*path, name))


def all_commands() -> list[tuple[tuple[str, ...], click.Command]]:
    return list(_walk(root_command(), ()))


def groups() -> list[tuple[str, ...]]:
    return [path for path, command in all_commands() if isinstance(command, TyperGroup)]


def _id(path: tuple[str, ...]) -> str:
    return " ".join(("fulfil", *path))


@dataclass(frozen=True)
class Help:
    path: tuple[str, ...]
    width: int
    text: str

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    def body(self) -> list[str]:
        """The help text: after the usage line, before the first panel."""
        lines = self.lines
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("Usage:")) + 1
        end = next((i for i, line in enumerate(lines) if line.startswith("╭")), len(lines))
        return [line.rstrip() for line in lines[start:end]]

    def panels(self) -> list[list[str]]:
        """Each panel's rows: the text between its side borders."""
        found: list[list[str]] = []
        current: list[str] | None = None
        for line in self.lines:
            if line.startswith("╭"):
                current = []
            elif line.startswith("╰"):
                if current is not None:
                    found.append(current)
                current = None
            elif current is not None and line.startswith("│") and line.rstrip().endswith("│"):
                current.append(line.rstrip()[1:-1])
        return found

    def examples(self) -> list[str]:
        """The example lines of the help text (indented deeper than its paragraphs)."""
        return [line for line in self.body() if line.startswith(" " * EXAMPLE_INDENT) and line.strip()]


@cache
def render(path: tuple[str, ...], width: int) -> Help:
    saved = typer.rich_utils.MAX_WIDTH, typer.rich_utils.FORCE_TERMINAL
    typer.rich_utils.MAX_WIDTH, typer.rich_utils.FORCE_TERMINAL = width, False
    exit_code: object = None
    # typer's CliRunner builds the click commands afresh each time: its isolation, on the tree built once.
    with CliRunner().isolation(env={"COLUMNS": str(width)}) as (stdout, _, _):
        try:
            root_command().main([*path, "--help"], prog_name="fulfil")
        except SystemExit as exit:
            exit_code = exit.code
        finally:
            typer.rich_utils.MAX_WIDTH, typer.rich_utils.FORCE_TERMINAL = saved
        sys.stdout.flush()
        output = stdout.getvalue().decode()
    assert exit_code in (0, None), output
    return Help(path, width, ANSI.sub("", output))


def every_help() -> list[object]:
    return [
        pytest.param(path, width, id=f"{_id(path)} @{width}")
        for path, _ in all_commands()
        for width in WIDTHS
    ]


def _first_word(line: str) -> str:
    return line.split()[0] if line.split() else ""


def _broken_sentences(lines: list[str], width: int) -> list[str]:
    """Consecutive lines of one paragraph where the first ends short of ``width`` although the next
    line's first word, lowercase, would have fitted: the renderer did not wrap there, a hard line
    break in the text did."""
    broken = []
    for line, following in itertools.pairwise(lines):
        word = _first_word(following)
        if not line.strip() or not word or not word[0].islower():
            continue
        if len(line.rstrip()) + 1 + len(word) <= width:
            broken.append(f"{line.strip()!r} / {following.strip()!r}")
    return broken


def _cells(rows: list[str]) -> Iterator[tuple[int, list[str]]]:
    """A panel's last column (a command's or option's help), cell by cell: its start and its lines
    (a cell's first row names the command or option, the rows under it are blank before the column)."""
    continued = [row for row in rows if row[:3].strip() == "" and row.strip()]
    if not continued:
        return
    start = min(len(row) - len(row.lstrip()) for row in continued)
    cell: list[str] = []
    for row in rows:
        if row[:start].strip():  # a new command or option
            if cell:
                yield start, cell
            cell = [row[start:].rstrip()]
        elif cell:
            cell.append(row[start:].rstrip())
    if cell:
        yield start, cell


@pytest.mark.parametrize(("path", "width"), every_help())
def test_no_sentence_is_broken_by_a_hard_line_break(path: tuple[str, ...], width: int) -> None:
    shown = render(path, width)
    paragraph_lines = [line for line in shown.body() if not line.startswith(" " * EXAMPLE_INDENT)]
    broken = _broken_sentences([line[TEXT_MARGIN:] for line in paragraph_lines], width - 2 * TEXT_MARGIN)
    for rows in shown.panels():
        for start, cell in _cells(rows):
            # The column ends one column of padding before the panel's border.
            column = len(rows[0]) - start - 1
            broken += _broken_sentences([line for line in cell if not line.startswith("[")], column)
    assert not broken, (
        f"`{_id(path)} --help` at {width} columns: a line break inside a sentence:\n" + "\n".join(broken)
    )


@pytest.mark.parametrize(("path", "width"), every_help())
def test_every_example_line_is_shown_whole(path: tuple[str, ...], width: int) -> None:
    shown = render(path, width)
    command = dict(all_commands())[path]
    source = reflow(command.help) or ""
    examples = [line.strip() for line in source.split("\n") if line.startswith(" ") and line.strip()]
    rendered = [line.strip() for line in shown.lines]
    wrapped = [example for example in examples if example not in rendered]
    assert not wrapped, f"`{_id(path)} --help` at {width} columns wraps these examples:\n" + "\n".join(
        wrapped
    )
    too_wide = [line for line in source.split("\n") if line.startswith(" ") and len(line) > EXAMPLE_WIDTH]
    assert not too_wide, f"`{_id(path)} --help`: examples wider than an 80-column terminal:\n" + "\n".join(
        too_wide
    )


@pytest.mark.parametrize(("path", "width"), every_help())
def test_placeholders_are_words_not_python_types(path: tuple[str, ...], width: int) -> None:
    shown = render(path, width)
    found = [line.strip() for line in shown.lines if PYTHON_PLACEHOLDER.search(line)]
    assert not found, f"`{_id(path)} --help`: placeholders that read like Python:\n" + "\n".join(found)


@pytest.mark.parametrize("path", [pytest.param(path, id=_id(path)) for path in groups()])
def test_every_group_and_the_top_level_has_an_example(path: tuple[str, ...]) -> None:
    shown = render(path, 80)
    examples = shown.examples()
    assert any(line.strip().startswith("fulfil ") for line in examples), (
        f"`{_id(path)} --help` shows no example (an indented `fulfil …` line)"
    )


def test_the_top_level_example_is_the_days_pipeline() -> None:
    assert DAYS_PIPELINE in [line.strip() for line in render((), 80).examples()]


def test_the_top_level_lists_commands_in_the_order_of_the_days_work() -> None:
    shown = render((), 80)
    commands_panel = shown.panels()[-1]  # after the options
    listed = [row.split()[0] for row in commands_panel if row[1:2].strip()]
    expected = [name for name in COMMAND_ORDER if name in root_command().commands]
    expected += [name for name in root_command().commands if name not in COMMAND_ORDER]
    assert listed == expected
    assert expected[:5] == ["orders", "parcels", "labels", "tracking", "manifest"]


def test_help_paragraphs_have_no_line_breaks_once_reflowed() -> None:
    # What the renderer is given: each paragraph one line, example lines (indented) apart.
    for path, command in all_commands():
        for block in (command.help or "").split("\n\n"):
            lines = block.split("\n")
            assert len(lines) == 1 or all(line.startswith(" ") for line in lines), (_id(path), block)


def test_the_command_only_app_keeps_the_help() -> None:
    from fulfil.cli.lean_command import with_only_the_command

    one = typer.main.get_command(with_only_the_command(application(), ["labels", "--help"]))
    assert isinstance(one, TyperGroup)
    assert list(one.commands) == ["labels"]
    labels = one.commands["labels"]
    assert "\n" not in (labels.help or "").split("\n\n")[0]


def test_reflow_joins_paragraphs_and_keeps_examples() -> None:
    doc = """Buy a label for every
    accepted order.

    Orders are taken oldest first and
    never bought twice.

    Examples:

        fulfil labels create

        fulfil labels create --dry-run
    """
    assert reflow(doc) == (
        "Buy a label for every accepted order.\n\n"
        "Orders are taken oldest first and never bought twice.\n\n"
        "Examples:\n\n"
        "    fulfil labels create\n"
        "    fulfil labels create --dry-run"
    )
    assert reflow(reflow(doc)) == reflow(doc)
    assert reflow("One line.") == "One line."
    assert reflow(None) is None
