"""Settings from FULFIL_* environment variables and an optional TOML file.

Read once (``load_settings``), validated on use: a command asks for the group it needs
(``settings.canadapost()``, ``settings.sender()`` …) and gets either typed values or a
``ConfigError`` naming the variable and the file key. Every environment variable wins over the
file. Secrets (passwords, API keys, the database URL, which may hold a password) are read from
the environment only; a secret found in the file is refused rather than used, so it can never be
read from there and echoed into logs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fulfil.canadapost.throttle_groups import (
    CANADA_POST_GROUP_CALLS,
    CANADA_POST_GROUP_LIMITS,
    CANADA_POST_WINDOW_S,
)
from fulfil.errors import ConfigError

if TYPE_CHECKING:
    from fulfil.service_rules import ShippingRules

Source = Literal["environment", "file", "default", "unset"]
# Config-file arrays of tables kept whole rather than flattened to settings (fulfil.service_rules).
RULE_TABLES = ("service_rules", "option_rules")

CANADAPOST_HOSTS = {
    "development": "https://ct.soa-gw.canadapost.ca",
    "production": "https://soa-gw.canadapost.ca",
}
BESTBUY_DEFAULT_BASE_URL = "https://marketplace.bestbuy.ca"
# Environment variables a seller behind a TLS-inspecting proxy uses to name the CA to trust, in the
# order they are honoured after FULFIL_CA_BUNDLE. None of them can turn verification off.
TRUST_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
# Canada Post's EmailType (shipment.xsd and ncshipment.xsd): this pattern, at most 60 characters.
CANADA_POST_EMAIL = re.compile(
    r"(['_A-Za-z0-9\-\+]+)(\.['_A-Za-z0-9\-\+]+)*@([A-Za-z0-9-]+)(\.[A-Za-z0-9-]+)*(\.[A-Za-z]{2,})"
)
CANADA_POST_EMAIL_MAX = 60
# Workers per run. Four reach Canada Post's default group A limit (646 calls a minute, two calls an
# order) at a typical 300 ms an answer, and hold 9 database connections a process.
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 64


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its environment variable, its file key (None: environment only), its default."""

    env: str
    file_key: str | None
    default: str | None
    secret: bool
    help: str


