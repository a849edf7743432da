"""`fulfil db …`: migrations, schema status, the embedded server."""

import typer

from fulfil.cli.shared import JsonOption, app, database_url, state_of

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
def db_migrate(ctx: typer.Context, json_mode: JsonOption = False) -> None:
    """Apply pending migrations (sql/NNNN_*.sql) in order; safe to run twice or concurrently.

    Example:

        fulfil db migrate
    """
    from fulfil.migrations import migrate

    state = state_of(ctx, json_mode)
    out = state.output
    applied = migrate(database_url(state))
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
def db_stop(ctx: typer.Context) -> None:
    """Stop the embedded PostgreSQL server (the next command starts it again).

    Example:

        fulfil db stop
    """
    from fulfil.embedded_db import pgdata_dir, stop_server

    state = state_of(ctx)
    data_dir = state.settings.data_dir
    if stop_server(data_dir):
        state.output.info(f"Stopped the embedded PostgreSQL in {pgdata_dir(data_dir)}.")
    else:
        state.output.info(f"The embedded PostgreSQL in {pgdata_dir(data_dir)} is not running.")
