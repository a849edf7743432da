"""The one owner of every shipments query, like procrastinate's JobManager.

Workflows ask the store, by name, for what they need (``claim_purchase``, ``record_shipped``…) and
never see SQL, a status string or a commit. The store runs the named queries of
``sql/queries/shipments.sql`` on one autocommit connection of its own (from ``db.connect``): every
statement outside a ``transaction()`` block is its own transaction, so no transaction can stay
open across an HTTP call by accident; the few steps that must be atomic run in a block. Every
query gets this run's lease owner and run id, so each move it makes is checked against the lease
and written to the shipment's history.

Write methods that make a move answer whether it was made: False means the shipment was no longer
this run's to move (another run moved it or took the claim over), and nothing was written.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from fulfil.audit.log import SendGuard
from fulfil.db import connect, query
from fulfil.shipments.states import ShipmentState

Row = dict[str, Any]


def _sql(name: str) -> str:
    return query("shipments", name)


# The line by which a claim keeps to the orders a run was given (--order).
_ORDER_FILTER = re.compile(
    r"^ *AND \(%\(order_ids\)s::text\[\] IS NULL OR [a-z.]*order_id = ANY \(%\(order_ids\)s::text\[\]\)\)\n",
    re.MULTILINE,
)


@functools.cache
def _claim_sql(name: str, for_orders: bool) -> str:
    """A claim, or (for a run over every order) the same claim without its order filter. With the
    filter PostgreSQL plans the statement afresh on every call, because the best plan depends on
    whether the list is NULL; without it, the prepared statement keeps one plan (a third of the
    claim's time)."""
    text = _sql(name)
    if for_orders:
        return text
    unfiltered, count = _ORDER_FILTER.subn("", text)
    if count != 1:
        raise AssertionError(f"sql/queries/shipments.sql: {name} has {count} order filters, not 1")
    return unfiltered


class ShipmentStore:
    def __init__(self, conn: psycopg.Connection[Any], *, owner: str, run_id: str | None) -> None:
        self.conn = conn
        self.owner = owner
        self.run_id = run_id

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, database_url: str, *, owner: str, run_id: str | None, purpose: str
    ) -> Iterator[ShipmentStore]:
        with connect(
            database_url, autocommit=True, row_factory=dict_row, application_name=f"fulfil-{purpose}"
        ) as conn:
            yield cls(conn, owner=owner, run_id=run_id)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Steps that must happen together (a claim and its intent, a move and its side effects)."""
        with self.conn.transaction():
            yield

    # --- running queries ----------------------------------------------------------------------

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"owner": self.owner, "run_id": self.run_id, "reason": None, **params}

    def _one(self, name: str, **params: Any) -> Row | None:
        return self.conn.execute(_sql(name), self._params(params)).fetchone()

    def _claim(self, name: str, order_ids: list[str] | None, **params: Any) -> Row | None:
        """A claim statement: with its order filter only when the run was given orders."""
        row: Row | None = self.conn.execute(
            _claim_sql(name, order_ids is not None), self._params({"order_ids": order_ids, **params})
        ).fetchone()
        return row

    def _all(self, name: str, **params: Any) -> list[Row]:
        return self.conn.execute(_sql(name), self._params(params)).fetchall()

    def _write(self, name: str, **params: Any) -> bool:
        """A compare-and-set (or a move): one statement, its own transaction on this autocommit
        connection (or part of the caller's block); True when the row was ours."""
        return self.conn.execute(_sql(name), self._params(params)).rowcount > 0

    def _count(self, name: str, **params: Any) -> int:
        row = self._one(name, **params)
        return int(row["count"]) if row else 0

    # ==========================================================================================
    # Buying labels
    # ==========================================================================================

    def create_pending_shipments(self, order_ids: list[str] | None, limit: int | None) -> None:
        self.conn.execute(
            _sql("create_pending_shipments"), self._params({"order_ids": order_ids, "limit": limit})
        )

    def replace_given_up_labels(self, order_ids: list[str]) -> list[str]:
        """The named orders that still ship whose label was voided or refunded, made ready for a
        new label (label_pending); returns their ids."""
        return [row["order_id"] for row in self._all("replace_given_up_labels", order_ids=order_ids)]

    def count_eligible(self, order_ids: list[str] | None) -> int:
        return self._count("count_eligible", order_ids=order_ids)

    def claim_next_purchase(
        self, order_ids: list[str] | None, *, contract: bool, lease_seconds: float
    ) -> Row | None:
        """Claim the next order to buy a label for and commit the intent, in one statement:
        label_creation_initiated with this run's lease and its lookup key. Returns the order's data
        (and shipment_id, order_id, cp_request_id, purchase_started_at, order_data_hash)."""
        row = self._claim(
            "claim_next_purchase",
            order_ids,
            cp_mode="contract" if contract else "noncontract",
            lease_seconds=lease_seconds,
        )
        if row is None:
            return None
        # The data comes as PostgreSQL's text of the jsonb value, so its hash here is the one
        # md5(raw_order_data::text) gives, without the database hashing every order it hands out.
        text = row.pop("raw_order_text")
        row["raw_order_data"] = json.loads(text) if text is not None else None
        row["order_data_hash"] = (
            hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest() if text is not None else None
        )
        return row

    def orders_by_id(self, order_ids: list[str]) -> list[Row]:
        return self._all("orders_by_id", order_ids=order_ids)

    def purchase_guard(self, shipment_id: int, choice: dict[str, Any] | None = None) -> SendGuard:
        """Checked in the statement that records each Create Shipment attempt: still ours? With
        ``choice`` (LabelChoice.as_record), the decision is written in that statement too."""
        params = {"shipment_id": shipment_id, "owner": self.owner}
        if choice is None:
            return SendGuard("shipments", "hold_purchase_lease", params, shipment_id=shipment_id)
        return SendGuard(
            "shipments",
            "hold_purchase_lease_recording_choice",
            {
                **params,
                "service_code": choice["service_code"],
                "service_rule": choice["service_rule"],
                "label_choice": Jsonb(choice),
            },
            shipment_id=shipment_id,
        )

    def split_order(self, shipment_id: int, parcels: list[dict[str, Any]]) -> bool:
        """Parcel 1 (this run's claim) of an order needing ``len(parcels)``: its parcel fixed and
        the others made waiting, in one statement. False: the claim is no longer this run's."""
        assert len(parcels) > 1
        rows = self._all(
            "split_order_into_parcels",
            shipment_id=shipment_id,
            parcel_count=len(parcels),
            first_parcel=Jsonb(parcels[0]),
            other_parcels=Jsonb(parcels[1:]),
        )
        return len(rows) == len(parcels) - 1

    def record_purchase(
        self, shipment_id: int, label: dict[str, Any], *, warnings: list[str], download_lease_seconds: float
    ) -> bool:
        """label_created; the lease is kept while the label's PDF is fetched."""
        return self._write(
            "record_label_bought",
            shipment_id=shipment_id,
            warnings=Jsonb(warnings) if warnings else None,
            download_lease_seconds=download_lease_seconds,
            **{"cp_group_id": None, **label},
        )

    def refuse_purchase(
        self, shipment_id: int, *, code: str, error: str, order_data_hash: str | None
    ) -> bool:
        """label_failed, for the order's data as the claim read it (``order_data_hash``); if the
        data has changed since, the order goes straight back to label_pending to be tried again."""
        refused = self._write(
            "record_label_failed",
            shipment_id=shipment_id,
            code=code,
            error=error,
            reason=error,
            order_data_hash=order_data_hash,
        )
        if refused and order_data_hash is not None:  # None: the data the refusal judged is unknown
            self._write("requeue_if_order_changed", shipment_id=shipment_id)
        return refused

    def release_purchase(self, shipment_id: int, *, code: str, error: str) -> bool:
        return self._write(
            "release_to_pending", shipment_id=shipment_id, code=code, error=error, reason=error
        )

    def park_purchase(self, shipment_id: int, *, code: str, error: str) -> bool:
        return self._write("park_for_review", shipment_id=shipment_id, code=code, error=error, reason=error)

    def leave_unsettled(self, shipment_id: int, *, error: str) -> bool:
        return self._write("leave_unsettled", shipment_id=shipment_id, code="unsettled", error=error)

    # --- purchases whose outcome is unknown -----------------------------------------------------

    def park_unkeyed_purchases(self, order_ids: list[str] | None) -> list[str]:
        return [row["order_id"] for row in self._all("park_unkeyed_purchases", order_ids=order_ids)]

    def owners_of_open_purchases(self) -> list[str]:
        return [row["lease_owner"] for row in self._all("owners_of_open_purchases")]

    def claim_stuck_purchase(
        self, *, lease_seconds: float, dead_owners: list[str], order_ids: list[str] | None, skip: list[int]
    ) -> Row | None:
        return self._one(
            "claim_stuck_purchase",
            lease_seconds=lease_seconds,
            dead_owners=dead_owners,
            order_ids=order_ids,
            skip=skip,
        )

    def purchase_calls(self, shipment_id: int, order_id: str, since: datetime) -> list[Row]:
        return self._all("purchase_calls", shipment_id=shipment_id, order_id=order_id, since=since)

    def order_data_hash(self, order_id: str) -> str | None:
        row = self._one("order_data_hash", order_id=order_id)
        return row["md5"] if row else None

    def purchase_key(self, shipment_id: int) -> Row:
        row = self._one("purchase_key", shipment_id=shipment_id)
        assert row is not None, f"shipment {shipment_id} is gone"
        return row

    def purchase_settles_at(
        self, shipment_id: int, order_id: str, since: datetime, *, allowance: float, settle_seconds: float
    ) -> Row:
        row = self._one(
            "purchase_settles_at",
            shipment_id=shipment_id,
            order_id=order_id,
            since=since,
            allowance=allowance,
            settle_seconds=settle_seconds,
        )
        assert row is not None
        return row

    def database_now(self) -> datetime:
        row = self._one("database_now")
        assert row is not None
        now: datetime = row["now"]
        return now

    # --- a purchase that lost its claim -------------------------------------------------------

    def lock_label(self, shipment_id: int) -> Row:
        """The label a shipment holds, locked for the current transaction."""
        row = self._one("lock_shipment_label", shipment_id=shipment_id)
        assert row is not None, f"shipment {shipment_id} is gone"
        return row

    def record_purchase_after_takeover(
        self, shipment_id: int, label: dict[str, Any], *, contract: bool
    ) -> bool:
        row = self._one(
            "record_label_bought_after_takeover",
            shipment_id=shipment_id,
            cp_mode="contract" if contract else "noncontract",
            **{"cp_group_id": None, **label},
        )
        return row is not None

    def park_two_labels(self, shipment_id: int, *, error: str) -> None:
        self.conn.execute(
            _sql("park_for_two_labels"), self._params({"shipment_id": shipment_id, "error": error})
        )

    def record_surplus_label(
        self,
        *,
        order_id: str,
        shipment_id: int,
        cp_shipment_id: str,
        tracking_pin: str,
        cp_self_url: str | None,
        cp_label_url: str | None,
        call_id: int | None,
        reason: str,
    ) -> None:
        self.conn.execute(
            _sql("record_surplus_label"),
            self._params(
                {
                    "order_id": order_id,
                    "shipment_id": shipment_id,
                    "cp_shipment_id": cp_shipment_id,
                    "tracking_pin": tracking_pin,
                    "cp_self_url": cp_self_url,
                    "cp_label_url": cp_label_url,
                    "call_id": call_id,
                    "reason": reason,
                }
            ),
        )

    def park_duplicate_purchase(self, shipment_id: int, *, error: str) -> bool:
        """In the caller's transaction (with the surplus labels it records)."""
        row = self._one(
            "park_for_review", shipment_id=shipment_id, code="duplicate-labels", error=error, reason=error
        )
        return row is not None

    # --- shipments and orders, for results and messages -----------------------------------------

    def shipment_result(self, shipment_id: int) -> Row | None:
        return self._one("shipment_result", shipment_id=shipment_id)

    def shipment_of_order(self, order_id: str) -> Row | None:
        return self._one("shipment_of_order", order_id=order_id)

    def label_states(self, order_ids: list[str]) -> dict[str, Row]:
        return {row["order_id"]: row for row in self._all("shipment_states", order_ids=order_ids)}

    def requested_order_states(self, order_ids: list[str]) -> list[Row]:
        return self._all("requested_order_states", order_ids=order_ids)

    def dry_run_candidates(self, order_ids: list[str] | None, limit: int | None) -> list[Row]:
        return self._all("dry_run_candidates", order_ids=order_ids, limit=limit)

    # --- label files --------------------------------------------------------------------------

    def parcel_of(self, shipment_id: int) -> tuple[int, int] | None:
        """(parcel number, parcel count) of one parcel of a split order; None for an order in one."""
        row = self._one("parcel_of", shipment_id=shipment_id)
        if row is None or row["parcel_count"] <= 1:
            return None
        return int(row["parcel_no"]), int(row["parcel_count"])

    def bought_labels(self, order_ids: list[str] | None) -> list[Row]:
        """Every bought label, to check each file (``labels download``)."""
        return self._all("labels_to_download", order_ids=order_ids)

    def claim_next_download(
        self, *, lease_seconds: float, dead_owners: list[str], order_ids: list[str] | None, skip: list[int]
    ) -> Row | None:
        """The next bought label without its PDF, leased to this run while it is fetched."""
        return self._claim(
            "claim_next_download", order_ids, lease_seconds=lease_seconds, dead_owners=dead_owners, skip=skip
        )

    def record_label_file(self, shipment_id: int, *, path: str, sha256: str, size: int) -> None:
        self._write("record_label_file", shipment_id=shipment_id, path=path, sha256=sha256, size=size)

    def record_download_failed(self, shipment_id: int, *, error: str) -> None:
        self._write("record_label_download_failed", shipment_id=shipment_id, error=error)

    # --- the seller's commands ----------------------------------------------------------------

    def retry_labels(self, order_ids: list[str], *, not_bought: bool) -> set[str]:
        statuses = (
            [ShipmentState.LABEL_FAILED, ShipmentState.NEEDS_REVIEW]
            if not_bought
            else [ShipmentState.LABEL_FAILED]
        )
        rows = self._all("make_retryable", order_ids=order_ids, statuses=[str(s) for s in statuses])
        return {row["order_id"] for row in rows}

    def label_choice(self, order_id: str, kept: str) -> Row | None:
        """The shipment of ``order_id`` whose labels ``labels keep`` chooses between (for an
        order split into parcels, the parcel holding label ``kept``), locked."""
        return self._one("label_choice", order_id=order_id, kept=kept)

    def keep_label(
        self, *, shipment_id: int, kept: dict[str, Any], resolution: str, swap: bool, move: bool
    ) -> None:
        """In the caller's transaction: the shipment holds ``kept``, the other labels are closed."""
        params = {"shipment_id": shipment_id, "kept": kept["cp_shipment_id"], "resolution": resolution}
        if swap:
            self.conn.execute(_sql("retire_recorded_label"), self._params(params))
            self.conn.execute(_sql("mark_surplus_kept"), self._params(params))
        self.conn.execute(_sql("resolve_surplus_labels"), self._params(params))
        if move:
            self.conn.execute(_sql("take_kept_label"), self._params({"shipment_id": shipment_id, **kept}))

    # ==========================================================================================
    # Pushing tracking to Best Buy
    # ==========================================================================================

    def owners_of_open_shipments(self) -> list[str]:
        return [row["lease_owner"] for row in self._all("owners_of_open_shipments")]

    def count_pushable(self, order_ids: list[str] | None) -> int:
        return self._count("count_pushable", order_ids=order_ids)

    def claim_next_shipment(
        self,
        *,
        lease_seconds: float,
        dead_owners: list[str],
        order_ids: list[str] | None,
        skip: list[int],
        download_grace_seconds: float,
    ) -> Row | None:
        return self._claim(
            "claim_next_shipment",
            order_ids,
            lease_seconds=lease_seconds,
            dead_owners=dead_owners,
            skip=skip,
            download_grace_seconds=download_grace_seconds,
        )

    def push_guard(self, shipment_id: int) -> SendGuard:
        """Checked in the statement that records each OR23/OR24 attempt: still ours?"""
        return SendGuard(
            "shipments",
            "hold_push_lease",
            {"shipment_id": shipment_id, "owner": self.owner},
            shipment_id=shipment_id,
        )

    def record_tracking_sent(self, shipment_id: int) -> bool:
        return self._write("record_tracking_sent", shipment_id=shipment_id)

    def record_retracked(self, shipment_id: int) -> bool:
        """A shipped order's replacement label: Best Buy has its number; no second OR24."""
        return self._write("record_retracked", shipment_id=shipment_id)

    def record_shipped(self, shipment_id: int) -> bool:
        """The shipment tracking_updated and the order shipped, in one statement."""
        return self._one("record_shipment_shipped", shipment_id=shipment_id) is not None

    def record_canceled(self, shipment_id: int, *, code: str | None, error: str | None) -> bool:
        """The shipment order_canceled (its label needs voiding) and the order canceled, together."""
        row = self._one(
            "record_shipment_canceled", shipment_id=shipment_id, code=code, error=error, reason=error
        )
        return row is not None

    def refuse_push(self, shipment_id: int, *, code: str | None, error: str | None) -> bool:
        return self._write(
            "record_tracking_failed", shipment_id=shipment_id, code=code, error=error, reason=error
        )

    def release_shipment(self, shipment_id: int, *, code: str | None, error: str | None) -> bool:
        return self._write("release_shipment", shipment_id=shipment_id, code=code, error=error)

    def follow_first_parcels(self, order_ids: list[str] | None) -> list[Row]:
        """The other parcels of split orders whose first parcel Best Buy settled (shipped or
        canceled) follow it; returns those moved."""
        return self._all("follow_first_parcels", order_ids=order_ids)

    def other_parcels(self, order_id: str) -> list[Row]:
        return self._all("other_parcels", order_id=order_id)

    def push_states(self, order_ids: list[str]) -> dict[str, Row]:
        return {row["order_id"]: row for row in self._all("push_states", order_ids=order_ids)}

    def retry_pushes(self, order_ids: list[str]) -> dict[str, str]:
        return {row["order_id"]: row["status"] for row in self._all("make_pushable", order_ids=order_ids)}

    def push_dry_run_candidates(self, order_ids: list[str] | None, limit: int | None) -> list[Row]:
        return self._all("push_dry_run_candidates", order_ids=order_ids, limit=limit)

    # ==========================================================================================
    # Voiding labels (fulfil labels void)
    # ==========================================================================================

    def void_standing(self, order_ids: list[str]) -> list[Row]:
        """Where each order stands, in the order asked (an unknown order has only its id)."""
        return self._all("void_standing", order_ids=order_ids)

    def canceled_to_void(self) -> list[str]:
        return [row["order_id"] for row in self._all("canceled_to_void")]

    def voids_left_unfinished(self) -> list[str]:
        return [row["order_id"] for row in self._all("voids_left_unfinished")]

    def owners_of_voidable(self, order_ids: list[str]) -> list[str]:
        return [row["lease_owner"] for row in self._all("owners_of_voidable", order_ids=order_ids)]

    def claim_void(
        self, order_id: str, *, lease_seconds: float, dead_owners: list[str], reason: str | None = None
    ) -> Row | None:
        """start_void, committed before anything is sent: label_voiding with this run's lease and
        the state it started from. None: not voidable now (see ``void_standing`` for why)."""
        return self._one(
            "claim_void",
            order_id=order_id,
            lease_seconds=lease_seconds,
            dead_owners=dead_owners,
            reason=reason,
        )

    def claim_unfinished_void(
        self, order_id: str, *, lease_seconds: float, dead_owners: list[str], reason: str | None = None
    ) -> Row | None:
        """A void a run that is gone left in label_voiding, leased to this run to settle."""
        return self._one(
            "claim_unfinished_void", order_id=order_id, lease_seconds=lease_seconds, dead_owners=dead_owners
        )

    def void_guard(self, shipment_id: int) -> SendGuard:
        """Checked in the statement that records each void or refund attempt: still ours?"""
        return SendGuard(
            "shipments",
            "hold_void_lease",
            {"shipment_id": shipment_id, "owner": self.owner},
            shipment_id=shipment_id,
        )

    def extend_void_lease(self, shipment_id: int, *, lease_seconds: float) -> bool:
        return self._write("extend_void_lease", shipment_id=shipment_id, lease_seconds=lease_seconds)

    def void_calls(self, shipment_id: int, order_id: str, since: datetime) -> list[Row]:
        return self._all("void_calls", shipment_id=shipment_id, order_id=order_id, since=since)

    def record_voided(self, shipment_id: int, *, reason: str, label_pdf_path: str | None) -> bool:
        """label_voided, and the label in label_history (one statement)."""
        row = self._one(
            "record_label_voided", shipment_id=shipment_id, reason=reason, label_pdf_path=label_pdf_path
        )
        return row is not None

    def record_refund_requested(
        self,
        shipment_id: int,
        *,
        reason: str,
        ticket_id: str | None,
        ticket_date: date | None,
        label_pdf_path: str | None,
    ) -> bool:
        """refund_requested with Canada Post's service ticket (when known), and the label in
        label_history (one statement)."""
        row = self._one(
            "record_label_refund_requested",
            shipment_id=shipment_id,
            reason=reason,
            ticket_id=ticket_id,
            ticket_date=ticket_date,
            label_pdf_path=label_pdf_path,
        )
        return row is not None

    def release_void(self, shipment_id: int, *, code: str, error: str) -> str | None:
        """Back to where the void started; that status, or None when the void was not ours."""
        row = self._one("release_void", shipment_id=shipment_id, code=code, error=error, reason=error)
        return row["status"] if row else None

    def park_void(self, shipment_id: int, *, code: str, error: str) -> bool:
        return self._write("park_void", shipment_id=shipment_id, code=code, error=error, reason=error)

    def leave_void_unsettled(self, shipment_id: int, *, code: str, error: str) -> bool:
        return self._write("leave_void_unsettled", shipment_id=shipment_id, code=code, error=error)

    # ==========================================================================================

    def release_leases(self) -> int:
        """Every claim this run still holds, given up (at the end of the run, however it ends)."""
        return len(self._all("release_leases"))
