"""The sandbox's built-in field rules agree with the official XSDs, sample by sample and on
hundreds of systematic mutations of valid documents (so the sandbox refuses what Canada Post's
schema refuses even when no XSD directory is configured)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from fulfil.sandbox import cp_schema
from tests.sandbox.conftest import NCSHIPMENT_NS, SHIPMENT_NS, contract_request, nc_request
from tests.sandbox.test_canadapost_samples import with_namespace
from tests.shared_reference import canadapost_samples, xsd_dir

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def schemas() -> dict[str, etree.XMLSchema]:
    directory = xsd_dir()
    return {
        SHIPMENT_NS: etree.XMLSchema(etree.parse(str(directory / "shipment.xsd"))),
        NCSHIPMENT_NS: etree.XMLSchema(etree.parse(str(directory / "ncshipment.xsd"))),
    }


def own_verdict(root: etree._Element) -> str | None:
    qname = etree.QName(root)
    try:
        cp_schema.validate(root, qname.namespace or "", qname.localname)
    except cp_schema.SchemaViolation as violation:
        return str(violation)
    return None


def rich_contract() -> etree._Element:
    """A contract request using most optional parts: options, notification, customs, return-spec."""
    root = etree.fromstring(contract_request(pricing=True, encoding="PDF"))
    ns = SHIPMENT_NS

    def add(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{ns}}}{tag}")
        element.text = text
        return element

    spec = root.find(f"{{{ns}}}delivery-spec")
    options = add(spec, "options")
    option = add(options, "option")
    add(option, "option-code", "COV")
    add(option, "option-amount", "100.00")
    add(add(options, "option"), "option-code", "SO")
    notification = add(spec, "notification")
    add(notification, "email", "buyer.test@example.ca")
    for flag in ("on-shipment", "on-exception", "on-delivery"):
        add(notification, flag, "true")
    dimensions = add(spec.find(f"{{{ns}}}parcel-characteristics"), "dimensions")
    for side, value in (("length", "30.5"), ("width", "20"), ("height", "10.0")):
        add(dimensions, side, value)
    customs = add(spec, "customs")
    add(customs, "currency", "CAD")
    add(customs, "reason-for-export", "SOG")
    item = add(add(customs, "sku-list"), "item")
    add(item, "customs-number-of-units", "2")
    add(item, "customs-description", "Laptop computer")
    add(item, "hs-tariff-code", "8471.30.00")
    add(item, "unit-weight", "1.200")
    add(item, "customs-value-per-unit", "349.99")
    add(item, "country-of-origin", "CN")
    add(root, "expected-mailing-date", "2025-09-02")
    returns = add(root, "return-spec")
    add(returns, "service-code", "DOM.EP")
    recipient = add(returns, "return-recipient")
    add(recipient, "company", "Sandbox Electronics")
    address = add(recipient, "address-details")
    add(address, "address-line-1", "6975 Pacific Circle")
    add(address, "city", "Mississauga")
    add(address, "prov-state", "ON")
    add(address, "postal-zip-code", "L5T2H3")
    return root


def valid_documents() -> dict[str, etree._Element]:
    samples = canadapost_samples()
    official = with_namespace(
        (samples / "contract-create-shipment-request.cp-official-php-sample-v4.xml").read_bytes(), SHIPMENT_NS
    )
    return {
        "cp-official-sample": etree.fromstring(official),
        "karrio-nc-sample": etree.fromstring(
            (samples / "ncshipment-create-request.karrio-2023.xml").read_bytes()
        ),
        "contract": etree.fromstring(contract_request()),
        "rich-contract": rich_contract(),
        "non-contract": etree.fromstring(nc_request()),
    }


def mutations(root: etree._Element) -> Iterator[tuple[str, etree._Element]]:
    """Each mutation is applied to a fresh copy; labels name the element path and the change."""
    elements = [element for element in root.iter() if isinstance(element.tag, str)]
    for index, element in enumerate(elements):
        path = root.getroottree().getpath(element)
        leaf = len(element) == 0

        def mutated(change: str, index: int = index) -> tuple[etree._Element, etree._Element]:
            clone = copy.deepcopy(root)
            target = [e for e in clone.iter() if isinstance(e.tag, str)][index]
            return clone, target

        if index > 0:
            clone, target = mutated("delete")
            target.getparent().remove(target)
            yield f"{path} deleted", clone
            clone, target = mutated("duplicate")
            target.addnext(copy.deepcopy(target))
            yield f"{path} duplicated", clone
        clone, target = mutated("unknown child")
        etree.SubElement(target, f"{{{etree.QName(target).namespace}}}no-such-element")
        yield f"{path} with an unknown child", clone
        if leaf:
            for label, value in (
                ("empty", ""),
                ("45 characters", "A" * 45),
                ("word", "abc"),
                ("zero", "0"),
                ("negative", "-1"),
                ("spaces", " 12 "),
                ("lowercase postal", "h2b1a0"),
                ("spaced postal", "H2B 1A0"),
                ("many decimals", "1.23456"),
                ("boolean one", "1"),
                ("bad date", "2025-02-30"),
                ("too big", "1000000"),
            ):
                clone, target = mutated(label)
                target.text = value
                yield f"{path} = {label}", clone
        else:
            clone, target = mutated("text in complex")
            target.text = "stray text"
            yield f"{path} with text", clone


@pytest.mark.parametrize("name", list(valid_documents()))
def test_own_rules_and_official_schema_agree_on_mutations(
    name: str, schemas: dict[str, etree.XMLSchema]
) -> None:
    root = valid_documents()[name]
    schema = schemas[etree.QName(root).namespace]
    assert schema.validate(root), schema.error_log
    assert own_verdict(root) is None
    disagreements = []
    checked = 0
    for label, in_memory in mutations(root):
        # As received over HTTP: parsed from bytes (libxml2 treats an in-memory empty text node as
        # content, a parsed <a></a> as empty).
        mutant = etree.fromstring(etree.tostring(in_memory))
        official_ok = schema.validate(mutant)
        own = own_verdict(mutant)
        checked += 1
        if official_ok != (own is None):
            disagreements.append(
                f"{label}: official={'valid' if official_ok else schema.error_log.last_error} own={own}"
            )
    assert checked > 150
    assert disagreements == []


def test_wrong_namespace_is_refused_like_an_undeclared_element() -> None:
    root = etree.fromstring(with_namespace(contract_request(), "http://www.canadapost.ca/ws/shipment-v4"))
    with pytest.raises(
        cp_schema.SchemaViolation, match=r"^cvc-elt\.1\.a: Cannot find the declaration of element 'shipment'"
    ):
        cp_schema.validate(root, SHIPMENT_NS, "shipment")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.replace(b"<transmit-shipment>true", b"<transmit-shipment>false"), "cvc-elt.5.2.2.2.2"),
        (lambda s: s.replace(b"<customer-request-id>", b"<group-id>g</group-id><customer-request-id>"),
         "2.4.a"),
        (lambda s: s.replace(b"<postal-zip-code>L5T2H3", b"<postal-zip-code>L5T2H3"), None),
        (lambda s: s.replace(b"<name>Shipping Desk", b"<name>" + b"x" * 45), "cvc-maxLength-valid"),
        (lambda s: s.replace(b"L5T2H3</requested-shipping-point>", b"L5T 2H3</requested-shipping-point>"),
         "cvc-pattern-valid"),
        (lambda s: s.replace(b"<intended-method-of-payment>Account</intended-method-of-payment>", b""),
         "intended-method-of-payment"),
        (lambda s: s.replace(b"<output-format>4x6", b"<output-format>paper"), "cvc-enumeration-valid"),
        (lambda s: s.replace(b"<weight>1.250", b"<weight>1.2505"), "cvc-fractionDigits-valid"),
    ],
)  # fmt: skip
def test_messages_name_the_rule_that_failed(change: object, expected: str | None) -> None:
    document = change(contract_request())  # type: ignore[operator]
    verdict = own_verdict(etree.fromstring(document))
    if expected is None:
        assert verdict is None
    else:
        assert verdict is not None
        assert expected in verdict, verdict


def test_xsd_directory_without_schemas_is_refused(tmp_path: Path) -> None:
    from fulfil.sandbox.xsd import OfficialSchemas

    with pytest.raises(FileNotFoundError, match=r"shipment\.xsd"):
        OfficialSchemas(tmp_path)
