"""`fulfil parcels …`: per-SKU parcel profiles: import them from a CSV, list them, and find the SKUs
of orders still to label that have none."""

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from fulfil.cli.shared import (
    AppState,
    FormatOption,
    JsonOption,
    NoHeadersOption,
    app,
    schema_ready_url,
    state_of,
)

parcels_app = typer.Typer(
    help="Parcel profiles: what one unit of each SKU weighs and measures, packed, so each label "
    "is bought for the parcel that ships (the FULFIL_PARCEL_* settings are the default for a SKU "
    "with none).\n\n"
    "Examples:\n\n"
    "    fulfil parcels import parcels.csv\n"
    "    fulfil parcels check",
    no_args_is_help=True,
)
app.add_typer(parcels_app, name="parcels")

LIST_COLUMNS = ["sku", "weight_kg", "length_cm", "width_cm", "height_cm", "box", "ships_alone", "updated_at"]
CHECK_COLUMNS = ["sku", "orders", "example_order", "product_title"]
# A catalogue of profiles is a few thousand lines; anything far larger is not one.
MAX_FILE_BYTES = 16 * 1024 * 1024


@parcels_app.command("import")
def parcels_import(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            metavar="FILE.csv|-",
            help="CSV with the header sku,weight_kg,length_cm,width_cm,height_cm,box,ships_alone; "
            "- for stdin.",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file only: no database, nothing written.")
    ] = False,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Insert or update one parcel profile per CSV row (by SKU), all in one transaction; safe to
    repeat (a profile already as given is left unchanged).

    Columns: sku, weight_kg (0.001 to 30, in grams at most), length_cm, width_cm, height_cm (all
    three or none, 0.1 to 999.9, in millimetres at most), box (a name for the packer, optional),
    ships_alone (true/false, yes/no, 1/0 or empty; optional). Nothing is rounded: a row Canada
    Post could not take is rejected, each on its own line of stderr with its line number, its
    column and why (as is a SKU given twice in the file), and the other rows are imported. A
    header that is not this one imports nothing.

    Exit 0: every row imported (or unchanged); 3: some rows were rejected; 2: unreadable file or
    wrong header.

    Examples:

        fulfil parcels import profiles.csv

        fulfil parcels import --dry-run - < profiles.csv
    """
    from fulfil.errors import EXIT_SOME_FAILED
    from fulfil.parcels.profiles import read_profile_rows

    state = state_of(ctx, json_mode)
    out = state.output
    rows, rejections = read_profile_rows(_read_text(source))
    profiles = [row.profile for row in rows]
    if dry_run:
        outcomes = dict.fromkeys((p.sku for p in profiles), "valid")
    else:
        from fulfil.parcels.store import ParcelProfileStore

        url = schema_ready_url(state)
        with ParcelProfileStore.open(url, purpose="parcels-import") as store:
            outcomes = store.upsert(profiles).outcomes()
    records: list[dict[str, Any]] = [
        {
            "line": row.line,
            "sku": row.profile.sku,
            "outcome": outcomes[row.profile.sku],
            "field": None,
            "error": None,
        }
        for row in rows
    ]
    records += [
        {"line": r.line, "sku": None, "outcome": "rejected", "field": r.field, "error": r.message}
        for r in rejections
    ]
    records.sort(key=lambda record: record["line"])
    for rejection in rejections:
        out.warn(f"fulfil: error: {rejection}")
    if out.json_mode:
        for record in records:
            out.record(record)
    else:
        _summarise(state, records, dry_run=dry_run, attention=bool(rejections))
    if rejections:
        raise typer.Exit(EXIT_SOME_FAILED)


@parcels_app.command("list")
def parcels_list(
    ctx: typer.Context,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Every parcel profile, in SKU order: weight, dimensions, box, whether it ships alone, and when
    it last changed. From the database.

    Exit 0 (an empty list too).

    Examples:

        fulfil parcels list

        fulfil parcels list --json | jq -r 'select(.ships_alone) | .sku'
    """
    from fulfil.parcels.store import ParcelProfileStore

    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)
    with ParcelProfileStore.open(url, purpose="parcels-list") as store:
        records = [stored.as_record() for stored in store.all()]
    if out.json_mode:
        for record in records:
            out.record(record)
        return
    if not records:
        out.info("No parcel profiles yet (`fulfil parcels import FILE.csv` adds them).")
        return
    out.table("Parcel profiles", LIST_COLUMNS, [[_cell(r[c]) for c in LIST_COLUMNS] for r in records])


@parcels_app.command("check")
def parcels_check(
    ctx: typer.Context,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """The SKUs of accepted orders still to label (no label bought yet) that have no parcel
    profile, with how many orders each, one of them, and a product title: their labels would be
    bought for the default parcel (FULFIL_PARCEL_*). Lines canceled, refused or closed are left
    out. From the database.

    Exit 0: every such SKU has a profile (or no order waits); 3: some have none (listed on stdout,
    counted on stderr), for cron to mail.

    Examples:

        fulfil parcels check

        fulfil parcels check --json | jq -r .sku
    """
    from fulfil.errors import EXIT_SOME_FAILED
    from fulfil.parcels.store import ParcelProfileStore

    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)
    with ParcelProfileStore.open(url, purpose="parcels-check") as store:
        records = [missing.as_record() for missing in store.skus_without_profile()]
    if not records:
        if not out.json_mode:
            out.info("Every SKU of the orders still to label has a parcel profile.")
        return
    if out.json_mode:
        for record in records:
            out.record(record)
    else:
        out.table(
            "SKUs with no parcel profile",
            CHECK_COLUMNS,
            [[_cell(r[c]) for c in CHECK_COLUMNS] for r in records],
        )
    many = len(records) != 1
    out.warn(
        f"fulfil: error: {len(records)} SKU{'s' if many else ''} of orders still to label "
        f"{'have' if many else 'has'} no parcel profile: their labels would use the default parcel "
        "(`fulfil parcels import` adds profiles)"
    )
    raise typer.Exit(EXIT_SOME_FAILED)


# --------------------------------------------------------------------------------------------


def _read_text(source: str) -> str:
    """The file's text (UTF-8, a byte order mark allowed); UsageError when it cannot be read."""
    from fulfil.errors import UsageError

    try:
        if source == "-":
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            with Path(source).open("rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{source}: more than {MAX_FILE_BYTES // (1024 * 1024)} MiB: not a profile file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(
            f'{source}: line {line}: not UTF-8 text (save it as "CSV UTF-8"); nothing was imported'
        ) from None


def _summarise(state: AppState, records: list[dict[str, Any]], *, dry_run: bool, attention: bool) -> None:
    """The counts: a table for a person; under cron a line when a row was rejected (or -v)."""
    out = state.output
    outcomes = ("valid", "rejected") if dry_run else ("inserted", "updated", "unchanged", "rejected")
    counts = dict.fromkeys(outcomes, 0)
    for record in records:
        counts[record["outcome"]] += 1
    if out.stdout_is_terminal:
        title = "parcels import (dry run: nothing written)" if dry_run else "parcels import"
        out.table(title, ["outcome", "profiles"], [[outcome, n] for outcome, n in counts.items()])
        return
    summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    if dry_run:
        summary += " (dry run: nothing written)"
    if out.verbose or attention:
        out.line(f"parcels import: {summary}")
    else:
        out.info(f"parcels import: {summary}")


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "isoformat"):
        return value.strftime("%Y-%m-%d %H:%M")
    return value
