"""The label workflow: buy each accepted order's Canada Post label exactly once, and everything
around it, assembled from its phases (purchase, reconcile, download, recording, commands).

Each run opens one store (one connection; no transaction ever open across HTTP) and, however it
ends, releases every claim it still holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import psycopg

from fulfil.canadapost.client import CanadaPostClient
from fulfil.errors import ConfigError, FulfilError
from fulfil.label_files import check_labels_dir
from fulfil.parcels.store import ParcelProfileStore
from fulfil.shipments.store import ShipmentStore
from fulfil.stop_signals import StopRequest
from fulfil.workflows.labels import commands
from fulfil.workflows.labels.choice import label_chooser
from fulfil.workflows.labels.context import LabelContext
from fulfil.workflows.labels.download import Downloads
from fulfil.workflows.labels.purchase import Purchases
from fulfil.workflows.labels.quote import QuoteRow, QuoteRun, quote_orders
from fulfil.workflows.labels.reconcile import Reconciler
from fulfil.workflows.labels.recording import Recorder
from fulfil.workflows.labels.results import (
    LabelResult,
    LabelRun,
    LabelSettings,
    Listener,
    StopRun,
)
from fulfil.workflows.workers import Halt, WorkLimit, run_workers


class LabelPhases:
    """The phases of one run, wired together."""

    def __init__(self, ctx: LabelContext) -> None:
        self.ctx = ctx
        self.downloads = Downloads(ctx)
        self.recorder = Recorder(ctx, self.downloads)
        self.reconciler = Reconciler(ctx, self.recorder)
        # Each order's profiles are read when it is decided: an import during a run counts.
        self.chooser = label_chooser(
            ctx.settings, ctx.client, ParcelProfileStore(ctx.store.conn).profiles_for
        )
        self.purchases = Purchases(ctx, self.recorder, self.reconciler, self.chooser)


class LabelWorkflow:
    def __init__(
        self,
        *,
        database_url: str,
        settings: LabelSettings,
        client: CanadaPostClient,
        lease_owner: str,
        on_result: Listener | None = None,
        run_id: str | None = None,
        stop: StopRequest | None = None,
        concurrency: int = 1,
        worker_client: Callable[[], AbstractContextManager[CanadaPostClient]] | None = None,
        keep_results: bool = True,
    ) -> None:
        self.database_url = database_url
        self.settings = settings
        self.client = client
        self.owner = lease_owner
        self.on_result = on_result or (lambda result: None)
        self.run_id = run_id
        self.stop = stop or StopRequest()
        # Workers beyond the first each need their own Canada Post client (its own HTTP session
        # and audit connection): without a way to make one, the run has one worker.
        self.concurrency = max(1, concurrency) if worker_client is not None else 1
        self.worker_client = worker_client
        self.keep_results = keep_results

    def _new_run(self) -> LabelRun:
        return LabelRun(keep_results=self.keep_results)

    def _deliver(self, run: LabelRun) -> Listener:
        def deliver(result: LabelResult) -> None:
            run.record(result)
            self.on_result(result)

        return deliver

    def _store(self) -> contextlib.AbstractContextManager[ShipmentStore]:
        return ShipmentStore.open(self.database_url, owner=self.owner, run_id=self.run_id, purpose="labels")

    @contextlib.contextmanager
    def phases(self, run: LabelRun) -> Iterator[LabelPhases]:
        """This run's phases over its own store; whatever happens, the run leaves no claim behind
        (its workers' claims included: they all hold leases in the run's name)."""
        with self._store() as store:
            ctx = LabelContext(self.settings, self.client, store, run, self._deliver(run), self.stop)
            try:
                yield LabelPhases(ctx)
            finally:
                with contextlib.suppress(FulfilError, psycopg.Error):
                    store.release_leases()

    def _in_workers(self, main: LabelPhases, loop: Callable[[LabelPhases], None]) -> None:
        """Run ``loop`` in this run's workers: one in this thread with the run's own phases, or
        several, each over its own store and client, their results delivered here."""
        if self.concurrency == 1:
            loop(main)
            return
        assert self.worker_client is not None
        shared = main.ctx
        make_client = self.worker_client

        def worker(sink: Listener, halt: Halt) -> None:
            # A worker's store never releases the run's leases: the run does, once all have stopped.
            with self._store() as store, make_client() as client:
                ctx = LabelContext(
                    self.settings, client, store, shared.run, sink, self.stop, halt, shared.failed_downloads
                )
                loop(LabelPhases(ctx))

        run_workers(self.concurrency, worker, shared.sink, shared.halt)

    # --- labels create ------------------------------------------------------------------------

    def create(self, order_ids: list[str] | None = None, limit: int | None = None) -> LabelRun:
        run = self._new_run()
        if order_ids:
            run.track_orders()
        # A label is paid for before its PDF exists: a directory that cannot take it stops the run
        # before anything is bought.
        check_labels_dir(self.settings.labels_dir)
        limit_left = WorkLimit(limit)

        def buy(phases: LabelPhases) -> None:
            ctx = phases.ctx
            while not ctx.halted:
                ctx.stop_if_asked()
                if not limit_left.take():
                    return
                claim = phases.purchases.claim_next(order_ids)
                if claim is None:
                    limit_left.give_back()
                    return
                ctx.report(claim.result if claim.result is not None else phases.purchases.purchase(claim))

        def fetch(phases: LabelPhases) -> None:
            # After buying: every label still without a file (this run's failures excepted).
            phases.downloads.download_all(order_ids)

        with self.phases(run) as phases:
            ctx = phases.ctx
            try:
                phases.reconciler.reconcile_all(order_ids)
                if order_ids:
                    # Only when named: a label given up is replaced on the seller's word, never
                    # because a run found a voided order that is still accepted.
                    ctx.store.replace_given_up_labels(order_ids)
                ctx.store.create_pending_shipments(order_ids, limit)
                self._in_workers(phases, buy)
            except StopRun as stop:
                run.stopped = str(stop)
            except ConfigError as exc:
                run.fatal = exc
            if run.stopped is None and run.fatal is None:
                try:
                    self._in_workers(phases, fetch)
                except StopRun as stop:
                    run.stopped = str(stop)
                commands.report_untouched(ctx, order_ids)
        return run

    def count_eligible(self, order_ids: list[str] | None) -> int:
        """About how many orders a run would work on (for a progress bar)."""
        with self._store() as store:
            return store.count_eligible(order_ids)

    # --- labels reconcile and download --------------------------------------------------------

    def reconcile(self, order_ids: list[str] | None = None) -> LabelRun:
        run = self._new_run()
        if order_ids:
            run.track_orders()
        with self.phases(run) as phases:
            try:
                phases.reconciler.reconcile_all(order_ids)
            except StopRun as stop:
                run.stopped = str(stop)
            except ConfigError as exc:
                run.fatal = exc
            if run.stopped is None and run.fatal is None:
                commands.report_named_left_alone(phases.ctx, order_ids)
        return run

    def download(self, order_ids: list[str] | None = None, verify: bool = True) -> LabelRun:
        """Fetch missing labels and (verify) re-fetch files that are gone or changed on disk."""
        run = self._new_run()
        if order_ids:
            run.track_orders()
        check_labels_dir(self.settings.labels_dir)
        with self.phases(run) as phases:
            try:
                self._in_workers(phases, lambda worker: worker.downloads.download_all(order_ids))
                if verify:
                    phases.downloads.verify_files(order_ids)
            except StopRun as stop:
                run.stopped = str(stop)
            if run.stopped is None:
                commands.report_named_left_alone(phases.ctx, order_ids)
        return run

    # --- the seller's commands ----------------------------------------------------------------

    def retry(self, order_ids: list[str], *, not_bought: bool) -> LabelRun:
        run = self._new_run()
        with self.phases(run) as phases:
            commands.retry(phases.ctx, order_ids, not_bought=not_bought)
        return run

    def keep(self, order_id: str, cp_shipment_id: str) -> LabelResult:
        with self.phases(LabelRun()) as phases:
            return commands.keep(phases.ctx, order_id, cp_shipment_id)

    def quote(self, order_ids: list[str], emit: Callable[[QuoteRow], None]) -> QuoteRun:
        """Canada Post's quotes for each parcel of each order named; nothing bought or written."""
        with self.phases(LabelRun()) as phases:
            try:
                return quote_orders(phases.ctx.store, phases.chooser, order_ids, emit)
            except ConfigError as exc:
                return QuoteRun(fatal=exc)

    def dry_run(
        self, order_ids: list[str] | None, limit: int | None
    ) -> tuple[LabelRun, dict[tuple[str, str | None], commands.DryRunLabel]]:
        """Decide and build each request a run would send; nothing bought, nothing written (a
        quote a rule needs is asked for, when the run has a client)."""
        run = self._new_run()
        run.track_orders()
        with self.phases(run) as phases:
            try:
                planned = commands.dry_run(phases.ctx, phases.chooser, order_ids, limit)
            except ConfigError as exc:
                run.fatal = exc
                planned = {}
            commands.report_untouched(phases.ctx, order_ids)
        return run, planned
