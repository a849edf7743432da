"""`fulfil demo`: the whole pipeline against the sandbox, with nothing configured."""

from typing import Annotated, Any

import typer

from fulfil.cli.shared import FormatOption, JsonOption, NoHeadersOption, app, state_of


@app.command("demo")
def demo(
    ctx: typer.Context,
    orders: Annotated[
        int, typer.Option("--orders", min=0, max=1000, help="How many sample orders.", metavar="N")
    ] = 25,
    faults: Annotated[
        bool,
        typer.Option(
            "--faults",
            help="Make it realistic: unshippable addresses, a lost answer, a throttle, a 503, a "
            "cancellation. Then look with `fulfil status`.",
        ),
    ] = False,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Then keep the sandbox running (until Ctrl-C), its parcels travelling ten hours a "
            "minute, for your own `fulfil tracking refresh` and `tracking show` in another terminal.",
        ),
    ] = False,
    time_scale: Annotated[
        float,
        typer.Option(
            "--time-scale",
            min=1,
            help="With --serve: simulated seconds of the parcels' lives per real second (600: ten "
            "hours a minute).",
            metavar="FACTOR",
        ),
    ] = 600.0,
    manifest: Annotated[
        str,
        typer.Option(
            "--manifest",
            metavar="MODE",
            help="auto (each label transmitted when bought) or end_of_day (the labels go into the "
            "day's group, transmitted by `fulfil manifest transmit`: the demo does it, or with "
            "--serve leaves it to you, after your own void and replacement).",
        ),
    ] = "auto",
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Run the whole pipeline on sample orders: pull them from a local Best Buy, buy labels from a
    local Canada Post, push the tracking back, then follow the parcels for three days of the
    sandbox's clock (in a few seconds). Needs no configuration and touches nothing real: its own
    database (fulfil_demo, on the embedded PostgreSQL, made afresh each run) and the sandbox on a
    free port. Label PDFs go to <labels dir>/demo.

    Examples:

        fulfil demo

        fulfil demo --orders 50 --faults

        fulfil demo --serve

        fulfil demo --serve --manifest end_of_day
    """
    from fulfil.demo import run_demo
    from fulfil.errors import EXIT_SOME_FAILED, UsageError
    from fulfil.manifest_settings import ManifestMode

    try:
        mode = ManifestMode(manifest.strip())
    except ValueError:
        raise UsageError(f"--manifest {manifest!r}: expected auto or end_of_day") from None

    state = state_of(ctx, json_mode)
    out = state.output
    settings = state.settings
    labels_dir = settings.labels_dir / "demo"

    def show(report: Any) -> None:
        _show_report(out, report, serving=serve)

    report = run_demo(
        orders=orders,
        faults=faults,
        data_dir=settings.data_dir,
        labels_dir=labels_dir,
        output=out,
        # With --serve the report is shown before the wait, the way to reach the sandbox after it.
        serve=_serve_until_stopped(out, show) if serve else None,
        serve_time_scale=time_scale,
        manifest=mode,
    )
    if not serve:
        show(report)
    if report.needs_attention:
        raise typer.Exit(EXIT_SOME_FAILED)


COLUMNS = [
    "order_id",
    "city",
    "province",
    "order_status",
    "shipment_status",
    "tracking_pin",
    "carrier_status",
    "label_pdf_path",
]


def _show_report(out: Any, report: Any, *, serving: bool) -> None:
    from fulfil.demo import DEMO_DATABASE

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
                "tracking_steps": [
                    {"hours": hours, "carrier_statuses": statuses}
                    for hours, statuses in report.tracking_steps
                ],
                "serve_env": report.serve_env or None,
                "manifest": report.manifest.value,
            }
        )
        return
    table_rows = [[row.get(c) for c in COLUMNS] for row in report.rows]
    for row, shown in zip(report.rows, table_rows, strict=True):
        if row["label_pdf_path"]:
            shown[-1] = row["label_pdf_path"].rsplit("/", 1)[-1]
            if row["parcels"] > 1:
                more = row["parcels"] - 1
                shown[-1] += f" (and {more} more parcel{'s' if more > 1 else ''})"
    out.table("Demo orders", COLUMNS, table_rows)
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
    if report.rows:
        out.line(f"  fulfil tracking show {report.rows[0]['order_id']} --cached")
    if not serving:
        out.line("To refresh the parcels yourself while they travel: fulfil demo --serve")


def _after_the_purchase(order_id: str, manifest: Any) -> list[str]:
    """The day's other work, on the demo's labels: void one, replace it, hand over the day."""
    from fulfil.manifest_settings import ManifestMode

    end_of_day = manifest is ManifestMode.END_OF_DAY
    steps = [
        (
            f"fulfil labels void {order_id}",
            "voided: today's group is not transmitted yet" if end_of_day else "transmitted already: a refund",
        ),
        (f"fulfil labels create --order {order_id}", "its replacement, a new tracking number"),
        ("fulfil tracking push", "the new number to Best Buy, no second ship confirmation"),
    ]
    if end_of_day:
        steps.append(("fulfil manifest transmit", "today's group less the voided label, and its PDF"))
    steps += [
        ("fulfil labels print", "one PDF of the labels not printed yet"),
        ("fulfil report costs", "what they cost, the voided label netted out"),
        (f"fulfil orders show {order_id}", "the order's whole story, its API calls included"),
    ]
    width = max(len(command) for command, _ in steps)
    lines = ["After the purchase:"] + [f"  {command:<{width}}  # {why}" for command, why in steps]
    if not end_of_day:
        lines.append("(`fulfil demo --serve --manifest end_of_day` leaves today's manifest to you.)")
    return lines


def _serve_until_stopped(out: Any, show: Any) -> Any:
    """What ``--serve`` does once the orders are shipped: say how to reach the demo's world from
    another terminal, then wait (the sandbox stays up) until Ctrl-C or SIGTERM."""

    def serve(report: Any) -> None:
        import shlex
        import signal
        import time

        from fulfil.demo import SERVE_TRACKING_MINUTES

        show(report)
        stopped: list[int] = []

        def stop(signum: int, frame: Any) -> None:
            stopped.append(signum)

        previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            shown = report.rows[0]["order_id"] if report.rows else "ORDER"
            say = out.warn  # to stderr, always: the instructions are the point of --serve
            hours = report.serve_time_scale / 60
            say(f"The sandbox keeps running at {report.sandbox_url}: each real minute is {hours:g} hours")
            say(
                f"of the parcels' lives (refresh intervals of {SERVE_TRACKING_MINUTES} minute). "
                "In another terminal:"
            )
            say("")
            for name, value in report.serve_env.items():
                say(f"  export {name}={shlex.quote(value)}")
            say("  fulfil tracking refresh            # again each minute, or: fulfil tracking watch")
            say(f"  fulfil tracking show {shown}")
            say("")
            for line in _after_the_purchase(shown, report.manifest):
                say(line)
            say("")
            say("Ctrl-C here ends the demo.")
            while not stopped:
                time.sleep(0.2)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    return serve
