"""`fulfil config check`: every setting, where it came from, what each command still lacks, a
warning for a setting that has no effect, and (online) whether Canada Post and Best Buy accept the
credentials."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fulfil.config import Settings
from fulfil.errors import ConfigError, FulfilError


@dataclass(frozen=True)
class Requirement:
    """A command (or group of commands) and what it needs from the settings."""

    commands: str
    checks: tuple[Callable[[Settings], object], ...]


def labels_directory(settings: Settings) -> None:
    """The labels directory can take label PDFs (nothing is created or written by the check)."""
    from fulfil.label_files import check_labels_dir

    check_labels_dir(settings.labels_dir, create=False)


REQUIREMENTS = (
    Requirement(
        "labels create / reconcile / download",
        (
            Settings.canadapost,
            Settings.sender,
            Settings.parcel,
            Settings.shipping_rules,
            Settings.http,
            labels_directory,
        ),
    ),
    Requirement("tracking push, orders pull", (Settings.bestbuy, Settings.http)),
)


@dataclass(frozen=True)
class CheckResult:
    check: str
    ok: bool
    message: str
    # Fine to run with, but the reader should know (a setting that has no effect): shown, never a
    # failure of the check.
    warning: bool = False

    def as_record(self) -> dict[str, Any]:
        return {
            "type": "check",
            "check": self.check,
            "ok": self.ok,
            "warning": self.warning,
            "message": self.message,
        }

    @property
    def shown_ok(self) -> str:
        """The table's ok column."""
        if not self.ok:
            return "NO"
        return "warning" if self.warning else "yes"


def setting_records(settings: Settings) -> list[dict[str, Any]]:
    records = []
    for setting in settings.all():
        value = setting.display() if setting.value is not None else None
        source = setting.source
        if setting.spec.env == "FULFIL_CONFIG" and value is None and settings.config_file:
            value, source = str(settings.config_file), "default"  # ./fulfil.toml, found
        records.append(
            {
                "type": "setting",
                "name": setting.spec.env,
                "file_key": setting.spec.file_key,
                "value": value,
                "source": source,
                "secret": setting.spec.secret,
            }
        )
    return records


def offline_checks(settings: Settings) -> list[CheckResult]:
    results = []
    for requirement in REQUIREMENTS:
        problems = []
        for check in requirement.checks:
            try:
                check(settings)
            except ConfigError as exc:
                problems.append(str(exc))
        if problems:
            results.append(CheckResult(requirement.commands, False, "; ".join(problems)))
        else:
            results.append(CheckResult(requirement.commands, True, "configured"))
    if settings.database_url:
        from fulfil.db import check_database_url

        try:
            check_database_url(settings.database_url)
            results.append(CheckResult("database URL", True, "well formed"))
        except ConfigError as exc:
            results.append(CheckResult("database URL", False, str(exc)))
    if settings.config_file:
        results.append(CheckResult("config file", True, f"read {settings.config_file}"))
    label_format = label_format_warning(settings)
    if label_format is not None:
        results.append(label_format)
    return results


def label_format_warning(settings: Settings) -> CheckResult | None:
    """A label format other than the default, set without a contract id: a non-contract shipment
    (ncshipment-v4) has no print-preferences, so the label Canada Post sells cannot be asked for in
    another format and the setting is silently ignored by the purchase. A value that is not a
    label format at all is the labels check's error, not this warning."""
    from fulfil.canadapost.shipment_request import LABEL_FORMATS

    setting = settings.get("FULFIL_CANADAPOST_LABEL_FORMAT")
    if settings.value("FULFIL_CANADAPOST_CONTRACT_ID") is not None:
        return None  # contract shipping: output-format is sent as set
    if setting.value in (None, setting.spec.default) or setting.value not in LABEL_FORMATS:
        return None
    where = f"in {settings.config_file}" if setting.source == "file" else f"in the {setting.source}"
    return CheckResult(
        "label format",
        True,
        f"{setting.name} is {setting.value!r} ({where}), ignored without "
        "FULFIL_CANADAPOST_CONTRACT_ID: a non-contract shipment has no print preferences, so its "
        f"label is always Canada Post's default {setting.spec.default} format; the setting applies "
        "only with a contract id (it still sets `fulfil labels print`'s default --layout)",
        warning=True,
    )