# The single table of settings: README's configuration table and `fulfil config check` follow it.
SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "FULFIL_DATABASE_URL", None, None, True, "PostgreSQL URL; unset = embedded PostgreSQL in the data dir"
    ),
    SettingSpec(
        "FULFIL_CONFIG", None, None, False, "TOML file of non-secret settings; default ./fulfil.toml"
    ),
    SettingSpec(
        "FULFIL_METRICS_FILE",
        None,
        None,
        False,
        "file every command adds its Prometheus metrics to (as --metrics-file); unset: none",
    ),
    SettingSpec("FULFIL_DATA_DIR", None, None, False, "where the embedded PostgreSQL lives"),
    SettingSpec("FULFIL_LABELS_DIR", "labels_dir", "labels", False, "directory for label PDFs"),
    SettingSpec(
        "FULFIL_HTTP_CONNECT_TIMEOUT", "http.connect_timeout", "10", False, "seconds to open a connection"
    ),
    SettingSpec(
        "FULFIL_HTTP_READ_TIMEOUT", "http.read_timeout", "60", False, "seconds to wait for an answer"
    ),
    SettingSpec(
        "FULFIL_HTTP_DEADLINE",
        "http.deadline",
        None,
        False,
        "seconds one whole call may take (connect, answer, body); default connect + read timeout",
    ),
    SettingSpec(
        "FULFIL_CA_BUNDLE",
        "http.ca_bundle",
        None,
        False,
        "CA certificates to trust (PEM file or directory), e.g. a TLS-inspecting proxy's",
    ),
    SettingSpec(
        "FULFIL_CONCURRENCY",
        "concurrency",
        str(DEFAULT_CONCURRENCY),
        False,
        f"workers per run (each claims one order at a time), 1 to {MAX_CONCURRENCY}",
    ),
    SettingSpec(
        "FULFIL_RATE_HEADROOM",
        "rates.headroom",
        "0.95",
        False,
        "share of each rate limit fulfil spends (above 0, at most 1): the rest absorbs arrival jitter",
    ),
    SettingSpec("FULFIL_CANADAPOST_ENV", "canadapost.env", "development", False, "development or production"),
    SettingSpec(
        "FULFIL_CANADAPOST_BASE_URL", "canadapost.base_url", None, False, "overrides the host the env selects"
    ),
    SettingSpec("FULFIL_CANADAPOST_USERNAME", None, None, True, "API key user name (key pair, first half)"),
    SettingSpec("FULFIL_CANADAPOST_PASSWORD", None, None, True, "API key password (key pair, second half)"),
    SettingSpec(
        "FULFIL_CANADAPOST_CUSTOMER_NUMBER", "canadapost.customer_number", None, False, "mailed-by number"
    ),
    SettingSpec(
        "FULFIL_CANADAPOST_CONTRACT_ID",
        "canadapost.contract_id",
        None,
        False,
        "set = contract shipping, unset = non-contract",
    ),
    SettingSpec("FULFIL_CANADAPOST_SERVICE_CODE", "canadapost.service_code", "DOM.EP", False, "service code"),
    SettingSpec(
        "FULFIL_CANADAPOST_LABEL_FORMAT", "canadapost.label_format", "8.5x11", False, "8.5x11 or 4x6"
    ),
    SettingSpec(
        "FULFIL_CANADAPOST_MANIFEST",
        "canadapost.manifest",
        "auto",
        False,
        "auto (each contract label is transmitted when bought) or end_of_day (labels wait in the day's "
        "group until `fulfil manifest transmit`)",
    ),
    SettingSpec(
        "FULFIL_CANADAPOST_REFUND_EMAIL",
        "canadapost.refund_email",
        None,
        False,
        "e-mail address sent with a refund request (`labels void` of a transmitted or non-contract "
        "label); Canada Post writes to it about the refund",
    ),
    *(
        SettingSpec(
            f"FULFIL_CANADAPOST_RATE_{group}",
            f"canadapost.rate_{group.lower()}",
            f"{limit}/{CANADA_POST_WINDOW_S:g}",
            False,
            f"group {group} calls ({CANADA_POST_GROUP_CALLS[group]}) per window: CALLS or CALLS/SECONDS",
        )
        for group, limit in CANADA_POST_GROUP_LIMITS.items()
    ),
    SettingSpec(
        "FULFIL_BESTBUY_BASE_URL", "bestbuy.base_url", BESTBUY_DEFAULT_BASE_URL, False, "Mirakl host"
    ),
    SettingSpec("FULFIL_BESTBUY_API_KEY", None, None, True, "shop API key (sent raw in Authorization)"),
    SettingSpec(
        "FULFIL_BESTBUY_SHOP_ID", "bestbuy.shop_id", None, False, "shop id, when the key has several"
    ),
    SettingSpec("FULFIL_BESTBUY_CARRIER_CODE", "bestbuy.carrier_code", "CPCL", False, "OR23 carrier_code"),
    SettingSpec(
        "FULFIL_BESTBUY_RATE_OR11",
        "bestbuy.rate_or11",
        "60/60",
        False,
        "OR11 calls (pages, reads by id) per window: CALLS or CALLS/SECONDS; a poll is once a minute at most",
    ),
    SettingSpec(
        "FULFIL_BESTBUY_DEFAULT_RETRY_AFTER",
        "bestbuy.default_retry_after",
        "30",
        False,
        "seconds an endpoint pauses, for every process, after a 429 that gives no Retry-After",
    ),
    SettingSpec(
        "FULFIL_TRACKING_OUT_FOR_DELIVERY_MINUTES",
        "tracking.out_for_delivery_minutes",
        "30",
        False,
        "minutes a parcel out for delivery waits between tracking refreshes",
    ),
    SettingSpec(
        "FULFIL_TRACKING_ATTEMPTED_MINUTES",
        "tracking.attempted_minutes",
        "60",
        False,
        "minutes between refreshes of a parcel after a delivery attempt or an exception",
    ),
    SettingSpec(
        "FULFIL_TRACKING_IN_TRANSIT_MINUTES",
        "tracking.in_transit_minutes",
        "120",
        False,
        "minutes between refreshes of a parcel in transit (or whose last event fulfil does not know)",
    ),
    SettingSpec(
        "FULFIL_TRACKING_PRE_TRANSIT_MINUTES",
        "tracking.pre_transit_minutes",
        "240",
        False,
        "minutes between refreshes of a parcel not scanned yet (or on its way back to the sender)",
    ),
    SettingSpec(
        "FULFIL_TRACKING_MAX_FAILURES",
        "tracking.max_failures",
        "5",
        False,
        "failed refreshes in a row after which a parcel's auto-refresh stops",
    ),
    SettingSpec(
        "FULFIL_TRACKING_CUTOFF_DAYS",
        "tracking.cutoff_days",
        "30",
        False,
        "days after its label a parcel is no longer refreshed",
    ),
    SettingSpec(
        "FULFIL_TRACKING_DAILY_CALLS",
        "tracking.daily_calls",
        None,
        False,
        "tracking calls a day at most, for every process and host (the day of Canada Post's Eastern "
        "time; blank: no daily cap, only the per-minute budget)",
    ),
    SettingSpec(
        "FULFIL_TRACKING_NO_SCAN_HOURS",
        "tracking.no_scan_hours",
        "24",
        False,
        "hours after its label a parcel Canada Post has not scanned is listed by `fulfil status`",
    ),
    SettingSpec("FULFIL_SENDER_NAME", "sender.name", None, False, "sender contact name"),
    SettingSpec("FULFIL_SENDER_COMPANY", "sender.company", None, False, "sender company (required)"),
    SettingSpec("FULFIL_SENDER_PHONE", "sender.phone", None, False, "sender phone (required)"),
    SettingSpec("FULFIL_SENDER_ADDRESS_LINE_1", "sender.address_line_1", None, False, "sender street"),
    SettingSpec(
        "FULFIL_SENDER_ADDRESS_LINE_2", "sender.address_line_2", None, False, "sender street, line 2"
    ),
    SettingSpec("FULFIL_SENDER_CITY", "sender.city", None, False, "sender city"),
    SettingSpec("FULFIL_SENDER_PROVINCE", "sender.province", None, False, "sender province code, e.g. ON"),
    SettingSpec("FULFIL_SENDER_POSTAL_CODE", "sender.postal_code", None, False, "sender postal code"),
    SettingSpec("FULFIL_PARCEL_WEIGHT_KG", "parcel.weight_kg", None, False, "default parcel weight, kg"),
    SettingSpec("FULFIL_PARCEL_LENGTH_CM", "parcel.length_cm", None, False, "default parcel length, cm"),
    SettingSpec("FULFIL_PARCEL_WIDTH_CM", "parcel.width_cm", None, False, "default parcel width, cm"),
    SettingSpec("FULFIL_PARCEL_HEIGHT_CM", "parcel.height_cm", None, False, "default parcel height, cm"),
)
_BY_ENV = {spec.env: spec for spec in SETTINGS}
_SECRET_FILE_KEYS = {
    "database.url": "FULFIL_DATABASE_URL",
    "database_url": "FULFIL_DATABASE_URL",
    "canadapost.username": "FULFIL_CANADAPOST_USERNAME",
    "canadapost.password": "FULFIL_CANADAPOST_PASSWORD",
    "bestbuy.api_key": "FULFIL_BESTBUY_API_KEY",
}


