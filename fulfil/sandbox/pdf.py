"""A real, minimal PDF 1.4 shipping label (and end-of-day manifest), built by hand (no PDF library
is a dependency).

The file has a correct cross-reference table, the standard Helvetica fonts in WinAnsiEncoding (so
French accents render), and an uncompressed content stream, so any viewer opens it and
``pdftotext`` reads the tracking PIN and the address back. The bars are decorative, not a
scannable barcode: a sandbox label must never be usable on a parcel.
"""

from __future__ import annotations

from dataclasses import dataclass

# Page sizes in points for Canada Post's two output formats.
PAGE_SIZES: dict[str, tuple[int, int]] = {"4x6": (288, 432), "8.5x11": (612, 792)}
SANDBOX_NOTICE = "SANDBOX LABEL - NOT VALID FOR MAILING"


@dataclass(frozen=True)
class LabelContent:
    tracking_pin: str
    shipment_id: str
    service_code: str
    sender_lines: tuple[str, ...]
    destination_lines: tuple[str, ...]
    reference: str | None = None
    output_format: str = "8.5x11"


def pdf_text(value: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding; characters it cannot encode become '?'."""
    encoded = value.encode("cp1252", errors="replace")
    out = bytearray(b"(")
    for byte in encoded:
        if byte in b"()\\":
            out += b"\\" + bytes([byte])
        elif byte < 32 or byte > 126:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    out += b")"
    return bytes(out)


class _Canvas:
    """Collects content-stream operators; coordinates are PDF points from the bottom left."""

    def __init__(self) -> None:
        self.operations: list[bytes] = []

    def text(self, x: float, y: float, value: str, *, size: float = 10, bold: bool = False) -> None:
        font = b"/F2" if bold else b"/F1"
        self.operations.append(b"BT %s %.1f Tf %.2f %.2f Td %s Tj ET" % (font, size, x, y, pdf_text(value)))

    def rectangle(self, x: float, y: float, width: float, height: float, *, fill: bool) -> None:
        self.operations.append(b"%.2f %.2f %.2f %.2f re %s" % (x, y, width, height, b"f" if fill else b"S"))

    def line_width(self, width: float) -> None:
        self.operations.append(b"%.2f w" % width)

    def stream(self) -> bytes:
        return b"\n".join(self.operations) + b"\n"


def _draw_bars(canvas: _Canvas, x: float, y: float, width: float, height: float, pin: str) -> None:
    # Bar widths follow the PIN's digits so every label looks different; not a real symbology.
    pattern: list[int] = []
    for digit in pin:
        value = int(digit) if digit.isdigit() else ord(digit) % 10
        pattern += [1 + value % 3, 1 + (value // 3) % 2, 1 + (value + 1) % 2, 2 - value % 2]
    unit = width / (sum(pattern) + 8)
    position = x + 4 * unit
    for index, bar in enumerate(pattern):
        if index % 2 == 0:
            canvas.rectangle(position, y, bar * unit, height, fill=True)
        position += bar * unit


def _label_stream(label: LabelContent, page_height: int) -> bytes:
    canvas = _Canvas()
    # The label itself is 4x6 inches; on a letter page it sits in the top-left corner.
    left, top = 18.0, page_height - 18.0
    width = 252.0
    canvas.line_width(1.5)
    canvas.rectangle(left - 6, top - 402, width + 12, 408, fill=False)
    canvas.text(left, top - 14, "CANADA POST / POSTES CANADA", size=11, bold=True)
    canvas.text(left, top - 27, f"{label.service_code}  {service_name(label.service_code)}", size=8)
    canvas.text(left, top - 46, "FROM / DE:", size=7, bold=True)
    y = top - 56
    for line in label.sender_lines:
        canvas.text(left, y, line, size=7)
        y -= 9
    canvas.text(left, top - 118, "TO / A:", size=9, bold=True)
    y = top - 134
    for index, line in enumerate(label.destination_lines):
        canvas.text(left + 8, y, line, size=12 if index == 0 else 11, bold=index == 0)
        y -= 15
    _draw_bars(canvas, left, top - 318, width, 60, label.tracking_pin)
    canvas.text(left + 30, top - 334, f"PIN {label.tracking_pin}", size=12, bold=True)
    canvas.text(left, top - 354, f"Shipment {label.shipment_id}", size=7)
    if label.reference:
        canvas.text(left, top - 364, f"Ref: {label.reference}", size=7)
    canvas.text(left, top - 390, SANDBOX_NOTICE, size=8, bold=True)
    return canvas.stream()


def service_name(service_code: str) -> str:
    return SERVICE_NAMES.get(service_code, service_code)


SERVICE_NAMES: dict[str, str] = {
    "DOM.RP": "Regular Parcel",
    "DOM.EP": "Expedited Parcel",
    "DOM.XP": "Xpresspost",
    "DOM.XP.CERT": "Xpresspost Certified",
    "DOM.PC": "Priority",
    "DOM.LIB": "Library Materials",
    "USA.EP": "Expedited Parcel USA",
    "USA.PW.ENV": "Priority Worldwide Envelope USA",
    "USA.PW.PAK": "Priority Worldwide pak USA",
    "USA.PW.PARCEL": "Priority Worldwide Parcel USA",
    "USA.SP.AIR": "Small Packet USA Air",
    "USA.TP": "Tracked Packet - USA",
    "USA.XP": "Xpresspost USA",
    "INT.XP": "Xpresspost International",
    "INT.IP.AIR": "International Parcel Air",
    "INT.IP.SURF": "International Parcel Surface",
    "INT.PW.ENV": "Priority Worldwide Envelope Int'l",
    "INT.PW.PAK": "Priority Worldwide pak Int'l",
    "INT.PW.PARCEL": "Priority Worldwide parcel Int'l",
    "INT.SP.AIR": "Small Packet International Air",
    "INT.SP.SURF": "Small Packet International Surface",
    "INT.TP": "Tracked Packet - International",
}


def render_label_pdf(label: LabelContent) -> bytes:
    page_width, page_height = PAGE_SIZES.get(label.output_format, PAGE_SIZES["8.5x11"])
    return _document(
        _label_stream(label, page_height), page_width, page_height, f"Label {label.tracking_pin}"
    )


@dataclass(frozen=True)
class ManifestContent:
    """What a sandbox manifest (Canada Post's end-of-day form) prints."""

    po_number: str
    manifest_id: str
    manifest_date: str
    customer_number: str
    address_lines: tuple[str, ...]
    shipping_point: str
    # (tracking PIN, service code, reference) of each shipment on it.
    shipments: tuple[tuple[str, str, str], ...]


def render_manifest_pdf(manifest: ManifestContent) -> bytes:
    """A one-page letter manifest: the PO number, who mails, and every shipment on it."""
    canvas = _Canvas()
    top = 792 - 40
    canvas.text(40, top, "CANADA POST / POSTES CANADA", size=14, bold=True)
    canvas.text(40, top - 18, "ORDER / MANIFEST - BON DE COMMANDE / MANIFESTE", size=10, bold=True)
    canvas.text(40, top - 40, f"PO {manifest.po_number}", size=16, bold=True)
    canvas.text(320, top - 40, f"Date {manifest.manifest_date}", size=10)
    canvas.text(
        40, top - 58, f"Manifest {manifest.manifest_id}   Customer {manifest.customer_number}", size=8
    )
    y = top - 80
    for line in manifest.address_lines:
        canvas.text(40, y, line, size=9)
        y -= 11
    canvas.text(40, y - 4, f"Deposit at {manifest.shipping_point}", size=9)
    y -= 28
    canvas.text(40, y, "PIN", size=9, bold=True)
    canvas.text(200, y, "Service", size=9, bold=True)
    canvas.text(330, y, "Reference", size=9, bold=True)
    y -= 14
    shown = manifest.shipments[:40]
    for pin, service_code, reference in shown:
        canvas.text(40, y, pin, size=9)
        canvas.text(200, y, service_code, size=9)
        canvas.text(330, y, reference, size=9)
        y -= 12
    if len(manifest.shipments) > len(shown):
        canvas.text(40, y, f"... and {len(manifest.shipments) - len(shown)} more", size=9)
        y -= 12
    canvas.text(40, y - 8, f"Total items: {len(manifest.shipments)}", size=10, bold=True)
    canvas.text(40, 40, SANDBOX_NOTICE.replace("LABEL", "MANIFEST"), size=8, bold=True)
    return _document(canvas.stream(), 612, 792, f"Manifest {manifest.po_number}")


def _document(content: bytes, page_width: int, page_height: int, title: str) -> bytes:
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "
        b"/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>" % (page_width, page_height),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream",
        b"<< /Title %s /Producer (fulfil sandbox) >>" % pdf_text(title),
    ]
    # The binary comment tells transfer tools the file is binary, as PDF writers customarily do.
    document = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(document))
        document += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_offset = len(document)
    document += b"xref\n0 %d\n" % (len(objects) + 1)
    # Each entry is exactly 20 bytes, "nnnnnnnnnn ggggg n\r\n"-style, as the format requires.
    document += b"0000000000 65535 f \n"
    for offset in offsets:
        document += b"%010d 00000 n \n" % offset
    document += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\n" % (len(objects) + 1, len(objects))
    document += b"startxref\n%d\n%%%%EOF\n" % xref_offset
    return bytes(document)


def render_label_zpl(label: LabelContent) -> bytes:
    """The same label in ZPL II, for shipments that asked for <encoding>ZPL</encoding>."""

    def field(x: int, y: int, size: int, value: str) -> str:
        clean = value.replace("^", " ").replace("~", " ")
        return f"^FO{x},{y}^A0N,{size},{size}^FD{clean}^FS"

    parts = [
        "^XA^CI28",
        field(30, 30, 30, "CANADA POST / POSTES CANADA"),
        field(30, 70, 22, label.service_code),
    ]
    y = 110
    for line in label.sender_lines:
        parts.append(field(30, y, 20, line))
        y += 24
    y += 20
    for line in label.destination_lines:
        parts.append(field(50, y, 34, line))
        y += 40
    parts.append(f"^FO60,{y + 20}^BCN,120,Y,N,N^FD{label.tracking_pin}^FS")
    parts.append(field(30, y + 200, 22, SANDBOX_NOTICE))
    parts.append("^XZ")
    return "\n".join(parts).encode("utf-8")
