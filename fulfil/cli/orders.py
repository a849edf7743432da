"""`fulfil orders …`: bring Best Buy orders in, from a file or straight from Best Buy."""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fulfil.bestbuy.order_states import KNOWN_STATES
from fulfil.cli.shared import (
    AppState,
    FormatOption,
    JsonOption,
    NoHeadersOption,
    app,
    schema_ready_url,
    state_of,
)

if TYPE_CHECKING:
    from fulfil.workflows.order_import import OrderResult, OrderRun

orders_app = typer.Typer(
    help=(
        "Orders: import Best Buy order objects from a file, or pull them from Best Buy (OR11).\n\n"
        "Examples:\n\n"
        "    fulfil orders pull\n"
        "    fulfil orders import orders.json\n"
        "    fulfil orders show 261250893-A"
    ),
    no_args_is_help=True,
)
app.add_typer(orders_app, name="orders")

ORDER_STATE_CODES = KNOWN_STATES  # Mirakl's order states (fulfil.bestbuy.order_states is light)


@orders_app.command("import")
def orders_import(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            metavar="FILE|-",
            help='An OR11 answer ({"orders": [...]}), a JSON array of orders, or JSON lines; - for stdin.',
        ),
    ],
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Store Best Buy order objects in the orders table (upsert by order_id); safe to repeat.

    Best Buy's order state becomes the order's status: SHIPPING → accepted (labels are bought for
    these), SHIPPED/TO_COLLECT/RECEIVED/CLOSED → shipped, CANCELED/REFUSED → canceled, the
    waiting states → waiting_acceptance or waiting_payment. A status never moves backwards, and a
    copy older than the stored one changes nothing. A malformed object is reported with its
    position and skipped; the others are imported. So is an object PostgreSQL cannot store (a NUL
    character, a lone surrogate, bytes that are not UTF-8, 1e400, nesting over 64 deep), naming
    the field, and every later copy of an order id the input already held (the first copy is used).

    Exit 0: all imported (or unchanged); 3: some objects were rejected; 2: unreadable input.

    Examples:

        fulfil orders import orders.json

        OR11="$URL/api/orders?order_state_codes=SHIPPING"
        curl -s -H "Authorization: $KEY" "$OR11" | fulfil orders import -
    """
    from fulfil.bestbuy.order_documents import read_order_documents
    from fulfil.errors import EXIT_SOME_FAILED
    from fulfil.services import open_session
    from fulfil.workflows.order_import import OrderStore

    state = state_of(ctx, json_mode)
    candidates = read_order_documents(_read_source(source))
    url = schema_ready_url(state)
    with open_session(url, state.settings, "orders import") as session:
        state.run_ids.append(session.run.run_id)
        run = OrderStore(url, _streamer(state)).import_candidates(candidates)
        exit_code = EXIT_SOME_FAILED if run.needs_attention else 0
        session.run.finish(url, exit_code, {"counts": run.counts()})
    _summarise(state, "imported", run)
    if run.needs_attention:
        raise typer.Exit(EXIT_SOME_FAILED)


@orders_app.command("pull")
def orders_pull(
    ctx: typer.Context,
    order_state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            help="Best Buy order states to pull (repeatable or comma-separated). Default: SHIPPING.",
            show_default=False,
            metavar="STATE",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Poll even if the last poll was less than a minute ago, or another pull runs."
        ),
    ] = False,
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Pull orders from Best Buy (OR11, 100 a page) and store them exactly as `orders import` does.

    With SHIPPING among the states (the default), orders held here as accepted that Best Buy no
    longer lists as SHIPPING are read by id too: a cancellation reaches fulfil this way, before a
    label is bought. Mirakl allows at most one order poll a minute: a pull sooner than that is
    refused (exit 75) unless --force. An order PostgreSQL cannot store is rejected alone, naming
    the field, as `orders import` does. A listing that does not end (the same page again, a count
    that keeps growing) stops the pull with a message; the orders read by then are stored.

    Exit 0: done; 3: some orders were rejected, or the pull stopped early; 2: configuration
    problem (e.g. the API key was refused); 75: too soon after the last poll.

    Examples:

        fulfil orders pull

        fulfil orders pull --state WAITING_ACCEPTANCE,SHIPPING --json

        fulfil orders pull && fulfil labels create && fulfil tracking push
    """
    from fulfil.bestbuy.client import BestBuyClient
    from fulfil.bestbuy.errors import PollTooSoon
    from fulfil.errors import EXIT_SOME_FAILED, EXIT_USAGE
    from fulfil.services import open_session
    from fulfil.workflows.order_import import OrderPull

    state = state_of(ctx, json_mode)
    states = _states_from(order_state)
    url = schema_ready_url(state)
    settings = state.settings
    bestbuy = settings.bestbuy()  # configuration errors before anything is called
    with open_session(url, settings, "orders pull") as session:
        state.run_ids.append(session.run.run_id)
        client = BestBuyClient(bestbuy, session.bestbuy_http())
        pull = OrderPull(
            database_url=url, client=client, run_id=session.run.run_id, on_result=_streamer(state)
        )
        try:
            run = pull.pull(states, force=force)
        except PollTooSoon as exc:
            session.run.finish(url, exc.exit_code, {"refused": str(exc)})
            raise
        exit_code = EXIT_USAGE if run.fatal else (EXIT_SOME_FAILED if run.needs_attention else 0)
        session.run.finish(url, exit_code, {"counts": run.counts(), "stopped": run.stopped})
    _summarise(state, "pulled", run)
    if run.stopped:
        state.output.warn(f"fulfil: warning: stopped early: {run.stopped}")
    if run.fatal:
        raise run.fatal
    if run.needs_attention:
        raise typer.Exit(EXIT_SOME_FAILED)


