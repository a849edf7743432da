"""Bringing orders in: from a file (``orders import``) or straight from Best Buy (``orders pull``).

Both end in the same upsert, keyed by ``order_id``: the Mirakl order object goes to
``raw_order_data`` and its state becomes fulfil's status (``order_states``). An order never moves
backwards: a status only advances (waiting → accepted → shipped | canceled), and a copy of an
order older than the stored one (by ``last_updated_date``) changes nothing. Running either twice
changes nothing the second time.

Each order is decided with its row locked (``SELECT … FOR UPDATE``), so an import racing a pull or
a tracking push that marks the order shipped cannot undo what the other wrote. Rows are locked in
order-id order within a transaction, so two imports never deadlock.

A pull reads Best Buy's orders in the chosen states page by page (100 a page, by offset). When
SHIPPING orders are pulled, the orders fulfil holds as ``accepted`` that Best Buy no longer lists
as SHIPPING are read by id afterwards: that is how a cancellation reaches fulfil before a label
is bought for it. Mirakl asks for at most one OR11 poll a minute; a pull sooner than that after
the previous one is refused unless forced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from fulfil.bestbuy.client import PAGE_SIZE, BestBuyClient
from fulfil.bestbuy.errors import BestBuyUnavailable, PollTooSoon
from fulfil.bestbuy.order_documents import OrderCandidate, checked_candidate
from fulfil.bestbuy.order_states import (
    ACCEPTED,
    FULFIL_STATUSES,
    SHIPPING,
    moves_forward,
    status_for_state,
)
from fulfil.db import query
from fulfil.errors import ConfigError
from fulfil.workflows.run_results import RunResults

NEW = "new"
UPDATED = "updated"
UNCHANGED = "unchanged"
REJECTED = "rejected"
NOT_FOUND = "not_found"

ATTENTION = frozenset({REJECTED, NOT_FOUND})
CHUNK = 200  # orders decided per transaction
POLL_INTERVAL_SECONDS = 60.0  # Mirakl's maximum OR11 frequency: once a minute
MAX_PAGES = 2000  # a listing that never ends is Best Buy misbehaving, not 200,000 open orders


@dataclass
class OrderResult:
    order_id: str | None
    outcome: str
    status: str | None = None  # fulfil's status after this
    previous_status: str | None = None
    order_state: str | None = None  # Best Buy's state in the copy read
    position: str | None = None
    reason: str | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "outcome": self.outcome,
            "status": self.status,
            "previous_status": self.previous_status,
            "order_state": self.order_state,
            "position": self.position,
            "reason": self.reason,
        }


class OrderRun(RunResults[OrderResult]):
    attention = ATTENTION
    always_counted = (NEW, UPDATED, UNCHANGED, REJECTED)


@dataclass(frozen=True)
class Decision:
    outcome: str
    status: str
    write: bool
    reason: str | None = None


def decide(existing_status: str | None, existing_raw: Any, incoming: dict[str, Any]) -> Decision:
    """What storing ``incoming`` does to the order row (None: there is none yet)."""
    state = incoming["order_state"]
    proposed = status_for_state(state)
    assert proposed is not None, "candidates are checked before they are stored"
    if existing_status is None:
        return Decision(NEW, proposed, True)
    if _older(incoming, existing_raw):
        return Decision(
            UNCHANGED, existing_status, False, "older than the copy already stored (last_updated_date)"
        )
    data_changed = existing_raw != incoming
    if existing_status not in FULFIL_STATUSES:
        # Written by an earlier tool: its meaning is unknown here, so only the data is refreshed.
        return Decision(
            UPDATED if data_changed else UNCHANGED,
            existing_status,
            data_changed,
            f"status {existing_status!r} was not set by fulfil and is kept",
        )
    if not moves_forward(existing_status, proposed):
        return Decision(
            UNCHANGED,
            existing_status,
            False,
            f"stays {existing_status}: Best Buy's {state} would move it back",
        )
    if existing_status == proposed and not data_changed:
        return Decision(UNCHANGED, existing_status, False)
    return Decision(UPDATED, proposed, True)


def _older(incoming: dict[str, Any], existing_raw: Any) -> bool:
    if not isinstance(existing_raw, dict):
        return False
    new, old = (
        _timestamp(incoming.get("last_updated_date")),
        _timestamp(existing_raw.get("last_updated_date")),
    )
    return new is not None and old is not None and new < old


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


Listener = Callable[[OrderResult], None]


class OrderStore:
    """The one upsert both ``orders import`` and ``orders pull`` go through."""

    def __init__(self, database_url: str, on_result: Listener | None = None) -> None:
        self.database_url = database_url
        self.on_result = on_result or (lambda result: None)

    def import_candidates(self, candidates: Iterable[OrderCandidate]) -> OrderRun:
        run = OrderRun()
        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            self.store(conn, list(candidates), run)
        return run

    def store(self, conn: psycopg.Connection, candidates: Sequence[OrderCandidate], run: OrderRun) -> None:
        for start in range(0, len(candidates), CHUNK):
            self._store_chunk(conn, candidates[start : start + CHUNK], run)

    def _store_chunk(self, conn: psycopg.Connection, chunk: Sequence[OrderCandidate], run: OrderRun) -> None:
        results: dict[int, OrderResult] = {}
        usable = [(index, c) for index, c in enumerate(chunk) if c.order is not None]
        # Locks are taken in order-id order (stable, so a repeated id keeps its input order).
        usable.sort(key=lambda item: str(item[1].order_id))
        with conn.transaction():
            for index, candidate in usable:
                results[index] = self._store_one(conn, candidate)
        for index, candidate in enumerate(chunk):
            result = results.get(index) or OrderResult(
                candidate.order_id, REJECTED, position=candidate.position, reason=candidate.problem
            )
            self.report(run, result)

    def _store_one(self, conn: psycopg.Connection, candidate: OrderCandidate) -> OrderResult:
        order = candidate.order
        assert order is not None
        order_id = str(order["order_id"])
        # Twice at most: an insert that meets a row another process just created decides again.
        for _ in range(2):
            row = conn.execute(query("orders", "lock_order"), {"order_id": order_id}).fetchone()
            previous = row["status"] if row else None
            decision = decide(previous, row["raw_order_data"] if row else None, order)
            params = {"order_id": order_id, "status": decision.status, "raw": Jsonb(order)}
            if row is None:
                if conn.execute(query("orders", "insert_order"), params).fetchone() is None:
                    continue
            elif decision.write:
                conn.execute(query("orders", "update_order"), params)
            return OrderResult(
                order_id,
                decision.outcome,
                decision.status,
                previous,
                order.get("order_state"),
                candidate.position,
                decision.reason,
            )
        raise RuntimeError(f"order {order_id}: inserted and gone again while being imported")

    def report(self, run: OrderRun, result: OrderResult) -> None:
        run.results.append(result)
        self.on_result(result)


class OrderPull:
    """``orders pull``: Best Buy's orders in the chosen states, stored as ``orders import`` stores them."""

    def __init__(
        self,
        *,
        database_url: str,
        client: BestBuyClient,
        run_id: str,
        on_result: Listener | None = None,
    ) -> None:
        self.database_url = database_url
        self.client = client
        self.run_id = run_id
        self.store = OrderStore(database_url, on_result)

    def pull(self, states: Sequence[str], *, force: bool = False) -> OrderRun:
        """Raises PollTooSoon (before any call) when the last poll was under a minute ago."""
        run = OrderRun()
        with psycopg.connect(self.database_url, autocommit=True, row_factory=dict_row) as guard:
            if not force:
                self._check_poll_allowed(guard)
            with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
                try:
                    seen = self._pull_listing(conn, run, states)
                    if SHIPPING in states:
                        self._refresh_accepted(conn, run, seen)
                except BestBuyUnavailable as exc:
                    run.stopped = str(exc)
                except ConfigError as exc:
                    run.fatal = exc
        return run

    def _check_poll_allowed(self, guard: psycopg.Connection) -> None:
        locked = guard.execute(query("orders", "try_pull_lock")).fetchone()
        if not locked or not next(iter(locked.values())):
            raise PollTooSoon(
                "another `fulfil orders pull` is running; Mirakl asks for at most one order poll a "
                "minute (--force overrides)"
            )
        last = guard.execute(query("orders", "last_pull_poll"), {"run_id": self.run_id}).fetchone()
        if last is not None and last["seconds_ago"] < POLL_INTERVAL_SECONDS:
            wait = max(1, int(POLL_INTERVAL_SECONDS - last["seconds_ago"] + 0.999))
            raise PollTooSoon(
                f"Best Buy's orders were last polled {last['seconds_ago']:.0f} s ago "
                f"({last['started_at']:%H:%M:%S %Z}); Mirakl asks for at most one poll a minute. "
                f"Run again in {wait} s, or pass --force"
            )

    def _pull_listing(self, conn: psycopg.Connection, run: OrderRun, states: Sequence[str]) -> list[str]:
        seen: dict[str, None] = {}
        offset = 0
        for _ in range(MAX_PAGES):
            page = self.client.list_orders(states, offset)
            candidates = [
                checked_candidate(f"OR11 offset {offset + index}", order)
                for index, order in enumerate(page.orders)
            ]
            self.store.store(conn, candidates, run)
            seen.update((c.order_id, None) for c in candidates if c.order_id is not None)
            offset += len(page.orders)
            if not page.orders:
                return list(seen)
            if page.total_count is not None and offset >= page.total_count:
                return list(seen)
            if page.total_count is None and len(page.orders) < PAGE_SIZE:
                return list(seen)
        raise BestBuyUnavailable(f"Best Buy's order listing did not end after {MAX_PAGES} pages")

    def _refresh_accepted(self, conn: psycopg.Connection, run: OrderRun, seen: list[str]) -> None:
        missing = [
            row["order_id"]
            for row in conn.execute(query("orders", "accepted_orders_not_in"), {"seen": seen}).fetchall()
        ]
        conn.commit()
        if not missing:
            return
        found = self.client.orders_by_id(missing)
        candidates = [
            checked_candidate("OR11 order_ids", found[order_id]) for order_id in missing if order_id in found
        ]
        self.store.store(conn, candidates, run)
        for order_id in missing:
            if order_id not in found:
                self.store.report(
                    run,
                    OrderResult(
                        order_id,
                        NOT_FOUND,
                        ACCEPTED,
                        position="OR11 order_ids",
                        reason=(
                            f"order {order_id} is accepted here but Best Buy does not return it "
                            "(an order of another shop? check FULFIL_BESTBUY_SHOP_ID)"
                        ),
                    ),
                )
