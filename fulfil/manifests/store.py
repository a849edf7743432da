"""The one owner of the manifest queries (sql/queries/manifests.sql).

Like the shipments store: one autocommit connection, every statement its own transaction unless
it runs in ``transaction()``, so no transaction stays open across a call to Canada Post; every
write to a transmit is a compare-and-set on its status and this run's lease, and answers whether
it was made (False: the transmit is no longer this run's, and nothing was written).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from fulfil.audit.log import SendGuard
from fulfil.db import connect, query

Row = dict[str, Any]

# How a transmit ends without a manifest (manifest_transmits.status).
NOT_SENT = "not_sent"
REFUSED = "refused"


def _sql(name: str) -> str:
    return query("manifests", name)


class ManifestStore:
    def __init__(self, conn: psycopg.Connection[Any], *, owner: str, run_id: str | None) -> None:
        self.conn = conn
        self.owner = owner
        self.run_id = run_id

    @classmethod
    @contextlib.contextmanager
    def open(cls, database_url: str, *, owner: str, run_id: str | None) -> Iterator[ManifestStore]:
        with connect(
            database_url, autocommit=True, row_factory=dict_row, application_name="fulfil-manifest"
        ) as conn:
            yield cls(conn, owner=owner, run_id=run_id)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def _one(self, name: str, **params: Any) -> Row | None:
        with self.conn.cursor(row_factory=dict_row) as cur:
            row: Row | None = cur.execute(_sql(name), params).fetchone()
        return row

    def _all(self, name: str, **params: Any) -> list[Row]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            return list(cur.execute(_sql(name), params).fetchall())

    def _write(self, name: str, **params: Any) -> bool:
        return self._one(name, owner=self.owner, **params) is not None

    # --- transmits ----------------------------------------------------------------------------

    def claim_transmit(self, group_id: str, manifest_date: date, *, lease_seconds: float) -> Row | None:
        """The intent to transmit the group, committed with this run's lease; None while another
        transmit of the group is in flight or unsettled."""
        return self._one(
            "claim_transmit",
            group_id=group_id,
            manifest_date=manifest_date,
            owner=self.owner,
            lease_seconds=lease_seconds,
            run_id=self.run_id,
        )

    def transmit_in_flight(self, group_id: str) -> Row | None:
        return self._one("transmit_in_flight", group_id=group_id)

    def owners_of_unsettled(self) -> list[str]:
        return [row["lease_owner"] for row in self._all("owners_of_unsettled")]

    def claim_unsettled(
        self,
        *,
        lease_seconds: float,
        dead_owners: Sequence[str],
        group_id: str | None = None,
        skip: Sequence[int] = (),
    ) -> Row | None:
        """The oldest transmit left in flight by a run that is gone, leased to this run."""
        return self._one(
            "claim_unsettled",
            owner=self.owner,
            run_id=self.run_id,
            lease_seconds=lease_seconds,
            dead_owners=list(dead_owners),
            group_id=group_id,
            skip=list(skip),
        )

    def transmit_guard(self, transmit_id: int) -> SendGuard:
        """Checked in the statement that records each Transmit Shipments attempt: still ours?"""
        return SendGuard(
            "manifests",
            "hold_transmit_lease",
            {"transmit_id": transmit_id, "owner": self.owner},
            description="another fulfil run took this transmit over before its request was sent",
        )

    def extend_lease(self, transmit_id: int, *, lease_seconds: float) -> bool:
        return self._write("extend_transmit_lease", transmit_id=transmit_id, lease_seconds=lease_seconds)

    def record_plan(self, transmit_id: int, included: list[str], excluded: list[dict[str, Any]]) -> bool:
        return self._write(
            "record_transmit_plan",
            transmit_id=transmit_id,
            included=Jsonb(included),
            excluded=Jsonb(excluded),
        )

    def drop_unsent(self, transmit_id: int) -> bool:
        """Forget a transmit that never sent its request (refused while one is on record)."""
        return self._write("drop_unsent_transmit", transmit_id=transmit_id)

    def release(self, transmit_id: int, *, status: str, error: str) -> bool:
        """Settled with nothing transmitted: ``not_sent`` or ``refused``, final."""
        assert status in (NOT_SENT, REFUSED)
        return self._write("release_transmit", transmit_id=transmit_id, status=status, error=error)

    def leave_unsettled(self, transmit_id: int, error: str) -> bool:
        return self._write("leave_transmit_unsettled", transmit_id=transmit_id, error=error)

    def settle_transmitted(
        self, transmit_id: int, manifests: Sequence[tuple[str, str]], *, found_by: str
    ) -> dict[str, int] | None:
        """Transmitted, with Canada Post's manifests ((id, link) pairs), in one transaction: the
        manifest row of each (by Canada Post id; one recorded already keeps its row). None when
        the transmit is no longer this run's."""
        recorded: dict[str, int] = {}
        with self.transaction():
            if not self._write("settle_transmitted", transmit_id=transmit_id, found_by=found_by):
                return None
            for cp_manifest_id, url in manifests:
                row = self._one(
                    "insert_manifest",
                    transmit_id=transmit_id,
                    cp_manifest_id=cp_manifest_id,
                    manifest_url=url,
                    found_by=found_by,
                )
                if row is not None:
                    recorded[cp_manifest_id] = int(row["manifest_id"])
        return recorded

    def transmit_calls(self, group_id: str, since: datetime) -> list[Row]:
        return self._all("transmit_calls", group_id=group_id, since=since)

    def transmit_settles(
        self, group_id: str, since: datetime, *, deadline_seconds: float, allowance_seconds: float
    ) -> tuple[datetime, datetime]:
        """(when the transmit's absence at Canada Post proves it never happened, the database's now)."""
        row = self._one(
            "transmit_settles",
            group_id=group_id,
            since=since,
            deadline_seconds=deadline_seconds,
            allowance_seconds=allowance_seconds,
        )
        assert row is not None
        return row["settles_at"], row["now"]

    # --- what a group holds -------------------------------------------------------------------

    def listed_shipments(self, cp_shipment_ids: Sequence[str]) -> list[Row]:
        return self._all("listed_shipments", cp_shipment_ids=list(cp_shipment_ids))

    def known_manifests(self, cp_manifest_ids: Sequence[str]) -> set[str]:
        rows = self._all("known_manifests", cp_manifest_ids=list(cp_manifest_ids))
        return {row["cp_manifest_id"] for row in rows}

    # --- manifests ----------------------------------------------------------------------------

    def record_manifest_read(self, manifest_id: int, **links: Any) -> bool:
        return self._one("record_manifest_read", manifest_id=manifest_id, **links) is not None

    def record_manifest_shipments(self, manifest_id: int, cp_shipment_ids: Sequence[str]) -> Row | None:
        """The shipments on the manifest, and fulfil's marked transmitted (marked, unknown)."""
        return self._one(
            "record_manifest_shipments", manifest_id=manifest_id, cp_shipment_ids=list(cp_shipment_ids)
        )

    def record_manifest_pdf(self, manifest_id: int, *, path: str, sha256: str, size: int) -> bool:
        row = self._one(
            "record_manifest_pdf", manifest_id=manifest_id, pdf_path=path, pdf_sha256=sha256, pdf_bytes=size
        )
        return row is not None

    def record_manifest_error(self, manifest_id: int, error: str) -> None:
        self._one("record_manifest_error", manifest_id=manifest_id, error=error)

    def unfinished_manifests(self) -> list[Row]:
        return self._all("unfinished_manifests")

    def manifests_of_transmit(self, transmit_id: int) -> list[Row]:
        return self._all("manifests_of_transmit", transmit_id=transmit_id)

    def manifests_of_group(self, group_id: str) -> list[Row]:
        return self._all("manifests_of_group", group_id=group_id)

    # --- reading back -------------------------------------------------------------------------

    def list_transmits(self, since: date) -> list[Row]:
        return self._all("list_transmits", since=since)

    def find_manifest(self, key: str) -> list[Row]:
        return self._all("find_manifest", key=key)

    def shipments_on_manifest(self, manifest_id: int) -> list[Row]:
        return self._all("shipments_on_manifest", manifest_id=manifest_id)