@orders_app.command("show")
def orders_show(
    ctx: typer.Context,
    order_id: Annotated[
        str, typer.Argument(help="The Best Buy order id.", show_default=False, metavar="ORDER_ID")
    ],
    json_mode: JsonOption = False,
    output_format: FormatOption = None,
    no_headers: NoHeadersOption = False,
) -> None:
    """Everything about one order: the order (buyer, address, lines, Best Buy state, shipping
    deadline), its shipment and every move with its time and reason, its label, where the parcel
    is, the API calls made for it (ids for `fulfil calls show`), and the next step. From the
    database only.

    Exit 0: shown; 3: fulfil has no such order.

    Examples:

        fulfil orders show 261250893-A

        fulfil orders show 261250893-A --json | jq .history
    """
    from fulfil.carrier_tracking.show import parcel_record
    from fulfil.db import connect
    from fulfil.errors import EXIT_SOME_FAILED
    from fulfil.order_story import order_story
    from fulfil.services import tracking_store

    state = state_of(ctx, json_mode)
    out = state.output
    url = schema_ready_url(state)
    with tracking_store(url, state.settings, None, "orders-show") as store:
        rows = [row for row in store.tracking_of([order_id]) if row["order_id"] == order_id]
        tracking = parcel_record(rows[0], store.policy, store.now()) if rows else None
    with connect(url, application_name="fulfil-orders-show") as conn:
        story = order_story(conn, order_id, tracking)
    if story is None:
        from fulfil.orders_held import NOT_HELD

        out.warn(f"fulfil: error: order {order_id} {NOT_HELD}")  # said as every command says it
        raise typer.Exit(EXIT_SOME_FAILED)
    if out.json_mode:
        out.record(story)
        return
    _show_story(out, story)


def _show_story(out: Any, story: dict[str, Any]) -> None:
    order = story["order"]
    address = order["shipping_address"] or {}
    where = ", ".join(
        part
        for part in (
            address.get("street_1"),
            address.get("street_2"),
            address.get("city"),
            address.get("state"),
            address.get("zip_code"),
        )
        if part
    )
    out.table(
        f"Order {order['order_id']}",
        ["field", "value"],
        [
            ["fulfil status", order["status"]],
            ["Best Buy state", order["best_buy_state"] or "-"],
            ["buyer", order["buyer"] or "-"],
            ["ship to", where or "-"],
            ["shipping deadline", order["shipping_deadline"] or "-"],
            ["total", order["total_price"] or "-"],
        ],
    )
    if order["lines"]:
        out.table(
            "Lines",
            ["sku", "product", "quantity", "price", "state"],
            [
                [line["sku"], line["product"], line["quantity"], line["price"], line["state"]]
                for line in order["lines"]
            ],
        )
    shipment = story["shipment"]
    if shipment is not None:
        out.table(
            "Shipment",
            ["field", "value"],
            [
                ["status", f"{shipment['status']}: {shipment['meaning']}"],
                ["tracking PIN", shipment["tracking_pin"] or "-"],
                ["Canada Post shipment", shipment["cp_shipment_id"] or "-"],
                ["label PDF", shipment["label_pdf_path"] or "-"],
                *_choice_rows(shipment),
                ["last error", shipment["last_error"] or "-"],
            ],
        )
    if story.get("parcels"):
        out.table(
            "Parcels (Best Buy has parcel 1's tracking number)",
            ["parcel", "status", "tracking PIN", "service", "weight kg", "label PDF", "last error"],
            [
                [
                    f"{p['parcel_no']} of {p['parcel_count']}",
                    p["status"],
                    p["tracking_pin"] or "-",
                    p["service_code"] or "-",
                    ((p["label_choice"] or {}).get("parcel") or {}).get("weight_kg") or "-",
                    p["label_pdf_path"] or "-",
                    p["last_error"] or "-",
                ]
                for p in story["parcels"]
            ],
        )
    if story["history"] and story.get("parcels"):
        out.table(
            "History",
            ["at", "parcel", "from", "to", "move", "reason"],
            [
                [
                    _when(e["at"]),
                    e["parcel_no"],
                    e["from"] or "-",
                    e["to"],
                    e["move"] or "-",
                    e["reason"] or "",
                ]
                for e in story["history"]
            ],
        )
    elif story["history"]:
        out.table(
            "History",
            ["at", "from", "to", "move", "reason"],
            [
                [_when(e["at"]), e["from"] or "-", e["to"], e["move"] or "-", e["reason"] or ""]
                for e in story["history"]
            ],
        )
    if story["labels"]:
        out.table(
            "Labels (cost: Canada Post's amount due, CAD)",
            ["tracking PIN", "bought", "outcome", "cost", "label PDF"],
            [
                [
                    label["tracking_pin"],
                    _when(label["bought_at"]),
                    _label_outcome(label),
                    label["cost"] or "unknown",
                    label["label_pdf_path"] or "-",
                ]
                for label in story["labels"]
            ],
        )
    tracking = story["tracking"]
    if tracking is not None:
        last = tracking["last_event"]
        out.table(
            "Parcel",
            ["status", "expected", "last event", "freshness"],
            [
                [
                    tracking["carrier_status"],
                    tracking["expected_delivery"] or "-",
                    f"{last['at']} {last['description']}" if last else "none yet",
                    tracking["freshness"],
                ]
            ],
        )
    if story["calls"]:
        out.table(
            "API calls (fulfil calls show ID)",
            ["id", "at", "service", "endpoint", "status", "outcome", "ms"],
            [
                [
                    c["call_id"],
                    _when(c["at"]),
                    c["service"],
                    c["endpoint"],
                    c["status_code"] or "-",
                    c["outcome"],
                    c["duration_ms"],
                ]
                for c in story["calls"]
            ],
        )
    for label in story["surplus_labels"]:
        out.prose(
            f"surplus label: Canada Post shipment {label['cp_shipment_id']}, PIN {label['tracking_pin']}: "
            f"{label['reason']}" + (" (resolved)" if label["resolved_at"] else "")
        )
    out.prose(f"Next: {story['next_step']}")