def online_checks(settings: Settings, database_url: str) -> list[CheckResult]:
    """One cheap authenticated call to each configured service, logged in api_calls like any other."""
    from fulfil.services import open_session

    results: list[CheckResult] = []
    with open_session(database_url, settings, "config check") as session:
        results.append(_check_canadapost(settings, session))
        results.append(_check_bestbuy(settings, session))
        failed = sum(not r.ok for r in results)
        session.run.finish(database_url, 2 if failed else 0, {"failed_checks": failed})
    return results


def _check_canadapost(settings: Settings, session: Any) -> CheckResult:
    from fulfil.canadapost.client import CanadaPostClient, interpret_error
    from fulfil.canadapost.responses import ErrorKind

    name = "Canada Post credentials"
    try:
        cp = settings.canadapost()
    except ConfigError as exc:
        return CheckResult(name, False, f"not checked: {exc}")
    client = CanadaPostClient(cp, session.canadapost_http())
    outcome = client.probe(datetime.now(UTC) - timedelta(minutes=1))
    if outcome.ok:
        mode = "contract" if cp.contract else "non-contract"
        return CheckResult(
            name, True, f"accepted by {cp.base_url} ({cp.env}, customer {cp.customer_number}, {mode})"
        )
    error = interpret_error(outcome)
    explanations = {
        "E002": "FULFIL_CANADAPOST_USERNAME or FULFIL_CANADAPOST_PASSWORD is wrong (E002 AAA Authentication "
        "Failure)",
        "AA001": "the API key pair is deactivated (AA001): make a new one in Canada Post's developer program",
        "AA002": f"the key pair is not a {cp.env} key (AA002): development and production keys differ; "
        "check FULFIL_CANADAPOST_ENV",
        "AA003": f"the key pair does not belong to customer {cp.customer_number} (AA003): check "
        "FULFIL_CANADAPOST_CUSTOMER_NUMBER",
        "AA004": f"the key cannot mail on behalf of customer {cp.customer_number} (AA004)",
    }
    if error.code in explanations:
        message = explanations[error.code]
    elif error.kind is ErrorKind.NOT_FOUND:
        message = f"{outcome.url} was not found: check FULFIL_CANADAPOST_BASE_URL and the customer number"
    else:
        message = f"could not be checked: {error.description}"
    return CheckResult(name, False, message)


def _check_bestbuy(settings: Settings, session: Any) -> CheckResult:
    from fulfil.bestbuy.client import BestBuyClient
    from fulfil.bestbuy.errors import BestBuyUnavailable

    name = "Best Buy API key"
    try:
        bb = settings.bestbuy()
    except ConfigError as exc:
        return CheckResult(name, False, f"not checked: {exc}")
    client = BestBuyClient(bb, session.bestbuy_http())
    try:
        account = client.account()
    except ConfigError as exc:
        return CheckResult(name, False, str(exc))
    except (BestBuyUnavailable, FulfilError) as exc:
        return CheckResult(name, False, f"could not be checked: {exc}")
    shop = f"shop {account.get('shop_id')} ({account.get('shop_name')}, {account.get('shop_state')})"
    if bb.shop_id and str(account.get("shop_id")) != bb.shop_id:
        return CheckResult(
            name,
            True,
            f"accepted; the key's default shop is {shop}, and FULFIL_BESTBUY_SHOP_ID selects {bb.shop_id}",
        )
    return CheckResult(name, True, f"accepted by {bb.base_url}: {shop}")
