"""Delimited files (CSV, TSV) read so that one stray quote mark cannot swallow the rows after it.

CSV (``csv_records``) is read strictly: a quote left open ran on to the next quote mark and the
rows between became one text. A record strict reading refuses is read leniently when it is one
line (``"Amazing" is an understatement,5``, as before), and refused, naming the lines it ran
over, when it is more, also when only the lenient reading runs on (a later field opens a quote
the line does not close).

TSV (``tsv_records``):

TSV has no quoting of its own. Read as CSV with a tab delimiter, a review that starts with a
quote mark and does not end with one (``"Best dress ever`` and its label) opened a quoted field
that ran on through the following lines to the next quote mark: those rows became part of one
text, silently. Spreadsheets and pandas do quote, though: a field quoted as a whole, its inner
quote marks doubled, is unquoted here, and such a field may hold line breaks. So a record
continues past its line only when a quoted field closes (within ``MAX_RECORD_CHARS``, and in a file
of one column, which has no tabs to tell by, within ``MAX_ONE_COLUMN_LINES``), the record then has
the header's number of fields, and no field it spans holds a tab (rows swallowed by a stray quote
always bring their tabs along). Anything else is read line by line, its quote marks taken as part
of the text; so a quoted field holding both a line break and a tab is read as lines too: by its
shape it cannot be told from a stray quote.
"""

from __future__ import annotations

import contextlib
import csv
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

# How far a quoted TSV field may run on before it counts as a stray quote: far past any review
# (5,000 words is about 35,000 characters), and it bounds the look-ahead of each stray quote.
MAX_RECORD_CHARS = 1_000_000
# A file of one column has no tabs to tell a stray quote by: a quote that runs on is bounded there
# by lines, as before, or a stray one would merge every line up to the next closing quote.
MAX_ONE_COLUMN_LINES = 50


def tsv_fields(line: str) -> list[str]:
    """The fields of one TSV line (without its line break)."""
    return _line_fields(line)[0]


def _line_fields(line: str) -> tuple[list[str], bool]:
    """(fields, whether a quoted field is still open at the end of the line)."""
    try:
        return next(csv.reader([line], delimiter="\t", strict=True)), False
    except StopIteration:
        return [], False
    except csv.Error as exc:  # an unclosed or inner quote: the marks are the text's own
        return line.split("\t"), "unexpected end of data" in str(exc)


def _closing_quote(line: str) -> int:
    """Index of the first quote mark of ``line`` that is not half of a doubled one, or -1."""
    index = line.find('"')
    while index >= 0:
        if line.startswith('""', index):
            index = line.find('"', index + 2)
            continue
        return index
    return -1


