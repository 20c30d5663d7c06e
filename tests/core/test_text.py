"""``unescape_html`` reads what ``html.unescape`` reads, and never raises on a reference too long for an int;
``is_blank`` says whether anything is left to see once a text is cleaned as the model reads it."""

from __future__ import annotations

import html
import random
import unicodedata

import pytest

from core.text import clean_text, is_blank, unescape_html

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


def blank_by_definition(text: str) -> bool:
    return not any(unicodedata.category(char)[0] not in "CZM" for char in clean_text(text))


@pytest.mark.parametrize(
    ("text", "blank"),
    [
        ("", True),
        ("   \n\t ", True),
        ("&nbsp;&#160;", True),  # letters in the raw text, none after unescaping
        ("\u200b\u2060\u00ad\ufe0f", True),  # zero-width space, word joiner, soft hyphen, variation selector
        ("&amp;", False),  # a visible "&"
        ("!!!", False),
        (":(", False),
        ("e\u0301", False),  # composed into "é"
        ("\u200bok\u200b", False),
        ("\U0001f600", False),  # an emoji alone
    ],
)
def test_blank_means_nothing_left_to_see_once_cleaned(text: str, blank: bool) -> None:
    assert is_blank(text) is blank
    assert blank_by_definition(text) is blank


def test_the_quick_answer_for_plain_text_agrees_with_the_definition() -> None:
    pieces = [
        "a",
        "Z",
        "7",
        "!",
        "~",
        "&",
        "amp;",
        "nbsp;",
        "#",
        "x",
        "160;",
        " ",
        "\t",
        "\n",
        "\x00",
        "\x7f",
        "\u00a0",
        "\u200b",
        "\u2060",
        "\ufeff",
        "\u0301",
        "\u0338",
        "\ud800",
        "\ufe0f",
        "\u00e9",
        "<",
    ]
    draw = random.Random(7)
    for _ in range(20_000):
        text = "".join(draw.choice(pieces) for _ in range(draw.randint(0, 6)))
        assert is_blank(text) is blank_by_definition(text), repr(text)
