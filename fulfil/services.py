"""Assembling what a command needs from the settings: the audit log, the HTTP clients, the run.

Kept apart from the CLI so tests, the demo and the command line build the same objects the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from requests.auth import HTTPBasicAuth

from fulfil.api_calls import ApiCallLog, Redactor
from fulfil.audited_http import AuditedHttp, RawKeyAuth
from fulfil.config import Settings
from fulfil.runs import Run

if TYPE_CHECKING:
    from fulfil.workflows.labels import LabelWorkflow
    from fulfil.workflows.tracking import TrackingWorkflow


@dataclass
class Session:
    """One command's run: its database, its run row and its audit log."""

    database_url: str
    settings: Settings
    run: Run
    audit: ApiCallLog

    def canadapost_http(self) -> AuditedHttp:
        cp = self.settings.canadapost()
        http = self.settings.http()
        return AuditedHttp(
            self.audit,
            service="CanadaPost",
            auth=HTTPBasicAuth(cp.username, cp.password),
            connect_timeout=http.connect_timeout,
            read_timeout=http.read_timeout,
            secrets=Redactor.basic_auth_forms(cp.username, cp.password),
        )

    def bestbuy_http(self) -> AuditedHttp:
        bb = self.settings.bestbuy()
        http = self.settings.http()
        return AuditedHttp(
            self.audit,
            service="BestBuy",
            auth=RawKeyAuth(bb.api_key),
            connect_timeout=http.connect_timeout,
            read_timeout=http.read_timeout,
            secrets=[bb.api_key],
        )


@contextmanager
def open_session(database_url: str, settings: Settings, command: str) -> Iterator[Session]:
    run = Run(command)
    run.start(database_url)
    audit = ApiCallLog(database_url, run_id=run.run_id, redactor=Redactor(settings.secrets()))
    try:
        yield Session(database_url, settings, run, audit)
    finally:
        audit.close()


def label_workflow(
    database_url: str,
    settings: Settings,
    session: Session | None,
    on_result: Callable[[Any], None] | None = None,
) -> LabelWorkflow:
    """The label workflow for these settings; without a session (dry run, retry) it cannot call out."""
    from fulfil.canadapost.client import CanadaPostClient
    from fulfil.workflows.labels import LabelSettings, LabelWorkflow

    http = settings.http()
    label_settings = LabelSettings(
        canadapost=settings.canadapost(),
        sender=settings.sender(),
        parcel=settings.parcel(),
        labels_dir=settings.labels_dir,
        # The client gives up after connect + read timeout; Canada Post gets as long again.
        settle_seconds=http.connect_timeout + 2 * http.read_timeout,
    )
    client = CanadaPostClient(label_settings.canadapost, session.canadapost_http()) if session else None
    return LabelWorkflow(
        database_url=database_url,
        settings=label_settings,
        client=client,  # type: ignore[arg-type]
        lease_owner=session.run.lease_owner if session else "no-session",
        on_result=on_result,
    )


def tracking_workflow(
    database_url: str,
    settings: Settings,
    session: Session | None,
    on_result: Callable[[Any], None] | None = None,
) -> TrackingWorkflow:
    """The tracking workflow for these settings; without a session (dry run) it cannot call out."""
    from fulfil.bestbuy.client import BestBuyClient, RetryRules
    from fulfil.workflows.tracking import TrackingSettings, TrackingWorkflow

    http = settings.http()
    client = None
    carrier_code = settings.value("FULFIL_BESTBUY_CARRIER_CODE") or "CPCL"
    if session is not None:
        bestbuy = settings.bestbuy()
        carrier_code = bestbuy.carrier_code
        client = BestBuyClient(bestbuy, session.bestbuy_http())
    # A claim outlives both calls (OR23, OR24) with all their retries and waits, and a minute more.
    rules = RetryRules()
    per_call = rules.max_attempts * (http.connect_timeout + http.read_timeout) + rules.policy().longest_wait()
    lease_seconds = 2 * per_call + 60
    return TrackingWorkflow(
        database_url=database_url,
        settings=TrackingSettings(carrier_code=carrier_code, lease_seconds=lease_seconds),
        client=client,
        lease_owner=session.run.lease_owner if session is not None else "no-session",
        on_result=on_result,
    )
