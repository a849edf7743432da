"""`fulfil labels …`: buy labels exactly once, download, reconcile, retry, fetch missing prices."""

from typing import TYPE_CHECKING, Annotated, Any

import typer

from fulfil.cli.shared import (
    AppState,
    ConcurrencyOption,
    DryRunOption,
    FormatOption,
    JsonOption,
    LimitOption,
    NoHeadersOption,
    OrderOption,
    app,
    order_ids_from,
    orders_held,
    render_done,
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
    help=(
        "Canada Post labels: buy them (exactly once), download the PDFs, reconcile, retry, price.\n\n"
        "Examples:\n\n"
        "    fulfil labels create\n"
        "    fulfil labels print\n"
        "    fulfil labels create --order 261250893-A --dry-run"
    ),
    no_args_is_help=True,
)
app.add_typer(labels_app, name="labels")

LABEL_COLUMNS = ["order_id", "outcome", "status", "tracking_pin", "label_pdf_path", "error", "warnings"]


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
        # A person reads the table: the warnings too (a shortened name, a moved line), in a column
        # of their own: a label bought with a warning is bought, not an error.
        display=lambda r: {
            **r,
            "order_id": r["order_id"] + (f" (parcel {r['parcel']})" if r.get("parcel") else ""),
            "warnings": "; ".join(r.get("warnings") or ()) or None,
        },
    )


