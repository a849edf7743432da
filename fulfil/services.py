"""Assembling what a command needs from the settings: the audit log, the HTTP clients, the run.

Kept apart from the CLI so tests, the demo and the command line build the same objects the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fulfil.audit.log import ApiCallLog
from fulfil.audit.redaction import Redactor
from fulfil.audit.retry import lease_seconds
from fulfil.audit.sender import AuditedHttp
from fulfil.audit.transport import BasicAuth, Credentials, RawKeyAuth
from fulfil.config import Settings
from fulfil.runs import Run
from fulfil.stop_signals import StopRequest

if TYPE_CHECKING:
    from fulfil.audit.budget import ServiceBudgets
    from fulfil.workflows.labels import LabelWorkflow
    from fulfil.workflows.labels.price_fetch import PriceCatchUp
    from fulfil.workflows.labels.void import VoidWorkflow
    from fulfil.workflows.tracking import TrackingWorkflow


@dataclass
class Session:
    """One command's run: its database, its run row and its audit log."""

    database_url: str
    settings: Settings
    run: Run
    audit: ApiCallLog
    # Asked between the slices of a wait for a rate budget: a stopping run does not wait it out.
    should_stop: Callable[[], bool] | None = None

    def canadapost_http(self, audit: ApiCallLog | None = None) -> AuditedHttp:
        cp = self.settings.canadapost()
        return self._http("CanadaPost", cp.base_url, BasicAuth(cp.username, cp.password), audit)

    def bestbuy_http(self, audit: ApiCallLog | None = None) -> AuditedHttp:
        bb = self.settings.bestbuy()
        return self._http("BestBuy", bb.base_url, RawKeyAuth(bb.api_key), audit)

    @contextmanager
    def worker_canadapost_http(self) -> Iterator[AuditedHttp]:
        """Canada Post for one worker of the run: its own keep-alive session and its own audit
        connection (the run's redactor), closed when the worker ends."""
        with self._worker_http(self.canadapost_http) as http:
            yield http

    @contextmanager
    def worker_bestbuy_http(self) -> Iterator[AuditedHttp]:
        with self._worker_http(self.bestbuy_http) as http:
            yield http

    @contextmanager
    def _worker_http(self, make: Callable[[ApiCallLog], AuditedHttp]) -> Iterator[AuditedHttp]:
        audit = ApiCallLog(self.database_url, run_id=self.run.run_id, redactor=self.audit.redactor)
        try:
            http = make(audit)
            try:
                yield http
            finally:
                http.close()
        finally:
            audit.close()

    def _http(
        self, service: str, base_url: str, auth: Credentials, audit: ApiCallLog | None = None
    ) -> AuditedHttp:
        http = self.settings.http()
        return AuditedHttp(
            audit or self.audit,
            # Every process and host on this database shares the service's limits and pauses.
            budgets=service_budgets(self.settings, service),
            should_stop=self.should_stop,
            service=service,
            # Credentials go to the configured scheme, host and port, and nowhere an answer points.
            origin=base_url,
            auth=auth,
            connect_timeout=http.connect_timeout,
            read_timeout=http.read_timeout,
            deadline=http.deadline,
            ca_bundle=http.ca_bundle,
        )


def service_budgets(settings: Settings, service: str) -> ServiceBudgets:
    """The rate budgets a service's calls are admitted under (shared through the database)."""
    from fulfil.audit.budget import endpoint_budgets
    from fulfil.canadapost.throttle_groups import canadapost_budgets

    rates = settings.rate_budgets()
    if service == "CanadaPost":
        return canadapost_budgets(rates)
    return endpoint_budgets(
        "bestbuy",
        rates.bestbuy,
        headroom=rates.headroom,
        default_retry_after=rates.bestbuy_default_retry_after,
    )


def session_redactor(settings: Settings) -> Redactor:
    """Every secret of these settings in every form it can take on the wire (the Canada Post key
    pair also as the base64 of user:password that Basic auth sends)."""
    pairs = []
    username = settings.value("FULFIL_CANADAPOST_USERNAME")
    password = settings.value("FULFIL_CANADAPOST_PASSWORD")
    if username and password:
        pairs.append((username, password))
    secrets = settings.secrets()
    if settings.database_url:
        from fulfil.db import database_password_forms

        secrets += database_password_forms(settings.database_url)
    return Redactor(secrets, credential_pairs=pairs)


@contextmanager
def open_session(database_url: str, settings: Settings, command: str) -> Iterator[Session]:
    run = Run(command)
    run.start(database_url)
    audit = ApiCallLog(database_url, run_id=run.run_id, redactor=session_redactor(settings))
    try:
        yield Session(database_url, settings, run, audit)
    finally:
        audit.close()


