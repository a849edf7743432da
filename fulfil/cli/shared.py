"""The `fulfil` application object, shared options and helpers, and the one error handler.

Only the standard library, typer and fulfil's light modules are imported at start-up; settings,
output, database, HTTP and XML modules are imported by the code that uses them, so `fulfil --help`
stays fast under cron and in pipelines (tests/test_startup.py names any import that creeps in).
"""

import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from fulfil.cli import version_text
from fulfil.cli.deferred_rich import defer_unused_rich
from fulfil.errors import EXIT_LOCKED, EXIT_UNEXPECTED, EXIT_USAGE, FulfilError, NothingToDo

if TYPE_CHECKING:
    from fulfil.config import Settings
    from fulfil.metrics import Metrics
    from fulfil.output import Output
    from fulfil.services import Session
    from fulfil.stop_signals import StopRequest

defer_unused_rich()

ENVIRONMENT_HELP = (
    "Configuration comes from FULFIL_* environment variables (FULFIL_DATABASE_URL, "
    "FULFIL_CANADAPOST_*, FULFIL_BESTBUY_*, FULFIL_LABELS_DIR, …) and an optional fulfil.toml; "
    "`fulfil config check` lists them all."
)

app = typer.Typer(
    name="fulfil",
    help=(
        "Buy Canada Post labels for accepted Best Buy orders, push the tracking numbers back, "
        "and keep an audit of every call.\n\n"
        "The day's work, then what needs attention:\n\n"
        "    fulfil orders pull && fulfil labels create && fulfil tracking push\n"
        "    fulfil status\n\n" + ENVIRONMENT_HELP
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _new_output(json_mode: bool = False, verbose: int = 0) -> "Output":
    from fulfil.output import Output

    return Output(json_mode=json_mode, verbose=verbose)


@dataclass
class AppState:
    output: "Output" = field(default_factory=_new_output)
    _settings: "Settings | None" = None
    # --metrics-file (or FULFIL_METRICS_FILE): what this command measured is added to it at the end.
    metrics_file: str | None = None
    command: str | None = None  # "labels create": set by state_of, for the metrics
    database_url: str | None = None  # the database this command used, for the metrics' gauges
    run_ids: list[str] = field(default_factory=list)  # the runs it started (their api_calls)
    _metrics: "Metrics | None" = None

    @property
    def metrics(self) -> "Metrics":
        if self._metrics is None:
            from fulfil.metrics import Metrics

            self._metrics = Metrics()
        return self._metrics

    @property
    def settings(self) -> "Settings":
        if self._settings is None:
            from fulfil.config import load_settings

            self._settings = load_settings()
        return self._settings


JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line on stdout.")]


def _app_state(ctx: typer.Context) -> AppState:
    state = ctx.find_object(AppState)
    if state is None:  # pragma: no cover - the root callback always sets it
        state = AppState()
        ctx.obj = state
    return state


def _choose_format(ctx: typer.Context, value: str | None) -> None:
    # Parsed after the root callback made the AppState, before the command runs: the choice goes
    # straight to its Output, so no command has to hand it down to the helpers that write.
    from fulfil.output import OUTPUT_FORMATS

    if value is None:
        return
    if value not in OUTPUT_FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    output = _app_state(ctx).output
    if value == "json":
        output.json_mode = True
    else:
        output.table_format = value


def _choose_no_headers(ctx: typer.Context, value: bool) -> None:
    if value:
        _app_state(ctx).output.headers = False


# The shared output options of every command that lists things (sqlite-utils' are the model).
# Their callbacks set the command's Output; the parameters themselves are never read.
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="table, json (the same as --json), csv or tsv (default: a table on a terminal, tsv on a pipe).",
        metavar="FORMAT",
        callback=_choose_format,
        expose_value=False,
        show_default=False,
    ),
]
NoHeadersOption = Annotated[
    bool,
    typer.Option(
        "--no-headers",
        help="Leave out the header row of tables.",
        callback=_choose_no_headers,
        expose_value=False,
    ),
]


