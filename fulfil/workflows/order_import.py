"""Bringing orders in: from a file (``orders import``) or straight from Best Buy (``orders pull``).

Both end in the same upsert, keyed by ``order_id``: the Mirakl order object goes to
``raw_order_data`` and its state becomes fulfil's status (``order_states``). An order never moves
backwards: a status only advances (waiting → accepted → shipped | canceled), and a copy of an
order older than the stored one (by ``last_updated_date``) changes nothing. Running either twice
changes nothing the second time.

Each order is decided with its row locked (``SELECT … FOR UPDATE``), so an import racing a pull or
a tracking push that marks the order shipped cannot undo what the other wrote. Rows are locked in
order-id order within a transaction, so two imports never deadlock.

Storing is one transaction per chunk of orders. Every order is checked before (see
``order_documents.order_problem``), so the database should refuse none; should it refuse a value
all the same (a data error, never a lost connection), the chunk is stored again order by order,
each in its own savepoint, and only the order the database refused is rejected, with its reason.

A pull reads Best Buy's orders in the chosen states page by page (100 a page, by offset). A
listing that does not end is Best Buy misbehaving, and the pull stops with an error saying what
it saw and how many orders it stored: a page that brings no order id this pull has not already
read (the same page again), a listing that grows by more than ``LISTING_GROWTH`` orders past the
count its first page gave, and at most ``MAX_PAGES`` pages in any case. When
SHIPPING orders are pulled, the orders fulfil holds as ``accepted`` that Best Buy no longer lists
as SHIPPING are read by id afterwards: that is how a cancellation reaches fulfil before a label
is bought for it. Mirakl asks for at most one OR11 poll a minute; a pull sooner than that after
the previous one is refused unless forced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
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
from fulfil.bestbuy.timestamps import mirakl_timestamp
from fulfil.db import connect, query
from fulfil.errors import ConfigError
from fulfil.workflows.run_results import RunResults

NEW = "new"
UPDATED = "updated"
UNCHANGED = "unchanged"
REJECTED = "rejected"
NOT_FOUND = "not_found"
# Missed by an earlier pull too: known, listed by `fulfil status`, not reported again.
STILL_NOT_FOUND = "still_not_found"

ATTENTION = frozenset({REJECTED, NOT_FOUND})
CHUNK = 200  # orders decided per transaction
POLL_INTERVAL_SECONDS = 60.0  # Mirakl's maximum OR11 frequency: once a minute
# The hard cap, for a listing without total_count that keeps sending full pages of new orders:
# no shop fulfil serves has 200,000 open orders.
MAX_PAGES = 2000
# Orders that may arrive while a listing is read (they sort last): more than two pages' worth
# beyond the count the first page gave means the count is not to be trusted. The next pull reads on.
LISTING_GROWTH = 2 * PAGE_SIZE


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
        mirakl_timestamp(incoming.get("last_updated_date")),
        mirakl_timestamp(existing_raw.get("last_updated_date")),
    )
    return new is not None and old is not None and new < old


Listener = Callable[[OrderResult], None]


class OrderStore:
    """The one upsert both ``orders import`` and ``orders pull`` go through."""

    def __init__(self, database_url: str, on_result: Listener | None = None) -> None:
        self.database_url = database_url
        self.on_result = on_result or (lambda result: None)

    def import_candidates(self, candidates: Iterable[OrderCandidate]) -> OrderRun:
        run = OrderRun()
        with connect(self.database_url, row_factory=dict_row, application_name="fulfil-orders") as conn:
            self.store(conn, list(candidates), run)
        return run

    def store(
        self, conn: psycopg.Connection[DictRow], candidates: Sequence[OrderCandidate], run: OrderRun
    ) -> None:
        for start in range(0, len(candidates), CHUNK):
            self._store_chunk(conn, candidates[start : start + CHUNK], run)

    def _store_chunk(
        self, conn: psycopg.Connection[DictRow], chunk: Sequence[OrderCandidate], run: OrderRun
    ) -> None:
        usable = [(index, c) for index, c in enumerate(chunk) if c.order is not None]
        # Locks are taken in order-id order (stable, so a repeated id keeps its input order).
        usable.sort(key=lambda item: str(item[1].order_id))
        try:
            with conn.transaction():
                results = {index: self._store_one(conn, candidate) for index, candidate in usable}
        except Exception as exc:
            if not refused_value(exc):
                raise
            results = self._store_one_by_one(conn, usable)
        for index, candidate in enumerate(chunk):
            result = results.get(index) or OrderResult(
                candidate.order_id, REJECTED, position=candidate.position, reason=candidate.problem
            )
            self.report(run, result)

    def _store_one_by_one(
        self, conn: psycopg.Connection[DictRow], usable: Sequence[tuple[int, OrderCandidate]]
    ) -> dict[int, OrderResult]:
        """The slow path, after the database refused a chunk: a savepoint per order."""
        results: dict[int, OrderResult] = {}
        with conn.transaction():
            for index, candidate in usable:
                try:
                    with conn.transaction():
                        results[index] = self._store_one(conn, candidate)
                except Exception as exc:
                    if not refused_value(exc):
                        raise
                    reason = f"order {candidate.order_id}: the database refused it ({database_reason(exc)})"
                    results[index] = OrderResult(
                        candidate.order_id, REJECTED, position=candidate.position, reason=reason
                    )
        return results

    def _store_one(self, conn: psycopg.Connection[DictRow], candidate: OrderCandidate) -> OrderResult:
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
        run.record(result)
        self.on_result(result)


def refused_value(exc: BaseException) -> bool:
    """Whether ``exc`` is the database (or psycopg's encoding) refusing a value, which costs
    only the order holding it; a lost connection or a bug is not."""
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError | UnicodeEncodeError):
        return True
    # Class 54, program limit exceeded: a value too large or too deep for jsonb.
    return isinstance(exc, psycopg.Error) and (exc.sqlstate or "").startswith("54")


def database_reason(exc: BaseException) -> str:
    """The database's own words, on one line, safe to print (no NUL, no lone surrogate)."""
    diag = exc.diag if isinstance(exc, psycopg.Error) else None
    if diag is not None and diag.message_primary:
        reason = diag.message_primary + (f": {diag.message_detail}" if diag.message_detail else "")
    else:
        reason = str(exc)
    reason = " ".join(reason.split())
    return reason.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


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
        with connect(
            self.database_url, autocommit=True, row_factory=dict_row, application_name="fulfil-orders"
        ) as guard:
            if not force:
                self._check_poll_allowed(guard)
            with connect(self.database_url, row_factory=dict_row, application_name="fulfil-orders") as conn:
                try:
                    seen = self._pull_listing(conn, run, states)
                    if SHIPPING in states:
                        self._refresh_accepted(conn, run, seen)
                except BestBuyUnavailable as exc:
                    run.stopped = str(exc)
                except ConfigError as exc:
                    run.fatal = exc
        return run

    def _check_poll_allowed(self, guard: psycopg.Connection[DictRow]) -> None:
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

    def _pull_listing(
        self, conn: psycopg.Connection[DictRow], run: OrderRun, states: Sequence[str]
    ) -> list[str]:
        """The ids of the orders listed; raises BestBuyUnavailable when the listing does not end."""
        seen: dict[str, None] = {}
        offset = 0
        first_count: int | None = None
        for pages in range(1, MAX_PAGES + 1):
            page = self.client.list_orders(states, offset)
            candidates = [
                checked_candidate(f"OR11 offset {offset + index}", order)
                for index, order in enumerate(page.orders)
            ]
            self.store.store(conn, candidates, run)
            ids = [c.order_id for c in candidates if c.order_id is not None]
            brought_new = any(order_id not in seen for order_id in ids)
            seen.update(dict.fromkeys(ids))
            page_offset, offset = offset, offset + len(page.orders)
            if not page.orders:
                return list(seen)
            if page.total_count is not None and offset >= page.total_count:
                return list(seen)
            if page.total_count is None and len(page.orders) < PAGE_SIZE:
                return list(seen)
            if not brought_new:
                raise _endless_listing(
                    f"the page at offset {page_offset} brought no order this pull had not already read",
                    pages,
                    run,
                )
            first_count = page.total_count if first_count is None else first_count
            if first_count is not None and offset >= first_count + LISTING_GROWTH:
                raise _endless_listing(
                    f"its first page counted {first_count} orders, {offset} have been read and it "
                    f"now counts {page.total_count}",
                    pages,
                    run,
                )
        raise _endless_listing(f"it still sent full pages after {MAX_PAGES} pages", MAX_PAGES, run)

    def _refresh_accepted(self, conn: psycopg.Connection[DictRow], run: OrderRun, seen: list[str]) -> None:
        missing = [
            row["order_id"]
            for row in conn.execute(query("orders", "accepted_orders_not_in"), {"seen": seen}).fetchall()
        ]
        conn.execute(query("orders", "clear_missing_at_best_buy"), {"order_ids": seen})
        conn.commit()
        if not missing:
            return
        found = self.client.orders_by_id(missing)
        candidates = [
            checked_candidate("OR11 order_ids", found[order_id]) for order_id in missing if order_id in found
        ]
        self.store.store(conn, candidates, run)
        conn.execute(query("orders", "clear_missing_at_best_buy"), {"order_ids": list(found)})
        unknown = [order_id for order_id in missing if order_id not in found]
        newly = {
            row["order_id"]: row["newly"]
            for row in conn.execute(query("orders", "mark_missing_at_best_buy"), {"order_ids": unknown})
        }
        conn.commit()
        for order_id in unknown:
            # Reported (and failing the pull) the first time only: `fulfil status` keeps it after.
            self.store.report(
                run,
                OrderResult(
                    order_id,
                    NOT_FOUND if newly.get(order_id, True) else STILL_NOT_FOUND,
                    ACCEPTED,
                    position="OR11 order_ids",
                    reason=(
                        f"order {order_id} is accepted here but Best Buy does not return it "
                        "(an order of another shop? check FULFIL_BESTBUY_SHOP_ID)"
                    ),
                ),
            )


def _endless_listing(what: str, pages: int, run: OrderRun) -> BestBuyUnavailable:
    stored = len({result.order_id for result in run.results if result.outcome in (NEW, UPDATED, UNCHANGED)})
    return BestBuyUnavailable(
        f"Best Buy's order listing does not end: {what}; stopped after {pages} pages, with the "
        f"{stored} orders read stored (the next pull starts again from the first page)"
    )
