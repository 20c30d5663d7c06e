"""Delimited files: a stray quote mark never swallows the rows after it, in TSV or in CSV."""

from __future__ import annotations

from core.delimited import csv_records, tsv_fields, tsv_records


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


def test_csv_is_read_strictly_and_a_one_line_record_strictness_refuses_is_read_as_before() -> None:
    lines = [
        "text,label\n",
        '"Amazing" is an understatement,1\n',  # one line: read leniently, as before
        '"Best dress ever,1\n',  # a quote left open ...
        "Too small,0\n",
        '"Lovely" indeed,1\n',  # ... closed here, where its field does not end: refused, lines named
        "Fine,1\n",
        '"Two\n',
        'lines",0\n',  # a quoted field with a line break: one record
    ]

    assert list(csv_records(lines)) == [
        (2, {"text": "Amazing is an understatement", "label": "1"}),
        (3, "unreadable CSV (lines 3-5; a quote not closed where its field ends?): ',' expected after '\"'"),
        (6, {"text": "Fine", "label": "1"}),
        (7, {"text": "Two\nlines", "label": "0"}),
    ]


def test_a_quoted_text_of_many_lines_is_one_record_however_many() -> None:
    """Past 50 lines it was read line by line: the review's first line, then every other line as a review."""
    text = "\n".join(f"Point {i}: something about the fit." for i in range(1, 201))
    quoted = '"' + text.replace('"', '""') + '"'
    lines = ["text\tbrand\trating\n", *f"{quoted}\tAcme\t2\n".splitlines(keepends=True), "Short one\tAcme\t4\n"]

    assert list(tsv_records(lines)) == [
        (2, {"text": text, "brand": "Acme", "rating": "2"}),
        (202, {"text": "Short one", "brand": "Acme", "rating": "4"}),
    ]


def test_a_record_whose_later_quoted_field_runs_on_is_refused_as_one_not_read_as_two() -> None:
    """Read leniently line by line, the second line became a review of its own: text 'Doe"', author '5'."""
    lines = ["text,author,rating\n", '"Amazing" is an understatement,"Jane\n', 'Doe",5\n', "Next one,Bob,4\n"]

    assert list(csv_records(lines)) == [
        (2, "unreadable CSV (lines 2-3; a quote not closed where its field ends?): ',' expected after '\"'"),
        (4, {"text": "Next one", "author": "Bob", "rating": "4"}),
    ]


def test_in_a_file_of_one_column_a_stray_quote_cannot_merge_more_than_a_few_lines() -> None:
    """Without tabs to tell by, one stray quote and a later line ending in a quote joined 300 reviews."""
    lines = ["text\n", '"Best dress ever\n', *(f"Plain review {i}\n" for i in range(300)), "Runs small, I'd say \"\n"]

    rows = list(tsv_records(lines))

    assert len(rows) == 302
    assert rows[0] == (2, {"text": '"Best dress ever'})