@dataclass(frozen=True)
class Setting:
    spec: SettingSpec
    value: str | None
    source: Source

    @property
    def name(self) -> str:
        """How an error message names this setting: the variable, and the file key when there is one."""
        if self.spec.file_key:
            section, _, key = self.spec.file_key.rpartition(".")
            where = f"[{section}] {key}" if section else key
            return f"{self.spec.env} (or {where} in the config file)"
        return self.spec.env

    def display(self) -> str:
        """The value as it may be shown: secrets masked."""
        if self.value is None:
            return ""
        if self.spec.env == "FULFIL_DATABASE_URL":
            # The URL with its password masked: its host and database tell two databases apart,
            # and mask() would show its last characters, which can be the password's.
            from fulfil.db import describe_url

            return describe_url(self.value)
        if self.spec.secret:
            return mask(self.value)
        return self.value


def mask(secret: str) -> str:
    """Enough to tell two keys apart, never enough to use one."""
    if len(secret) <= 8:
        return "****"
    return f"{secret[:2]}****{secret[-2:]}"


@dataclass(frozen=True)
class CanadaPostSettings:
    env: str
    base_url: str
    username: str
    password: str
    customer_number: str
    contract_id: str | None
    service_code: str
    label_format: str

    @property
    def contract(self) -> bool:
        return self.contract_id is not None


