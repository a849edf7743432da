"""Optional validation against Canada Post's official XSD files, when a directory of them is given.

The XSDs are not part of fulfil (they are Canada Post's); a developer points the sandbox at a copy
(``--xsd-dir`` or FULFIL_SANDBOX_XSD_DIR). Then every request body is checked against them as
well as against the sandbox's own rules, and every XML answer the sandbox writes is checked before
it is sent: an invalid answer is the sandbox's bug and becomes a loud 500.
"""

from __future__ import annotations

import threading
from pathlib import Path

from lxml import etree

# Namespace -> schema file. shipment.xsd, ncshipment.xsd and manifest.xsd pull in common.xsd with
# xsd:redefine, which resolves relative to the file, so they are loaded by path.
SCHEMA_FILES: dict[str, str] = {
    "http://www.canadapost.ca/ws/shipment-v8": "shipment.xsd",
    "http://www.canadapost.ca/ws/ncshipment-v4": "ncshipment.xsd",
    "http://www.canadapost.ca/ws/track": "track.xsd",
    "http://www.canadapost.ca/ws/messages": "messages.xsd",
    "http://www.canadapost.ca/ws/manifest-v8": "manifest.xsd",
    "http://www.canadapost.ca/ws/ship/rate-v4": "rating.xsd",
}


class XsdError(ValueError):
    """A document does not validate against the official schema for its namespace."""


class OfficialSchemas:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        missing = [name for name in SCHEMA_FILES.values() if not (self.directory / name).is_file()]
        if missing or not (self.directory / "common.xsd").is_file():
            raise FileNotFoundError(
                f"{self.directory} lacks Canada Post XSD files: {', '.join(missing or ['common.xsd'])}"
            )
        self._schemas = {
            namespace: etree.XMLSchema(etree.parse(str(self.directory / filename)))
            for namespace, filename in SCHEMA_FILES.items()
        }
        # libxml2 schema objects keep an error log per object: one validation at a time.
        self._lock = threading.Lock()

    def covers(self, namespace: str | None) -> bool:
        return namespace in self._schemas

    def validate(self, root: etree._Element) -> None:
        namespace = etree.QName(root).namespace
        schema = self._schemas.get(namespace or "")
        if schema is None:
            raise XsdError(f"no official schema declares the namespace {namespace!r}")
        with self._lock:
            if schema.validate(root):
                return
            error = schema.error_log.last_error
        raise XsdError(f"line {error.line}: {error.message}")

    def validate_bytes(self, document: bytes) -> None:
        try:
            root = etree.fromstring(document, parser=etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError as exc:
            raise XsdError(f"not well-formed: {exc}") from None
        self.validate(root)
