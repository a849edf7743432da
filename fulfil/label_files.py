"""Label PDFs on disk: safe file names from order ids, atomic writes, verification.

An order id comes from outside (the marketplace), so it never becomes a path as it is: only
letters, digits, '.', '_' and '-' survive, and when anything had to be replaced a short hash of
the original keeps two different ids from landing on the same file. Files are written to a
temporary name in the same directory and renamed, so a crash never leaves half a label under the
real name; re-downloading is always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from fulfil.errors import ConfigError

PDF_MAGIC = b"%PDF-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_DOTS = re.compile(r"\.{2,}")
_MAX_STEM = 80


def safe_label_name(order_id: str, parcel: tuple[int, int] | None = None) -> str:
    """``parcel``: (number, count) of one parcel of an order split into several, whose labels are
    ``ORDER~parcel-2-of-3.pdf``: '~' is never in a name made from an order id, so no order's file
    can be another's parcel."""
    cleaned = _DOTS.sub("_", _UNSAFE.sub("_", order_id)).strip("._")[:_MAX_STEM] or "order"
    if cleaned != order_id:
        digest = hashlib.sha256(order_id.encode("utf-8")).hexdigest()[:10]
        cleaned = f"{cleaned}-{digest}"
    if parcel is not None and parcel[1] > 1:
        cleaned = f"{cleaned}~parcel-{parcel[0]}-of-{parcel[1]}"
    return f"{cleaned}.pdf"


def label_path(labels_dir: Path, order_id: str, parcel: tuple[int, int] | None = None) -> Path:
    return labels_dir / safe_label_name(order_id, parcel)


@dataclass(frozen=True)
class LabelFile:
    path: Path
    sha256: str
    size: int


def looks_like_pdf(data: bytes) -> bool:
    return data.startswith(PDF_MAGIC) and b"%%EOF" in data[-2048:]


class LabelsDirError(ConfigError):
    """The labels directory cannot take label files: a configuration error, found before buying."""


def check_labels_dir(labels_dir: Path, *, create: bool = True) -> None:
    """Make sure label PDFs can be written to ``labels_dir`` (creating it if need be), by writing
    and removing a probe file: a label is paid for before its PDF exists, so a directory that
    cannot take it must stop the run before anything is bought. With ``create`` false (``fulfil
    config check``) nothing is created or written: the nearest existing directory is judged."""
    where = f"FULFIL_LABELS_DIR (or labels_dir in the config file) is {labels_dir}"
    if labels_dir.exists() and not labels_dir.is_dir():
        raise LabelsDirError(f"{where}, which is a file, not a directory; label PDFs cannot be saved there")
    if not create:
        existing = labels_dir
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise LabelsDirError(f"{where}, which cannot be created: {existing} is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise LabelsDirError(f"{where}, which is not writable ({existing})")
        return
    try:
        labels_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabelsDirError(f"{where}, which cannot be created: {exc.strerror or exc}") from None
    probe = labels_dir / f".fulfil-write-check.{os.getpid()}.tmp"
    try:
        with open(probe, "wb") as handle:
            handle.write(PDF_MAGIC)
    except OSError as exc:
        raise LabelsDirError(f"{where}, which is not writable: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def write_label(
    labels_dir: Path, order_id: str, data: bytes, parcel: tuple[int, int] | None = None
) -> LabelFile:
    """Write the PDF atomically; returns where it is and its checksum."""
    labels_dir.mkdir(parents=True, exist_ok=True)
    target = label_path(labels_dir, order_id, parcel)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    _fsync_directory(labels_dir)
    return LabelFile(target, hashlib.sha256(data).hexdigest(), len(data))


def file_matches(path: str | None, sha256: str | None) -> bool:
    """True when the recorded file exists and still has the recorded checksum."""
    if not path:
        return False
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    if sha256 is None:
        return looks_like_pdf(data)  # recorded by an older tool without a checksum
    return hashlib.sha256(data).hexdigest() == sha256


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