@labels_app.command("create")
def labels_create(
    ctx: typer.Context,
    order: OrderOption = None,
    limit: LimitOption = None,
    concurrency: ConcurrencyOption = None,
    dry_run: DryRunOption = False,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Buy a Canada Post label for every accepted order that has none, and download the PDFs.

    Orders are taken oldest first. Purchases left unfinished by a crashed or killed run are
    reconciled first (never bought twice). Exit 0: all done; 3: some failed or need review;
    2: configuration problem (e.g. credentials refused: the run stops at the first refusal).

    Examples:

        fulfil labels create

        fulfil labels create --order 261250893-A --dry-run

        fulfil labels create --concurrency 8

        psql -Atc "$QUERY" | fulfil labels create --order -
    """
    order_ids = order_ids_from(order)
    if dry_run:
        _labels_dry_run(ctx, json_mode, order_ids, limit)
        return
    _run_label_command(ctx, json_mode, "create", order_ids, limit, concurrency)


def _labels_dry_run(
    ctx: typer.Context, json_mode: bool, order_ids: list[str] | None, limit: int | None
) -> None:
    from fulfil.errors import EXIT_SOME_FAILED, EXIT_USAGE

    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)
    if state.settings.shipping_rules().needs_quotes:
        # A rule that picks the service from a quote asks Canada Post for one, even in a dry run
        # (a read, audited like every call; nothing is bought).
        from fulfil.services import open_session

        state.settings.canadapost()
        with open_session(url, state.settings, "labels create --dry-run") as session:
            state.run_ids.append(session.run.run_id)
            run, planned = _label_workflow(state, session, url).dry_run(order_ids, limit)
            exit_code = EXIT_USAGE if run.fatal else (EXIT_SOME_FAILED if run.needs_attention else 0)
            session.run.finish(url, exit_code, {"counts": run.counts()})
    else:
        run, planned = _label_workflow(state, None, url).dry_run(order_ids, limit)
    if run.fatal:
        raise run.fatal
    for result in run.results:
        record = result.as_record()
        label = planned.get((result.order_id, result.parcel))
        if out.json_mode:
            out.record(
                {
                    **record,
                    "choice": label.choice.as_record() if label else None,
                    "request": label.body.decode("utf-8") if label else None,
                }
            )
            continue
        of = f" (parcel {result.parcel})" if result.parcel else ""
        out.line(
            f"# order {result.order_id}{of}: {result.outcome}" + (f": {result.error}" if result.error else "")
        )
        if label:
            for line in label.choice.describe():
                out.line(f"# {line}")
        for warning in result.warnings:
            out.line(f"# warning: {warning}")
        if label:
            out.line(label.body.decode("utf-8").rstrip())
    if not run.results:
        out.info("Nothing to do: no accepted order needs a label.")
    if run.needs_attention:
        raise typer.Exit(EXIT_SOME_FAILED)


@labels_app.command("reconcile")
def labels_reconcile(
    ctx: typer.Context,
    order: OrderOption = None,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
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
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Fetch label PDFs that are missing, deleted, or changed on disk (checked by sha256).

    Re-downloading is always safe: Canada Post returns the same label (never print one twice
    for two parcels).

    Example:

        fulfil labels download --order 261250893-A
    """
    _run_label_command(ctx, json_mode, "download", order_ids_from(order), concurrency=concurrency)


@labels_app.command("print")
def labels_print(
    ctx: typer.Context,
    order: OrderOption = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only labels bought since then: 30m, 2h, 7d or an ISO date.", metavar="WHEN"
        ),
    ] = None,
    reprint: Annotated[
        bool, typer.Option("--reprint", help="Include labels printed before (default: only new ones).")
    ] = False,
    sort: Annotated[
        str,
        typer.Option(
            "--sort", help="order (order id), sku (first line's SKU) or postal (destination).", metavar="KEY"
        ),
    ] = "order",
    layout: Annotated[
        str | None,
        typer.Option(
            "--layout",
            help="4x6 (one label a page, thermal printers) or 8.5x11 (two a letter page); "
            "default: FULFIL_CANADAPOST_LABEL_FORMAT.",
            show_default=False,
            metavar="LAYOUT",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", help="Write the PDF here (default: <labels dir>/prints/labels-….pdf).", metavar="PATH"
        ),
    ] = None,
    json_mode: JsonOption = False,
) -> None:
    """One PDF of the labels not printed yet, to send to the printer; prints its path.

    A label whose file is missing or changed is downloaded again first; one that still cannot be
    had is named with why, and left out. The labels in the file are marked printed: the next run
    prints only new ones (--reprint: again). Two runs at once never put one label in both files.

    Exit 0: written (or nothing to print); 3: a label could not be printed (named on stderr);
    2: a bad option or configuration.

    Examples:

        fulfil labels print

        fulfil labels print --layout 8.5x11 --sort postal

        lp "$(fulfil labels print --since 12h)"
    """
    from pathlib import Path

    from fulfil.audit.reader import parse_since
    from fulfil.db import connect
    from fulfil.errors import EXIT_SOME_FAILED, UsageError
    from fulfil.label_print import LAYOUTS, SORTS, print_labels, unusable_labels

    if sort not in SORTS:
        raise UsageError(f"--sort must be one of {', '.join(SORTS)}, not {sort!r}")
    if layout is not None and layout not in LAYOUTS:
        raise UsageError(f"--layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    try:
        since_at = parse_since(since) if since else None
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    order_ids = order_ids_from(order)
    state = state_of(ctx, json_mode)
    out = state.output
    settings = state.settings
    chosen_layout = layout or settings.value("FULFIL_CANADAPOST_LABEL_FORMAT") or "8.5x11"
    url = schema_ready_url(state)
    order_ids, refused = orders_held(state, url, order_ids)
    with connect(url, autocommit=True, application_name="fulfil-labels-print") as conn:
        missing = unusable_labels(conn, reprint=reprint, since=since_at, order_ids=order_ids)
    if missing:
        _download_again(ctx, state, list(missing))
    with connect(url, autocommit=True, application_name="fulfil-labels-print") as conn:
        run = print_labels(
            conn,
            output_dir=settings.labels_dir / "prints",
            layout=chosen_layout,
            sort=sort,
            reprint=reprint,
            since=since_at,
            order_ids=order_ids,
            output=Path(output) if output else None,
        )
    for order_id, why in run.missing.items():
        fix = f"`fulfil labels download --order {order_id}`"
        out.warn(f"fulfil: error: order {order_id}: label not printed: {why} ({fix})")
    if out.json_mode:
        out.record(
            {
                "path": str(run.path) if run.path else None,
                "print_id": run.print_id,
                "labels": len(run.printed),
                "pages": run.pages,
                "layout": chosen_layout,
                "orders": run.printed,
                "not_printed": run.missing,
            }
        )
    elif run.path is not None:
        out.line(str(run.path))
        out.info(f"{len(run.printed)} labels on {run.pages} pages ({chosen_layout})")
    else:
        out.info("Nothing to print: every label is printed (--reprint prints them again).")
    if run.missing or refused:
        raise typer.Exit(EXIT_SOME_FAILED)


def _download_again(ctx: typer.Context, state: AppState, order_ids: list[str]) -> None:
    """Fetch again the label files a print needs that are missing or changed. Without Canada Post
    configured they stay missing, and the print names them."""
    from fulfil.errors import ConfigError
    from fulfil.services import open_session

    try:
        state.settings.canadapost()
        state.settings.http()
    except ConfigError as exc:
        state.output.warn(f"fulfil: error: cannot download missing labels again: {exc}")
        return
    url = schema_ready_url(state)
    with open_session(url, state.settings, "labels download") as session:
        state.run_ids.append(session.run.run_id)
        run = _label_workflow(state, session, url).download(order_ids)
        session.run.finish(url, 3 if run.needs_attention else 0, {"counts": run.counts()})


@labels_app.command("keep")
def labels_keep(
    ctx: typer.Context,
    order: Annotated[str, typer.Argument(help="The order id.", metavar="ORDER_ID")],
    shipment_id: Annotated[
        str, typer.Argument(help="The Canada Post shipment id of the label kept.", metavar="SHIPMENT_ID")
    ],
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Record which label an order keeps, when Canada Post sold it more than one.

    After voiding the others on Canada Post's site: the shipment holds the label kept (its PDF is
    fetched by the next `labels create` or `labels download`), the others are closed as voided,
    and the order goes on to `tracking push`. `fulfil status` lists the orders that need it.

    Example:

        fulfil labels keep 261250893-A 340531309186521749 &&
            fulfil labels download --order 261250893-A
    """
    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)
    orders_held(state, url, [order])  # exit 3 for an order fulfil does not have
    result = _label_workflow(state, None, url).keep(order, shipment_id)
    if out.json_mode:
        out.record(result.as_record())
    render_done(
        state,
        "Kept",
        ["order_id", "kept", "status", "tracking_pin"],
        [[result.order_id, shipment_id, result.status, result.tracking_pin]],
    )


@labels_app.command("retry")
def labels_retry(
    ctx: typer.Context,
    orders: Annotated[
        list[str], typer.Argument(help="Order ids (or - to read them from stdin).", metavar="ORDER_ID")
    ],
    not_bought: Annotated[
        bool,
        typer.Option(
            "--not-bought",
            help="Also re-queue needs_review orders: you checked Canada Post and no label exists for them.",
        ),
    ] = False,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
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
            if result.outcome != "retryable":
                out.warn(f"fulfil: error: {result.error}")
    retried = [r for r in run.results if r.outcome == "retryable"]
    render_done(state, "Retryable", ["order_id", "outcome"], [[r.order_id, r.outcome] for r in retried])
    if any(r.outcome != "retryable" for r in run.results):
        raise typer.Exit(EXIT_SOME_FAILED)


QUOTE_COLUMNS = [
    "order_id",
    "parcel",
    "weight_kg",
    "service_code",
    "service_name",
    "taxes",
    "due",
    "expected_delivery_date",
    "chosen",
    "error",
]


@labels_app.command("quote")
def labels_quote(
    ctx: typer.Context,
    order: OrderOption = None,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Ask Canada Post what each service would cost for an order's parcel, and when it would arrive.

    Every parcel of the order's plan (its SKUs' profiles, see `fulfil parcels`) is quoted with
    the options its rules give it, cheapest first, and the service its rules would buy is marked
    `chosen`. Any order in fulfil can be quoted, whatever its state: nothing is bought and
    nothing is written but the calls, which `api_calls` keeps like every other. Exit 0: every
    order quoted; 3: an order unknown, whose data cannot make a label, or that Canada Post
    would not quote (named, with why); 2: a configuration problem.

    Examples:

        fulfil labels quote --order 261250893-A

        fulfil labels quote --order 261250893-A --json |
            jq -r '[.service_code, .due] | @tsv'
    """
    from fulfil.errors import UsageError
    from fulfil.services import label_workflow

    order_ids = order_ids_from(order)
    if not order_ids:
        raise UsageError("name the orders to quote: --order ID (repeatable, or --order - for stdin)")
    state = state_of(ctx, json_mode)
    state.settings.canadapost()  # configuration errors before anything is asked
    state.settings.http()
    run_order_workflow(
        state,
        command="labels quote",
        progress_label="Asking for quotes",
        columns=QUOTE_COLUMNS,
        count=lambda session: len(order_ids),
        work=lambda session, on_result, stop: label_workflow(
            session.database_url, state.settings, session
        ).quote(order_ids, on_result),
        display=lambda r: {**r, "chosen": "← " + (r["rule"] or "") if r["chosen"] else None},
        summary=lambda run: run.summary(),
        listing=True,  # a quote is a question: its answer is the data, on a pipe too
    )


PRICE_COLUMNS = ["order_id", "outcome", "tracking_pin", "document", "due", "error"]


@labels_app.command("prices")
def labels_prices(
    ctx: typer.Context,
    order: OrderOption = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List the labels whose price would be fetched; no HTTP, no writes."),
    ] = False,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Fetch what Canada Post charged for every label that has no price on record.

    A contract label's price is read from its price document (Get Shipment Price), a non-contract
    label's from its receipt, and kept for `fulfil report costs`. `labels create` does this for
    every label bought without a price in its answer; this catches up the ones it could not (a
    timeout, an unreadable document) and labels bought before fulfil kept prices. A label priced
    already is never asked for again; voided labels (not charged) and labels of the older
    scripts (no Canada Post shipment id) are left out. Exit 0: every price fetched (or none
    missing); 3: some could not be fetched (named, with why) or an order named cannot be priced;
    2: a configuration problem (credentials refused).

    Examples:

        fulfil labels prices

        fulfil labels prices --order 261250893-A --dry-run

        fulfil labels prices --json |
            jq -r 'select(.outcome == "failed") | .error'
    """
    order_ids = order_ids_from(order)
    state = state_of(ctx, json_mode)
    if dry_run:
        _labels_prices_dry_run(state, order_ids)
        return
    settings = state.settings
    settings.canadapost()  # configuration errors before anything is asked
    settings.http()

    def catch_up(session: "Session", on_result: Any = None, stop: Any = None) -> Any:
        from fulfil.services import price_catch_up

        return price_catch_up(session.database_url, settings, session, on_result, stop)

    run_order_workflow(
        state,
        command="labels prices",
        progress_label="Fetching prices",
        columns=PRICE_COLUMNS,
        count=lambda session: catch_up(session).count(order_ids),
        work=lambda session, on_result, stop: catch_up(session, on_result, stop).prices(order_ids),
    )


def _labels_prices_dry_run(state: AppState, order_ids: list[str] | None) -> None:
    from fulfil.errors import EXIT_SOME_FAILED
    from fulfil.services import price_catch_up

    out = state.output
    url = schema_ready_url(state)
    run = price_catch_up(url, state.settings, None).dry_run(order_ids)
    for result in run.results:
        record = result.as_record()
        if out.json_mode:
            out.record(record)
        else:
            out.line("\t".join("" if record[name] is None else str(record[name]) for name in PRICE_COLUMNS))
    if not run.results:
        out.info("Nothing to do: every label has its price on record.")
    if run.needs_attention:
        raise typer.Exit(EXIT_SOME_FAILED)


VOID_COLUMNS = ["order_id", "outcome", "status", "tracking_pin", "label_pdf_path", "reason"]


@labels_app.command("void")
def labels_void(
    ctx: typer.Context,
    orders: Annotated[
        list[str] | None,
        typer.Argument(
            help="Order ids (or - to read them from stdin).", show_default=False, metavar="ORDER_ID"
        ),
    ] = None,
    canceled: Annotated[
        bool,
        typer.Option(
            "--canceled",
            help="Every label of an order canceled on Best Buy (order_canceled), and every void left "
            "unfinished by an earlier run.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Say what would be done for each order, and why; no HTTP, no writes."),
    ] = False,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Void the Canada Post labels of these orders, or request their refund, exactly once.

    A contract label is voided (DELETE of its shipment); one Canada Post says was transmitted
    already (8064), and every non-contract label, gets a refund request instead
    (FULFIL_CANADAPOST_REFUND_EMAIL). The void is committed as label_voiding before anything is
    sent; an answer that is lost is settled by reading Canada Post, never by sending again
    blindly; a void left unfinished by a killed run is settled by the next `labels void`. The
    label's PDF is kept, renamed <name>.<PIN>.voided.pdf. Orders that cannot be voided (no label,
    tracking already at Best Buy, shipped, voided already) are named with the reason; the others
    go on. Exit 0: all done; 3: some not voided, not eligible, or not settled yet; 2: a
    configuration problem (refused credentials; a refund needed and no refund e-mail set).

    Examples:

        fulfil labels void 261250893-A

        fulfil labels void --canceled --dry-run

        fulfil labels void --canceled --json
    """
    from fulfil.errors import NothingToDo, UsageError

    state = state_of(ctx, json_mode)
    try:
        order_ids = order_ids_from(orders)
    except NothingToDo:
        if not canceled:
            raise
        order_ids = None  # nothing named on stdin: the canceled orders' labels still are
    if not order_ids and not canceled:
        raise UsageError("name the orders whose labels to void (or - to read them from stdin), or --canceled")
    settings = state.settings
    settings.canadapost()  # configuration errors before anything is claimed
    settings.http()
    if dry_run:
        _labels_void_dry_run(state, order_ids, canceled)
        return
    if not settings.canadapost().contract:
        # Non-contract labels have no void: every one of them needs a refund request.
        settings.require_refund_email("the labels are non-contract, so only a refund can undo them")
    else:
        settings.refund_email()  # an unusable address is refused before anything is sent

    def workflow(session: "Session | None", url: str, on_result: Any = None, stop: Any = None) -> Any:
        from fulfil.services import void_workflow

        return void_workflow(url, settings, session, on_result, stop)

    run_order_workflow(
        state,
        command="labels void",
        progress_label="Voiding labels",
        columns=VOID_COLUMNS,
        count=lambda session: len(workflow(None, session.database_url).targets(order_ids, canceled=canceled)),
        work=lambda session, on_result, stop: workflow(session, session.database_url, on_result, stop).void(
            order_ids, canceled=canceled
        ),
    )


def _labels_void_dry_run(state: AppState, order_ids: list[str] | None, canceled: bool) -> None:
    from fulfil.errors import EXIT_SOME_FAILED
    from fulfil.services import void_workflow

    out = state.output
    url = schema_ready_url(state)
    run = void_workflow(url, state.settings, None).dry_run(order_ids, canceled=canceled)
    for result in run.results:
        if out.json_mode:
            out.record(result.as_record())
            continue
        out.line(f"{result.order_id}\t{result.outcome}\t{result.status or ''}\t{result.reason or ''}")
        for warning in result.warnings:
            out.warn(f"fulfil: warning: {warning}")
    if not run.results:
        out.info("Nothing to do: no label to void.")
    if run.needs_attention:
        raise typer.Exit(EXIT_SOME_FAILED)
