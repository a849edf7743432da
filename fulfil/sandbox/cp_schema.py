"""Canada Post's field rules for request bodies, checked without the XSD files.

The official XSDs are not shipped with fulfil, yet the sandbox must refuse what Canada Post
refuses. So the request document types (contract ``shipment``, ``non-contract-shipment``, the
refund requests, Transmit Shipments' ``transmit-set`` and Get Rates' ``mailing-scenario``) are
described here as data: every element, whether it is required, its simple type and facets.
``validate`` walks a parsed document against that description the way a schema validator does
(``xsd:all`` groups: any order, each element at most once) and answers with the first violation,
worded like the Xerces ``cvc-…`` messages Canada Post returns with code ``Server``. Tests check
that this description and the official XSDs agree on the real samples and on systematic
mutations of them.

Whitespace follows the XSD built-in types: ``xsd:string`` keeps it, ``xsd:normalizedString``
turns tabs and newlines into spaces (so lengths count every space), and booleans, decimals and
dates collapse it. Fixed values are compared as written, as libxml2 does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Literal

from lxml import etree

SHIPMENT_NS = "http://www.canadapost.ca/ws/shipment-v8"
NCSHIPMENT_NS = "http://www.canadapost.ca/ws/ncshipment-v4"
MANIFEST_NS = "http://www.canadapost.ca/ws/manifest-v8"
RATE_NS = "http://www.canadapost.ca/ws/ship/rate-v4"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

Base = Literal["string", "normalizedString", "boolean", "decimal", "integer", "date", "dateTime"]


@dataclass(frozen=True)
class SimpleType:
    name: str
    base: Base
    min_length: int | None = None
    max_length: int | None = None
    length: int | None = None
    patterns: tuple[str, ...] = ()
    enumeration: tuple[str, ...] = ()
    min_exclusive: Decimal | None = None
    min_inclusive: Decimal | None = None
    max_inclusive: Decimal | None = None
    fraction_digits: int | None = None


@dataclass(frozen=True)
class Element:
    name: str
    type: SimpleType | ComplexType
    required: bool = True
    fixed: str | None = None
    max_occurs: int = 1


@dataclass(frozen=True)
class ComplexType:
    """``xsd:all`` (any order, each once) or a ``sequence`` of one repeated element."""

    name: str
    elements: tuple[Element, ...]
    model: Literal["all", "sequence"] = "all"
    # Each tuple is a substitution group: exactly one of its members must appear.
    exactly_one_of: tuple[tuple[str, ...], ...] = field(default=())


class SchemaViolation(ValueError):
    """A document does not satisfy the field rules; ``str()`` is the cvc-style description."""


# --- simple types (names as in the XSDs, so messages name the same types) -------------------------


def _text(name: str, max_length: int | None = None, min_length: int | None = None) -> SimpleType:
    return SimpleType(name, "normalizedString", min_length=min_length, max_length=max_length)


def _decimal(
    name: str, maximum: str, digits: int, *, exclusive_zero: bool = True, minimum: str | None = None
) -> SimpleType:
    return SimpleType(
        name,
        "decimal",
        min_exclusive=Decimal(0) if exclusive_zero and minimum is None else None,
        min_inclusive=Decimal(minimum) if minimum is not None else None,
        max_inclusive=Decimal(maximum),
        fraction_digits=digits,
    )


BOOLEAN = SimpleType("boolean", "boolean")
STRICT_BOOLEAN = SimpleType("#AnonType_strictBoolean", "boolean", patterns=("true", "false"))
DATE = SimpleType("date", "date")
DATE_TIME = SimpleType("dateTime", "dateTime")
POSTAL_CODE = SimpleType("PostalCodeType", "string", patterns=(r"[A-Z]\d[A-Z]\d[A-Z]\d",))
COUNTRY_CODE = SimpleType("CountryCodeType", "string", patterns=("[a-zA-Z][a-zA-Z]",))
PROVINCE = _text("ProvinceType", 2, 1)
PROVINCE_STATE_OR_INTERNATIONAL = _text("ProvinceStateOrInternationalType", 20, 1)
POSTAL_OR_INTERNATIONAL = _text("PostalCodeOrZipOrInternationalType", 14, 1)
PHONE = _text("PhoneNumberType", 25)
CUSTOMER_ID = SimpleType("CustomerIDType", "string", patterns=(r"\d{1,10}",))
CONTRACT_ID = SimpleType("ContractIDType", "string", patterns=(r"\d{1,10}",))
METHOD_OF_PAYMENT = _text("MethodOfPaymentType", 15)
OUTLET_ID = _text("OutletIDType", 4)
COST_NON_ZERO = _decimal("CostTypeNonZero", "999999.99", 2)
SERVICE_CODE = _text("ServiceCodeType", 32, 1)
DIMENSION = _decimal("DimensionMeasurementType", "999.9", 1)
CUSTOMS_UNIT = SimpleType("CustomsUnitOfMeasure", "normalizedString", length=3)
CURRENCY = _text("CurrencyType", 3, 1)
CONTACT_NAME = _text("ContactNameType", 44)
COMPANY_NAME = _text("CompanyNameType", 44)
COST_CENTRE = _text("CostCentreIDType", 30)
CUSTOMER_REQUEST_ID = _text("CustomerRequestIdType", 35)
GROUP_ID = _text("GroupIDType", 32, 1)
PROMO_CODE = _text("PromoCodeType", 10)
_EMAIL_LOCAL = r"(['_A-Za-z0-9\-\+]+)(\.['_A-Za-z0-9\-\+]+)*@([A-Za-z0-9-]+)(\.[A-Za-z0-9-]+)*"
EMAIL_V8 = SimpleType(
    "EmailType", "normalizedString", max_length=60, patterns=(_EMAIL_LOCAL + r"(\.[A-Za-z]{2,})",)
)
EMAIL_NC = SimpleType(
    "EmailType", "normalizedString", max_length=60, patterns=(_EMAIL_LOCAL + r"(\.[A-Za-z]{2,5})",)
)


def _line(required: bool = True, name: str = "address-line-1") -> Element:
    return Element(name, _text(f"#AnonType_{name}", 44, 1), required=required)


ADDRESS_LINE_2 = Element("address-line-2", _text("#AnonType_address-line-2", 44), required=False)


def _city(required: bool = True) -> Element:
    return Element("city", _text("#AnonType_city", 40, 1), required=required)


DOMESTIC_ADDRESS = ComplexType(
    "DomesticAddressDetailsType",
    (
        _line(),
        ADDRESS_LINE_2,
        _city(),
        Element("prov-state", PROVINCE),
        Element("postal-zip-code", POSTAL_CODE),
    ),
)
ADDRESS = ComplexType(
    "AddressDetailsType",
    (
        _line(),
        ADDRESS_LINE_2,
        _city(),
        Element("prov-state", PROVINCE_STATE_OR_INTERNATIONAL),
        Element("country-code", COUNTRY_CODE),
        Element("postal-zip-code", POSTAL_OR_INTERNATIONAL, required=False),
    ),
)


def _destination_address(line_1_required: bool) -> ComplexType:
    return ComplexType(
        "DestinationAddressDetailsType",
        (
            _line(required=line_1_required),
            ADDRESS_LINE_2,
            _city(required=False),
            Element("prov-state", PROVINCE_STATE_OR_INTERNATIONAL, required=False),
            Element("country-code", COUNTRY_CODE),
            Element("postal-zip-code", POSTAL_OR_INTERNATIONAL, required=False),
        ),
    )


def _sender(address: ComplexType) -> ComplexType:
    return ComplexType(
        "SenderType",
        (
            Element("name", CONTACT_NAME, required=False),
            Element("company", COMPANY_NAME),
            Element("contact-phone", PHONE),
            Element("address-details", address),
        ),
    )


def _destination(address: ComplexType) -> ComplexType:
    return ComplexType(
        "DestinationType",
        (
            Element("name", CONTACT_NAME, required=False),
            Element("company", COMPANY_NAME, required=False),
            Element(
                "additional-address-info", _text("#AnonType_additional-address-info", 44), required=False
            ),
            Element("client-voice-number", PHONE, required=False),
            Element("address-details", address),
        ),
    )


OPTION = ComplexType(
    "OptionType",
    (
        Element("option-code", _text("#AnonType_option-code", 10, 1)),
        Element("option-amount", COST_NON_ZERO, required=False),
        Element("option-qualifier-1", BOOLEAN, required=False),
        Element("option-qualifier-2", _text("#AnonType_option-qualifier-2", 12), required=False),
    ),
)
OPTIONS = ComplexType("#AnonType_options", (Element("option", OPTION, max_occurs=20),), model="sequence")
DIMENSIONS = ComplexType(
    "#AnonType_dimensions",
    (Element("length", DIMENSION), Element("width", DIMENSION), Element("height", DIMENSION)),
)


def _parcel(non_contract: bool) -> ComplexType:
    flags = (
        ("document", "unpackaged", "mailing-tube")
        if non_contract
        else ("unpackaged", "mailing-tube", "oversized")
    )
    return ComplexType(
        "ParcelCharacteristicsType",
        (
            Element("weight", _decimal("#AnonType_weight", "999.999", 3)),
            Element("dimensions", DIMENSIONS, required=False),
            *(Element(flag, BOOLEAN, required=False) for flag in flags),
        ),
    )


def _notification(email: SimpleType) -> ComplexType:
    return ComplexType(
        "NotificationType",
        (
            Element("email", email),
            Element("on-shipment", BOOLEAN),
            Element("on-exception", BOOLEAN),
            Element("on-delivery", BOOLEAN),
        ),
    )


PRINT_PREFERENCES = ComplexType(
    "PrintPreferencesType",
    (
        Element(
            "output-format",
            SimpleType("#AnonType_output-format", "string", enumeration=("8.5x11", "4x6")),
            required=False,
        ),
        Element(
            "encoding", SimpleType("#AnonType_encoding", "string", enumeration=("PDF", "ZPL")), required=False
        ),
    ),
)
PREFERENCES = ComplexType(
    "PreferencesType",
    (
        Element("show-packing-instructions", BOOLEAN),
        Element("show-postage-rate", BOOLEAN, required=False),
        Element("show-insured-value", BOOLEAN, required=False),
    ),
)
REFERENCES = ComplexType(
    "ReferencesType",
    (
        Element("cost-centre", COST_CENTRE, required=False),
        Element("customer-ref-1", _text("#AnonType_customer-ref-1", 35), required=False),
        Element("customer-ref-2", _text("#AnonType_customer-ref-2", 35), required=False),
    ),
)
SKU = ComplexType(
    "SkuType",
    (
        Element(
            "customs-number-of-units",
            SimpleType(
                "#AnonType_customs-number-of-units",
                "integer",
                min_inclusive=Decimal(1),
                max_inclusive=Decimal(9999),
            ),
        ),
        Element("customs-description", _text("#AnonType_customs-description", 45, 1)),
        Element("sku", _text("#AnonType_sku", 15), required=False),
        Element(
            "hs-tariff-code",
            SimpleType(
                "#AnonType_hs-tariff-code", "string", patterns=(r"\d{4}(\.\d{2}(\.\d{2}(\.\d{2})?)?)?",)
            ),
            required=False,
        ),
        Element("unit-weight", _decimal("#AnonType_unit-weight", "99.999", 3)),
        Element("customs-value-per-unit", _decimal("#AnonType_customs-value-per-unit", "99999.99", 2)),
        Element("customs-unit-of-measure", CUSTOMS_UNIT, required=False),
        Element("country-of-origin", COUNTRY_CODE, required=False),
        Element("province-of-origin", PROVINCE, required=False),
    ),
)


def _customs(non_contract: bool) -> ComplexType:
    elements = [
        Element("currency", CURRENCY),
        Element(
            "conversion-from-cad",
            _decimal("#AnonType_conversion-from-cad", "999.999999" if non_contract else "9999.999999", 6),
            required=False,
        ),
        Element("reason-for-export", _text("#AnonType_reason-for-export", 3, 1)),
        Element("other-reason", _text("#AnonType_other-reason", 44), required=False),
        Element(
            "sku-list", ComplexType("#AnonType_sku-list", (Element("item", SKU, max_occurs=500),), "sequence")
        ),
        Element(
            "duties-and-taxes-prepaid",
            _decimal("#AnonType_duties-and-taxes-prepaid", "99999.99", 2),
            required=False,
        ),
        Element("certificate-number", _text("#AnonType_certificate-number", 10), required=False),
        Element("licence-number", _text("#AnonType_licence-number", 10), required=False),
        Element("invoice-number", _text("#AnonType_invoice-number", 10), required=False),
    ]
    if not non_contract:
        elements.append(Element("ioss-id", _text("#AnonType_ioss-id", 13), required=False))
    return ComplexType("CustomsType", tuple(elements))


SETTLEMENT_V8 = ComplexType(
    "SettlementInfoType",
    (
        Element("paid-by-customer", CUSTOMER_ID, required=False),
        Element("contract-id", CONTRACT_ID, required=False),
        Element("cif-shipment", BOOLEAN, required=False, fixed="true"),
        Element("intended-method-of-payment", METHOD_OF_PAYMENT),
        Element("promo-code", PROMO_CODE, required=False),
    ),
)
SETTLEMENT_NC = ComplexType("SettlementInfoType", (Element("promo-code", PROMO_CODE, required=False),))

DELIVERY_SPEC_V8 = ComplexType(
    "DeliverySpecType",
    (
        Element("service-code", SERVICE_CODE),
        Element("sender", _sender(ADDRESS)),
        Element("destination", _destination(_destination_address(line_1_required=False))),
        Element("options", OPTIONS, required=False),
        Element("parcel-characteristics", _parcel(non_contract=False)),
        Element("notification", _notification(EMAIL_V8), required=False),
        Element("print-preferences", PRINT_PREFERENCES, required=False),
        Element("preferences", PREFERENCES),
        Element("references", REFERENCES, required=False),
        Element("customs", _customs(non_contract=False), required=False),
        Element("settlement-info", SETTLEMENT_V8),
    ),
)
DELIVERY_SPEC_NC = ComplexType(
    "DeliverySpecType",
    (
        Element("service-code", SERVICE_CODE),
        Element("sender", _sender(DOMESTIC_ADDRESS)),
        Element("destination", _destination(_destination_address(line_1_required=True))),
        Element("options", OPTIONS, required=False),
        Element("parcel-characteristics", _parcel(non_contract=True)),
        Element("notification", _notification(EMAIL_NC), required=False),
        Element("preferences", PREFERENCES),
        Element("references", REFERENCES, required=False),
        Element("customs", _customs(non_contract=True), required=False),
        Element("settlement-info", SETTLEMENT_NC, required=False),
    ),
)
RETURN_SPEC = ComplexType(
    "ReturnSpecType",
    (
        Element("service-code", SERVICE_CODE),
        Element(
            "return-recipient",
            ComplexType(
                "ReturnRecipientType",
                (
                    Element("name", CONTACT_NAME, required=False),
                    Element("company", COMPANY_NAME, required=False),
                    Element("address-details", DOMESTIC_ADDRESS),
                ),
            ),
        ),
        Element("return-notification", EMAIL_V8, required=False),
    ),
)
PRE_AUTHORIZED_PAYMENT = ComplexType(
    "PreAuthorizedPaymentType",
    (
        Element("account-number", _text("#AnonType_account-number", 16, 1)),
        Element("auth-code", _text("#AnonType_auth-code", 16, 1)),
        Element("auth-timestamp", DATE_TIME),
        Element("charge-amount", _decimal("#AnonType_charge-amount", "9999999.99", 2)),
    ),
)
SHIPMENT = ComplexType(
    "ShipmentType",
    (
        Element("customer-request-id", CUSTOMER_REQUEST_ID, required=False),
        Element("group-id", GROUP_ID, required=False),
        Element("transmit-shipment", BOOLEAN, required=False, fixed="true"),
        Element("quickship-label-requested", BOOLEAN, required=False),
        Element("cpc-pickup-indicator", BOOLEAN, required=False, fixed="true"),
        Element("requested-shipping-point", POSTAL_CODE, required=False),
        Element("shipping-point-id", OUTLET_ID, required=False),
        Element("expected-mailing-date", DATE, required=False),
        Element("provide-pricing-info", BOOLEAN, required=False, fixed="true"),
        Element("provide-receipt-info", BOOLEAN, required=False, fixed="true"),
        Element("delivery-spec", DELIVERY_SPEC_V8),
        Element("return-spec", RETURN_SPEC, required=False),
        Element("pre-authorized-payment", PRE_AUTHORIZED_PAYMENT, required=False),
        Element("create-public-key", STRICT_BOOLEAN, required=False),
        Element("create-qr-code", STRICT_BOOLEAN, required=False),
    ),
    exactly_one_of=(("group-id", "transmit-shipment"),),
)
NON_CONTRACT_SHIPMENT = ComplexType(
    "NonContractShipmentType",
    (
        Element("requested-shipping-point", POSTAL_CODE, required=False),
        Element("delivery-spec", DELIVERY_SPEC_NC),
    ),
)
# manifest.xsd: Transmit Shipments' <transmit-set>. Its address type is its own (AddressDetailsType
# of manifest.xsd: a 2-character province, CA or US, a postal or ZIP code).
UNBOUNDED = 1_000_000
MANIFEST_ADDRESS_DETAILS = ComplexType(
    "AddressDetailsType",
    (
        _line(),
        ADDRESS_LINE_2,
        _city(),
        Element("prov-state", _text("#AnonType_prov-state", 2, 1)),
        Element(
            "country-code",
            SimpleType("#AnonType_country-code", "string", enumeration=("CA", "US")),
            required=False,
        ),
        Element(
            "postal-zip-code",
            SimpleType(
                "PostalCodeOrZipType", "string", patterns=(r"([A-Z]\d[A-Z]\d[A-Z]\d)|(\d{5}(-\d{4})?)",)
            ),
        ),
    ),
)
MANIFEST_ADDRESS = ComplexType(
    "ManifestAddressType",
    (
        Element("manifest-company", _text("#AnonType_manifest-company", 44, 1)),
        Element("manifest-name", _text("#AnonType_manifest-name", 44, 1), required=False),
        Element("phone-number", PHONE),
        Element("address-details", MANIFEST_ADDRESS_DETAILS),
    ),
)
TRANSMIT_SET = ComplexType(
    "ShipmentTransmitSetType",
    (
        Element("customer-request-id", CUSTOMER_REQUEST_ID, required=False),
        Element(
            "group-ids",
            ComplexType(
                "GroupIDListType", (Element("group-id", GROUP_ID, max_occurs=UNBOUNDED),), "sequence"
            ),
        ),
        Element("cpc-pickup-indicator", BOOLEAN, required=False, fixed="true"),
        Element("requested-shipping-point", POSTAL_CODE, required=False),
        Element("shipping-point-id", OUTLET_ID, required=False),
        Element("detailed-manifests", BOOLEAN),
        Element("method-of-payment", METHOD_OF_PAYMENT),
        Element("manifest-address", MANIFEST_ADDRESS),
        Element(
            "customer-reference", SimpleType("CustomerReferenceType", "string", max_length=12), required=False
        ),
        Element(
            "excluded-shipments",
            ComplexType(
                "ExcludedShipmentsType",
                (
                    Element(
                        "shipment-id",
                        SimpleType("ShipmentIDType", "normalizedString", max_length=32),
                        max_occurs=UNBOUNDED,
                    ),
                ),
                "sequence",
            ),
            required=False,
        ),
    ),
)
SHIPMENT_REFUND_REQUEST = ComplexType("ShipmentRefundRequestType", (Element("email", EMAIL_V8),))
NC_REFUND_REQUEST = ComplexType("NonContractShipmentRefundRequestType", (Element("email", EMAIL_NC),))

# rating.xsd: Get Rates' <mailing-scenario>. Its types are anonymous and its own: an option is a
# code and an amount only, a weight stops at 99.999 kg, a promo code needs a character, and the
# destination is a choice of a Canadian postal code, a ZIP code or a country.
RATE_OPTIONS = ComplexType(
    "#AnonType_options",
    (
        Element(
            "option",
            ComplexType(
                "#AnonType_option",
                (
                    Element("option-code", _text("#AnonType_option-code", 10, 1)),
                    Element("option-amount", COST_NON_ZERO, required=False),
                ),
            ),
            max_occurs=20,
        ),
    ),
    model="sequence",
)
RATE_PARCEL = ComplexType(
    "#AnonType_parcel-characteristics",
    (
        Element("weight", _decimal("#AnonType_weight", "99.999", 3)),
        Element("dimensions", DIMENSIONS, required=False),
        *(Element(flag, BOOLEAN, required=False) for flag in ("unpackaged", "mailing-tube", "oversized")),
    ),
)
RATE_DESTINATION = ComplexType(
    "#AnonType_destination",
    (
        Element(
            "domestic",
            ComplexType("#AnonType_domestic", (Element("postal-code", POSTAL_CODE),)),
            required=False,
        ),
        Element(
            "united-states",
            ComplexType(
                "#AnonType_united-states",
                (Element("zip-code", SimpleType("ZipCodeType", "string", patterns=(r"\d{5}(-\d{4})?",))),),
            ),
            required=False,
        ),
        Element(
            "international",
            ComplexType(
                "#AnonType_international",
                (
                    Element("country-code", COUNTRY_CODE),
                    Element("postal-code", _text("IntlPostalCodeType", 10, 1), required=False),
                ),
            ),
            required=False,
        ),
    ),
    exactly_one_of=(("domestic", "united-states", "international"),),
)
MAILING_SCENARIO = ComplexType(
    "#AnonType_mailing-scenario",
    (
        Element("customer-number", CUSTOMER_ID, required=False),
        Element("contract-id", CONTRACT_ID, required=False),
        Element("promo-code", _text("PromoCodeType", 10, 1), required=False),
        Element(
            "quote-type",
            SimpleType("#AnonType_quote-type", "string", enumeration=("commercial", "counter")),
            required=False,
        ),
        Element("expected-mailing-date", DATE, required=False),
        Element("options", RATE_OPTIONS, required=False),
        Element("parcel-characteristics", RATE_PARCEL),
        Element(
            "services",
            ComplexType(
                "#AnonType_services", (Element("service-code", SERVICE_CODE, max_occurs=20),), "sequence"
            ),
            required=False,
        ),
        Element("origin-postal-code", POSTAL_CODE),
        Element("destination", RATE_DESTINATION),
    ),
)

# (namespace, root element) -> its type: the documents the sandbox accepts as request bodies.
DOCUMENTS: dict[tuple[str, str], ComplexType] = {
    (SHIPMENT_NS, "shipment"): SHIPMENT,
    (SHIPMENT_NS, "shipment-refund-request"): SHIPMENT_REFUND_REQUEST,
    (NCSHIPMENT_NS, "non-contract-shipment"): NON_CONTRACT_SHIPMENT,
    (NCSHIPMENT_NS, "non-contract-shipment-refund-request"): NC_REFUND_REQUEST,
    (MANIFEST_NS, "transmit-set"): TRANSMIT_SET,
    (RATE_NS, "mailing-scenario"): MAILING_SCENARIO,
}


# --- validation ---------------------------------------------------------------------------------


def validate(root: etree._Element, namespace: str, root_name: str) -> None:
    """Raise SchemaViolation with a cvc-style description when ``root`` breaks the rules."""
    qname = etree.QName(root)
    if qname.namespace != namespace or qname.localname != root_name:
        raise SchemaViolation(f"cvc-elt.1.a: Cannot find the declaration of element '{qname.localname}'.")
    _check_attributes(root)
    _check_complex(root, DOCUMENTS[(namespace, root_name)], namespace)


def _check_attributes(element: etree._Element) -> None:
    for attribute in element.attrib:
        attribute_name = etree.QName(attribute)
        if attribute_name.namespace == XSI_NS and attribute_name.localname in (
            "schemaLocation",
            "noNamespaceSchemaLocation",
        ):
            continue
        name = etree.QName(element).localname
        raise SchemaViolation(
            f"cvc-complex-type.3.2.2: Attribute '{attribute_name.localname}' is not allowed to appear in "
            f"element '{name}'."
        )


def _expected(namespace: str, names: list[str]) -> str:
    return ", ".join(f'"{namespace}":{name}' for name in names)


def _check_complex(element: etree._Element, complex_type: ComplexType, namespace: str) -> None:
    name = etree.QName(element).localname
    if element.text and element.text.strip():
        raise SchemaViolation(
            f"cvc-complex-type.2.3: Element '{name}' cannot have character [children], because the type's "
            "content type is element-only."
        )
    by_name = {item.name: item for item in complex_type.elements}
    seen: dict[str, int] = {}
    for child_element in element:
        if not isinstance(child_element.tag, str):
            continue
        if child_element.tail and child_element.tail.strip():
            raise SchemaViolation(
                f"cvc-complex-type.2.3: Element '{name}' cannot have character [children], because the "
                "type's content type is element-only."
            )
        child_name = etree.QName(child_element)
        declaration = by_name.get(child_name.localname) if child_name.namespace == namespace else None
        if declaration is not None and seen.get(declaration.name, 0) >= declaration.max_occurs:
            declaration = None
        if declaration is not None and complex_type.exactly_one_of:
            for group in complex_type.exactly_one_of:
                if declaration is not None and declaration.name in group and any(seen.get(m) for m in group):
                    declaration = None
        if declaration is None:
            remaining = _remaining(complex_type, seen)
            expected = (
                f"One of '{{{_expected(namespace, remaining)}}}' is expected."
                if remaining
                else "No child element is expected at this point."
            )
            raise SchemaViolation(
                f"cvc-complex-type.2.4.a: Invalid content was found starting with element "
                f"'{child_name.localname}'. {expected}"
            )
        seen[declaration.name] = seen.get(declaration.name, 0) + 1
        _check_attributes(child_element)
        if isinstance(declaration.type, ComplexType):
            _check_complex(child_element, declaration.type, namespace)
        else:
            _check_simple(child_element, declaration)
    missing = [
        item.name
        for item in complex_type.elements
        if item.required and not seen.get(item.name) and not _in_group(complex_type, item.name)
    ]
    for group in complex_type.exactly_one_of:
        if not any(seen.get(member) for member in group):
            missing.append(group[0])
            missing.extend(group[1:])
    if missing:
        raise SchemaViolation(
            f"cvc-complex-type.2.4.b: The content of element '{name}' is not complete. "
            f"One of '{{{_expected(namespace, missing)}}}' is expected."
        )


def _in_group(complex_type: ComplexType, name: str) -> bool:
    return any(name in group for group in complex_type.exactly_one_of)


def _remaining(complex_type: ComplexType, seen: dict[str, int]) -> list[str]:
    names = []
    for item in complex_type.elements:
        if seen.get(item.name, 0) >= item.max_occurs:
            continue
        if any(
            item.name in group and any(seen.get(m) for m in group) for group in complex_type.exactly_one_of
        ):
            continue
        names.append(item.name)
    return names


def _check_simple(element: etree._Element, declaration: Element) -> None:
    name = declaration.name
    if any(isinstance(item.tag, str) for item in element):
        raise SchemaViolation(
            f"cvc-type.3.1.2: Element '{name}' is a simple type, so it must have no element information item "
            "[children]."
        )
    raw = "".join(element.itertext())
    if declaration.fixed is not None:
        # An empty element takes the fixed value; anything else must be written exactly so.
        if raw != "" and raw != declaration.fixed:
            raise SchemaViolation(
                f"cvc-elt.5.2.2.2.2: The value '{raw}' of element '{name}' does not match the "
                f"{{value constraint}} value '{declaration.fixed}'."
            )
        if raw == "":
            return
    check_value(raw, declaration.type, name)  # type: ignore[arg-type]


_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_INTEGER = re.compile(r"[+-]?\d+")
_DATE = re.compile(r"(-?\d{4,})-(\d{2})-(\d{2})(Z|[+-]\d{2}:\d{2})?")
_DATE_TIME = re.compile(r"(-?\d{4,})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?")


def _whitespace(raw: str, base: Base) -> str:
    if base == "string":
        return raw
    replaced = raw.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    if base == "normalizedString":
        return replaced
    return " ".join(replaced.split())


def check_value(raw: str, simple_type: SimpleType, element_name: str) -> None:
    value = _whitespace(raw, simple_type.base)
    type_name = simple_type.name
    invalid = f"cvc-datatype-valid.1.2.1: '{value}' is not a valid value for '{simple_type.base}'."
    number: Decimal | None = None
    if simple_type.base == "boolean":
        if value not in ("true", "false", "1", "0"):
            raise SchemaViolation(invalid)
    elif simple_type.base in ("decimal", "integer"):
        lexical = _DECIMAL if simple_type.base == "decimal" else _INTEGER
        if not lexical.fullmatch(value):
            raise SchemaViolation(invalid)
        try:
            number = Decimal(value if not value.endswith(".") else value + "0")
        except InvalidOperation:
            raise SchemaViolation(invalid) from None
    elif simple_type.base == "date":
        if not _valid_date(_DATE.fullmatch(value)):
            raise SchemaViolation(invalid)
    elif simple_type.base == "dateTime":
        match = _DATE_TIME.fullmatch(value)
        if not _valid_date(match) or not _valid_time(match):
            raise SchemaViolation(invalid)
    if simple_type.length is not None and len(value) != simple_type.length:
        raise SchemaViolation(
            f"cvc-length-valid: Value '{value}' with length = '{len(value)}' is not facet-valid with respect "
            f"to length '{simple_type.length}' for type '{type_name}'."
        )
    if simple_type.min_length is not None and len(value) < simple_type.min_length:
        raise SchemaViolation(
            f"cvc-minLength-valid: Value '{value}' with length = '{len(value)}' is not facet-valid with "
            f"respect to minLength '{simple_type.min_length}' for type '{type_name}'."
        )
    if simple_type.max_length is not None and len(value) > simple_type.max_length:
        raise SchemaViolation(
            f"cvc-maxLength-valid: Value '{value}' with length = '{len(value)}' is not facet-valid with "
            f"respect to maxLength '{simple_type.max_length}' for type '{type_name}'."
        )
    if simple_type.patterns and not any(re.fullmatch(pattern, value) for pattern in simple_type.patterns):
        shown = simple_type.patterns[0] if len(simple_type.patterns) == 1 else "|".join(simple_type.patterns)
        raise SchemaViolation(
            f"cvc-pattern-valid: Value '{value}' is not facet-valid with respect to pattern '{shown}' for "
            f"type '{type_name}'."
        )
    if simple_type.enumeration and value not in simple_type.enumeration:
        raise SchemaViolation(
            f"cvc-enumeration-valid: Value '{value}' is not facet-valid with respect to enumeration "
            f"'[{', '.join(simple_type.enumeration)}]'. It must be a value from the enumeration."
        )
    if number is not None:
        _check_number(value, number, simple_type)


def _check_number(value: str, number: Decimal, simple_type: SimpleType) -> None:
    type_name = simple_type.name
    if simple_type.min_exclusive is not None and not number > simple_type.min_exclusive:
        raise SchemaViolation(
            f"cvc-minExclusive-valid: Value '{value}' is not facet-valid with respect to minExclusive "
            f"'{simple_type.min_exclusive}' for type '{type_name}'."
        )
    if simple_type.min_inclusive is not None and number < simple_type.min_inclusive:
        raise SchemaViolation(
            f"cvc-minInclusive-valid: Value '{value}' is not facet-valid with respect to minInclusive "
            f"'{simple_type.min_inclusive}' for type '{type_name}'."
        )
    if simple_type.max_inclusive is not None and number > simple_type.max_inclusive:
        raise SchemaViolation(
            f"cvc-maxInclusive-valid: Value '{value}' is not facet-valid with respect to maxInclusive "
            f"'{simple_type.max_inclusive}' for type '{type_name}'."
        )
    if simple_type.fraction_digits is not None:
        # Trailing zeros are not significant: 1.2500 has two fraction digits.
        fraction = value.partition(".")[2].rstrip("0")
        if len(fraction) > simple_type.fraction_digits:
            raise SchemaViolation(
                f"cvc-fractionDigits-valid: Value '{value}' has {len(fraction)} fraction digits, but the "
                f"number of fraction digits has been limited to {simple_type.fraction_digits}."
            )


def _valid_date(match: re.Match[str] | None) -> bool:
    if match is None:
        return False
    year, month, day = int(match.group(1)), int(match.group(2)), int(match.group(3))
    if year == 0:
        return False
    try:
        date(abs(year) if 1 <= abs(year) <= 9999 else 2000, month, day)
    except ValueError:
        return False
    return True


def _valid_time(match: re.Match[str] | None) -> bool:
    if match is None:
        return False
    hour, minute, second = int(match.group(4)), int(match.group(5)), int(match.group(6))
    return (hour < 24 and minute < 60 and second < 60) or (hour == 24 and minute == 0 and second == 0)
