"""Help that reads well at 80 columns: paragraphs rewrapped by the renderer, examples never wrapped.

fulfil's docstrings are hard-wrapped for the source (about 95 characters). typer's rich help keeps
single line breaks, so rich wrapped each line again: "orders held here as accepted" / "that Best Buy
no" / "longer lists as SHIPPING". ``reflow`` makes what typer renders well out of such a docstring:
the lines of each paragraph joined with spaces (rich wraps them to the terminal), and indented lines
(the examples) kept as they are, one a line, so each can be copied whole. ``FulfilGroup`` and
``FulfilCommand`` apply it to every command's and group's help when click's commands are built, show
no placeholder for a flag, a readable range for a bounded number, and list the root's commands in
the order of the day's work (``COMMAND_ORDER``). ``use_fulfil_help`` puts them on the application.

String operations only, at start-up: nothing here imports anything typer has not already imported.
Every example line (four spaces of indent included) must fit ``EXAMPLE_WIDTH``: at 80 columns typer
prints help text between a column of margin on each side (tests/test_help_text.py checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    import typer
    from typer import _click as click  # typer's own click

# The root's commands, in the order of the day's work; any other comes after, as registered.
COMMAND_ORDER = (
    "orders",
    "parcels",
    "labels",
    "tracking",
    "manifest",
    "status",
    "calls",
    "report",
    "config",
    "db",
    "demo",
    "sandbox",
)
# The widest line of help text at 80 columns: typer leaves a column of margin on either side.
EXAMPLE_WIDTH = 78


def reflow(text: str | None) -> str | None:
    """``text`` (a docstring or a help string, hard-wrapped or not) as typer's rich help shows well:
    paragraphs (separated by blank lines) become one line each, lines indented deeper than the
    paragraph text (examples) stay lines of their own, with their indent, and consecutive example
    lines (blank lines between them or not) make one block. A text already so is unchanged."""
    if not text:
        return text
    lines = _dedented(text.expandtabs().split("\n"))
    blocks: list[str] = []
    paragraph: list[str] = []
    examples: list[str] = []

    def end_paragraph() -> None:
        if paragraph:
            blocks.append(" ".join(paragraph))
            paragraph.clear()

    def end_examples() -> None:
        if examples:
            blocks.append("\n".join(examples))
            examples.clear()

    for line in lines:
        stripped = line.strip()
        if not stripped:
            end_paragraph()  # a blank line ends a paragraph, not a block of examples
        elif line[0] == " ":
            end_paragraph()
            examples.append(line.rstrip())
        else:
            end_examples()
            paragraph.append(stripped)
    end_paragraph()
    end_examples()
    return "\n\n".join(blocks)


def examples_kept(text: str | None) -> str | None:
    """``text`` (reflowed) for typer's rich help: each example line, indent included, in rich
    markup not dimmed, so that it stands out from the (dim) prose and keeps its indent. typer passes
    all but the first paragraph through inspect.cleandoc, which would take the indent off examples
    that only follow "Examples:"; a line that starts with markup keeps it."""
    if not text or "\n " not in text:
        return text
    return "\n".join(
        f"[not dim]{_escaped(line)}[/not dim]" if line.startswith(" ") else line for line in text.split("\n")
    )


def _escaped(line: str) -> str:
    # rich.markup.escape, without importing it: "[" that could open a tag, a backslash at the end.
    out = []
    for index, char in enumerate(line):
        following = line[index + 1 : index + 2]
        if char == "[" and (following.isalpha() or following in ("#", "/", "@")):
            out.append("\\")
        out.append(char)
    if line.endswith("\\"):
        out.append("\\")
    return "".join(out)


def _dedented(lines: list[str]) -> list[str]:
    # inspect.cleandoc without inspect: the first line's indent goes, the rest lose their common one.
    indents = [len(line) - len(line.lstrip()) for line in lines[1:] if line.strip()]
    margin = min(indents, default=0)
    return [lines[0].strip(), *(line[margin:] for line in lines[1:])]


def readable_range(low: float | None, high: float | None) -> str | None:
    """A number's bounds as the options panel shows them: "at least 1", "0 to 65535"."""
    if low is None and high is None:
        return None
    if high is None:
        return f"at least {low}"
    if low is None:
        return f"at most {high}"
    return f"{low} to {high}"


def _plain_params(ctx: click.Context, command: click.Command) -> None:
    """Before help is rendered: no placeholder for a flag (typer shows `<bool>`, `<int>` for -vv),
    no Python type beside an argument (`ORDER_ID  <str>`), and a number's bounds in words (typer
    shows `[x>=1]`)."""
    for param in command.get_params(ctx):
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
        if param.param_type_name == "argument" and hasattr(param, "display_type_rich"):
            # An argument's name column is its placeholder already (its metavar): no type beside it.
            param.display_type_rich = lambda ctx: None
        if hasattr(param, "_get_number_range_help_str"):
            low, high = getattr(param, "min", None), getattr(param, "max", None)
            if low == 0 and high is None:
                low = None  # a count or a delay (-vv, --orders): not negative goes without saying
            words = readable_range(low, high)
            param._get_number_range_help_str = lambda words=words: words


def _format_help(command: Any, typers: Any, ctx: click.Context, formatter: click.HelpFormatter) -> None:
    # typer's rendering, with flags and ranges put plainly and the examples marked up for rich.
    _plain_params(ctx, command)
    help_text = command.help
    if command.rich_markup_mode == "rich":
        command.help = examples_kept(help_text)
    try:
        typers.format_help(command, ctx, formatter)
    finally:
        command.help = help_text


class FulfilCommand(TyperCommand):
    """A command whose help is reflowed (``reflow``) and whose flags show no placeholder."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["help"] = reflow(kwargs.get("help"))
        kwargs["short_help"] = reflow(kwargs.get("short_help"))
        super().__init__(*args, **kwargs)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _format_help(self, TyperCommand, ctx, formatter)


class FulfilGroup(TyperGroup):
    """A group whose help is reflowed, whose flags show no placeholder and whose commands are listed
    in ``COMMAND_ORDER`` (then as registered)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["help"] = reflow(kwargs.get("help"))
        kwargs["short_help"] = reflow(kwargs.get("short_help"))
        super().__init__(*args, **kwargs)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _format_help(self, TyperGroup, ctx, formatter)

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: index for index, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))  # stable: the rest as registered


def use_fulfil_help(application: typer.Typer) -> None:
    """Every group and command of ``application`` (and of its groups) built as FulfilGroup and
    FulfilCommand, unless one asks for a class of its own."""
    if _no_class_of_its_own(application.info.cls, TyperGroup):
        application.info.cls = FulfilGroup
    for command in application.registered_commands:
        if _no_class_of_its_own(command.cls, TyperCommand):
            command.cls = FulfilCommand
    for group in application.registered_groups:
        if _no_class_of_its_own(group.cls, TyperGroup):
            group.cls = FulfilGroup
        if group.typer_instance is not None:
            use_fulfil_help(group.typer_instance)


def _no_class_of_its_own(cls: Any, typers: type) -> bool:
    # typer's "not given" is its own class, None, or a DefaultPlaceholder of either.
    cls = getattr(cls, "value", cls)
    return cls is None or cls is typers
