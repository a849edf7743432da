"""Refund request bodies: contract (``<shipment-refund-request>``, shipment-v8) and non-contract
(``<non-contract-shipment-refund-request>``, ncshipment-v4). Both hold one element, the e-mail
address Canada Post writes to about the refund (FULFIL_CANADAPOST_REFUND_EMAIL, checked against
the schemas' EmailType when it is read)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from fulfil.canadapost.schema import (
    NCSHIPMENT_MEDIA_TYPE,
    NCSHIPMENT_NAMESPACE,
    SHIPMENT_MEDIA_TYPE,
    SHIPMENT_NAMESPACE,
)


@dataclass(frozen=True)
class RefundRequest:
    xml: bytes  # UTF-8 with XML declaration
    media_type: str


def build_refund_request(email: str, *, contract: bool) -> RefundRequest:
    namespace = SHIPMENT_NAMESPACE if contract else NCSHIPMENT_NAMESPACE
    name = "shipment-refund-request" if contract else "non-contract-shipment-refund-request"
    root = etree.Element(f"{{{namespace}}}{name}", nsmap={None: namespace})
    etree.SubElement(root, f"{{{namespace}}}email").text = email
    return RefundRequest(
        xml=etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
        media_type=SHIPMENT_MEDIA_TYPE if contract else NCSHIPMENT_MEDIA_TYPE,
    )
