"""`fulfil status`: what is where, what needs attention and why, and the command that fixes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from fulfil.audit.budget import BudgetState, budget_states
from fulfil.canadapost.groups import canada_post_day, day_group_id, group_day
from fulfil.db import connect, query
from fulfil.label_files import file_matches
from fulfil.shipments.states import ShipmentState

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class AttentionItem:
    problem: str
    order_id: str | None  # None: a problem of several orders (a day's labels not transmitted)
    reason: str
    fix: str

    def as_record(self) -> dict[str, Any]:
        return {"type": "attention", "problem": self.problem, "order_id": self.order_id,
                "reason": self.reason, "fix": self.fix}  # fmt: skip


@dataclass
class StatusReport:
    orders: dict[str, int] = field(default_factory=dict)
    shipments: dict[str, int] = field(default_factory=dict)
    attention: list[AttentionItem] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    # The rate budgets shared by every process: limits, use in the last window, pauses.
    budgets: list[BudgetState] = field(default_factory=list)
    # `fulfil tracking pause` in force for every host (paused_at, reason), else None.
    tracking_pause: dict[str, Any] | None = None
    # Labels of the last week not printed yet (labels, oldest), for `fulfil labels print`.
    unprinted: dict[str, Any] | None = None

    @property
    def needs_attention(self) -> bool:
        return bool(self.attention)

    def records(self) -> list[dict[str, Any]]:
        """The report as JSON lines (README, "fulfil status")."""
        lines: list[dict[str, Any]] = []
        lines += [{"type": "orders", "status": s, "count": n} for s, n in self.orders.items()]
        lines += [{"type": "shipments", "status": s, "count": n} for s, n in self.shipments.items()]
        lines += [item.as_record() for item in self.attention]
        lines += [{"type": "run", **run} for run in self.runs]
        lines += [budget.as_record() for budget in self.budgets]
        if self.tracking_pause is not None:
            lines.append({"type": "tracking_pause", **self.tracking_pause})
        if self.unprinted is not None:
            lines.append({"type": "unprinted_labels", **self.unprinted})
        return lines


S = ShipmentState
_FIXES = {
    S.LABEL_FAILED: "fix the order or the settings, then `fulfil labels retry {order}`",
    S.NEEDS_REVIEW: (
        "check Canada Post for labels of this order (void extras); if none was bought: "
        "`fulfil labels retry --not-bought {order}`"
    ),
    # A refused push is not taken again by `tracking push` until `tracking retry` puts it back.
    S.TRACKING_FAILED: (
        "see the error; once fixed, `fulfil tracking retry {order}` then "
        "`fulfil tracking push --order {order}`"
    ),
    S.ORDER_CANCELED: (
        "the order was canceled on Best Buy: `fulfil labels void {order}` voids or refunds its label "
        "(every such order: `fulfil labels void --canceled`)"
    ),
}


_INTERRUPTED_VOID = "a void or refund request was interrupted (a crashed or killed run), not settled yet"


def build_report(database_url: str, *, stale_hours: int = 24, no_scan_hours: int = 24) -> StatusReport:
    with connect(database_url, row_factory=dict_row, application_name="fulfil-status") as conn:
        return report_from(conn, stale_hours=stale_hours, no_scan_hours=no_scan_hours)


def report_from(
    conn: psycopg.Connection[dict[str, Any]], *, stale_hours: int = 24, no_scan_hours: int = 24
) -> StatusReport:
    """The report, from every query it needs run on ``conn`` (tests/test_query_plans.py records
    them there and checks their plans: none may scan a big table)."""
    report = StatusReport()
    report.orders = {r["status"]: r["count"] for r in conn.execute(query("status", "order_counts"))}
    report.shipments = {r["status"]: r["count"] for r in conn.execute(query("status", "shipment_counts"))}

    for row in conn.execute(query("status", "failed_and_review")):
        fix = _FIXES[row["status"]]
        if row["last_error_code"] in ("two-labels", "duplicate-labels"):
            fix = "void all but one of its labels at Canada Post, then `fulfil labels keep {order} ID`"
        report.attention.append(
            AttentionItem(
                row["status"],
                row["order_id"],
                row["last_error"] or row["status"],
                fix.format(order=row["order_id"]),
            )
        )
    for row in conn.execute(query("status", "open_purchases")):
        if row["lease_owner"] is None or row["lease_expired"] or _owner_is_dead(row["lease_owner"]):
            reason = "a label purchase was interrupted (crashed or killed run) and is not settled yet"
            if row["last_error"]:
                reason = row["last_error"]
            report.attention.append(
                AttentionItem("interrupted_purchase", row["order_id"], reason, "`fulfil labels reconcile`")
            )
    for row in conn.execute(query("status", "open_voids")):
        if row["lease_owner"] is None or row["lease_expired"] or _owner_is_dead(row["lease_owner"]):
            report.attention.append(
                AttentionItem(
                    "interrupted_void",
                    row["order_id"],
                    row["last_error"] or _INTERRUPTED_VOID,
                    f"`fulfil labels void {row['order_id']}` settles it by reading Canada Post",
                )
            )
    for row in conn.execute(query("status", "surplus_labels")):
        report.attention.append(
            AttentionItem(
                "surplus_label",
                row["order_id"],
                row["reason"],
                "void all but one of the order's labels at Canada Post (shipment "
                f"{row['cp_shipment_id']}, PIN {row['tracking_pin']}, is one of them; unused labels are "
                "refunded), then "
                f"`fulfil labels keep {row['order_id']} SHIPMENT_ID` with the one kept",
            )
        )
    today_group = day_group_id(canada_post_day())
    for row in conn.execute(query("status", "untransmitted_groups"), {"today_group": today_group}):
        report.attention.append(_untransmitted_item(row))
    for row in conn.execute(query("status", "labels_without_pdf")):
        if row["label_pdf_path"] is not None and file_matches(row["label_pdf_path"], row["label_pdf_sha256"]):
            continue
        report.attention.append(
            AttentionItem(
                "label_without_pdf",
                row["order_id"],
                row["last_error"]
                or f"label {row['tracking_pin']} is bought but its PDF is not on disk"
                + (
                    f" (expected {row['label_pdf_path']}, missing or changed)"
                    if row["label_pdf_path"]
                    else ""
                ),
                f"`fulfil labels download --order {row['order_id']}`",
            )
        )
    for row in conn.execute(query("status", "tracking_not_pushed"), {"hours": stale_hours}):
        report.attention.append(
            AttentionItem(
                "tracking_not_pushed",
                row["order_id"],
                f"label bought {_ago(row['since'])} and Best Buy has not confirmed the shipment "
                f"({row['status']})",
                f"`fulfil tracking push --order {row['order_id']}`",
            )
        )
    for row in conn.execute(query("status", "past_shipping_deadline")):
        order_id = row["order_id"]
        where = row["shipment_status"] or "no label yet"
        report.attention.append(
            AttentionItem(
                "past_shipping_deadline",
                order_id,
                f"Best Buy's shipping deadline was {row['deadline']:%Y-%m-%d %H:%M} UTC ({where}); "
                "late orders may be canceled by Best Buy",
                _ship_now(order_id, row["shipment_status"]),
            )
        )
    for row in conn.execute(query("status", "missing_at_best_buy")):
        order_id = row["order_id"]
        report.attention.append(
            AttentionItem(
                "not_at_best_buy",
                order_id,
                f"accepted here, but Best Buy has not returned it since {row['since']:%Y-%m-%d %H:%M} UTC "
                "(an order of another shop?)",
                f"check the order on Best Buy and FULFIL_BESTBUY_SHOP_ID; `fulfil orders show {order_id}`",
            )
        )
    for row in conn.execute(query("status", "parcels_needing_attention"), {"no_scan_hours": no_scan_hours}):
        report.attention.append(_parcel_item(row, no_scan_hours))
    for row in conn.execute(query("status", "last_runs")):
        run = {
            "command": row["command"],
            "started_at": row["started_at"],
            "finished_at": row["finished_at"],
            "exit_code": row["exit_code"],
            "host": row["hostname"],
            "summary": row["summary"],
        }
        if row["finished_at"] is None:
            run["state"] = (
                "ended without finishing"
                if _owner_is_dead(row["lease_owner"])
                else "running (or on another host)"
            )
        else:
            run["state"] = "ok" if row["exit_code"] == 0 else f"exit {row['exit_code']}"
        report.runs.append(run)
    report.budgets = budget_states(conn)
    report.tracking_pause = conn.execute(query("carrier_tracking", "refresh_pause")).fetchone()
    unprinted = conn.execute(query("label_prints", "unprinted_labels")).fetchone()
    if unprinted and unprinted["labels"]:
        report.unprinted = {"labels": unprinted["labels"], "oldest": unprinted["oldest"]}
    return report


def _untransmitted_item(row: dict[str, Any]) -> AttentionItem:
    """A past day's end-of-day labels that were never transmitted: Canada Post has not been told
    to expect (nor to bill) them, and the driver's scan has no manifest to match."""
    group_id = row["group_id"]
    day = group_day(group_id)
    when = f" --date {day:%Y-%m-%d}" if day is not None else ""
    return AttentionItem(
        "untransmitted_labels",
        None,
        f"{row['labels']} labels of group {group_id} (the oldest bought {row['oldest']:%Y-%m-%d %H:%M}) "
        "were never transmitted on a manifest",
        f"`fulfil manifest transmit{when}`",
    )


