"""The Canada Post destination of a Best Buy (Mirakl OR11) order, normalised and checked.

Best Buy's order data is loose (empty strings for absent values, a null country code beside
``country: "Canada"``, provinces as codes or names), while Canada Post refuses anything over its
field lengths. A label is paid for, so an address that cannot be sent whole is refused here, per
order, naming the field in the order JSON; only names and companies may be shortened, and every
shortening is reported as a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fulfil.canadapost.canada import (
    normalise_phone,
    normalise_postal_code,
    province_code,
    provinces_for_postal_code,
)
from fulfil.canadapost.schema import (
    ADDITIONAL_ADDRESS_INFO_MAX,
    ADDRESS_LINE_MAX,
    CITY_MAX,
    COMPANY_MAX,
    NAME_MAX,
)
from fulfil.canadapost.text import (
    clean_text,
    fold_for_matching,
    shorten_at_word_boundary,
    split_at_word_boundary,
)

ADDRESS_PATH = "customer.shipping_address"

_CANADA_ISO_CODES = frozenset({"ca", "can"})
_CANADA_NAMES = frozenset({"canada", "ca", "can"})


class OrderDataError(ValueError):
    """An order cannot be shipped as it stands: its data must be fixed (at Best Buy or by hand)."""

    def __init__(self, order_id: str, field: str, message: str) -> None:
        super().__init__(f"order {order_id}: {field}: {message}")
        self.order_id = order_id
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Destination:
    """A domestic destination in Canada Post's terms: every value already fits its field."""

    name: str | None
    company: str | None
    additional_address_info: str | None
    phone: str | None
    address_line_1: str
    address_line_2: str | None
    city: str
    province: str
    postal_code: str
    country_code: str
    warnings: tuple[str, ...]


def destination_from_order(order_id: str, order: Mapping[str, Any]) -> Destination:
    """The destination of an OR11 order object; raises OrderDataError for data that cannot ship."""
    return _DestinationReader(order_id, order).read()


