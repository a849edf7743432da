"""Canadian postal codes, provinces and phone numbers, in the forms Canada Post accepts."""

from __future__ import annotations

import re
from typing import Final

from fulfil.canadapost.schema import PHONE_MAX
from fulfil.canadapost.text import clean_text, fold_for_matching

# D, F, I, O, Q and U are never used (they read like other letters or digits to sorting machines);
# W and Z are never the first letter.
_POSTAL_CODE = re.compile(r"[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z]\d[ABCEGHJ-NPRSTV-Z]\d")

PROVINCE_CODES: Final = frozenset(
    {"AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT"}
)

# Full names in English and French, compared after fold_for_matching; plus the codes
# Canada Post retired (PQ, NF) that older address books still carry.
_PROVINCE_NAMES: Final = {
    "alberta": "AB",
    "british columbia": "BC",
    "colombie britannique": "BC",
    "manitoba": "MB",
    "new brunswick": "NB",
    "nouveau brunswick": "NB",
    "newfoundland and labrador": "NL",
    "newfoundland": "NL",
    "terre neuve et labrador": "NL",
    "terre neuve": "NL",
    "nf": "NL",
    "nova scotia": "NS",
    "nouvelle ecosse": "NS",
    "northwest territories": "NT",
    "territoires du nord ouest": "NT",
    "nunavut": "NU",
    "ontario": "ON",
    "prince edward island": "PE",
    "ile du prince edouard": "PE",
    "pei": "PE",
    "p e i": "PE",
    "quebec": "QC",
    "pq": "QC",
    "saskatchewan": "SK",
    "yukon": "YT",
    "yukon territory": "YT",
    "territoire du yukon": "YT",
}

# The first letter of a postal code is its province (X is shared by the two northern territories).
_PROVINCES_BY_FIRST_LETTER: Final = {
    "A": ("NL",),
    "B": ("NS",),
    "C": ("PE",),
    "E": ("NB",),
    "G": ("QC",),
    "H": ("QC",),
    "J": ("QC",),
    "K": ("ON",),
    "L": ("ON",),
    "M": ("ON",),
    "N": ("ON",),
    "P": ("ON",),
    "R": ("MB",),
    "S": ("SK",),
    "T": ("AB",),
    "V": ("BC",),
    "X": ("NT", "NU"),
    "Y": ("YT",),
}


def normalise_postal_code(raw: str) -> str | None:
    """The schema's form (K1A0B1: uppercase, no space) of "k1a 0b1" or "K1A-0B1"; None if not Canadian."""
    compact = re.sub(r"[\s-]", "", raw).upper()
    return compact if _POSTAL_CODE.fullmatch(compact) else None


def province_code(raw: str) -> str | None:
    """The two-letter code for a code or a full English/French name ("Québec", "qc"); None if unknown."""
    folded = fold_for_matching(raw)
    if folded.upper() in PROVINCE_CODES:
        return folded.upper()
    return _PROVINCE_NAMES.get(folded)


def provinces_for_postal_code(postal_code: str) -> tuple[str, ...]:
    """The provinces a normalised postal code can belong to."""
    return _PROVINCES_BY_FIRST_LETTER.get(postal_code[:1], ())


# "ext", "ext.", "extension", "x", "poste" (French), "#": what people type before an extension.
_EXTENSION = re.compile(r"(?:(?<![a-z])(?:extension|ext|poste|x|p)\.?|#)\s*:?\s*(\d{1,8})\s*$", re.IGNORECASE)


def normalise_phone(raw: str) -> str | None:
    """A readable phone number within Canada Post's 25 characters, or None when it is not one.

    North American numbers become NNN-NNN-NNNN (a leading 1 or +1 dropped); other lengths keep
    their digits as typed. An extension is kept as " ext N".
    """
    text = clean_text(raw)
    if text is None:
        return None
    extension = None
    found = _EXTENSION.search(text)
    if found is not None:
        extension = found.group(1)
        text = text[: found.start()]
    # Letters left over mean a vanity number or a note ("call after 5"): not something to dial.
    if re.search(r"[^\d\s().+\-/]", text):
        return None
    digits = re.sub(r"\D", "", text)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) == 10:
        number = f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    elif 7 <= len(digits) <= 15:
        number = digits
    else:
        return None
    if extension is not None:
        number = f"{number} ext {extension}"
    return number if len(number) <= PHONE_MAX else None