def listen_for_stop(session: Session | None, stop: StopRequest | None) -> None:
    """A wait for a rate budget is cut short when the run is asked to stop."""
    if session is not None and stop is not None:
        session.should_stop = lambda: stop.requested


def label_workflow(
    database_url: str,
    settings: Settings,
    session: Session | None,
    on_result: Callable[[Any], None] | None = None,
    stop: StopRequest | None = None,
    concurrency: int = 1,
) -> LabelWorkflow:
    """The label workflow for these settings; without a session (dry run, retry) it cannot call out."""
    from fulfil.canadapost.client import RETRY_LABEL_FETCH, RETRY_NOT_SENT, RETRY_READS, CanadaPostClient
    from fulfil.manifest_settings import manifest_mode
    from fulfil.workflows.labels import LabelSettings, LabelWorkflow

    http = settings.http()
    listen_for_stop(session, stop)
    admission_wait = service_budgets(settings, "CanadaPost").max_wait
    rules = settings.shipping_rules()
    purchase_lease = lease_seconds(http.deadline, RETRY_NOT_SENT, admission_wait=admission_wait)
    if rules.needs_quotes:
        # A rule's quote is asked for inside the claim, before Create Shipment: the claim lasts
        # for the whole of both, each with all its attempts and waits.
        purchase_lease += lease_seconds(http.deadline, RETRY_READS, admission_wait=admission_wait)
    label_settings = LabelSettings(
        canadapost=settings.canadapost(),
        sender=settings.sender(),
        parcel=settings.parcel(),
        labels_dir=settings.labels_dir,
        lease_seconds=purchase_lease,
        deadline=http.deadline,
        # Canada Post is given as long as we wait for an answer to make a purchase it received
        # visible to its look-ups.
        settle_allowance=http.read_timeout,
        download_lease_seconds=lease_seconds(http.deadline, RETRY_LABEL_FETCH, admission_wait=admission_wait),
        manifest_mode=manifest_mode(settings),
        rules=rules,
    )
    client = CanadaPostClient(label_settings.canadapost, session.canadapost_http()) if session else None

    @contextmanager
    def worker_client() -> Iterator[CanadaPostClient]:
        assert session is not None
        with session.worker_canadapost_http() as http:
            yield CanadaPostClient(label_settings.canadapost, http)

    return LabelWorkflow(
        database_url=database_url,
        settings=label_settings,
        client=client,  # type: ignore[arg-type]
        lease_owner=session.run.lease_owner if session else "no-session",
        on_result=on_result,
        run_id=session.run.run_id if session else None,
        stop=stop,
        concurrency=concurrency,
        worker_client=worker_client if session is not None else None,
        # Whoever takes each result as it comes keeps them; the run keeps only its counts.
        keep_results=on_result is None,
    )


def price_catch_up(
    database_url: str,
    settings: Settings,
    session: Session | None,
    on_result: Callable[[Any], None] | None = None,
    stop: StopRequest | None = None,
) -> PriceCatchUp:
    """`labels prices` for these settings; without a session (the dry run) it cannot call out."""
    from fulfil.canadapost.client import CanadaPostClient
    from fulfil.workflows.labels.price_fetch import PriceCatchUp

    listen_for_stop(session, stop)
    client = (
        CanadaPostClient(settings.canadapost(), session.canadapost_http()) if session is not None else None
    )
    return PriceCatchUp(
        database_url=database_url,
        client=client,
        lease_owner=session.run.lease_owner if session is not None else "no-session",
        run_id=session.run.run_id if session is not None else None,
        on_result=on_result,
        stop=stop,
        keep_results=on_result is None,
    )


def void_workflow(
    database_url: str,
    settings: Settings,
    session: Session | None,
    on_result: Callable[[Any], None] | None = None,
    stop: StopRequest | None = None,
) -> VoidWorkflow:
    """`labels void` for these settings; without a session (the dry run) it cannot call out."""
    from fulfil.canadapost.client import RETRY_NOT_SENT, RETRY_READS, CanadaPostClient
    from fulfil.workflows.labels.void import VoidSettings, VoidWorkflow

    http = settings.http()
    listen_for_stop(session, stop)
    canadapost = settings.canadapost()
    void_settings = VoidSettings(
        canadapost=canadapost,
        refund_email=settings.refund_email(),
        # Renewed before each request of a void: that request with all its attempts and waits, and
        # the two reads that may settle it (its details, then Canada Post's search by PIN).
        lease_seconds=lease_seconds(
            http.deadline,
            RETRY_NOT_SENT,
            RETRY_READS,
            RETRY_READS,
            admission_wait=service_budgets(settings, "CanadaPost").max_wait,
        ),
    )
    return VoidWorkflow(
        database_url=database_url,
        settings=void_settings,
        client=CanadaPostClient(canadapost, session.canadapost_http()) if session is not None else None,
        lease_owner=session.run.lease_owner if session is not None else "no-session",
        run_id=session.run.run_id if session is not None else None,
        on_result=on_result,
        stop=stop,
        keep_results=on_result is None,
    )


