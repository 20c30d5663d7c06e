"""``unescape_html`` reads what ``html.unescape`` reads, and never raises on a reference too long for an int."""

from __future__ import annotations

import html

import pytest

from core.text import unescape_html

TOO_LONG = 4301  # digits: past Python's int limit, where html.unescape raises


@pytest.mark.parametrize(
    "text",
    ["Fish &amp; chips", "caf&eacute; &#233; &#xE9; &#x1F600;", "&#0065 no semicolon", "&#1114112; past U+10FFFF"],
)
def test_ordinary_references_read_as_html_unescape_reads_them(text: str) -> None:
    assert unescape_html(text) == html.unescape(text)


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("Great &#" + "1" * TOO_LONG + "; product", "Great \ufffd product"),  # names no character
        ("&#" + "0" * TOO_LONG + "65; &amp; &#" + "9" * TOO_LONG, "A & \ufffd"),  # zeros count to the limit too
        # Hex has no limit of its own, but shares the fallback's pass when a decimal one raised.
        ("&#" + "1" * TOO_LONG + "; &#x" + "0" * TOO_LONG + "41; &#X" + "f" * TOO_LONG + ";", "\ufffd A \ufffd"),
        ("&#; &#x; &#" + "1" * TOO_LONG, "&#; &#x; \ufffd"),  # no digits: no reference, as html.unescape reads it
    ],
)
def test_a_reference_too_long_for_an_int_reads_as_a_browser_reads_it(text: str, read: str) -> None:
    with pytest.raises(ValueError, match="digits"):
        html.unescape(text)
    assert unescape_html(text) == read
