"""`fulfil labels …`: buy labels exactly once, download, reconcile, retry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from fulfil.cli.app import (
    AppState,
    DryRunOption,
    JsonOption,
    LimitOption,
    OrderOption,
    app,
    order_ids_from,
    render_results,
    schema_ready_url,
    state_of,
)

if TYPE_CHECKING:
    from fulfil.services import Session
    from fulfil.workflows.labels import LabelWorkflow

# --------------------------------------------------------------------------------------------
# fulfil labels …
# --------------------------------------------------------------------------------------------

labels_app = typer.Typer(
    help="Canada Post labels: buy them (exactly once), download the PDFs, reconcile, retry.",
    no_args_is_help=True,
)
app.add_typer(labels_app, name="labels")

LABEL_COLUMNS = ["order_id", "outcome", "status", "tracking_pin", "label_pdf_path", "error"]


def _label_workflow(
    state: AppState, session: Session | None, url: str, on_result: Any = None
) -> LabelWorkflow:
    from fulfil.services import label_workflow

    return label_workflow(url, state.settings, session, on_result)


def _run_label_command(
    ctx: typer.Context,
    json_mode: bool,
    command: str,
    action: str,
    order_ids: list[str] | None,
    **kwargs: object,
) -> None:
    """Shared by create, reconcile and download: one run, results streamed and rendered."""
    from fulfil.errors import EXIT_SOME_FAILED
    from fulfil.services import open_session

    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)
    settings = state.settings
    settings.canadapost()  # configuration errors before anything is claimed
    with open_session(url, settings, command) as session:
        results: list[dict[str, object]] = []
        total = 0
        progress_total = 0
        if action == "create":
            probe = _label_workflow(state, session, url)
            progress_total = probe.count_eligible(order_ids)
            limit = kwargs.get("limit")
            if isinstance(limit, int):
                progress_total = min(progress_total, limit)
        with out.progress(progress_total, "Buying labels") as tick:

            def on_result(result) -> None:  # type: ignore[no-untyped-def]
                nonlocal total
                record = result.as_record()
                results.append(record)
                total += 1
                if out.json_mode:
                    out.record(record)
                tick()

            workflow = _label_workflow(state, session, url, on_result)
            run = getattr(workflow, action)(order_ids, **kwargs)
        attention = run.needs_attention
        exit_code = 2 if run.fatal else (EXIT_SOME_FAILED if attention else 0)
        session.run.finish(url, exit_code, {"counts": run.counts(), "stopped": run.stopped})
    if out.stdout_is_terminal:
        # A person reads the table: show the warnings (a shortened name, a moved address line) too.
        results = [{**r, "error": r["error"] or "; ".join(r["warnings"]) or None} for r in results]  # type: ignore[call-overload]
    render_results(state, f"labels {action}", results, LABEL_COLUMNS, attention=attention)
    if run.stopped:
        out.warn(f"fulfil: stopped early: {run.stopped}")
    if run.fatal:
        raise run.fatal
    if total == 0:
        out.info("Nothing to do.")
    elif out.stdout_is_terminal and not out.json_mode:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(run.counts().items()))
        out.info(f"{total} orders: {counts}")
    if attention:
        raise typer.Exit(EXIT_SOME_FAILED)


@labels_app.command("create")
def labels_create(
    ctx: typer.Context,
    order: OrderOption = None,
    limit: LimitOption = None,
    dry_run: DryRunOption = False,
    json_mode: JsonOption = False,
) -> None:
    """Buy a Canada Post label for every accepted order that has none, and download the PDFs.

    Orders are taken oldest first. Purchases left unfinished by a crashed or killed run are
    reconciled first (never bought twice). Exit 0: all done; 3: some failed or need review;
    2: configuration problem (e.g. credentials refused: the run stops at the first refusal).

    Examples:

        fulfil labels create

        fulfil labels create --order 261250893-A --dry-run

        psql -Atc "select order_id from orders where ..." | fulfil labels create --order -
    """
    order_ids = order_ids_from(order)
    if dry_run:
        _labels_dry_run(ctx, json_mode, order_ids, limit)
        return
    _run_label_command(ctx, json_mode, "labels create", "create", order_ids, limit=limit)


def _labels_dry_run(
    ctx: typer.Context, json_mode: bool, order_ids: list[str] | None, limit: int | None
) -> None:
    from fulfil.errors import EXIT_SOME_FAILED

    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)
    run, bodies = _label_workflow(state, None, url).dry_run(order_ids, limit)
    for result in run.results:
        record = result.as_record()
        body = bodies.get(result.order_id)
        if out.json_mode:
            out.record({**record, "request": body.decode("utf-8") if body else None})
            continue
        out.line(
            f"# order {result.order_id}: {result.outcome}" + (f": {result.error}" if result.error else "")
        )
        for warning in result.warnings:
            out.line(f"# warning: {warning}")
        if body:
            out.line(body.decode("utf-8").rstrip())
    if not run.results:
        out.info("Nothing to do: no accepted order needs a label.")
    if run.needs_attention:
        raise typer.Exit(EXIT_SOME_FAILED)


@labels_app.command("reconcile")
def labels_reconcile(ctx: typer.Context, order: OrderOption = None, json_mode: JsonOption = False) -> None:
    """Settle purchases whose outcome is unknown (a crash, a timeout): adopt, re-queue or flag.

    Looks at purchases left in label_creation_initiated by a run that is gone (its lease expired,
    or its process died on this host): first the audit log, then Canada Post (by request id, or
    the non-contract listing matched on the order id). One label found: adopted. None, once the
    purchase has had time to settle: eligible to buy again. Several: needs_review.
    `labels create` does this itself before buying.

    Example:

        fulfil labels reconcile --json
    """
    _run_label_command(ctx, json_mode, "labels reconcile", "reconcile", order_ids_from(order))


@labels_app.command("download")
def labels_download(ctx: typer.Context, order: OrderOption = None, json_mode: JsonOption = False) -> None:
    """Fetch label PDFs that are missing, deleted, or changed on disk (checked by sha256).

    Re-downloading is always safe: Canada Post returns the same label (never print one twice
    for two parcels).

    Example:

        fulfil labels download --order 261250893-A
    """
    _run_label_command(ctx, json_mode, "labels download", "download", order_ids_from(order))


@labels_app.command("retry")
def labels_retry(
    ctx: typer.Context,
    orders: Annotated[list[str], typer.Argument(help="Order ids (or - to read them from stdin).")],
    not_bought: Annotated[
        bool,
        typer.Option(
            "--not-bought",
            help="Also re-queue needs_review orders: you checked Canada Post and no label exists for them.",
        ),
    ] = False,
    json_mode: JsonOption = False,
) -> None:
    """Make failed orders eligible again, after their data was fixed.

    An order whose raw_order_data changed since it failed is eligible again on its own; this is
    for a fix made elsewhere (the sender settings, say). needs_review orders need --not-bought.

    Examples:

        fulfil labels retry 261250893-A

        fulfil labels retry --not-bought 261250893-A
    """
    from fulfil.errors import EXIT_SOME_FAILED

    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)
    order_ids = order_ids_from(orders) or []
    run = _label_workflow(state, None, url).retry(order_ids, not_bought=not_bought)
    results = [r.as_record() for r in run.results]
    if out.json_mode:
        for record in results:
            out.record(record)
    else:
        for result in run.results:
            if result.outcome == "retryable":
                out.line(f"{result.order_id}\tretryable")
            else:
                out.warn(str(result.error))
    if any(r.outcome != "retryable" for r in run.results):
        raise typer.Exit(EXIT_SOME_FAILED)