def tracking_workflow(
    database_url: str,
    settings: Settings,
    session: Session | None,
    on_result: Callable[[Any], None] | None = None,
    stop: StopRequest | None = None,
    concurrency: int = 1,
) -> TrackingWorkflow:
    """The tracking workflow for these settings; without a session (dry run) it cannot call out."""
    from fulfil.bestbuy.client import RETRY, BestBuyClient
    from fulfil.workflows.tracking import TrackingSettings, TrackingWorkflow

    http = settings.http()
    listen_for_stop(session, stop)
    client = None
    carrier_code = settings.value("FULFIL_BESTBUY_CARRIER_CODE") or "CPCL"
    if session is not None:
        bestbuy = settings.bestbuy()
        carrier_code = bestbuy.carrier_code
        client = BestBuyClient(bestbuy, session.bestbuy_http())

    @contextmanager
    def worker_client() -> Iterator[BestBuyClient]:
        assert session is not None
        with session.worker_bestbuy_http() as http:
            yield BestBuyClient(settings.bestbuy(), http)

    # A claim outlives both calls (OR23, OR24), each with all its attempts and waits.
    policy = RETRY
    return TrackingWorkflow(
        database_url=database_url,
        settings=TrackingSettings(
            carrier_code=carrier_code,
            lease_seconds=lease_seconds(
                http.deadline, policy, policy, admission_wait=service_budgets(settings, "BestBuy").max_wait
            ),
        ),
        client=client,
        lease_owner=session.run.lease_owner if session is not None else "no-session",
        on_result=on_result,
        stop=stop,
        run_id=session.run.run_id if session is not None else None,
        concurrency=concurrency,
        worker_client=worker_client if session is not None else None,
        keep_results=on_result is None,
    )


@contextmanager
def tracking_store(
    database_url: str, settings: Settings, run_id: str | None, purpose: str, policy: Any = None
) -> Iterator[Any]:
    """The carrier tracking store on a connection of its own, with the refresh policy of the
    settings (FULFIL_TRACKING_*) unless one is given."""
    from fulfil.carrier_tracking.schedule import RefreshPolicy
    from fulfil.carrier_tracking.store import CarrierTrackingStore
    from fulfil.db import connect

    policy = policy or RefreshPolicy.from_settings(settings.tracking())
    with connect(database_url, autocommit=True, application_name=f"fulfil-{purpose}") as conn:
        yield CarrierTrackingStore(conn, run_id=run_id, policy=policy)


@contextmanager
def tracking_refresher(
    session: Session,
    on_result: Callable[[Any], None] | None = None,
    concurrency: int = 1,
    purpose: str = "tracking-refresh",
    policy: Any = None,
) -> Iterator[Any]:
    """The carrier tracking refresher of this run: Canada Post's audited HTTP (group E's budget
    shared with every process), a lease sized from the read retry policy, and with
    ``concurrency`` workers each its own connection and keep-alive session."""
    from fulfil.canadapost.client import RETRY_READS, CanadaPostClient
    from fulfil.carrier_tracking.refresh import Refresher

    settings = session.settings
    http = settings.http()
    lease = lease_seconds(
        http.deadline, RETRY_READS, admission_wait=service_budgets(settings, "CanadaPost").max_wait
    )
    canadapost = settings.canadapost()
    client = CanadaPostClient(canadapost, session.canadapost_http())

    @contextmanager
    def worker_parts() -> Iterator[tuple[Any, CanadaPostClient]]:
        with (
            tracking_store(session.database_url, settings, session.run.run_id, purpose, policy) as store,
            session.worker_canadapost_http() as worker_http,
        ):
            yield store, CanadaPostClient(canadapost, worker_http)

    with tracking_store(session.database_url, settings, session.run.run_id, purpose, policy) as store:
        yield Refresher(
            store,
            client,
            lease_seconds=lease,
            on_result=on_result,
            concurrency=concurrency,
            worker_parts=worker_parts,
        )
