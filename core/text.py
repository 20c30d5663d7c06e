"""Text as the model reads it (``clean_text``, ``is_blank``), and ``unescape_html``, which cannot raise.

Shared by the model (training and the Scorer clean alike), the worker (a text blank once cleaned
is dead-lettered) and the API (which refuses it up front, rather than accept what the worker
will dead-letter), so all three agree on what a review's text is.

``unescape_html``: ``html.unescape`` that cannot raise on what a page or a producer sends.

``html.unescape`` turns a numeric character reference into an int, and Python refuses ints of
more than 4,300 digits (``sys.get_int_max_str_digits``): ``&#1111…1;`` raised ValueError from
inside the worker's validation and stopped every partition it read. Such a reference names no
character (past U+10FFFF), which ``html.unescape`` itself reads as U+FFFD; so does this, without
the int.
"""

from __future__ import annotations

import html
import re
import unicodedata

# Leading zeros count towards the limit too: "&#000…065;" is "A" to a browser.
_NUMERIC_REFERENCE = re.compile(r"&#(?:([xX])([0-9a-fA-F]+)|([0-9]+))(;?)")
_LONGEST = {"x": 6, "": 7}  # digits of U+10FFFF in hex and in decimal


def _shortened(match: re.Match[str]) -> str:
    radix = "x" if match.group(1) else ""
    digits = (match.group(2) if radix else match.group(3)).lstrip("0")
    if len(digits) > _LONGEST[radix]:
        return "\ufffd"
    return f"&#{match.group(1) or ''}{digits or '0'}{match.group(4)}"


def unescape_html(text: str) -> str:
    """``html.unescape(text)``, with numeric references too long for an int read as U+FFFD."""
    try:
        return html.unescape(text)
    except ValueError:
        return html.unescape(_NUMERIC_REFERENCE.sub(_shortened, text))


_CONTROL = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u200b\ufeff\ud800-\udfff]")
_SPACES = re.compile(r"\s+")
_MAX_PASSES = 4


def clean_text(text: str) -> str:
    """Undo HTML escaping, drop control characters, collapse whitespace; keep case, punctuation, emoji.

    Subword tokenizers and the char-CNN both use case and punctuation ("!!!", ":(") as signal,
    so nothing else is stripped. Escaping is undone until nothing changes (scraped pages escape
    twice: ``&amp;lt;``), so cleaning cleaned text changes nothing: training, evaluation and the
    Scorer may each clean the same text and must agree. The passes are bounded, so a crafted
    ``&amp;amp;amp;…`` costs a few passes, not one per level (deeper nests are not idempotent).
    """
    for _ in range(_MAX_PASSES):
        cleaned = _clean_once(text)
        if cleaned == text:
            break
        text = cleaned
    return text


def _clean_once(text: str) -> str:
    text = unicodedata.normalize("NFC", unescape_html(text))
    return _SPACES.sub(" ", _CONTROL.sub("", text)).strip()


# Printable ASCII but "&": letters, digits, punctuation and symbols, none of them in C, Z or M.
_PRINTABLE_ASCII = re.compile(r"[!-%'-~]")


def is_blank(text: str) -> bool:
    """Nothing a reader (or the model) sees: empty once cleaned as the model reads it, or only
    spaces, invisible format characters (U+2060, a soft hyphen, ZWJ) and lone combining marks (a
    variation selector), which the tokenizer drops."""
    if "&" not in text and _PRINTABLE_ASCII.search(text):
        # The worker asks this of every message, and cleaning a whole review cost half its
        # validation. Without an "&" there is no reference to unescape, and cleaning only drops
        # control characters and a few invisible ones (U+200B, U+FEFF, surrogates) and folds
        # spaces: a printable ASCII character survives it (NFC may compose it with a following
        # mark, into a letter or symbol), so it is seen.
        return False
    return not any(unicodedata.category(char)[0] not in "CZM" for char in clean_text(text))


def not_utf8(name: object, exc: UnicodeDecodeError) -> str:
    """``NAME is not UTF-8 text (REASON at byte N)``: one wording wherever a file fails to decode."""
    return f"{name} is not UTF-8 text ({exc.reason} at byte {exc.start})"
