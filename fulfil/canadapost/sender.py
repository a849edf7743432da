"""The sender (return) address from the settings, checked against Canada Post's rules.

A bad sender setting would fail every order alike, so it is a configuration error naming the
setting, never an order error; and it is refused rather than shortened, since the operator can fix it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fulfil.canadapost.canada import normalise_phone, normalise_postal_code, province_code
from fulfil.canadapost.schema import ADDRESS_LINE_MAX, CITY_MAX, COMPANY_MAX, NAME_MAX
from fulfil.canadapost.text import clean_text
from fulfil.config import SenderSettings, setting_name
from fulfil.errors import ConfigError


@dataclass(frozen=True)
class SenderAddress:
    name: str | None
    company: str
    phone: str
    address_line_1: str
    address_line_2: str | None
    city: str
    province: str
    postal_code: str


def sender_address(sender: SenderSettings) -> SenderAddress:
    """The sender in Canada Post's form; raises ConfigError naming the first setting that is wrong."""
    raw_postal_code = _required(sender.postal_code, "FULFIL_SENDER_POSTAL_CODE")
    postal_code = normalise_postal_code(raw_postal_code)
    if postal_code is None:
        raise ConfigError(
            f"{setting_name('FULFIL_SENDER_POSTAL_CODE')} is {raw_postal_code!r}; "
            "expected a Canadian postal code such as K1A 0B1"
        )
    raw_province = _required(sender.province, "FULFIL_SENDER_PROVINCE")
    province = province_code(raw_province)
    if province is None:
        raise ConfigError(
            f"{setting_name('FULFIL_SENDER_PROVINCE')} is {raw_province!r}; "
            "expected a Canadian province or territory code such as ON"
        )
    raw_phone = _required(sender.phone, "FULFIL_SENDER_PHONE")
    phone = normalise_phone(raw_phone)
    if phone is None:
        raise ConfigError(
            f"{setting_name('FULFIL_SENDER_PHONE')} is {raw_phone!r}; expected a phone number such as "
            "613-555-0100, optionally with an extension (ext 12), at most 25 characters"
        )
    return SenderAddress(
        name=_optional(sender.name, "FULFIL_SENDER_NAME", NAME_MAX),
        company=_required(sender.company, "FULFIL_SENDER_COMPANY", COMPANY_MAX),
        phone=phone,
        address_line_1=_required(sender.address_line_1, "FULFIL_SENDER_ADDRESS_LINE_1", ADDRESS_LINE_MAX),
        address_line_2=_optional(sender.address_line_2, "FULFIL_SENDER_ADDRESS_LINE_2", ADDRESS_LINE_MAX),
        city=_required(sender.city, "FULFIL_SENDER_CITY", CITY_MAX),
        province=province,
        postal_code=postal_code,
    )


def _required(value: str | None, env: str, limit: int | None = None) -> str:
    cleaned = _optional(value, env, limit)
    if cleaned is None:
        raise ConfigError(f"{setting_name(env)} is not set")
    return cleaned


def _optional(value: str | None, env: str, limit: int | None) -> str | None:
    cleaned = clean_text(value) if value is not None else None
    if cleaned is not None and limit is not None and len(cleaned) > limit:
        raise ConfigError(
            f"{setting_name(env)} is {len(cleaned)} characters long; Canada Post accepts at most {limit}"
        )
    return cleaned