def _parcel_item(row: dict[str, Any], no_scan_hours: int) -> AttentionItem:
    """One item per parcel, the most pressing of what is wrong with it."""
    order_id = row["order_id"]
    show = f"`fulfil tracking show {order_id}`"
    last = row["last_event_description"] or "no event yet"
    if row["last_event_place"]:
        last += f" ({row['last_event_place']})"
    status = row["carrier_status"]
    if status == "returned":
        return AttentionItem(
            "parcel_returned", order_id, f"Canada Post is returning the parcel to you: {last}",
            f"tell the customer, then reship or refund; {show}",
        )  # fmt: skip
    if status == "delivery_attempted":
        return AttentionItem(
            "delivery_attempted", order_id, f"Canada Post could not deliver: {last}",
            f"tell the customer where to pick it up; {show}",
        )  # fmt: skip
    if status == "exception":
        return AttentionItem(
            "delivery_exception", order_id, f"Canada Post holds or delays the parcel: {last}",
            f"{show}; call Canada Post with PIN {row['tracking_pin']} if it does not move",
        )  # fmt: skip
    if row["never_scanned"]:
        return AttentionItem(
            "never_scanned", order_id,
            f"label bought {_ago(row['label_created_at'])} and Canada Post has not scanned the parcel "
            f"(more than {no_scan_hours} h): was it handed over? Best Buy counts late shipments",
            f"hand the parcel to Canada Post; `fulfil tracking refresh --order {order_id}` to check",
        )  # fmt: skip
    if row["overdue"]:
        return AttentionItem(
            "past_expected_delivery", order_id,
            f"Canada Post expected to deliver by {row['expected_delivery']:%Y-%m-%d}; last: {last}",
            f"{show}; call Canada Post with PIN {row['tracking_pin']}",
        )  # fmt: skip
    return AttentionItem(
        "tracking_refresh_stopped", order_id,
        f"its tracking is no longer refreshed: {row['auto_refresh_stopped_reason']}",
        f"fix the cause, then `fulfil tracking resume --order {order_id}`",
    )  # fmt: skip


def _owner_is_dead(owner: str | None) -> bool:
    # fulfil.runs brings psutil (~10 ms of `fulfil status`): only when a lease owner is judged.
    from fulfil.runs import owner_is_dead

    return owner_is_dead(owner)


def _ship_now(order_id: str, shipment_status: str | None) -> str:
    """The next step for a late order, from where its shipment stands."""
    if shipment_status in (S.LABEL_CREATED, S.TRACKING_SENT):
        return f"`fulfil tracking push --order {order_id}`"
    if shipment_status == S.TRACKING_FAILED:
        return f"`fulfil tracking retry {order_id}` then `fulfil tracking push --order {order_id}`"
    if shipment_status in (S.LABEL_FAILED, S.NEEDS_REVIEW):
        return f"resolve its {shipment_status} first (above), then `fulfil labels create --order {order_id}`"
    return f"`fulfil labels create --order {order_id}` then `fulfil tracking push --order {order_id}`"


def _ago(moment: datetime) -> str:
    from datetime import UTC

    hours = (datetime.now(UTC) - moment).total_seconds() / 3600
    if hours < 48:
        return f"{hours:.0f} hours ago"
    return f"{hours / 24:.0f} days ago"