def state_of(ctx: typer.Context, json_mode: bool = False) -> AppState:
    from fulfil.errors import UsageError

    state = _app_state(ctx)
    if json_mode:
        state.output.json_mode = True
    if state.output.json_mode and state.output.table_format is not None:
        raise UsageError(f"--json and --format {state.output.table_format} ask for two forms: give one")
    if state.command is None:
        state.command = ctx.command_path.removeprefix(ctx.find_root().info_name or "").strip() or None
    return state


def _show_version(value: bool) -> None:
    if value:
        typer.echo(version_text())
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
    metrics_file: Annotated[
        str | None,
        typer.Option(
            "--metrics-file",
            metavar="PATH",
            help="Add this command's Prometheus metrics to PATH (node_exporter's textfile "
            "collector; default FULFIL_METRICS_FILE).",
            show_default=False,
        ),
    ] = None,
) -> None:
    global _current_state
    state = AppState(output=_new_output(json_mode=json_mode, verbose=verbose), metrics_file=metrics_file)
    ctx.obj = state
    _current_state = state
    _configure_logging(verbose)


# The state of the command this process runs, for the metrics written once it has ended.
_current_state: AppState | None = None


def _configure_logging(verbose: int) -> None:
    if verbose <= 0:
        return
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("fulfil")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)


# --------------------------------------------------------------------------------------------
# Helpers shared by commands
# --------------------------------------------------------------------------------------------


def database_url(state: AppState) -> str:
    from fulfil.db import check_database_url, resolve_database_url

    settings = state.settings
    if settings.database_url:
        check_database_url(settings.database_url)  # a malformed URL is exit 2, password hidden
    else:
        from fulfil.embedded_db import pgdata_dir

        state.output.info(f"Database: embedded PostgreSQL in {pgdata_dir(settings.data_dir)}")
    return resolve_database_url(settings)


OrderOption = Annotated[
    list[str] | None,
    typer.Option(
        "--order",
        help="Only this order id (repeatable). `--order -` reads ids from stdin, one per line.",
        show_default=False,
        metavar="ORDER_ID",
    ),
]
LimitOption = Annotated[
    int | None, typer.Option("--limit", min=1, help="Work on at most N orders.", metavar="N")
]
ConcurrencyOption = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        "-j",
        help="Workers in this run, each claiming one order at a time (default FULFIL_CONCURRENCY, 4).",
        show_default=False,
        metavar="N",
    ),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Build and check each request; no HTTP, no writes.")
]


def order_ids_from(values: list[str] | None) -> list[str] | None:
    """The --order values, with `-` expanded to the ids on stdin; None means every order."""
    if not values:
        return None
    ids: list[str] = []
    for value in values:
        if value == "-":
            ids.extend(line.strip() for line in sys.stdin if line.strip() and not line.startswith("#"))
        elif value.strip():
            ids.append(value.strip())
    if not ids:
        from fulfil.errors import NothingToDo, UsageError

        if all(value == "-" for value in values):
            # `fulfil labels create --json | jq … | fulfil tracking push --order -` on a run that
            # bought nothing: nothing to do, never "every order" and never an error.
            raise NothingToDo("no order id on stdin (--order -): nothing to do")
        raise UsageError("--order was given but no order id was read")
    return list(dict.fromkeys(ids))


def schema_ready_url(state: AppState) -> str:
    from fulfil.migrations import ensure_current

    url = database_url(state)
    ensure_current(url)
    state.database_url = url
    return url


# A person's table shows at most this many rows (the problems first); `--json` has every result.
TABLE_ROWS = 1000


_EMPTY_DROPPED = frozenset({"error", "warnings"})


