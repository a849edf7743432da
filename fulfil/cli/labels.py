"""`fulfil labels …`: buy labels exactly once, download, reconcile, retry."""

from typing import TYPE_CHECKING, Annotated, Any

import typer

from fulfil.cli.shared import (
    AppState,
    ConcurrencyOption,
    DryRunOption,
    JsonOption,
    LimitOption,
    OrderOption,
    app,
    order_ids_from,
    run_order_workflow,
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
    state: AppState,
    session: "Session | None",
    url: str,
    on_result: Any = None,
    stop: Any = None,
    concurrency: int = 1,
) -> "LabelWorkflow":
    from fulfil.services import label_workflow

    return label_workflow(url, state.settings, session, on_result, stop, concurrency)


def _run_label_command(
    ctx: typer.Context,
    json_mode: bool,
    action: str,
    order_ids: list[str] | None,
    limit: int | None = None,
    concurrency: int | None = None,
) -> None:
    """Shared by create, reconcile and download."""
    state = state_of(ctx, json_mode)
    state.settings.canadapost()  # configuration errors before anything is claimed
    state.settings.http()
    workers = state.settings.concurrency(concurrency) if action != "reconcile" else 1
    if action in ("create", "download"):
        from fulfil.label_files import check_labels_dir

        # Before anything is bought: a label whose PDF cannot be saved is money spent for nothing.
        check_labels_dir(state.settings.labels_dir)

    def count(session: "Session") -> int:
        if action != "create":
            return 0
        eligible = _label_workflow(state, session, session.database_url).count_eligible(order_ids)
        return min(eligible, limit) if limit else eligible

    def work(session: "Session", on_result: Any, stop: Any) -> Any:
        workflow = _label_workflow(state, session, session.database_url, on_result, stop, workers)
        if action == "create":
            return workflow.create(order_ids, limit)
        return getattr(workflow, action)(order_ids)

    run_order_workflow(
        state,
        command=f"labels {action}",
        progress_label="Buying labels",
        columns=LABEL_COLUMNS,
        count=count,
        work=work,
        # A person reads the table: show the warnings (a shortened name, a moved line) too.
        display=lambda r: {**r, "error": r["error"] or "; ".join(r["warnings"]) or None},
    )


@labels_app.command("create")
def labels_create(
    ctx: typer.Context,
    order: OrderOption = None,
    limit: LimitOption = None,
    concurrency: ConcurrencyOption = None,
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

        fulfil labels create --concurrency 8

        psql -Atc "select order_id from orders where ..." | fulfil labels create --order -
    """
    order_ids = order_ids_from(order)
    if dry_run:
        _labels_dry_run(ctx, json_mode, order_ids, limit)
        return
    _run_label_command(ctx, json_mode, "create", order_ids, limit, concurrency)


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
    _run_label_command(ctx, json_mode, "reconcile", order_ids_from(order))


@labels_app.command("download")
def labels_download(
    ctx: typer.Context,
    order: OrderOption = None,
    concurrency: ConcurrencyOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Fetch label PDFs that are missing, deleted, or changed on disk (checked by sha256).

    Re-downloading is always safe: Canada Post returns the same label (never print one twice
    for two parcels).

    Example:

        fulfil labels download --order 261250893-A
    """
    _run_label_command(ctx, json_mode, "download", order_ids_from(order), concurrency=concurrency)


@labels_app.command("keep")
def labels_keep(
    ctx: typer.Context,
    order: Annotated[str, typer.Argument(help="The order id.")],
    shipment_id: Annotated[str, typer.Argument(help="The Canada Post shipment id of the label kept.")],
    json_mode: JsonOption = False,
) -> None:
    """Record which label an order keeps, when Canada Post sold it more than one.

    After voiding the others on Canada Post's site: the shipment holds the label kept (its PDF is
    fetched by the next `labels create` or `labels download`), the others are closed as voided,
    and the order goes on to `tracking push`. `fulfil status` lists the orders that need it.

    Example:

        fulfil labels keep 261250893-A 340531309186521749 && fulfil labels download --order 261250893-A
    """
    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)
    result = _label_workflow(state, None, url).keep(order, shipment_id)
    if out.json_mode:
        out.record(result.as_record())
    else:
        out.line(f"{result.order_id}\tkept\t{shipment_id}\t{result.status}\t{result.tracking_pin}")


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