@dataclass(frozen=True)
class BestBuySettings:
    base_url: str
    api_key: str
    shop_id: str | None
    carrier_code: str


@dataclass(frozen=True)
class SenderSettings:
    name: str | None
    company: str
    phone: str
    address_line_1: str
    address_line_2: str | None
    city: str
    province: str
    postal_code: str


@dataclass(frozen=True)
class ParcelSettings:
    weight_kg: Decimal
    length_cm: Decimal | None
    width_cm: Decimal | None
    height_cm: Decimal | None


@dataclass(frozen=True)
class Rate:
    """At most ``calls`` calls in any ``seconds`` (a service's published or configured limit)."""

    calls: int
    seconds: float


@dataclass(frozen=True)
class TrackingSettings:
    out_for_delivery_minutes: int
    attempted_minutes: int  # a delivery attempt or an exception
    in_transit_minutes: int  # in transit, or an event fulfil does not know
    pre_transit_minutes: int  # not scanned yet, or returning to the sender
    max_failures: int
    cutoff_days: int
    no_scan_hours: int  # a label with no acceptance scan after this long needs attention
    daily_calls: int | None = None  # tracking calls a day at most (None: no daily cap)


@dataclass(frozen=True)
class RateBudgetSettings:
    """The limits fulfil keeps to, shared by every process and host using the database."""

    canadapost: Mapping[str, Rate]  # by throttle group, A to F
    bestbuy: Mapping[str, Rate]  # by endpoint (OR11); every other endpoint only pauses on a 429
    bestbuy_default_retry_after: float  # the pause after a 429 with no Retry-After
    headroom: float  # the share of each limit spent


@dataclass(frozen=True)
class HttpSettings:
    connect_timeout: float
    read_timeout: float
    # The whole of one call: the watchdog cuts it off here however slowly the answer trickles.
    deadline: float
    # What server certificates are checked against; None = the certifi bundle. Never "off".
    ca_bundle: str | None = None