class _Lines:
    """A file's lines by index, read as they are asked for and forgotten once passed, so a TSV file
    is held only as far as the look-ahead of a quoted field (``MAX_RECORD_CHARS``) reaches."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._source = iter(lines)
        self._buffer: deque[str] = deque()
        self._first = 0  # the index of _buffer[0]

    def get(self, index: int) -> str | None:
        """Line ``index`` (from 0), or None past the end; never one before ``forget_before``."""
        while index >= self._first + len(self._buffer):
            line = next(self._source, None)
            if line is None:
                return None
            self._buffer.append(line)
        return self._buffer[index - self._first]

    def forget_before(self, index: int) -> None:
        while self._buffer and self._first < index:
            self._buffer.popleft()
            self._first += 1


def _spanning_record(lines: _Lines, start: int, width: int) -> tuple[list[str], int] | None:
    """(fields, lines used) of a quoted record that starts at line ``start`` and runs on, if any.

    One pass over the lines that follow: each is whole text of the open field up to its closing
    quote, so a tab before that quote (or on a line with none) ends the search; the rows a stray
    quote would swallow all hold tabs, so the search stops at the first of them.
    """
    span = [lines.get(start) or ""]
    size = len(span[0])
    last = None if width > 1 else start + MAX_ONE_COLUMN_LINES
    end = start
    while last is None or end + 1 < last:
        end += 1
        line = lines.get(end)
        if line is None:
            return None
        span.append(line)
        size += len(line)
        close = _closing_quote(line)
        if size > MAX_RECORD_CHARS or "\t" in (line if close < 0 else line[:close]):
            return None
        if close < 0:
            continue
        try:
            records = list(csv.reader(span, delimiter="\t", strict=True))
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                continue  # closed, and another quoted field opened on the same line
            return None  # closed, then something else than a tab: no record of this shape
        if len(records) == 1 and len(records[0]) == width and not any("\t" in field for field in records[0]):
            return records[0], end + 1 - start
        return None
    return None


def tsv_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[Any, Any]]]:
    """(line number, row) pairs shaped as ``csv.DictReader`` shapes them.

    The first non-blank line names the columns; a missing field is None and extra fields are a
    list under the key None; blank lines are skipped. Read as a stream (``_Lines``).
    """
    source = _Lines(lines)
    header: list[str] | None = None
    index = 0
    while (raw := source.get(index)) is not None:
        source.forget_before(index)
        number, line = index + 1, raw.rstrip("\r\n")
        index += 1
        if not line:
            continue
        fields, still_open = _line_fields(line)
        if header is None:
            header = fields
            continue
        if still_open and (spanned := _spanning_record(source, number - 1, len(header))):
            fields, used = spanned
            index = number - 1 + used
        yield number, _shaped(header, fields)


def csv_records(handle: Iterable[str], delimiter: str = ",") -> Iterator[tuple[int, dict[Any, Any] | str]]:
    """(line the record starts on, row or the reason it cannot be read), rows shaped as
    ``csv.DictReader`` shapes them. The field-size limit in force applies."""
    consumed: list[str] = []
    read = 0  # lines taken from the file so far

    def lines() -> Iterator[str]:
        nonlocal read
        for line in handle:
            read += 1
            consumed.append(line)
            yield line

    source = lines()
    reader = csv.reader(source, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        yield 1, f"unreadable CSV header: {exc}"
        return
    if header is None:
        return
    while True:
        consumed.clear()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if not consumed:
                return  # no progress: nothing more can be read
            start = read - len(consumed) + 1
            if len(consumed) == 1 and _runs_on(consumed[0], delimiter):
                _take_rest_of_record(source, consumed[0], delimiter)  # so its lines are not read as rows
            if len(consumed) > 1:
                quote = "expected after" in str(exc) or "unexpected end of data" in str(exc)
                hint = "; a quote not closed where its field ends?" if quote else ""
                yield start, f"unreadable CSV (lines {start}-{read}{hint}): {exc}"
                continue
            try:
                fields = next(csv.reader(consumed, delimiter=delimiter))
            except csv.Error as lenient:  # past the field-size limit, say: nothing to read it as
                yield start, f"unreadable CSV: {lenient}"
                continue
        if not fields:
            continue  # a blank line, as DictReader skips it
        yield read - len(consumed) + 1, _shaped(header, fields)


def _runs_on(line: str, delimiter: str) -> bool:
    """Whether ``line``, read leniently, ends inside a quoted field: a later field of the record
    (``"Amazing" is it,"Jane`` / ``Doe",5``) runs on to the next line."""
    if not line.endswith("\n"):
        return False  # the file's last line: nothing runs on
    try:
        return len(list(csv.reader([line, "\x1e\n"], delimiter=delimiter))) < 2
    except csv.Error:  # past the field-size limit: refused as it is
        return False


def _take_rest_of_record(source: Iterator[str], first: str, delimiter: str) -> None:
    """Take from ``source`` the lines a lenient reading puts in the record ``first`` starts."""
    size = len(first)

    def feed() -> Iterator[str]:
        nonlocal size
        yield first
        for line in source:
            yield line
            size += len(line)
            if size > MAX_RECORD_CHARS:
                return

    with contextlib.suppress(csv.Error):  # past the field-size limit: the lines up to it are taken
        next(csv.reader(feed(), delimiter=delimiter), None)


def _shaped(header: Sequence[str], fields: Sequence[str]) -> dict[Any, Any]:
    row: dict[Any, Any] = dict(zip(header, fields, strict=False))
    row.update(dict.fromkeys(header[len(fields) :]))
    if len(fields) > len(header):
        row[None] = list(fields[len(header) :])
    return row
