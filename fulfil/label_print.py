"""`fulfil labels print`: the labels not printed yet, as one PDF to send to the printer.

Layouts: ``4x6`` puts each label on a page of its own, 4 by 6 inches (a thermal printer's roll);
``8.5x11`` puts two 4x6 labels side by side on a letter page (a label bought as a letter page
keeps its page). A label is scaled to fit its slot, never stretched, and centred. The order is
stable (by order id, by the first line's SKU, or by the destination's postal code, then by order
id), so the same labels always make the same file.

Every label is checked against the checksum recorded when it was downloaded before it goes in: a
file that is missing or changed is reported by order and left out (``missing``), and the caller
re-downloads it (`fulfil labels download`) before it is printed; nothing is skipped silently. The
file is written under a temporary name and renamed, then the labels in it are marked printed in
the same transaction that held the print lock while they were read (sql/0012_label_prints.sql).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from fulfil.db import query

LAYOUTS = ("4x6", "8.5x11")
SORTS = ("order", "sku", "postal")
POINTS_PER_INCH = 72
LABEL_BOX = (4 * POINTS_PER_INCH, 6 * POINTS_PER_INCH)  # 288 x 432 points
LETTER = (8.5 * POINTS_PER_INCH, 11 * POINTS_PER_INCH)  # 612 x 792 points
# A source page this close to 4x6 (points) takes a half-letter slot; larger, a page of its own.
_FITS_A_SLOT = (LABEL_BOX[0] + 12, LABEL_BOX[1] + 12)


def _sql(name: str) -> str:
    return query("label_prints", name)


@dataclass
class PrintRun:
    path: Path | None = None  # None: nothing to print
    print_id: int | None = None
    printed: list[str] = field(default_factory=list)  # order ids, in the file's order
    pages: int = 0
    missing: dict[str, str] = field(default_factory=dict)  # order id -> why its file is unusable


def sort_key(sort: str) -> Any:
    def key(row: dict[str, Any]) -> tuple[str, str]:
        if sort == "sku":
            return (row["sku"] or "", row["order_id"])
        if sort == "postal":
            return ((row["postal_code"] or "").replace(" ", "").upper(), row["order_id"])
        return ("", row["order_id"])

    return key


def unusable(row: dict[str, Any]) -> str | None:
    """Why this label's file cannot be printed, or None."""
    path = row["label_pdf_path"]
    if not path:
        return "its PDF was never downloaded"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"its PDF {path} cannot be read ({exc.strerror or exc})"
    if row["label_pdf_sha256"] and hashlib.sha256(data).hexdigest() != row["label_pdf_sha256"]:
        return f"its PDF {path} changed since it was downloaded"
    return None


def compose(paths: Iterable[Path], layout: str) -> tuple[bytes, int]:
    """One PDF of every page of every label at ``paths``, in that order, laid out; and its pages."""
    from pypdf import PageObject, PdfReader, PdfWriter, Transformation

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    # pypdf says on stderr what it repaired in a file it could read (a stale cross-reference
    # offset): noise under cron, which mails whatever a job prints. A file it cannot read raises.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    writer = PdfWriter()
    slots: list[Any] = []
    for path in paths:
        slots.extend(PdfReader(path).pages)
    sheet: PageObject | None = None
    used = 0
    for source in slots:
        width, height = float(source.mediabox.width), float(source.mediabox.height)
        if layout == "4x6":
            page = writer.add_blank_page(*LABEL_BOX)
            _place(page, source, (0.0, 0.0, *LABEL_BOX), Transformation)
            continue
        if width > _FITS_A_SLOT[0] or height > _FITS_A_SLOT[1]:
            page = writer.add_blank_page(*LETTER)
            _place(page, source, (0.0, 0.0, *LETTER), Transformation)
            sheet = None
            continue
        if sheet is None or used == 2:
            sheet, used = writer.add_blank_page(*LETTER), 0
        margin_x = (LETTER[0] - 2 * LABEL_BOX[0]) / 3
        x = margin_x + used * (LABEL_BOX[0] + margin_x)
        y = (LETTER[1] - LABEL_BOX[1]) / 2
        _place(sheet, source, (x, y, *LABEL_BOX), Transformation)
        used += 1
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue(), len(writer.pages)


def _place(page: Any, source: Any, box: tuple[float, float, float, float], transformation: Any) -> None:
    """``source`` scaled to fit ``box`` (x, y, width, height) on ``page``, centred, never stretched."""
    x, y, box_width, box_height = box
    left, bottom = float(source.mediabox.left), float(source.mediabox.bottom)
    width, height = float(source.mediabox.width), float(source.mediabox.height)
    scale = min(box_width / width, box_height / height)
    dx = x + (box_width - width * scale) / 2 - left * scale
    dy = y + (box_height - height * scale) / 2 - bottom * scale
    page.merge_transformed_page(source, transformation().scale(scale, scale).translate(dx, dy))


def print_labels(
    conn: psycopg.Connection[Any],
    *,
    output_dir: Path,
    layout: str,
    sort: str,
    reprint: bool = False,
    since: datetime | None = None,
    order_ids: list[str] | None = None,
    output: Path | None = None,
    run_id: str | None = None,
) -> PrintRun:
    """Write the labels asked for as one PDF and mark them printed (see the module's docstring)."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    run = PrintRun()
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_sql("lock_printing"))
        rows = cur.execute(
            _sql("labels_to_print"), {"reprint": reprint, "since": since, "order_ids": order_ids}
        ).fetchall()
        rows.sort(key=sort_key(sort))
        usable = []
        for row in rows:
            why = unusable(row)
            if why is None:
                usable.append(row)
            else:
                run.missing[row["order_id"]] = why
        if not usable:
            return run
        data, run.pages = compose([Path(row["label_pdf_path"]) for row in usable], layout)
        target = output or output_dir / f"labels-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.pdf"
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, target)
        recorded = cur.execute(
            _sql("record_print"),
            {
                "path": str(target),
                "layout": layout,
                "sort": sort,
                "labels": len(usable),
                "pages": run.pages,
                "run_id": run_id,
            },
        ).fetchone()
        assert recorded is not None
        run.print_id = int(recorded["print_id"])
        cur.execute(
            _sql("mark_printed"),
            {"print_id": run.print_id, "shipment_ids": [row["shipment_id"] for row in usable]},
        )
        run.path = target
        run.printed = [row["order_id"] for row in usable]
    return run


def unusable_labels(
    conn: psycopg.Connection[Any],
    *,
    reprint: bool = False,
    since: datetime | None = None,
    order_ids: list[str] | None = None,
) -> dict[str, str]:
    """The labels a print would take whose file is missing or changed (order id -> why), to be
    downloaded again before the print."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            _sql("labels_to_print"), {"reprint": reprint, "since": since, "order_ids": order_ids}
        ).fetchall()
    return {row["order_id"]: why for row in rows if (why := unusable(row)) is not None}
