"""``unescape_html``: ``html.unescape`` that cannot raise on what a page or a producer sends.

``html.unescape`` turns a numeric character reference into an int, and Python refuses ints of
more than 4,300 digits (``sys.get_int_max_str_digits``): ``&#1111…1;`` raised ValueError from
inside the worker's validation and stopped every partition it read. Such a reference names no
character (past U+10FFFF), which ``html.unescape`` itself reads as U+FFFD; so does this, without
the int.
"""

from __future__ import annotations

import html
import re

# Leading zeros count towards the limit too: "&#000…065;" is "A" to a browser.
_NUMERIC_REFERENCE = re.compile(r"&#(?:([xX])0*([0-9a-fA-F]*)|0*([0-9]*))(;?)")
_LONGEST = {"x": 6, "": 7}  # digits of U+10FFFF in hex and in decimal


def _shortened(match: re.Match[str]) -> str:
    radix = "x" if match.group(1) else ""
    digits = match.group(2) if radix else match.group(3)
    if len(digits) > _LONGEST[radix]:
        return "\ufffd"
    return f"&#{match.group(1) or ''}{digits or '0'}{match.group(4)}"


def unescape_html(text: str) -> str:
    """``html.unescape(text)``, with numeric references too long for an int read as U+FFFD."""
    try:
        return html.unescape(text)
    except ValueError:
        return html.unescape(_NUMERIC_REFERENCE.sub(_shortened, text))
