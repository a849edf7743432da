"""`fulfil report costs`: what the labels cost, by day, service or province."""

from typing import TYPE_CHECKING, Annotated, Any

import typer

from fulfil.cli.shared import FormatOption, JsonOption, NoHeadersOption, app, schema_ready_url, state_of

if TYPE_CHECKING:
    from fulfil.label_costs import Unpriced

report_app = typer.Typer(
    help=(
        "Reports: what the labels cost.\n\nExamples:\n\n"
        "    fulfil report costs --since 7d\n"
        "    fulfil report costs --by service --csv > costs.csv"
    ),
    no_args_is_help=True,
)
app.add_typer(report_app, name="report")

COST_COLUMNS = [
    "key",
    "labels",
    "base",
    "options_and_adjustments",
    "pre_tax",
    "taxes",
    "due",
    "refunded_labels",
    "refunded",
]


@report_app.command("costs")
def report_costs(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only labels bought since then: 30m, 2h, 7d or an ISO date (default: all).",
            metavar="WHEN",
        ),
    ] = None,
    by: Annotated[
        str, typer.Option("--by", help="day (Eastern time), service or province.", metavar="GROUPING")
    ] = "day",
    csv_mode: Annotated[
        bool, typer.Option("--csv", help="The same as --format csv: comma-separated values, a header first.")
    ] = False,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """What the labels cost, as Canada Post priced each one when it was bought (base, options and
    surcharges, taxes, due), grouped by day, service or destination province, with a total.
    Labels voided or refunded are netted out (counted apart). Labels with no price on record
    (a price Canada Post could not give when the label was bought, labels bought before fulfil
    kept prices) are counted on stderr: `fulfil labels prices` fetches them.

    Examples:

        fulfil report costs --since 7d

        fulfil report costs --by service --csv > costs.csv
    """
    from fulfil.audit.reader import parse_since
    from fulfil.db import connect
    from fulfil.errors import UsageError
    from fulfil.label_costs import GROUPINGS, costs_report

    if by not in GROUPINGS:
        raise UsageError(f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    try:
        since_at = parse_since(since) if since else None
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    state = state_of(ctx, json_mode)
    out = state.output
    if csv_mode:  # kept from before --format: its short form
        if out.json_mode or out.table_format not in (None, "csv"):
            raise UsageError("--csv is --format csv: give one form")
        out.table_format = "csv"
    url = schema_ready_url(state)
    with connect(url, autocommit=True, application_name="fulfil-report-costs") as conn:
        rows, total, unpriced = costs_report(conn, by=by, since=since_at)
    lines = [{name: row[name] for name in COST_COLUMNS} for row in rows]
    if out.json_mode:
        for line in lines:
            out.record({"type": by, **_amounts_as_text(line)})
        out.record({"type": "total", "unpriced_labels": unpriced.labels, **_amounts_as_text(total)})
    else:
        out.table(
            f"Label costs by {by} (CAD)",
            COST_COLUMNS,
            [[line[name] for name in COST_COLUMNS] for line in [*lines, total]],
        )
    if unpriced.labels:
        out.warn(f"fulfil: warning: {_unpriced_text(unpriced)}")


def _unpriced_text(unpriced: "Unpriced") -> str:
    """What the totals leave out, and the command that fills it in."""
    text = f"{unpriced.labels} labels in the period have no price on record"
    if unpriced.fetchable == unpriced.labels:
        return f"{text}; `fulfil labels prices` fetches them from Canada Post"
    left = unpriced.labels - unpriced.fetchable
    if not unpriced.fetchable:
        return f"{text}; bought before fulfil (no Canada Post shipment id on record), they cannot be fetched"
    return (
        f"{text}; `fulfil labels prices` fetches {unpriced.fetchable} of them from Canada Post (the "
        f"other {left}, bought before fulfil, have no Canada Post shipment id on record)"
    )


def _amounts_as_text(line: dict[str, Any]) -> dict[str, Any]:
    """Dollars as exact decimal strings ("31.58"), never floats."""
    return {
        key: value if key in ("key", "labels", "refunded_labels") else str(value)
        for key, value in line.items()
    }