class _DestinationReader:
    def __init__(self, order_id: str, order: Mapping[str, Any]) -> None:
        self.order_id = order_id
        self.order = order
        self.warnings: list[str] = []

    def fail(self, field: str, message: str) -> OrderDataError:
        return OrderDataError(self.order_id, field, message)

    def warn(self, field: str, message: str) -> None:
        self.warnings.append(f"order {self.order_id}: {field}: {message}")

    def read(self) -> Destination:
        customer = self.mapping(self.order, "customer", "customer")
        address = self.mapping(
            customer,
            "shipping_address",
            ADDRESS_PATH,
            missing="missing (Best Buy fills it in only once the order is accepted and paid)",
        )
        country_code = self.country(address)
        postal_code = self.postal_code(address)
        province = self.province(address, postal_code)
        city = self.required_text(address, "city", CITY_MAX, "the city")
        line_1, line_2 = self.street_lines(address)
        additional_info = self.text(address, "additional_info", f"{ADDRESS_PATH}.additional_info")
        if additional_info is not None and len(additional_info) > ADDITIONAL_ADDRESS_INFO_MAX:
            # It is delivery information (buzzer codes, "side door"): cutting it could mislead.
            raise self.fail(
                f"{ADDRESS_PATH}.additional_info",
                f"{len(additional_info)} characters, more than the {ADDITIONAL_ADDRESS_INFO_MAX} "
                f"Canada Post accepts: {additional_info!r}",
            )
        company = self.company(address)
        return Destination(
            name=self.recipient_name(customer, address, has_company=company is not None),
            company=company,
            additional_address_info=additional_info,
            phone=self.phone(address),
            address_line_1=line_1,
            address_line_2=line_2,
            city=city,
            province=province,
            postal_code=postal_code,
            country_code=country_code,
            warnings=tuple(self.warnings),
        )

    # --- reading values ---------------------------------------------------------------------

    def mapping(
        self, parent: Mapping[str, Any], key: str, path: str, *, missing: str = "missing"
    ) -> Mapping[str, Any]:
        value = parent.get(key)
        if value is None:
            raise self.fail(path, missing)
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected an object, found {type(value).__name__}")
        return value

    def text(self, parent: Mapping[str, Any], key: str, path: str) -> str | None:
        """The cleaned text of a field; None for absent, null, empty or whitespace-only values."""
        value = parent.get(key)
        if value is None:
            return None
        # A postal code or phone number can arrive as a JSON number from hand-made data.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.fail(path, f"expected text, found {type(value).__name__}")
        return clean_text(value)

    def required_text(self, address: Mapping[str, Any], key: str, limit: int, what: str) -> str:
        path = f"{ADDRESS_PATH}.{key}"
        value = self.text(address, key, path)
        if value is None:
            raise self.fail(path, f"missing ({what} is required)")
        if len(value) > limit:
            raise self.fail(
                path, f"{len(value)} characters, more than the {limit} Canada Post accepts: {value!r}"
            )
        return value

    # --- the fields -------------------------------------------------------------------------

    def country(self, address: Mapping[str, Any]) -> str:
        iso_path = f"{ADDRESS_PATH}.country_iso_code"
        iso = self.text(address, "country_iso_code", iso_path)
        if iso is not None and iso.casefold() not in _CANADA_ISO_CODES:
            raise self.fail(iso_path, f'"{iso}": fulfil ships to Canadian addresses only')
        name_path = f"{ADDRESS_PATH}.country"
        name = self.text(address, "country", name_path)
        if name is not None and fold_for_matching(name) not in _CANADA_NAMES:
            raise self.fail(name_path, f'"{name}": fulfil ships to Canadian addresses only')
        if iso is None and name is None:
            # Best Buy Canada only sells in Canada, and the postal code and province are checked
            # as Canadian below, so a missing country is not a guess about where the parcel goes.
            self.warn(name_path, "no country given; shipping within Canada")
        return "CA"

    def postal_code(self, address: Mapping[str, Any]) -> str:
        path = f"{ADDRESS_PATH}.zip_code"
        raw = address.get("zip_code")
        value = self.text(address, "zip_code", path)
        if value is None:
            raise self.fail(path, "missing (a postal code is required)")
        normalised = normalise_postal_code(value)
        if normalised is None:
            shown = raw if isinstance(raw, str) else value
            raise self.fail(path, f'"{shown}" is not a Canadian postal code')
        return normalised

    def province(self, address: Mapping[str, Any], postal_code: str) -> str:
        path = f"{ADDRESS_PATH}.state"
        value = self.text(address, "state", path)
        if value is None:
            raise self.fail(path, "missing (a province or territory is required)")
        code = province_code(value)
        if code is None:
            raise self.fail(path, f'"{value}" is not a Canadian province or territory')
        expected = provinces_for_postal_code(postal_code)
        if code not in expected:
            # Canada Post sorts on the postal code; a mismatch usually means a typo in one of the two.
            self.warn(
                path,
                f"{code} does not match postal code {postal_code}, which belongs to {' or '.join(expected)}",
            )
        return code

    def street_lines(self, address: Mapping[str, Any]) -> tuple[str, str | None]:
        path_1 = f"{ADDRESS_PATH}.street_1"
        path_2 = f"{ADDRESS_PATH}.street_2"
        street_1 = self.text(address, "street_1", path_1)
        street_2 = self.text(address, "street_2", path_2)
        if street_1 is None:
            raise self.fail(path_1, "missing (a street address is required)")
        if street_2 is not None and len(street_2) > ADDRESS_LINE_MAX:
            raise self.fail(
                path_2,
                f"{len(street_2)} characters, more than the {ADDRESS_LINE_MAX} Canada Post accepts: "
                f"{street_2!r}",
            )
        if len(street_1) <= ADDRESS_LINE_MAX:
            return street_1, street_2
        too_long = f"{len(street_1)} characters, more than the {ADDRESS_LINE_MAX} Canada Post accepts"
        if street_2 is not None:
            raise self.fail(path_1, f"{too_long}, and street_2 is taken: {street_1!r}")
        split = split_at_word_boundary(street_1, ADDRESS_LINE_MAX)
        if split is None or len(split[1]) > ADDRESS_LINE_MAX:
            raise self.fail(path_1, f"{too_long}, even split over two lines: {street_1!r}")
        head, rest = split
        self.warn(path_1, f"too long for one line; continued on address line 2 as {rest!r}")
        return head, rest

    def recipient_name(
        self, customer: Mapping[str, Any], address: Mapping[str, Any], *, has_company: bool
    ) -> str | None:
        first_path, last_path = f"{ADDRESS_PATH}.firstname", f"{ADDRESS_PATH}.lastname"
        first = self.text(address, "firstname", first_path)
        last = self.text(address, "lastname", last_path)
        if first is None and last is None:
            # The recipient can differ from the buyer, so the buyer's name is only a fallback.
            first_path, last_path = "customer.firstname", "customer.lastname"
            first = self.text(customer, "firstname", first_path)
            last = self.text(customer, "lastname", last_path)
            if first is not None or last is not None:
                self.warn(f"{ADDRESS_PATH}.lastname", "no recipient name; the buyer's name is used")
        if first is None and last is None:
            if not has_company:
                raise self.fail(f"{ADDRESS_PATH}.lastname", "missing (no recipient name or company)")
            return None
        full = " ".join(part for part in (first, last) if part)
        if len(full) <= NAME_MAX:
            return full
        if first and last and len(initialled := f"{first[0]}. {last}") <= NAME_MAX:
            shortened, field = initialled, first_path
        else:
            shortened = shorten_at_word_boundary(f"{first[0]}. {last}" if first and last else full, NAME_MAX)
            field = last_path if last else first_path
        self.warn(field, f"name {full!r} is longer than {NAME_MAX} characters; shortened to {shortened!r}")
        return shortened

    def company(self, address: Mapping[str, Any]) -> str | None:
        path = f"{ADDRESS_PATH}.company"
        company = self.text(address, "company", path)
        company_2 = self.text(address, "company_2", f"{ADDRESS_PATH}.company_2")
        if company_2 is not None:
            # company_2 (a department, a branch) is part of the addressee: kept, after the company.
            if company is None:
                company, path = company_2, f"{ADDRESS_PATH}.company_2"
            else:
                company = f"{company}, {company_2}"
        if company is None or len(company) <= COMPANY_MAX:
            return company
        shortened = shorten_at_word_boundary(company, COMPANY_MAX)
        self.warn(
            path, f"company {company!r} is longer than {COMPANY_MAX} characters; shortened to {shortened!r}"
        )
        return shortened

    def phone(self, address: Mapping[str, Any]) -> str | None:
        for key in ("phone", "phone_secondary"):
            path = f"{ADDRESS_PATH}.{key}"
            raw = self.text(address, key, path)
            if raw is None:
                continue
            phone = normalise_phone(raw)
            if phone is not None:
                return phone
            self.warn(path, f"{raw!r} is not a usable phone number; left off the label")
        return None
