"""FULFIL_CANADAPOST_MANIFEST: when contract labels reach Canada Post's manifest.

``auto`` (the default, what fulfil always did): every contract label is bought with
``<transmit-shipment>``: Canada Post transmits it at once, and bills it on creation.

``end_of_day``: every contract label is bought into the day's group (``<group-id>``, one group
per Canada Post day, named ``fulfil-YYYYMMDD``: fulfil.canadapost.groups.day_group_id) and
stays "created" at Canada Post, voidable, until ``fulfil manifest transmit`` sends the day's
group (Transmit Shipments) and fetches its manifests. Non-contract labels are final when bought:
there is nothing to manifest, so end_of_day without FULFIL_CANADAPOST_CONTRACT_ID is refused.
"""

from __future__ import annotations

from enum import StrEnum

from fulfil.config import Settings
from fulfil.errors import ConfigError

MANIFEST_ENV = "FULFIL_CANADAPOST_MANIFEST"


class ManifestMode(StrEnum):
    AUTO = "auto"
    END_OF_DAY = "end_of_day"


DEFAULT_MODE = ManifestMode.AUTO


def manifest_mode(settings: Settings) -> ManifestMode:
    """The configured mode (environment or config file). ConfigError for a value that is neither."""
    setting = settings.get(MANIFEST_ENV)
    raw = (setting.value or "").strip()
    if not raw:
        return DEFAULT_MODE
    try:
        return ManifestMode(raw)
    except ValueError:
        raise ConfigError(f"{setting.name} is {raw!r}; expected auto or end_of_day") from None


def check_manifest_mode(mode: ManifestMode, *, contract: bool) -> None:
    """end_of_day needs contract shipping: a non-contract label has no group and no manifest."""
    if mode is ManifestMode.END_OF_DAY and not contract:
        raise ConfigError(
            f"{MANIFEST_ENV} is end_of_day, which needs contract shipping (FULFIL_CANADAPOST_CONTRACT_ID): "
            "non-contract labels are final when bought and have no manifest"
        )
