"""`fulfil tracking …`: give Best Buy each tracking number and confirm the order shipped, exactly once."""

from collections.abc import Callable, Iterator
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
    from fulfil.workflows.tracking import TrackingResult, TrackingWorkflow

tracking_app = typer.Typer(
    help=(
        "Best Buy tracking: send each label's tracking number, then confirm the order shipped.\n\n"
        "Examples:\n\n"
        "    fulfil tracking push\n"
        "    fulfil tracking watch --interval 60\n"
        "    fulfil tracking show 261250893-A"
    ),
    no_args_is_help=True,
)
app.add_typer(tracking_app, name="tracking")

TRACKING_COLUMNS = ["order_id", "outcome", "status", "tracking_pin", "order_state", "error"]


def _tracking_workflow(
    state: AppState,
    url: str,
    session: "Session | None",
    on_result: "Callable[[TrackingResult], None] | None" = None,
    stop: Any = None,
    concurrency: int = 1,
) -> "TrackingWorkflow":
    from fulfil.services import tracking_workflow

    return tracking_workflow(url, state.settings, session, on_result, stop, concurrency)


@tracking_app.command("push")
def tracking_push(
    ctx: typer.Context,
    order: OrderOption = None,
    limit: LimitOption = None,
    concurrency: ConcurrencyOption = None,
    dry_run: DryRunOption = False,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Send Best Buy the tracking number of every label (OR23), then confirm it shipped (OR24).

    Works on shipments in label_created (and tracking_sent, left by an interrupted run). OR24 is
    never sent before OR23 succeeded, and never twice blindly: a refused or unclear confirmation
    is settled by reading the order on Best Buy. Shipped orders end in tracking_updated with the
    order shipped; an order cancelled on Best Buy ends in order_canceled (void its label).

    Outcomes: shipped; already_shipped (Best Buy shows it shipped); retracked (a replacement
    label of a shipped order: its new number sent, no second confirmation); order_canceled;
    failed (Best Buy's refusal, named); pending (nothing settled: the next run carries on);
    waiting_for_pdf (bought moments ago: the next run pushes it); skipped; not_pushable (a named
    order with nothing to push).

    Exit 0: all done (or nothing to do); 3: some failed, were cancelled or wait for the next run;
    2: configuration problem (e.g. the API key was refused: the run stops at the first refusal).

    Examples:

        fulfil tracking push

        fulfil tracking push --order 261250893-A --dry-run

        fulfil labels create --json | jq -r .order_id |
            fulfil tracking push --order -
    """
    order_ids = order_ids_from(order)
    if dry_run:
        _push_dry_run(ctx, json_mode, order_ids, limit)
        return
    state = state_of(ctx, json_mode)
    state.settings.bestbuy()  # configuration errors before anything is claimed
    state.settings.http()
    workers = state.settings.concurrency(concurrency)

    def count(session: "Session") -> int:
        pushable = _tracking_workflow(state, session.database_url, session).count_pushable(order_ids)
        return min(pushable, limit) if limit else pushable

    def work(session: "Session", on_result: Any, stop: Any) -> Any:
        return _tracking_workflow(state, session.database_url, session, on_result, stop, workers).push(
            order_ids, limit
        )

    run_order_workflow(
        state,
        command="tracking push",
        progress_label="Pushing tracking",
        columns=TRACKING_COLUMNS,
        count=count,
        work=work,
    )


REFRESH_COLUMNS = ["order_id", "outcome", "carrier_status", "tracking_pin", "next_refresh_at", "error"]


@tracking_app.command("refresh")
def tracking_refresh(
    ctx: typer.Context,
    order: OrderOption = None,
    limit: LimitOption = None,
    concurrency: ConcurrencyOption = None,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Ask Canada Post where each parcel due for a refresh is, most urgent first, within the budget.

    Due: a parcel with a label, not delivered, auto-refresh on, bought less than 30 days ago, whose
    last answer is older than its status's interval (out for delivery 30 min, attempted or
    exception 60 min, in transit 120 min, not yet scanned 240 min). Each call counts against
    Canada Post's tracking budget (group E, 20 a minute by default), shared by every process and
    host using the database, and against FULFIL_TRACKING_DAILY_CALLS if set; a parcel the budget
    cannot admit in time waits for the next run. The summary says how much of what was due the
    budget covered and when the rest can go.

    Exit 0: done (or nothing due); 3: a refresh failed (retried later, with backoff); 2:
    configuration problem (e.g. the API key was refused).

    Examples:

        fulfil tracking refresh

        fulfil tracking refresh --order 261250893-A --json

        fulfil tracking refresh --concurrency 4 --limit 100
    """
    order_ids = order_ids_from(order)
    state = state_of(ctx, json_mode)
    state.settings.canadapost()  # configuration errors before anything is taken
    state.settings.http()
    state.settings.tracking()
    order_ids, refused = orders_held(state, schema_ready_url(state), order_ids)
    workers = state.settings.concurrency(concurrency)

    def count(session: "Session") -> int:
        from fulfil.services import tracking_store

        with tracking_store(session.database_url, state.settings, None, "tracking-refresh") as store:
            due = store.count_due(order_ids)
        return min(due, limit) if limit else due

    def work(session: "Session", on_result: Any, stop: Any) -> Any:
        from fulfil.services import listen_for_stop, tracking_refresher

        listen_for_stop(session, stop)
        with tracking_refresher(session, on_result, workers) as refresher:
            cycle = refresher.refresh_due(
                limit=limit, order_ids=order_ids, should_stop=lambda: stop.requested
            )
        return cycle

    def summary(cycle: Any) -> str:
        from fulfil.carrier_tracking.refresh import cycle_summary

        return cycle_summary(cycle, state.settings.rate_budgets().canadapost.get("E"))

    run_order_workflow(
        state,
        command="tracking refresh",
        progress_label="Refreshing tracking",
        columns=REFRESH_COLUMNS,
        count=count,
        work=work,
        summary=summary,
    )
    if refused:
        from fulfil.errors import EXIT_SOME_FAILED

        raise typer.Exit(EXIT_SOME_FAILED)


@tracking_app.command("watch")
def tracking_watch(
    ctx: typer.Context,
    interval: Annotated[
        float,
        typer.Option(
            "--interval", min=1, help="Seconds from the start of one cycle to the next.", metavar="SECONDS"
        ),
    ] = 60.0,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Refresh at most N parcels per cycle.", metavar="N")
    ] = None,
    concurrency: ConcurrencyOption = None,
    cycles: Annotated[
        int | None,
        typer.Option(
            "--cycles", min=1, help="Stop after N cycles (default: run until stopped).", metavar="N"
        ),
    ] = None,
    json_mode: JsonOption = False,
) -> None:
    """Refresh tracking for as long as it runs: one `tracking refresh` cycle every --interval
    seconds (a run of its own each), for systemd or a terminal.

    SIGTERM or Ctrl-C finishes the call in flight and exits 0; a second one stops at once.
    `fulfil tracking pause` (from any host) is read at every cycle: a paused watch keeps running
    and asks nothing until `fulfil tracking resume`. Each cycle that asked something says one
    line on stderr; with --metrics-file the metrics are written after every cycle.

    Exit 0: stopped by a signal or --cycles done; 2: configuration problem (e.g. the API key was
    refused: nothing can be asked until it is fixed).

    Examples:

        fulfil tracking watch

        fulfil --metrics-file "$TEXTFILE/fulfil.prom" tracking watch --interval 60
    """
    from fulfil.carrier_tracking.refresh import FAILED, cycle_summary
    from fulfil.carrier_tracking.watch import watch
    from fulfil.cli.shared import flush_metrics
    from fulfil.errors import EXIT_SOME_FAILED, EXIT_USAGE
    from fulfil.services import listen_for_stop, open_session, tracking_refresher
    from fulfil.stop_signals import stop_on_signals

    state = state_of(ctx, json_mode)
    state.settings.canadapost()  # configuration errors before anything is taken
    state.settings.http()
    state.settings.tracking()
    workers = state.settings.concurrency(concurrency)
    rate = state.settings.rate_budgets().canadapost.get("E")
    out = state.output
    url = schema_ready_url(state)
    was_paused = False

    def on_result(result: Any) -> None:
        if out.json_mode:
            out.record(result.as_record())
        elif result.outcome == FAILED:
            out.warn(f"fulfil: error: {result.error}")

    with stop_on_signals(out.warn) as stop:

        def run_cycle() -> Any:
            with open_session(url, state.settings, "tracking watch") as session:
                state.run_ids.append(session.run.run_id)
                listen_for_stop(session, stop)
                with tracking_refresher(session, on_result, workers, "tracking-watch") as refresher:
                    cycle = refresher.refresh_due(limit=limit, should_stop=lambda: stop.requested)
                code = EXIT_USAGE if cycle.fatal else EXIT_SOME_FAILED if cycle.needs_attention else 0
                session.run.finish(url, code, {"counts": cycle.counts(), "stopped": cycle.stopped})
            return cycle

        def on_cycle(cycle: Any) -> None:
            nonlocal was_paused
            state.metrics.order_results("tracking watch", cycle.counts())
            flush_metrics(state)
            if cycle.paused:
                if not was_paused:
                    out.warn(f"fulfil: note: {cycle_summary(cycle, rate)}")
                was_paused = True
                return
            if was_paused:
                out.warn("fulfil: note: tracking refreshes resumed")
                was_paused = False
            if cycle.results or (cycle.stopped and not stop.requested):
                out.warn(f"fulfil: note: {cycle_summary(cycle, rate)}")
            if cycle.stopped and not stop.requested:
                out.warn(f"fulfil: warning: the cycle stopped early: {cycle.stopped}")

        end = watch(
            run_cycle,
            on_cycle,
            interval=interval,
            should_stop=lambda: stop.requested,
            stop_reason=lambda: stop.signal_name,
            max_cycles=cycles,
        )
    if end.stopped_by:
        out.warn(f"fulfil: note: {end.stopped_by}: tracking watch stopped cleanly after {end.cycles} cycles")


@tracking_app.command("show")
def tracking_show(
    ctx: typer.Context,
    keys: Annotated[
        list[str],
        typer.Argument(
            help="Order ids or tracking PINs (or - to read them from stdin).", metavar="ORDER_OR_PIN"
        ),
    ],
    cached: Annotated[
        bool, typer.Option("--cached", help="Never call Canada Post: show what the database has.")
    ] = False,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh",
            help="Ask Canada Post about each parcel first, even a fresh one (not within 5 minutes "
            "of the last time it was asked).",
        ),
    ] = False,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Where each parcel is: status, expected delivery, last event, the events, and how fresh the
    answer is (fresh within its status's interval, stale, expired).

    Answered from the database. A stale or expired parcel is asked about first when the tracking
    budget has a slot within 5 s, refreshes are not paused, and it was not asked in the last 5
    minutes; otherwise the cached answer is shown, with why.

    Exit 0: every parcel found; 3: an order or PIN has no tracked label; 2: configuration problem.

    Examples:

        fulfil tracking show 261250893-A

        fulfil tracking show 7023210039414604 --json

        fulfil tracking show 261250893-A --refresh
    """
    from contextlib import contextmanager

    from fulfil.carrier_tracking.show import AUTO, CACHED, FORCE, age_text, look_up
    from fulfil.errors import EXIT_SOME_FAILED, UsageError
    from fulfil.services import open_session, tracking_refresher, tracking_store

    if cached and refresh:
        raise UsageError("--cached and --refresh cannot be used together")
    mode = CACHED if cached else FORCE if refresh else AUTO
    wanted = order_ids_from(keys) or []
    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)

    @contextmanager
    def open_asker() -> "Iterator[Any]":
        # Only when a parcel is to be asked about: its run row and audited HTTP, as any call's.
        state.settings.canadapost()
        state.settings.http()
        with (
            open_session(url, state.settings, "tracking show") as session,
            tracking_refresher(session, purpose="tracking-show") as refresher,
        ):
            state.run_ids.append(session.run.run_id)
            yield refresher

    with tracking_store(url, state.settings, None, "tracking-show") as store:
        lookup = look_up(store, wanted, mode, open_asker)
    state.metrics.tracking_show(hits=lookup.hits, misses=lookup.misses)
    for record in lookup.records:
        if out.json_mode:
            out.record(record)
            continue
        last = record["last_event"]
        asked = "just now" if record["asked_now"] else age_text(record["age_seconds"])
        out.table(
            None,
            ["order_id", "tracking_pin", "status", "expected", "last event", "freshness"],
            [
                [
                    record["order_id"],
                    record["tracking_pin"],
                    record["carrier_status"],
                    record["expected_delivery"] or "-",
                    f"{last['at']} {last['description']} ({last['place'] or '-'})" if last else "none yet",
                    f"{record['freshness']} (asked {asked})",
                ]
            ],
        )
        if record["events"]:
            out.table(
                None,
                ["when", "code", "event", "where"],
                [[e["at"], e["code"], e["description"], e["place"] or "-"] for e in record["events"]],
            )
        if record["not_refreshed"]:
            out.prose(f"order {record['order_id']}: {record['not_refreshed']}")
        if not record["auto_refresh"]:
            out.prose(f"auto-refresh is off: {record['auto_refresh_stopped_reason']}")
    for key in lookup.missing:
        out.warn(f"fulfil: error: {key}: no tracked label for this order or PIN")
    if lookup.config_error is not None:
        # The cached answers are shown; what kept them from being refreshed ends the command.
        raise lookup.config_error
    if lookup.missing:
        raise typer.Exit(EXIT_SOME_FAILED)


@tracking_app.command("pause")
def tracking_pause(
    ctx: typer.Context,
    order: OrderOption = None,
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="Why: said by `tracking refresh`; with --order, shown by `status` and `tracking show`.",
            metavar="TEXT",
        ),
    ] = "paused by hand",
    json_mode: JsonOption = False,
) -> None:
    """Stop tracking refreshes: for every process and host (stored in the database), or with
    --order for those parcels only (their auto-refresh off, with the reason).

    Examples:

        fulfil tracking pause --reason "Canada Post maintenance tonight"

        fulfil tracking pause --order 261250893-A --reason "picked up in store"
    """
    _pause_or_resume(ctx, json_mode, order_ids_from(order), reason)


@tracking_app.command("resume")
def tracking_resume(
    ctx: typer.Context,
    order: OrderOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Start tracking refreshes again: everywhere, or with --order for those parcels (their
    failures forgiven, due at once).

    Examples:

        fulfil tracking resume

        fulfil tracking resume --order 261250893-A
    """
    _pause_or_resume(ctx, json_mode, order_ids_from(order), None)


def _pause_or_resume(
    ctx: typer.Context, json_mode: bool, order_ids: list[str] | None, reason: str | None
) -> None:
    from fulfil.errors import EXIT_SOME_FAILED, UsageError
    from fulfil.services import tracking_store

    if reason is not None and not reason.strip():
        raise UsageError("--reason cannot be empty")
    state = state_of(ctx, json_mode)
    out = state.output
    pausing = reason is not None
    with tracking_store(schema_ready_url(state), state.settings, None, "tracking-pause") as store:
        if order_ids is None:
            if reason is not None:
                since = store.pause(reason.strip())
                record: dict[str, Any] = {
                    "paused": True,
                    "since": since.isoformat(),
                    "reason": reason.strip(),
                }
                message = f"tracking refreshes paused for every process and host: {reason.strip()}"
            else:
                store.resume()
                record, message = {"paused": False}, "tracking refreshes resumed"
            if out.json_mode:
                out.record(record)
            else:
                out.info(message)
            return
        found = store.order_shipment_ids(order_ids)
        for order_id in order_ids:
            shipment_id = found.get(order_id)
            if shipment_id is None:
                out.warn(f"fulfil: error: {order_id}: no tracked label for this order")
                continue
            store.set_auto_refresh(
                shipment_id, not pausing, f"paused by hand: {reason.strip()}" if reason else None
            )
            if out.json_mode:
                out.record({"order_id": order_id, "auto_refresh": not pausing})
            else:
                out.info(f"order {order_id}: auto-refresh {'off' if pausing else 'on'}")
    if any(order_id not in found for order_id in order_ids):
        raise typer.Exit(EXIT_SOME_FAILED)


def _push_dry_run(
    ctx: typer.Context, json_mode: bool, order_ids: list[str] | None, limit: int | None
) -> None:
    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)
    run = _tracking_workflow(state, url, None).dry_run(order_ids, limit)
    for result in run.results:
        if out.json_mode:
            out.record(result.as_record())
            continue
        if result.planned is None:
            # A named order the run would leave alone, and why.
            out.line(f"# order {result.order_id}: {result.outcome}: {result.error or result.status}")
            continue
        out.line(f"# order {result.order_id}: {result.status}, PIN {result.tracking_pin}")
        for call in result.planned or []:
            out.line(call)
    if not run.results:
        out.info("Nothing to do: no shipment is waiting for its tracking number to reach Best Buy.")
    if run.needs_attention:
        from fulfil.errors import EXIT_SOME_FAILED

        raise typer.Exit(EXIT_SOME_FAILED)


@tracking_app.command("retry")
def tracking_retry(
    ctx: typer.Context,
    orders: Annotated[
        list[str], typer.Argument(help="Order ids (or - to read them from stdin).", metavar="ORDER_ID")
    ],
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Make refused pushes (tracking_failed) eligible again, once the cause is fixed.

    The shipment goes back to label_created: the next `fulfil tracking push` sends the tracking
    number again (harmless if Best Buy has it already), then the ship confirmation.

    Example:

        fulfil tracking retry 261250893-A &&
            fulfil tracking push --order 261250893-A
    """
    from fulfil.errors import EXIT_SOME_FAILED

    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)
    order_ids = order_ids_from(orders) or []
    run = _tracking_workflow(state, url, None).retry(order_ids)
    for result in run.results:
        if out.json_mode:
            out.record(result.as_record())
        elif result.outcome != "retryable":
            out.warn(f"fulfil: error: {result.error}")
    retried = [r for r in run.results if r.outcome == "retryable"]
    render_done(state, "Retryable", ["order_id", "status"], [[r.order_id, r.status] for r in retried])
    if any(r.outcome != "retryable" for r in run.results):
        raise typer.Exit(EXIT_SOME_FAILED)