class Settings:
    """Every setting with the place it came from; typed groups are built (and checked) on use."""

    def __init__(
        self,
        values: Mapping[str, Setting],
        config_file: Path | None,
        cwd: Path,
        trust_environment: Mapping[str, str] | None = None,
        rule_tables: Mapping[str, object] | None = None,
    ) -> None:
        self._values = dict(values)
        # The config file's [[service_rules]] and [[option_rules]], read by shipping_rules().
        self.rule_tables = dict(rule_tables or {})
        self.config_file = config_file
        self.cwd = cwd
        # REQUESTS_CA_BUNDLE and friends, as they were when the settings were read.
        self.trust_environment = dict(trust_environment or {})

    def get(self, env: str) -> Setting:
        return self._values[env]

    def all(self) -> list[Setting]:
        return [self._values[spec.env] for spec in SETTINGS]

    def value(self, env: str) -> str | None:
        return self._values[env].value

    def secrets(self) -> list[str]:
        """Every secret value set, so audit and log output can scrub them wherever they appear."""
        return [s.value for s in self._values.values() if s.spec.secret and s.value]

    # --- typed groups -------------------------------------------------------------------------

    @property
    def database_url(self) -> str | None:
        return self.value("FULFIL_DATABASE_URL")

    @property
    def data_dir(self) -> Path:
        configured = self.value("FULFIL_DATA_DIR")
        if configured:
            return Path(configured).expanduser()
        import platformdirs

        return Path(platformdirs.user_data_dir("fulfil", appauthor=False))

    @property
    def labels_dir(self) -> Path:
        raw = self.value("FULFIL_LABELS_DIR") or "labels"
        path = Path(raw).expanduser()
        return path if path.is_absolute() else self.cwd / path

    def http(self) -> HttpSettings:
        connect_timeout = float(self._required_decimal("FULFIL_HTTP_CONNECT_TIMEOUT"))
        read_timeout = float(self._required_decimal("FULFIL_HTTP_READ_TIMEOUT"))
        deadline = self._positive_decimal("FULFIL_HTTP_DEADLINE", required=False)
        return HttpSettings(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            deadline=float(deadline) if deadline is not None else connect_timeout + read_timeout,
            ca_bundle=self._ca_bundle(),
        )

    def concurrency(self, override: int | None = None) -> int:
        """Workers per run: ``override`` (the --concurrency option), else FULFIL_CONCURRENCY."""
        if override is not None:
            raw = str(override)
            name = "--concurrency"
        else:
            raw = self.value("FULFIL_CONCURRENCY") or str(DEFAULT_CONCURRENCY)
            name = self.get("FULFIL_CONCURRENCY").name
        if not re.fullmatch(r"\d{1,3}", raw.strip()) or not 1 <= int(raw) <= MAX_CONCURRENCY:
            raise ConfigError(f"{name} is {raw!r}; expected a whole number from 1 to {MAX_CONCURRENCY}")
        return int(raw)

    def _ca_bundle(self) -> str | None:
        """FULFIL_CA_BUNDLE, else the first trust variable the environment sets; checked to exist,
        so a wrong path is a configuration error before anything is sent, not a failed call."""
        candidates = [(self.get("FULFIL_CA_BUNDLE").name, self.value("FULFIL_CA_BUNDLE"))]
        candidates += [(name, self.trust_environment.get(name)) for name in TRUST_VARIABLES]
        for name, raw in candidates:
            if raw is None or not raw.strip():
                continue
            path = Path(raw.strip()).expanduser()
            if not path.is_absolute():
                path = self.cwd / path
            if not path.exists():
                raise ConfigError(
                    f"{name} names {raw.strip()}, which does not exist (CA certificates to trust)"
                )
            return str(path)
        return None

    def rate_budgets(self) -> RateBudgetSettings:
        headroom = self._positive_decimal("FULFIL_RATE_HEADROOM", required=True)
        assert headroom is not None
        if headroom > 1:
            raise ConfigError(
                f"{self.get('FULFIL_RATE_HEADROOM').name} is {self.value('FULFIL_RATE_HEADROOM')!r}; "
                "expected a share of each limit above 0 and at most 1 (e.g. 0.95)"
            )
        return RateBudgetSettings(
            canadapost={
                group: self._rate(f"FULFIL_CANADAPOST_RATE_{group}") for group in CANADA_POST_GROUP_LIMITS
            },
            bestbuy={"OR11": self._rate("FULFIL_BESTBUY_RATE_OR11")},
            bestbuy_default_retry_after=float(self._required_decimal("FULFIL_BESTBUY_DEFAULT_RETRY_AFTER")),
            headroom=float(headroom),
        )

    def tracking(self) -> TrackingSettings:
        """How often the refresher asks about each parcel (fulfil.carrier_tracking.schedule)."""
        return TrackingSettings(
            out_for_delivery_minutes=self._whole("FULFIL_TRACKING_OUT_FOR_DELIVERY_MINUTES"),
            attempted_minutes=self._whole("FULFIL_TRACKING_ATTEMPTED_MINUTES"),
            in_transit_minutes=self._whole("FULFIL_TRACKING_IN_TRANSIT_MINUTES"),
            pre_transit_minutes=self._whole("FULFIL_TRACKING_PRE_TRANSIT_MINUTES"),
            max_failures=self._whole("FULFIL_TRACKING_MAX_FAILURES"),
            cutoff_days=self._whole("FULFIL_TRACKING_CUTOFF_DAYS"),
            no_scan_hours=self._whole("FULFIL_TRACKING_NO_SCAN_HOURS"),
            daily_calls=self._whole("FULFIL_TRACKING_DAILY_CALLS")
            if (self.value("FULFIL_TRACKING_DAILY_CALLS") or "").strip()
            else None,
        )

    def _whole(self, env: str) -> int:
        raw = self._required(env)
        if not raw.strip().isdigit() or int(raw) < 1 or int(raw) > 1_000_000:
            raise ConfigError(f"{self.get(env).name} is {raw!r}; expected a whole number from 1 to 1000000")
        return int(raw)

    def canadapost(self) -> CanadaPostSettings:
        env = self._required("FULFIL_CANADAPOST_ENV")
        if env not in CANADAPOST_HOSTS:
            raise ConfigError(
                f"{self.get('FULFIL_CANADAPOST_ENV').name} is {env!r}; expected development or production"
            )
        base_url = self.value("FULFIL_CANADAPOST_BASE_URL") or CANADAPOST_HOSTS[env]
        self._check_url("FULFIL_CANADAPOST_BASE_URL", base_url)
        self._require_all(
            "Canada Post",
            ["FULFIL_CANADAPOST_USERNAME", "FULFIL_CANADAPOST_PASSWORD", "FULFIL_CANADAPOST_CUSTOMER_NUMBER"],
        )
        customer_number = self._digits("FULFIL_CANADAPOST_CUSTOMER_NUMBER", 10)
        contract_id = self.value("FULFIL_CANADAPOST_CONTRACT_ID")
        if contract_id is not None:
            contract_id = self._digits("FULFIL_CANADAPOST_CONTRACT_ID", 10)
        label_format = self._required("FULFIL_CANADAPOST_LABEL_FORMAT")
        if label_format not in ("8.5x11", "4x6"):
            raise ConfigError(
                f"{self.get('FULFIL_CANADAPOST_LABEL_FORMAT').name} is {label_format!r}; "
                "expected 8.5x11 or 4x6"
            )
        service_code = self._required("FULFIL_CANADAPOST_SERVICE_CODE")
        if not 1 <= len(service_code) <= 32:
            raise ConfigError(f"{self.get('FULFIL_CANADAPOST_SERVICE_CODE').name} must be 1 to 32 characters")
        return CanadaPostSettings(
            env=env,
            base_url=base_url.rstrip("/"),
            username=self._required("FULFIL_CANADAPOST_USERNAME"),
            password=self._required("FULFIL_CANADAPOST_PASSWORD"),
            customer_number=customer_number,
            contract_id=contract_id,
            service_code=service_code,
            label_format=label_format,
        )

    def refund_email(self) -> str | None:
        """FULFIL_CANADAPOST_REFUND_EMAIL when set (checked as Canada Post's schema checks it), else
        None: only a refund request needs it (``require_refund_email``)."""
        raw = self.value("FULFIL_CANADAPOST_REFUND_EMAIL")
        if raw is None:
            return None
        if len(raw) > CANADA_POST_EMAIL_MAX or not CANADA_POST_EMAIL.fullmatch(raw):
            raise ConfigError(
                f"{self.get('FULFIL_CANADAPOST_REFUND_EMAIL').name} is {raw!r}; expected an e-mail "
                f"address Canada Post accepts (name@example.ca, at most {CANADA_POST_EMAIL_MAX} characters)"
            )
        return raw

    def require_refund_email(self, why: str) -> str:
        """The refund e-mail, for a refund request that is about to be needed (``why``)."""
        email = self.refund_email()
        if email is None:
            raise ConfigError(refund_email_missing(why))
        return email

    def bestbuy(self) -> BestBuySettings:
        base_url = self._required("FULFIL_BESTBUY_BASE_URL")
        self._check_url("FULFIL_BESTBUY_BASE_URL", base_url)
        self._require_all("Best Buy", ["FULFIL_BESTBUY_API_KEY"])
        shop_id = self.value("FULFIL_BESTBUY_SHOP_ID")
        if shop_id is not None:
            shop_id = self._digits("FULFIL_BESTBUY_SHOP_ID", 19)
        carrier_code = self._required("FULFIL_BESTBUY_CARRIER_CODE")
        return BestBuySettings(
            base_url=base_url.rstrip("/"),
            api_key=self._required("FULFIL_BESTBUY_API_KEY"),
            shop_id=shop_id,
            carrier_code=carrier_code,
        )

    def sender(self) -> SenderSettings:
        required = [
            "FULFIL_SENDER_COMPANY",
            "FULFIL_SENDER_PHONE",
            "FULFIL_SENDER_ADDRESS_LINE_1",
            "FULFIL_SENDER_CITY",
            "FULFIL_SENDER_PROVINCE",
            "FULFIL_SENDER_POSTAL_CODE",
        ]
        self._require_all("the sender address", required)
        return SenderSettings(
            name=self.value("FULFIL_SENDER_NAME"),
            company=self._required("FULFIL_SENDER_COMPANY"),
            phone=self._required("FULFIL_SENDER_PHONE"),
            address_line_1=self._required("FULFIL_SENDER_ADDRESS_LINE_1"),
            address_line_2=self.value("FULFIL_SENDER_ADDRESS_LINE_2"),
            city=self._required("FULFIL_SENDER_CITY"),
            province=self._required("FULFIL_SENDER_PROVINCE"),
            postal_code=self._required("FULFIL_SENDER_POSTAL_CODE"),
        )

    def shipping_rules(self) -> ShippingRules:
        """The file's service and option rules (fulfil.service_rules); none without a file."""
        from fulfil.service_rules import read_shipping_rules

        return read_shipping_rules(str(self.config_file or "fulfil.toml"), self.rule_tables)

    def parcel(self) -> ParcelSettings:
        weight = self._positive_decimal("FULFIL_PARCEL_WEIGHT_KG", required=True)
        assert weight is not None
        return ParcelSettings(
            weight_kg=weight,
            length_cm=self._positive_decimal("FULFIL_PARCEL_LENGTH_CM", required=False),
            width_cm=self._positive_decimal("FULFIL_PARCEL_WIDTH_CM", required=False),
            height_cm=self._positive_decimal("FULFIL_PARCEL_HEIGHT_CM", required=False),
        )

    # --- checks -------------------------------------------------------------------------------

    def _required(self, env: str) -> str:
        value = self.value(env)
        if value is None:
            raise ConfigError(f"{self.get(env).name} is not set")
        return value

    def _require_all(self, what: str, envs: list[str]) -> None:
        missing = [self.get(env) for env in envs if self.value(env) is None]
        if not missing:
            return
        keys = [setting.spec.file_key or "" for setting in missing]
        sections = {key.rpartition(".")[0] for key in keys}
        if len(missing) > 1 and all(keys) and len(sections) == 1 and "" not in sections:
            # Each missing key named once: the variables, then where they go in the file.
            [section] = sections
            names = ", ".join(setting.spec.env for setting in missing)
            file_keys = ", ".join(key.rpartition(".")[2] for key in keys)
            raise ConfigError(
                f"{what} is not configured: set {names} (or {file_keys} under [{section}] in the config file)"
            )
        raise ConfigError(f"{what} is not configured: set {', '.join(setting.name for setting in missing)}")

    def _digits(self, env: str, max_len: int) -> str:
        value = self._required(env)
        if not re.fullmatch(rf"\d{{1,{max_len}}}", value):
            raise ConfigError(f"{self.get(env).name} must be 1 to {max_len} digits")
        return value

    def _required_decimal(self, env: str) -> Decimal:
        value = self._positive_decimal(env, required=True)
        assert value is not None
        return value

    def _positive_decimal(self, env: str, *, required: bool) -> Decimal | None:
        raw = self.value(env)
        if raw is None:
            if required:
                raise ConfigError(f"{self.get(env).name} is not set")
            return None
        try:
            number = Decimal(raw)
        except InvalidOperation:
            raise ConfigError(f"{self.get(env).name} is {raw!r}; expected a number") from None
        if not number.is_finite() or number <= 0:
            raise ConfigError(f"{self.get(env).name} is {raw!r}; expected a number above 0")
        return number

    def _rate(self, env: str) -> Rate:
        """CALLS (per minute) or CALLS/SECONDS: a whole number of calls, 1 or more, in a window."""
        raw = self._required(env)
        calls, slash, seconds = raw.partition("/")
        problem = f"{self.get(env).name} is {raw!r}; expected CALLS or CALLS/SECONDS (e.g. 646 or 646/60)"
        if not calls.strip().isdigit() or int(calls) < 1:
            raise ConfigError(f"{problem}: a whole number of calls, 1 or more")
        window = Decimal(int(CANADA_POST_WINDOW_S))
        if slash:
            try:
                window = Decimal(seconds.strip())
            except InvalidOperation:
                raise ConfigError(f"{problem}: the window in seconds") from None
            if not window.is_finite() or window <= 0:
                raise ConfigError(f"{problem}: a window above 0 seconds")
        return Rate(int(calls), float(window))

    def _check_url(self, env: str, url: str) -> None:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ConfigError(f"{self.get(env).name} is {url!r}; expected an http(s) URL")


