"""The `fulfil` command line: parse, call the library, render. No SQL and no HTTP here.

Only the standard library, typer and fulfil's light modules are imported at start-up; database,
HTTP and XML libraries are imported by the commands that use them, so `fulfil --help` stays fast
under cron and in pipelines.
"""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field
from typing import Annotated

import typer

from fulfil import __version__
from fulfil.config import Settings, load_settings
from fulfil.errors import EXIT_UNEXPECTED, EXIT_USAGE, FulfilError
from fulfil.output import Output

ENVIRONMENT_HELP = (
    "Configuration comes from FULFIL_* environment variables (FULFIL_DATABASE_URL, "
    "FULFIL_CANADAPOST_*, FULFIL_BESTBUY_*, FULFIL_LABELS_DIR, …) and an optional fulfil.toml; "
    "`fulfil config check` lists them all."
)

app = typer.Typer(
    name="fulfil",
    help=(
        "Buy Canada Post labels for accepted Best Buy orders, push the tracking numbers back, "
        "and keep an audit of every call.\n\n" + ENVIRONMENT_HELP
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(
    help="The database: migrations, schema status, the embedded server.", no_args_is_help=True
)
app.add_typer(db_app, name="db")


@dataclass
class AppState:
    output: Output = field(default_factory=Output)
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings


JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line on stdout.")]


def _state(ctx: typer.Context, json_mode: bool = False) -> AppState:
    state = ctx.find_object(AppState)
    if state is None:  # pragma: no cover - the root callback always sets it
        state = AppState()
        ctx.obj = state
    if json_mode:
        state.output.json_mode = True
    return state


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"fulfil {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    json_mode: JsonOption = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Say more on stderr (-vv: HTTP detail).")
    ] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    state = AppState(output=Output(json_mode=json_mode, verbose=verbose))
    ctx.obj = state
    _configure_logging(verbose)


def _configure_logging(verbose: int) -> None:
    if verbose <= 0:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("fulfil")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)


# --------------------------------------------------------------------------------------------
# fulfil db …
# --------------------------------------------------------------------------------------------


def _database_url(state: AppState) -> str:
    from fulfil.db import resolve_database_url

    settings = state.settings
    if not settings.database_url:
        from fulfil.embedded_db import pgdata_dir

        state.output.info(f"Database: embedded PostgreSQL in {pgdata_dir(settings.data_dir)}")
    return resolve_database_url(settings)


@db_app.command("migrate")
def db_migrate(ctx: typer.Context, json_mode: JsonOption = False) -> None:
    """Apply pending migrations (sql/NNNN_*.sql) in order; safe to run twice or concurrently.

    Example:

        fulfil db migrate
    """
    from fulfil.migrations import migrate

    state = _state(ctx, json_mode)
    out = state.output
    applied = migrate(_database_url(state))
    for migration in applied:
        if out.json_mode:
            out.record({"applied": migration.filename, "version": migration.version})
        else:
            out.line(f"applied {migration.filename}")
    if not applied:
        out.info("Nothing to apply: the database schema is up to date.")


@db_app.command("status")
def db_status(ctx: typer.Context, json_mode: JsonOption = False) -> None:
    """Show applied and pending migrations. Exit 3 when some are pending.

    Example:

        fulfil db status --json
    """
    from fulfil.errors import EXIT_SOME_FAILED
    from fulfil.migrations import status

    state = _state(ctx, json_mode)
    out = state.output
    states = status(_database_url(state))
    if out.json_mode:
        for item in states:
            out.record(item.as_dict())
    else:
        out.table(
            "Migrations",
            ["version", "name", "state", "applied_at"],
            [
                [
                    f"{s.version:04d}",
                    s.name,
                    s.state,
                    s.applied_at.strftime("%Y-%m-%d %H:%M") if s.applied_at else "",
                ]
                for s in states
            ],
        )
    if any(s.state != "applied" for s in states):
        raise typer.Exit(EXIT_SOME_FAILED)


@db_app.command("stop")
def db_stop(ctx: typer.Context) -> None:
    """Stop the embedded PostgreSQL server (the next command starts it again).

    Example:

        fulfil db stop
    """
    from fulfil.embedded_db import pgdata_dir, stop_server

    state = _state(ctx)
    data_dir = state.settings.data_dir
    if stop_server(data_dir):
        state.output.info(f"Stopped the embedded PostgreSQL in {pgdata_dir(data_dir)}.")
    else:
        state.output.info(f"The embedded PostgreSQL in {pgdata_dir(data_dir)} is not running.")


# --------------------------------------------------------------------------------------------
# Entry point and the one error handler
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; expected errors become one line on stderr and an exit code."""
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else argv
    verbose = any(a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args)
    try:
        result = command.main(args=args, prog_name="fulfil", standalone_mode=False)
    except FulfilError as exc:
        if verbose:
            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"fulfil: error: {exc}\n")
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        show = getattr(exc, "show", None)
        if show is not None:
            show(file=sys.stderr)
        else:
            sys.stderr.write(f"fulfil: error: {exc}\n")
        sys.exit(getattr(exc, "exit_code", None) or EXIT_USAGE)
    except typer.Abort:
        sys.stderr.write("fulfil: aborted\n")
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (`fulfil … | head`): not an error of ours.
        sys.exit(0)
    except Exception as exc:
        if verbose:
            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"fulfil: unexpected error: {_cause_chain(exc)}\n")
        if not verbose:
            sys.stderr.write("fulfil: run again with -v for the traceback\n")
        sys.exit(EXIT_UNEXPECTED)
    sys.exit(result if isinstance(result, int) else 0)


def _cause_chain(exc: BaseException) -> str:
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 5:
        text = str(current).strip().splitlines()[0] if str(current).strip() else ""
        parts.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        current = current.__cause__ or current.__context__
    return " <- ".join(parts)
