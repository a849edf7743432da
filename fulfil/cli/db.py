"""`fulfil db …`: migrations, schema status, the embedded server."""

import typer

from fulfil.cli.shared import (
    FormatOption,
    JsonOption,
    NoHeadersOption,
    app,
    database_url,
    render_done,
    state_of,
)

db_app = typer.Typer(
    help=(
        "The database: migrations, schema status, the embedded server.\n\nExamples:\n\n"
        "    fulfil db migrate\n"
        "    fulfil db status"
    ),
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")


# --------------------------------------------------------------------------------------------
# fulfil db …
# --------------------------------------------------------------------------------------------


@db_app.command("migrate")
def db_migrate(
    ctx: typer.Context,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Apply pending migrations (sql/NNNN_*.sql) in order; safe to run twice or concurrently.

    Example:

        fulfil db migrate
    """
    from fulfil.migrations import migrate

    state = state_of(ctx, json_mode)
    out = state.output
    applied = migrate(database_url(state))
    if out.json_mode:
        for migration in applied:
            out.record({"applied": migration.filename, "version": migration.version})
    render_done(state, "Applied", ["applied", "version"], [[m.filename, m.version] for m in applied])
    if not applied:
        out.info("Nothing to apply: the database schema is up to date.")


@db_app.command("status")
def db_status(
    ctx: typer.Context,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Show applied and pending migrations. Exit 3 when some are pending.

    Example:

        fulfil db status --json
    """
    from fulfil.errors import EXIT_SOME_FAILED
    from fulfil.migrations import status

    state = state_of(ctx, json_mode)
    out = state.output
    states = status(database_url(state))
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
def db_stop(ctx: typer.Context, json_mode: JsonOption = False) -> None:
    """Stop the embedded PostgreSQL server (the next command starts it again). With --json, one
    object: whether it was running and is now stopped, and where its data is.

    Examples:

        fulfil db stop
        fulfil db stop --json
    """
    from fulfil.embedded_db import pgdata_dir, stop_server

    state = state_of(ctx, json_mode)
    out = state.output
    data_dir = state.settings.data_dir
    stopped = stop_server(data_dir)
    if out.json_mode:
        # data_dir: fulfil's (FULFIL_DATA_DIR); pgdata: the server's own, in it.
        out.record({"stopped": stopped, "data_dir": data_dir, "pgdata": pgdata_dir(data_dir)})
    elif stopped:
        out.info(f"Stopped the embedded PostgreSQL in {pgdata_dir(data_dir)}.")
    else:
        out.info(f"The embedded PostgreSQL in {pgdata_dir(data_dir)} is not running.")
