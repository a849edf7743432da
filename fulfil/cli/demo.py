"""`fulfil demo`: the whole pipeline against the sandbox, with nothing configured."""

from typing import Annotated

import typer

from fulfil.cli.shared import JsonOption, app, state_of


@app.command("demo")
def demo(
    ctx: typer.Context,
    orders: Annotated[int, typer.Option("--orders", min=0, max=1000, help="How many sample orders.")] = 25,
    faults: Annotated[
        bool,
        typer.Option(
            "--faults",
            help="Make it realistic: unshippable addresses, a lost answer, a throttle, a 503, a "
            "cancellation. Then look with `fulfil status`.",
        ),
    ] = False,
    json_mode: JsonOption = False,
) -> None:
    """Run the whole pipeline on sample orders: pull them from a local Best Buy, buy labels from a
    local Canada Post, push the tracking back. Needs no configuration and touches nothing real:
    its own database (fulfil_demo, on the embedded PostgreSQL, made afresh each run) and the
    sandbox on a free port. Label PDFs go to <labels dir>/demo.

    Examples:

        fulfil demo

        fulfil demo --orders 50 --faults
    """
    from fulfil.demo import DEMO_DATABASE, run_demo
    from fulfil.errors import EXIT_SOME_FAILED

    state = state_of(ctx, json_mode)
    out = state.output
    settings = state.settings
    labels_dir = settings.labels_dir / "demo"
    report = run_demo(
        orders=orders, faults=faults, data_dir=settings.data_dir, labels_dir=labels_dir, output=out
    )
    columns = [
        "order_id",
        "city",
        "province",
        "order_status",
        "shipment_status",
        "tracking_pin",
        "label_pdf_path",
    ]
    if out.json_mode:
        for row in report.rows:
            out.record({"type": "order", **row})
        out.record(
            {
                "type": "summary",
                "orders": len(report.rows),
                "shipped": report.shipped,
                "api_calls": report.api_calls,
                "labels_dir": str(report.labels_dir),
                "database_url": report.database_url,
                "seconds": round(report.seconds, 1),
                "phases": report.phases,
            }
        )
    else:
        table_rows = [[row.get(c) for c in columns] for row in report.rows]
        for row, shown in zip(report.rows, table_rows, strict=True):
            if row["label_pdf_path"]:
                shown[-1] = row["label_pdf_path"].rsplit("/", 1)[-1]
        out.table("Demo orders", columns, table_rows)
        problems = [row for row in report.rows if row["last_error"]]
        for row in problems:
            out.line(f"  {row['order_id']}: {row['last_error']}")
        out.line("")
        out.line(f"{report.shipped} of {len(report.rows)} orders shipped in {report.seconds:.1f} s.")
        out.line(f"Label PDFs: {report.labels_dir}")
        out.line(f"API calls logged: {report.api_calls} (each request and answer, in api_calls)")
        out.line("")
        out.line(f"Look around in the demo database ({DEMO_DATABASE}):")
        out.line(f"  export FULFIL_DATABASE_URL='{report.database_url}'")
        out.line("  fulfil status")
        out.line("  fulfil calls --limit 10")
        out.line("  fulfil calls show <call_id>")
    if report.needs_attention:
        raise typer.Exit(EXIT_SOME_FAILED)
