"""`fulfil manifest …`: end-of-day manifests: transmit the day's labels, list and show manifests."""

from typing import Annotated, Any

import typer

from fulfil.cli.shared import FormatOption, JsonOption, NoHeadersOption, app, schema_ready_url, state_of

manifest_app = typer.Typer(
    help="End-of-day manifests (FULFIL_CANADAPOST_MANIFEST=end_of_day): transmit the day's "
    "labels to Canada Post exactly once, and keep each manifest's PO number and PDF.\n\nExamples:\n\n"
    "    fulfil manifest transmit\n"
    "    fulfil manifest list --since 7d",
    no_args_is_help=True,
)
app.add_typer(manifest_app, name="manifest")

TRANSMIT_COLUMNS = ["date", "group_id", "outcome", "po_number", "shipments", "pdf_path", "error"]


@manifest_app.command("transmit")
def manifest_transmit(
    ctx: typer.Context,
    day: Annotated[
        str | None,
        typer.Option(
            "--date",
            metavar="YYYY-MM-DD",
            help="The day whose labels to transmit (Canada Post's Eastern day; default: today).",
            show_default=False,
        ),
    ] = None,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Transmit the day's group of contract labels (fulfil-YYYYMMDD) to Canada Post, once, then
    fetch each manifest: its PO number, its links, the shipments on it (marked transmitted) and its
    PDF (into <labels dir>/manifests/). Labels voided or being voided, of canceled orders, waiting
    for review, surplus labels and shipments fulfil did not record are left out, each with why.

    Intent first: the transmit is committed before it is sent, and one whose answer is lost is
    found again by listing Canada Post's manifests of its days, never sent blindly twice. A group
    transmitted already is not sent again (exit 0, says so). Transmits and manifests left
    unfinished by an earlier run are settled and finished first.

    Exit 0: transmitted, or nothing to transmit; 3: not sent, refused, not settled yet, another
    run holds the group, a label left out that needs you, or a manifest step still to do (the
    next run does it); 2: a configuration problem (contract shipping, the sender, credentials).

    Examples:

        fulfil manifest transmit

        fulfil manifest transmit --date 2026-12-01 --json
    """
    from datetime import date

    from fulfil.canadapost.groups import canada_post_day
    from fulfil.errors import EXIT_SOME_FAILED, EXIT_UNEXPECTED, UsageError
    from fulfil.manifests.transmit import transmitter
    from fulfil.services import open_session

    if day is None:
        chosen = canada_post_day()
    else:
        try:
            chosen = date.fromisoformat(day.strip())
        except ValueError:
            raise UsageError(f"--date {day!r}: expected a day like 2026-12-01") from None
    state = state_of(ctx, json_mode)
    settings = state.settings
    settings.canadapost()  # configuration errors before anything is claimed
    settings.sender()
    settings.http()
    url = schema_ready_url(state)
    results: list[Any] = []
    with open_session(url, settings, "manifest transmit") as session:
        state.run_ids.append(session.run.run_id)
        exit_code = EXIT_UNEXPECTED
        try:
            with transmitter(session) as worker:
                results = worker.run(chosen)
            exit_code = EXIT_SOME_FAILED if any(r.needs_attention for r in results) else 0
        except BaseException as exc:
            # The run's row says how it ended: a FulfilError's code, a signal's (RunInterrupted).
            exit_code = getattr(exc, "exit_code", EXIT_UNEXPECTED)
            raise
        finally:
            session.run.finish(url, exit_code, {"outcomes": [r.outcome for r in results]})
    records = [result.as_record() for result in results]
    state.metrics.order_results("manifest transmit", _counts(records))
    _render_transmits(state, records)
    if exit_code:
        raise typer.Exit(exit_code)


def _counts(records: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record["outcome"]] = counts.get(record["outcome"], 0) + 1
    return counts


def _render_transmits(state: Any, records: list[dict[str, Any]]) -> None:
    out = state.output
    if out.json_mode:
        for record in records:
            out.record(record)
    elif out.stdout_is_terminal:
        rows = []
        for record in records:
            manifests = record["manifests"] or [{}]
            for manifest in manifests:
                rows.append(
                    [
                        record["date"],
                        record["group_id"],
                        record["outcome"],
                        manifest.get("po_number"),
                        manifest.get("shipments"),
                        manifest.get("pdf_path"),
                        manifest.get("error") or record["error"],
                    ]
                )
        out.table("Manifests", TRANSMIT_COLUMNS, rows)
    for record in records:
        problems = [record["error"]] if record["error"] else []
        problems += [
            f"manifest {m['manifest_id']}: {m['error']}" for m in record["manifests"] if m.get("error")
        ]
        problems += [
            f"left out {e['cp_shipment_id']} (order {e['order_id'] or '?'}): {e['why']}"
            for e in record["excluded"]
            if e.get("attention")
        ]
        where = f"fulfil: {record['date']} ({record['group_id']}): {record['outcome']}"
        for problem in problems:
            out.warn(f"fulfil: error: {where.removeprefix('fulfil: ')}: {problem}")
        if record["message"]:
            out.info(f"{where}: {record['message']}")
        for entry in record["excluded"]:
            if not entry.get("attention"):
                out.info(
                    f"{where}: left out {entry['cp_shipment_id']} (order {entry['order_id']}): {entry['why']}"
                )


@manifest_app.command("list")
def manifest_list(
    ctx: typer.Context,
    since: Annotated[
        str,
        typer.Option(
            "--since",
            help="Transmits of the days since then: 7d, 2h or a date (default: 7d).",
            metavar="WHEN",
        ),
    ] = "7d",
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Every transmit of the days since (newest first), each with its manifests: the day, the
    group, the transmit's status, each manifest's Canada Post id, PO number, shipments and PDF, and
    what is still wrong. From the database: no call to Canada Post.

    Exit 0 (an empty list too); 2: a bad option.

    Examples:

        fulfil manifest list

        fulfil manifest list --since 30d --json | jq -r '.po_number'
    """
    from fulfil.audit.reader import parse_since
    from fulfil.canadapost.groups import canada_post_day
    from fulfil.db import connect
    from fulfil.errors import UsageError
    from fulfil.manifests.store import ManifestStore
    from fulfil.manifests.views import LIST_COLUMNS, transmit_lines

    try:
        since_day = canada_post_day(parse_since(since))
    except (ValueError, UsageError) as exc:
        raise UsageError(f"--since {since!r}: expected 7d, 2h or a date like 2026-12-01 ({exc})") from None
    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)
    from psycopg.rows import dict_row

    with connect(url, autocommit=True, row_factory=dict_row, application_name="fulfil-manifest-list") as conn:
        lines = transmit_lines(ManifestStore(conn, owner="manifest list", run_id=None), since_day)
    if out.json_mode:
        for line in lines:
            out.record(line)
        return
    if not lines:
        out.info(f"No transmit since {since_day}.")
        return
    out.table(
        f"Manifests since {since_day}", LIST_COLUMNS, [[line[c] for c in LIST_COLUMNS] for line in lines]
    )


