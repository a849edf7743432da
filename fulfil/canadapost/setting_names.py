"""How errors name a setting, the same way config.py does: the variable and its config-file key."""

from __future__ import annotations

from fulfil.config import SETTINGS, Setting


def setting_name(env: str) -> str:
    """E.g. "FULFIL_SENDER_POSTAL_CODE (or [sender] postal_code in the config file)"."""
    spec = next(spec for spec in SETTINGS if spec.env == env)
    return Setting(spec, None, "unset").name
