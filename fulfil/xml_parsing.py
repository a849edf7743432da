"""Parsing XML that came from outside: no entity expansion, no DTDs, no network, bounded size.

Every XML document fulfil reads (Canada Post answers; request bodies in the sandbox) goes through
``parse_untrusted``. Documents are matched by local element name where the brief says namespaces
vary between versions (tracking, errors), so helpers here work on local names.
"""

from __future__ import annotations

from lxml import etree

MAX_XML_BYTES = 2 * 1024 * 1024


class UntrustedXmlError(ValueError):
    """The bytes are not a well-formed, acceptable XML document."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_untrusted(data: bytes | str, *, max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise UntrustedXmlError(f"XML document of {len(raw)} bytes is larger than the {max_bytes}-byte limit")
    if not raw.strip():
        raise UntrustedXmlError("empty document where XML was expected")
    try:
        root = etree.fromstring(raw, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise UntrustedXmlError(f"not well-formed XML: {exc}") from None
    if root is None:
        raise UntrustedXmlError("no XML document found")
    # A DOCTYPE is never part of Canada Post's messages; refusing it closes the door on entity tricks.
    if root.getroottree().docinfo.doctype:
        raise UntrustedXmlError("XML with a DOCTYPE declaration is not accepted")
    return root


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname


def namespace(element: etree._Element) -> str | None:
    return etree.QName(element).namespace


def child(element: etree._Element, name: str) -> etree._Element | None:
    """First direct child with this local name, in any namespace."""
    for item in element:
        if isinstance(item.tag, str) and local_name(item) == name:
            return item
    return None


def children(element: etree._Element, name: str) -> list[etree._Element]:
    return [item for item in element if isinstance(item.tag, str) and local_name(item) == name]


def child_text(element: etree._Element, name: str) -> str | None:
    found = child(element, name)
    if found is None or found.text is None:
        return None
    text = found.text.strip()
    return text or None


def find_path(element: etree._Element, *names: str) -> etree._Element | None:
    current: etree._Element | None = element
    for name in names:
        if current is None:
            return None
        current = child(current, name)
    return current