def render_results(
    state: AppState,
    title: str,
    results: Iterable[dict[str, Any]],
    columns: list[str],
    *,
    attention: bool,
    display: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    needs_person: frozenset[str] = frozenset(),
    listing: bool = False,
) -> None:
    """After a run: a table for a person; for cron, nothing on success and one `fulfil: error: …`
    line on stderr per result that needs a person (an outcome in ``needs_person``; a note on a
    result that does not, such as a re-tracked label, only with -v). Nothing on stdout without
    -v: cron mails what needs a person, and only that. Every result, in the form asked for, when
    a form was asked for (--format) or the command is a ``listing`` (a query, whose results are
    its data: `labels quote`), with the problems on stderr too when stdout is not a terminal."""
    out = state.output
    if out.json_mode:
        return  # already streamed, one line per result
    on_terminal = out.stdout_is_terminal and out.table_format in (None, "table")
    if on_terminal:
        shown: list[dict[str, Any]] = []
        total = 0
        for record in results:
            total += 1
            problem = bool(record.get("error"))
            if len(shown) < TABLE_ROWS or problem:
                if len(shown) >= TABLE_ROWS:
                    # A problem replaces the first row without one, so every problem stays in view.
                    fine = next((i for i, r in enumerate(shown) if not r.get("error")), None)
                    if fine is None:
                        continue
                    del shown[fine]
                shown.append(record)
        if shown:
            rows = [display(r) if display else r for r in shown]
            # At a terminal every column counts: an `error` or `warnings` column no row fills is
            # left out (CSV and TSV keep every column, for scripts).
            kept = [c for c in columns if c not in _EMPTY_DROPPED or any(r.get(c) for r in rows)]
            out.table(title, kept, [[r.get(c) for c in kept] for r in rows])
            if total > len(shown):
                out.info(f"({total - len(shown)} more results not shown; --json lists every one)")
        return
    if out.table_format is not None or listing:
        rows = [display(r) if display else r for r in results]
        out.table(title, columns, [[r.get(c) for c in columns] for r in rows])
    for record in results:
        if not record.get("error"):
            continue
        if record.get("outcome") in needs_person or not needs_person:
            out.warn(f"fulfil: error: {record['error']}")
        elif out.verbose:
            out.warn(f"fulfil: note: {record['error']}")
    if out.verbose and out.table_format is None and not listing:
        for record in results:
            if not record.get("error"):
                shown_record = display(record) if display else record
                out.line(
                    "\t".join(
                        "" if shown_record.get(c) is None else str(shown_record.get(c)) for c in columns
                    )
                )


def orders_held(state: AppState, url: str, order_ids: list[str] | None) -> tuple[list[str] | None, bool]:
    """For the commands whose own work would silently find nothing for an order fulfil does not
    have: ``order_ids`` less those, each said in one `fulfil: error:` line, and whether any was
    (the caller works on the rest, then exits 3). None (every order) stays None; when no named
    order is left, exit 3 at once."""
    from fulfil.errors import EXIT_SOME_FAILED
    from fulfil.orders_held import NOT_HELD, orders_not_held

    if not order_ids:
        return order_ids, False
    missing = orders_not_held(url, order_ids)
    for order_id in missing:
        state.output.warn(f"fulfil: error: order {order_id} {NOT_HELD}")
    held = [order_id for order_id in order_ids if order_id not in missing]
    if not held:
        raise typer.Exit(EXIT_SOME_FAILED)
    return held, bool(missing)


