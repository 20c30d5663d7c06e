"""Tab-separated files: one record per line, whatever quote marks the texts hold."""

from __future__ import annotations

from core.tsv import tsv_fields, tsv_records


def test_an_unclosed_quote_is_part_of_its_text_and_swallows_no_following_row() -> None:
    """Read as CSV, the first review opened a quoted field that ran on to the next quote mark:
    three rows became one text and the file read as one review."""
    lines = ["text\tlabel\n", '"Best dress ever\t1\n', "Too small\t0\n", 'Runs "large"\t0\n']

    rows = list(tsv_records(lines))

    assert rows == [
        (2, {"text": '"Best dress ever', "label": "1"}),
        (3, {"text": "Too small", "label": "0"}),
        (4, {"text": 'Runs "large"', "label": "0"}),
    ]


def test_a_field_quoted_as_a_whole_is_unquoted_as_pandas_wrote_it() -> None:
    assert tsv_fields('"She said ""wow"""\t1') == ['She said "wow"', "1"]
    assert tsv_fields('"Great" product\t1') == ['"Great" product', "1"]


def test_rows_are_shaped_as_csv_dict_reader_shapes_them() -> None:
    lines = ["text\tlabel\r\n", "\n", "only text\r\n", "a\t1\textra\n"]

    assert list(tsv_records(lines)) == [
        (3, {"text": "only text", "label": None}),
        (4, {"text": "a", "label": "1", None: ["extra"]}),
    ]


def test_a_quoted_text_with_line_breaks_as_spreadsheets_write_it_is_one_record() -> None:
    """Read line by line, it became two reviews, '"Line one' and 'line two"'."""
    lines = ["id\ttext\tbrand\n", '1\t"Line one\n', 'line two"\tAcme\n', "2\tNext\tGlobex\n"]

    assert list(tsv_records(lines)) == [
        (2, {"id": "1", "text": "Line one\nline two", "brand": "Acme"}),
        (4, {"id": "2", "text": "Next", "brand": "Globex"}),
    ]


def test_rows_a_stray_quote_would_swallow_stay_rows_even_when_a_later_quote_closes_it() -> None:
    lines = ["text\tlabel\n", '"Best dress ever\t1\n', "Too small\t0\n", 'Warm "\t1\n']

    assert [row for _, row in tsv_records(lines)] == [
        {"text": '"Best dress ever', "label": "1"},
        {"text": "Too small", "label": "0"},
        {"text": 'Warm "', "label": "1"},
    ]