def load_settings(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Read the environment and the config file once. Raises ConfigError for an unreadable file."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd

    explicit = environ.get("FULFIL_CONFIG") or None
    config_file: Path | None
    if explicit:
        named = Path(explicit).expanduser()
        config_file = named if named.is_absolute() else cwd / named
        if not config_file.is_file():
            raise ConfigError(f"FULFIL_CONFIG names {explicit}, which is not a readable file")
    else:
        candidate = cwd / "fulfil.toml"
        config_file = candidate if candidate.is_file() else None

    file_values, rule_tables = _read_config_file(config_file) if config_file else ({}, {})

    values: dict[str, Setting] = {}
    for spec in SETTINGS:
        env_value = environ.get(spec.env)
        if env_value is not None and env_value.strip() != "":
            values[spec.env] = Setting(spec, env_value.strip(), "environment")
        elif spec.file_key and spec.file_key in file_values:
            values[spec.env] = Setting(spec, file_values[spec.file_key], "file")
        elif spec.default is not None:
            values[spec.env] = Setting(spec, spec.default, "default")
        else:
            values[spec.env] = Setting(spec, None, "unset")
    trust = {name: environ[name] for name in TRUST_VARIABLES if environ.get(name)}
    return Settings(values, config_file, cwd, trust, rule_tables)


def _read_config_file(path: Path) -> tuple[dict[str, str], dict[str, object]]:
    """Flatten the TOML file to {"section.key": "value"}, refusing unknown keys and secrets; the
    rule arrays (``[[service_rules]]``, ``[[option_rules]]``) come back apart, as they are."""
    import tomllib  # only when there is a config file: 2 ms of every command otherwise

    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None

    known = {spec.file_key for spec in SETTINGS if spec.file_key}
    flat: dict[str, str] = {}
    rule_tables = {key: document.pop(key) for key in RULE_TABLES if key in document}

    def visit(prefix: str, table: Mapping[str, object]) -> None:
        for key, value in table.items():
            dotted = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                visit(dotted, value)
                continue
            if dotted in _SECRET_FILE_KEYS:
                raise ConfigError(
                    f"{path}: {dotted} is a secret; remove it from the file and set "
                    f"{_SECRET_FILE_KEYS[dotted]} in the environment instead"
                )
            if dotted not in known:
                raise ConfigError(f"{path}: unknown setting {dotted}")
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ConfigError(f"{path}: {dotted} must be a string or a number")
            flat[dotted] = str(value).strip()

    visit("", document)
    return flat, rule_tables


def refund_email_missing(why: str) -> str:
    """The error when a refund request is needed and FULFIL_CANADAPOST_REFUND_EMAIL is not set."""
    return (
        f"{setting_name('FULFIL_CANADAPOST_REFUND_EMAIL')} is not set: {why}, and Canada Post takes a "
        "refund request only with the e-mail address it answers about the refund"
    )


def setting_name(env: str) -> str:
    """How errors name a setting: the variable and its config-file key, e.g.
    "FULFIL_SENDER_POSTAL_CODE (or [sender] postal_code in the config file)"."""
    spec = next(spec for spec in SETTINGS if spec.env == env)
    return Setting(spec, None, "unset").name