def render_done(state: AppState, title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """What a command that changes things did, for a person: a table on a terminal, or in the
    form asked for (--format); on a pipe without one, nothing (it succeeded: cron has nothing to
    mail), or with -v a `fulfil: note:` line per row on stderr. With --json the command has
    written its records itself."""
    out = state.output
    if out.json_mode or not rows:
        return
    if out.stdout_is_terminal or out.table_format is not None:
        out.table(title, columns, rows)
    elif out.verbose:
        for row in rows:
            out.warn("fulfil: note: " + " ".join("" if value is None else str(value) for value in row))


def _orders(n: int) -> str:
    return "1 order" if n == 1 else f"{n} orders"


def run_order_workflow(
    state: AppState,
    *,
    command: str,
    progress_label: str,
    columns: list[str],
    count: "Callable[[Session], int]",
    work: "Callable[[Session, Callable[[Any], None], StopRequest], Any]",
    display: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    summary: Callable[[Any], str] | None = None,
    listing: bool = False,
) -> None:
    """One run of a workflow that works order by order: its run row, a progress bar on a terminal,
    each result streamed as a JSON line (with --json) as it happens, then the table or, under
    cron, the problems; exit 3 when something needs attention, 2 on a configuration problem,
    130/143 when SIGINT/SIGTERM stopped it (after the order in flight, leases released)."""
    from fulfil.cli.result_spool import ResultSpool
    from fulfil.errors import EXIT_SOME_FAILED, EXIT_USAGE
    from fulfil.services import open_session
    from fulfil.stop_signals import RunInterrupted, stop_on_signals

    out = state.output
    url = schema_ready_url(state)
    results = ResultSpool()
    with stop_on_signals(out.warn) as stop, open_session(url, state.settings, command) as session:
        state.run_ids.append(session.run.run_id)
        try:
            with out.progress(count(session), progress_label) as tick:

                def on_result(result: Any) -> None:
                    record = result.as_record()
                    results.append(record)
                    if out.json_mode:
                        out.record(record)
                    # The bar counts orders: an order bought in several parcels moves it once.
                    parcel = record.get("parcel")
                    first = not parcel or str(parcel).startswith("1/")
                    tick(advance=1 if first else 0, item=record.get("order_id"))

                run = work(session, on_result, stop)
        except RunInterrupted as interrupted:
            # The workflow released this run's leases on its way out; say so and record the run.
            session.run.finish(url, interrupted.exit_code, {"interrupted": interrupted.signal_name})
            out.warn(
                f"fulfil: warning: {interrupted.signal_name} again: stopped at once after "
                f"{_orders(len(results))}; this run's claims were released, and anything left in "
                "flight is settled by `fulfil labels reconcile` (never bought twice)"
            )
            raise typer.Exit(interrupted.exit_code) from None
        attention = run.needs_attention
        exit_code = EXIT_USAGE if run.fatal else (EXIT_SOME_FAILED if attention else 0)
        if stop.exit_code is not None:
            exit_code = stop.exit_code
        session.run.finish(url, exit_code, {"counts": run.counts(), "stopped": run.stopped})
        state.metrics.order_results(command, run.counts())
    render_results(
        state,
        command,
        results,
        columns,
        attention=attention,
        display=display,
        needs_person=frozenset(getattr(run, "attention", ())),
        listing=listing,
    )
    results.close()
    if stop.exit_code is not None:
        out.warn(
            f"fulfil: warning: stopped by {stop.signal_name} after {_orders(len(results))}; "
            "this run's claims were released, the rest waits for the next run"
        )
        raise typer.Exit(stop.exit_code)
    if run.stopped:
        out.warn(f"fulfil: warning: stopped early: {run.stopped}")
    if run.fatal:
        raise run.fatal
    if summary is not None:
        # The workflow's own account of the run (what it covered of what there was to do).
        out.info(summary(run))
    elif not results:
        out.info("Nothing to do.")
    elif out.stdout_is_terminal and not out.json_mode:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(run.counts().items()))
        out.info(f"{_orders(len(results))}: {counts}")
    if attention:
        raise typer.Exit(EXIT_SOME_FAILED)


# --------------------------------------------------------------------------------------------
# Entry point and the one error handler
# --------------------------------------------------------------------------------------------


def run_command_line(application: typer.Typer, args: list[str]) -> NoReturn:
    """Run the command line ``args``; expected errors become one line on stderr and an exit code.
    With a metrics file, what the command did is added to it once it has ended, however it ended."""
    import time

    started = time.monotonic()
    code = _exit_code_of(application, args)
    state = _current_state
    if state is not None:
        _write_metrics(state, code, time.monotonic() - started)
    sys.exit(code)