@manifest_app.command("show")
def manifest_show(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="ID|PO", help="Canada Post's manifest id or its PO number.")],
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """One manifest: its PO number, day and group, when it was transmitted, its links, its PDF,
    the shipments on it (order, PIN, state) and what its transmit left out and why. From the
    database: no call to Canada Post.

    Exit 0 when shown; 3 when fulfil has no manifest with that id or PO number.

    Examples:

        fulfil manifest show P123456789

        fulfil manifest show 732071711235567991 --json |
            jq '.shipments[].order_id'
    """
    from psycopg.rows import dict_row

    from fulfil.db import connect
    from fulfil.errors import EXIT_SOME_FAILED
    from fulfil.manifests.store import ManifestStore
    from fulfil.manifests.views import manifest_story

    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)
    with connect(url, autocommit=True, row_factory=dict_row, application_name="fulfil-manifest-show") as conn:
        stories = manifest_story(ManifestStore(conn, owner="manifest show", run_id=None), key.strip())
    if not stories:
        out.warn(
            f"fulfil: error: no manifest {key!r} (neither a Canada Post manifest id nor a PO number "
            "fulfil has)"
        )
        raise typer.Exit(EXIT_SOME_FAILED)
    for story in stories:
        if out.json_mode:
            out.record(story)
            continue
        facts = [
            [name, story[name]]
            for name in (
                "manifest_id",
                "po_number",
                "date",
                "group_id",
                "transmitted_at",
                "found_by",
                "pdf_path",
            )
        ]
        facts += [[f"link {rel}", href] for rel, href in story["links"].items() if href]
        if story["error"]:
            facts.append(["error", story["error"]])
        out.table(f"Manifest {story['po_number'] or story['manifest_id']}", ["field", "value"], facts)
        out.table(
            f"Shipments on manifest {story['po_number'] or story['manifest_id']}",
            ["cp_shipment_id", "order_id", "tracking_pin", "status"],
            [
                [s["cp_shipment_id"], s["order_id"], s["tracking_pin"], s["status"]]
                for s in story["shipments"]
            ],
        )
        if story["excluded"]:
            out.table(
                "Left out of the manifest",
                ["cp_shipment_id", "order_id", "why"],
                [[e["cp_shipment_id"], e.get("order_id"), e["why"]] for e in story["excluded"]],
            )
