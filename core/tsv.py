"""Tab-separated files read one record per line.

TSV has no quoting of its own: a tab or a line break cannot be inside a field. Read as CSV
with a tab delimiter, a review that starts with a quote mark and does not end with one (``"Best
dress ever`` and its label) opened a quoted field that ran on through the following lines to
the next quote mark: those rows became part of one text, silently. Here a record never spans
lines. A field quoted as a whole, its inner quote marks doubled (the way pandas and spreadsheets
write a text that holds one), is still unquoted; any other quote mark is part of the text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any


def tsv_fields(line: str) -> list[str]:
    """The fields of one TSV line (without its line break)."""
    try:
        return next(csv.reader([line], delimiter="\t", strict=True))
    except (csv.Error, StopIteration):  # an unclosed or inner quote: the marks are the text's own
        return line.split("\t")


def tsv_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[Any, Any]]]:
    """(line number, row) pairs shaped as ``csv.DictReader`` shapes them.

    The first non-blank line names the columns; a missing field is None and extra fields are a
    list under the key None; blank lines are skipped.
    """
    header: list[str] | None = None
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line:
            continue
        fields = tsv_fields(line)
        if header is None:
            header = fields
            continue
        row: dict[Any, Any] = dict(zip(header, fields, strict=False))
        row.update(dict.fromkeys(header[len(fields) :]))
        if len(fields) > len(header):
            row[None] = fields[len(header) :]
        yield number, row