def _when(iso: str | None) -> str:
    """A time as a person reads it in a table, to the second, in UTC like the rest of the story
    (``--json`` keeps the exact ISO time)."""
    if iso is None:
        return "-"
    from datetime import UTC, datetime

    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _label_outcome(label: dict[str, Any]) -> str:
    # label_history's checks tie each outcome to its time, so the times say which one it was.
    if label["voided_at"] is not None:
        return f"voided {_when(label['voided_at'])}"
    if label["refund_requested_at"] is not None:
        ticket = f", ticket {label['refund_ticket_id']}" if label["refund_ticket_id"] else ""
        return f"refund requested {_when(label['refund_requested_at'])}{ticket}"
    return "active"


def _states_from(values: list[str] | None) -> list[str]:
    from fulfil.errors import UsageError

    states: list[str] = []
    for value in values or ["SHIPPING"]:
        states.extend(part.strip().upper() for part in value.split(",") if part.strip())
    unknown = [s for s in states if s not in ORDER_STATE_CODES]
    if unknown or not states:
        raise UsageError(
            f"--state {', '.join(unknown) or '(empty)'}: expected Best Buy order states among "
            + ", ".join(ORDER_STATE_CODES)
        )
    return list(dict.fromkeys(states))


def _read_source(source: str) -> bytes:
    """The bytes as given: text that is not UTF-8 costs only the orders holding it (see
    fulfil.bestbuy.order_documents), so it is not refused here."""
    from fulfil.errors import UsageError

    try:
        return sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None


def _streamer(state: AppState) -> "Callable[[OrderResult], None]":
    out = state.output

    def on_result(result: "OrderResult") -> None:
        if out.json_mode:
            out.record(result.as_record())

    return on_result


def _summarise(state: AppState, verb: str, run: "OrderRun") -> None:
    """Problems always on stderr; the counts for a person (or -v); nothing else under cron."""
    out = state.output
    for result in run.results:
        if result.outcome in ("rejected", "not_found"):
            where = f"{result.position}: " if result.position else ""
            out.warn(f"fulfil: error: {result.outcome}: {where}{result.reason}")
    if out.json_mode:
        return
    counts = run.counts()
    summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    if out.stdout_is_terminal:
        out.table(f"orders {verb}", ["outcome", "orders"], [[o, n] for o, n in counts.items()])
    elif out.verbose:
        # Talk, not data: on stderr, and only when asked for (cron mails the problems above).
        out.warn(f"fulfil: note: {verb}: {summary}")
    else:
        out.info(f"{verb}: {summary}")


def _choice_rows(shipment: dict[str, Any]) -> list[list[str]]:
    """The parcel, service and options the label was bought as (none recorded before 0019)."""
    choice = shipment.get("label_choice")
    if not choice:
        return []
    parcel = choice.get("parcel") or {}
    size = ""
    if parcel.get("length_cm"):
        size = f" {parcel['length_cm']} × {parcel['width_cm']} × {parcel['height_cm']} cm"
    rows = [
        ["parcel", f"{parcel.get('weight_kg')} kg{size} ({parcel.get('reason')})"],
        ["service", f"{choice.get('service_code')} ({choice.get('service_reason')})"],
    ]
    options = choice.get("options") or []
    if options:
        rows.append(
            [
                "options",
                ", ".join(f"{o['code']} {o['amount']}" if o.get("amount") else o["code"] for o in options),
            ]
        )
    return rows
