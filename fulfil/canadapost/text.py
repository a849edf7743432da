"""Cleaning free text from orders and fitting it into Canada Post's fixed-length fields."""

from __future__ import annotations

import unicodedata


def clean_text(value: str) -> str | None:
    """Composed Unicode, one space between words, no control characters; None when nothing is left.

    Composition matters twice: an accent typed as a combining mark would count as an extra
    character against Canada Post's limits, and labels print composed glyphs reliably.
    """
    if value.isascii() and value.isprintable():
        # Most of an order's text: nothing to compose or take out, only spaces to collapse.
        return " ".join(value.split()) or None
    composed = unicodedata.normalize("NFC", value)
    # Control characters (tabs, newlines, NUL) and line separators end a word; most of them are
    # not even allowed in an XML document. Invisible characters (soft hyphens, zero-width spaces,
    # unassigned or private code points) sit inside words and print as nothing or garbage.
    spaced = "".join(_replacement(char) for char in composed)
    collapsed = " ".join(spaced.split())
    return collapsed or None


def _replacement(char: str) -> str:
    category = unicodedata.category(char)
    if category in ("Cc", "Zl", "Zp"):
        return " "
    if category.startswith("C"):
        return ""
    return char


def split_at_word_boundary(text: str, limit: int) -> tuple[str, str] | None:
    """(head, rest) with head as long as possible within limit, cut between words; None if no cut fits."""
    if len(text) <= limit:
        return text, ""
    cut = text.rfind(" ", 0, limit + 1)
    while cut > 0:
        head = text[:cut].rstrip(" ,;")
        if head:
            return head, text[cut:].strip(" ,;")
        cut = text.rfind(" ", 0, cut)
    return None


def shorten_at_word_boundary(text: str, limit: int) -> str:
    """Text cut to the limit at the last whole word; a single over-long word is cut hard."""
    if len(text) <= limit:
        return text
    split = split_at_word_boundary(text, limit)
    if split is not None:
        return split[0]
    return text[:limit].rstrip()


def fold_for_matching(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form, for comparing names such as "Québec"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(char for char in decomposed if not unicodedata.combining(char))
    words = "".join(char if char.isalnum() else " " for char in letters.replace("&", " and "))
    return " ".join(words.split())
