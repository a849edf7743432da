"""Assembling what a command needs from the settings: the audit log, the HTTP clients, the run.

Kept apart from the CLI so tests, the demo and the command line build the same objects the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from requests.auth import HTTPBasicAuth

from fulfil.api_calls import ApiCallLog, Redactor
from fulfil.audited_http import AuditedHttp, RawKeyAuth
from fulfil.config import Settings
from fulfil.runs import Run


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

    def settle_seconds(self) -> float:
        """How long an unanswered purchase is given before its absence at Canada Post proves it
        was not bought: the client's own patience (connect + read timeout), and as long again."""
        http = self.settings.http()
        return http.connect_timeout + 2 * http.read_timeout


@contextmanager
def open_session(database_url: str, settings: Settings, command: str) -> Iterator[Session]:
    run = Run(command)
    run.start(database_url)
    audit = ApiCallLog(database_url, run_id=run.run_id, redactor=Redactor(settings.secrets()))
    try:
        yield Session(database_url, settings, run, audit)
    finally:
        audit.close()
