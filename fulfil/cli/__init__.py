"""The `fulfil` command line: parse, call the library, render. No SQL and no HTTP here.

Start-up is kept short, for cron, pipelines and people: importing this package loads nothing but the
standard library, `fulfil --version` is answered here, and the typer application, with every command
group (the sandbox's too), is put together only when a command line is parsed or ``app`` is first
read. Each command group registers itself on the application when imported; the database, HTTP
and XML libraries are imported by the commands that use them, rich's Markdown and tracebacks
(imported by typer for help) not at all (fulfil.cli.deferred_rich), and pydantic, through which
typer reads option values, only for a value that is not a plain bool, int or str
(fulfil.cli.lean_command: `fulfil status` runs without it). The modules that define
commands do without ``from __future__ import annotations``: typer would evaluate every annotation
string of every command two or three times to build the command line, a tenth of `fulfil --help`.
tests/test_startup.py names any import that creeps back in; tests/benchmarks/startup.py measures.
"""

from __future__ import annotations

import functools
import sys

from fulfil import __version__

TYPE_CHECKING = False  # typing itself is a tenth of `fulfil --version`: not imported to ask
if TYPE_CHECKING:
    from typing import Any, NoReturn

    import typer

    app: typer.Typer

__all__ = ["app", "application", "main", "version_text"]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; expected errors become one line on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        _print_version()
    from fulfil.cli.lean_command import hoist_root_options, with_only_the_command
    from fulfil.cli.shared import run_command_line

    args = hoist_root_options(args)
    run_command_line(with_only_the_command(application(), args), args)


def version_text() -> str:
    return f"fulfil {__version__}"


def _print_version() -> NoReturn:
    # What the --version option prints, without loading typer to parse one flag.
    try:
        if sys.stdout is not None:
            sys.stdout.write(version_text() + "\n")
            sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader went away (`fulfil --version | true`): not an error of ours
    sys.exit(0)


@functools.cache
def application() -> typer.Typer:
    """The `fulfil` typer application with every command group registered, the sandbox's last."""
    from fulfil.cli import costs, db, demo, labels, manifest, orders, parcels, reports, tracking  # noqa: F401  each registers itself
    from fulfil.cli.help_text import use_fulfil_help
    from fulfil.cli.shared import app as root
    from fulfil.sandbox.cli import sandbox_app

    root.add_typer(sandbox_app, name="sandbox")
    use_fulfil_help(root)  # help for 80 columns, commands in the order of the day's work
    return root


def __getattr__(name: str) -> Any:
    # `from fulfil.cli import app` gets the whole application, put together on first use.
    if name == "app":
        return application()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
