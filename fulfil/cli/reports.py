"""`fulfil status`, `fulfil calls` and `fulfil config check`: looking, never changing."""

from typing import Annotated, Any

import typer

from fulfil.cli.shared import (
    FormatOption,
    JsonOption,
    NoHeadersOption,
    app,
    orders_held,
    schema_ready_url,
    state_of,
)
from fulfil.errors import EXIT_SOME_FAILED, EXIT_USAGE

# --------------------------------------------------------------------------------------------
# fulfil status
# --------------------------------------------------------------------------------------------


@app.command("status")
def status(
    ctx: typer.Context,
    stale_hours: Annotated[
        int,
        typer.Option(
            "--stale-hours",
            min=1,
            help="Flag labels whose tracking Best Buy still lacks after this many hours.",
            metavar="HOURS",
        ),
    ] = 24,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Orders and shipments per state, what needs attention (with the command that fixes it), and
    when each command last ran. Exit 0 when nothing needs attention, 3 when something does.

    Examples:

        fulfil status

        fulfil status --json | jq 'select(.type == "attention")'
    """
    from fulfil.status_report import build_report

    state = state_of(ctx, json_mode)
    out = state.output
    report = build_report(
        schema_ready_url(state),
        stale_hours=stale_hours,
        no_scan_hours=state.settings.tracking().no_scan_hours,
    )
    if out.json_mode:
        for record in report.records():
            out.record(record)
    else:
        out.table(
            "Orders",
            ["status", "count"],
            [[s, n] for s, n in report.orders.items()] or [["(none)", 0]],
        )
        out.table(
            "Shipments",
            ["status", "count"],
            [[s, n] for s, n in report.shipments.items()] or [["(none)", 0]],
        )
        if report.attention:
            out.table(
                "Needs attention",
                ["problem", "order_id", "reason", "fix"],
                [[a.problem, a.order_id, a.reason, a.fix] for a in report.attention],
            )
        else:
            out.prose("Nothing needs attention.")
        if report.runs:
            out.table(
                "Last runs",
                ["command", "started_at", "state", "summary"],
                [
                    [
                        r["command"],
                        f"{r['started_at']:%Y-%m-%d %H:%M:%S}",
                        r["state"],
                        _summary_text(r.get("summary")),
                    ]
                    for r in report.runs
                ],
            )
        if report.budgets:
            out.table(
                "Rate budgets (shared by every process and host)",
                ["budget", "limit", "used in window", "reserved ahead", "paused", "last pause"],
                [_budget_row(b) for b in report.budgets],
            )
        if report.tracking_pause is not None:
            pause = report.tracking_pause
            out.prose(
                f"Tracking refreshes are paused for every host since {pause['paused_at']:%Y-%m-%d %H:%M} "
                f"({pause['reason']}): `fulfil tracking resume` starts them again."
            )
        if report.unprinted is not None:
            out.prose(
                f"{report.unprinted['labels']} labels not printed yet (the oldest bought "
                f"{report.unprinted['oldest']:%Y-%m-%d %H:%M}): `fulfil labels print`."
            )
    if report.needs_attention:
        raise typer.Exit(EXIT_SOME_FAILED)


def _budget_row(budget: Any) -> list[Any]:
    limit = f"{budget.limit}/{budget.window_seconds:g} s" if budget.limit is not None else "pauses only"
    paused = f"until {budget.paused_until:%H:%M:%S}: {budget.pause_reason}" if budget.paused_until else ""
    last = (
        f"{budget.last_pause_at:%Y-%m-%d %H:%M:%S}: {budget.last_pause_reason}"
        if budget.last_pause_at
        else ""
    )
    return [budget.name, limit, budget.calls_in_window, budget.reserved_ahead, paused, last]


def _summary_text(summary: Any) -> str:
    if not isinstance(summary, dict):
        return ""
    counts = summary.get("counts") or {}
    text = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) if isinstance(counts, dict) else ""
    if summary.get("stopped"):
        text = f"{text}; stopped: {summary['stopped']}" if text else f"stopped: {summary['stopped']}"
    return text


# --------------------------------------------------------------------------------------------
# fulfil calls
# --------------------------------------------------------------------------------------------

calls_app = typer.Typer(invoke_without_command=True)
app.add_typer(calls_app, name="calls")


@calls_app.callback()
def calls(
    ctx: typer.Context,
    service: Annotated[
        str | None, typer.Option("--service", help="canadapost or bestbuy.", metavar="SERVICE")
    ] = None,
    order: Annotated[
        str | None, typer.Option("--order", help="Calls about this order id.", metavar="ORDER_ID")
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            metavar="NAME",
            help="e.g. CreateShipment (its non-contract twin CreateNCShipment too), OR24.",
        ),
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only calls that did not succeed.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="30m, 2h, 7d or an ISO date/time.", metavar="WHEN")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most N calls.", metavar="N")] = 50,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """The audit log of every request to Canada Post and Best Buy: list it (newest first), or
    show one call with `fulfil calls show ID`.

    Examples:

        fulfil calls --order 261250893-A

        fulfil calls --service canadapost --failed --since 1d

        fulfil calls show 42
    """
    if ctx.invoked_subcommand is not None:
        return
    from fulfil.audit.reader import CallFilter, list_calls, normalise_service, outcome_of, parse_since

    state = state_of(ctx, json_mode)
    out = state.output
    filters = CallFilter(
        service=normalise_service(service),
        order_id=order,
        failed=failed,
        since=parse_since(since) if since else None,
        endpoint=endpoint,
        limit=limit,
    )
    url = schema_ready_url(state)
    if order is not None:
        orders_held(state, url, [order])  # exit 3 for an order fulfil does not have
    rows = list_calls(url, filters)
    if out.json_mode:
        for row in rows:
            out.record({**row, "outcome": outcome_of(row)})
        return
    if not rows:
        out.info("No calls match.")
        return
    out.table(
        "API calls (newest first)",
        ["call_id", "started_at", "service", "endpoint", "order", "status", "ms", "outcome", "error"],
        [
            [
                r["call_id"],
                f"{r['started_at']:%Y-%m-%d %H:%M:%S}" if r["started_at"] else "",
                r["service"],
                r["endpoint"],
                r["related_id"],
                r["status_code"],
                r["duration_ms"],
                outcome_of(r),
                r["error"],
            ]
            for r in rows
        ],
    )


@calls_app.command("show")
def calls_show(
    ctx: typer.Context,
    call_id: Annotated[int, typer.Argument(help="The call_id from `fulfil calls`.", metavar="CALL_ID")],
    json_mode: JsonOption = False,
) -> None:
    """Print one call: method, URL, status, duration, request and response, readably.

    Example:

        fulfil calls show 42
    """
    from fulfil.audit.reader import get_call, outcome_of, pretty_body
    from fulfil.errors import UsageError

    state = state_of(ctx, json_mode)
    out = state.output
    call = get_call(schema_ready_url(state), call_id)
    if call is None:
        raise UsageError(f"there is no api call {call_id}")
    if out.json_mode:
        out.record({**call, "outcome": outcome_of(call)})
        return
    request_text, request_lang = pretty_body(call["request_payload"])
    response_text, response_lang = pretty_body(call["response_body"])
    header = [
        f"call {call['call_id']}  {call['service']} {call['endpoint']}  order {call['related_id'] or '-'}",
        f"{call['method'] or ''} {call['url'] or ''}",
        f"status {call['status_code'] if call['status_code'] is not None else '-'}  "
        f"{outcome_of(call)}  {call['duration_ms'] if call['duration_ms'] is not None else '-'} ms  "
        f"started {call['started_at']}  run {call['run_id'] or '-'}",
    ]
    if call["error"]:
        header.append(f"error: {call['error']}")
    for line in header:
        out.line(line)
    _section(out, "request headers", _headers_text(call["request_headers"]), "text")
    _section(out, "request", request_text, request_lang)
    _section(out, "response headers", _headers_text(call["response_headers"]), "text")
    cut = " (cut at the storage cap)" if call["response_truncated"] else ""
    _section(out, f"response{cut}", response_text, response_lang)


def _headers_text(headers: Any) -> str:
    if not isinstance(headers, dict):
        return ""
    return "\n".join(f"{name}: {value}" for name, value in headers.items())


def _section(out: Any, title: str, text: str, language: str) -> None:
    out.line("")
    out.line(f"--- {title} ---")
    if not text:
        out.line("(none)")
        return
    if out.stdout_is_terminal and out.color and language != "text":
        from rich.console import Console
        from rich.syntax import Syntax

        Console(file=out.stdout).print(Syntax(text, language, word_wrap=True, background_color="default"))
    else:
        out.line(text)


# --------------------------------------------------------------------------------------------
# fulfil config check
# --------------------------------------------------------------------------------------------

config_app = typer.Typer(
    help=(
        "Configuration: what is set, where from, and whether it works.\n\nExamples:\n\n"
        "    fulfil config check\n"
        "    fulfil config check --online"
    ),
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(
    ctx: typer.Context,
    online: Annotated[
        bool, typer.Option("--online", help="Also make one cheap authenticated call to each service.")
    ] = False,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Every setting, where it came from (environment, file, default), secrets masked; what each
    command still lacks; a warning for a setting that has no effect; with --online, whether Canada
    Post and Best Buy accept the credentials. Exit 2 when something is missing or refused (a
    warning alone is exit 0).

    Examples:

        fulfil config check

        fulfil config check --online --json
    """
    from fulfil.config_check import offline_checks, online_checks, setting_records

    state = state_of(ctx, json_mode)
    out = state.output
    settings = state.settings
    settings_rows = setting_records(settings)
    checks = offline_checks(settings)
    if online:
        # The online checks record their run and calls in the database: the schema check every
        # database command makes (a database never migrated: exit 2, run `fulfil db migrate`).
        checks += online_checks(settings, schema_ready_url(state))
    if out.json_mode:
        for record in settings_rows:
            out.record(record)
        for check in checks:
            out.record(check.as_record())
    else:
        out.table(
            "Settings",
            ["name", "value", "source", "file key"],
            [[r["name"], r["value"] or "", r["source"], r["file_key"] or ""] for r in settings_rows],
        )
        out.table(
            "Checks",
            ["check", "ok", "message"],
            [[c.check, c.shown_ok, c.message] for c in checks],
        )
    if not all(check.ok for check in checks):
        raise typer.Exit(EXIT_USAGE)