def _exit_code_of(application: typer.Typer, args: list[str]) -> int:
    from fulfil.stop_signals import RunInterrupted, interrupt_on_sigterm

    command = typer.main.get_command(application)
    from fulfil.cli.lean_command import read_plain_values_without_pydantic

    read_plain_values_without_pydantic(command)
    verbose = any(a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args)
    try:
        # Commands that do not stop gracefully (the order workflows do) end on SIGTERM like on
        # Ctrl-C: transactions rolled back, one line on stderr, exit 143.
        interrupt_on_sigterm()
        result = command.main(args=args, prog_name="fulfil", standalone_mode=False)
    except RunInterrupted as exc:
        sys.stderr.write(f"fulfil: warning: {exc.signal_name}: stopped\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("fulfil: warning: SIGINT: stopped\n")
        return 130
    except NothingToDo as exc:
        # Said to a person; a pipe or cron gets nothing on success.
        if sys.stderr.isatty():
            sys.stderr.write(f"fulfil: {exc}\n")
        return exc.exit_code
    except FulfilError as exc:
        scrub = _scrubber()
        if verbose:
            sys.stderr.write(scrub(traceback.format_exc()))
        # Exit 75 (EX_TEMPFAIL: another run holds the work, or a poll would come too soon) is not a
        # failure: try again later.
        level = "warning" if exc.exit_code == EXIT_LOCKED else "error"
        sys.stderr.write(scrub(f"fulfil: {level}: {exc}\n"))
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        # One line, like every other problem (cron mails it whole), naming where the help is.
        format_message = getattr(exc, "format_message", None)
        message = format_message() if format_message is not None else str(exc)
        message = " ".join(message.split())
        context = getattr(exc, "ctx", None)
        where = f" (see `{context.command_path} -h`)" if context is not None else ""
        sys.stderr.write(f"fulfil: error: {message}{where}\n")
        return getattr(exc, "exit_code", None) or EXIT_USAGE
    except typer.Abort:
        sys.stderr.write("fulfil: error: aborted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (`fulfil … | head`): not an error of ours.
        return 0
    except Exception as exc:
        scrub = _scrubber()
        if verbose:
            sys.stderr.write(scrub(traceback.format_exc()))
        sys.stderr.write(scrub(f"fulfil: error: unexpected: {_cause_chain(exc)}\n"))
        if not verbose:
            sys.stderr.write("fulfil: note: run again with -v for the traceback\n")
        return EXIT_UNEXPECTED
    return result if isinstance(result, int) else 0


def _write_metrics(state: AppState, code: int, seconds: float) -> None:
    """Add what this command did to the metrics file, if one is asked for."""
    import os
    import time

    if not (state.metrics_file or os.environ.get("FULFIL_METRICS_FILE")):
        return
    if state.command is not None:
        state.metrics.command_finished(state.command, code, seconds, time.time())
    flush_metrics(state)


def flush_metrics(state: AppState) -> None:
    """Add what was measured so far (the calls of this command's runs, the database's gauges) to
    the metrics file, if one is asked for, and start counting afresh: a long-running command
    (`tracking watch`) flushes after each cycle. A file that cannot be written is said on stderr;
    the command's own exit code stands."""
    import os
    from pathlib import Path

    from fulfil.metrics import Metrics

    path = state.metrics_file or os.environ.get("FULFIL_METRICS_FILE") or None
    if not path:
        return
    metrics = state.metrics
    try:
        if state.database_url is not None:
            from fulfil.db import connect

            with connect(state.database_url, autocommit=True, application_name="fulfil-metrics") as conn:
                for run_id in state.run_ids:
                    metrics.calls_of_run(conn, run_id)
                metrics.state_of_database(conn)
        metrics.write(Path(path))
    except (OSError, FulfilError, ValueError) as exc:
        state.output.warn(_scrubber()(f"fulfil: warning: could not write the metrics file {path}: {exc}"))
    except Exception as exc:  # a database error: the command's work is done, its metrics are not
        state.output.warn(
            _scrubber()(f"fulfil: warning: could not gather metrics for {path}: {_cause_chain(exc)}")
        )
    finally:
        state.run_ids.clear()
        state._metrics = Metrics()


def _scrubber() -> Callable[[str], str]:
    """Every secret of the environment, in every form, out of what is about to be printed."""
    try:
        from fulfil.audit.redaction import redactor_from_environment

        redactor = redactor_from_environment()
    except Exception:  # the last line of defence must never raise itself
        return lambda text: text
    return lambda text: redactor.text(text) or ""


def _cause_chain(exc: BaseException) -> str:
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 5:
        text = str(current).strip().splitlines()[0] if str(current).strip() else ""
        parts.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        current = current.__cause__ or current.__context__
    return " <- ".join(parts)
