"""Streaming CSV / NDJSON export: a server-side cursor read in chunks, encoded chunk by chunk.

Memory stays flat whatever the size: PostgreSQL hands over ``chunk_rows`` rows at a time
(``stream_results``), each chunk is encoded and yielded to the client before the next is read.
The generator owns its connection (not the request's session) because the body is sent after
the route function has returned.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine, Select

from query_api.queries import PUBLIC_FIELDS

ExportFormat = Literal["csv", "ndjson"]
MEDIA_TYPES: dict[ExportFormat, str] = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


_NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json")
_OFFERED: tuple[tuple[str, ExportFormat], ...] = (("text/csv", "csv"), *((media, "ndjson") for media in _NDJSON_TYPES))


class NotAcceptableError(ValueError):
    """The Accept header refuses every format the export can write."""


def _accept_ranges(accept: str) -> list[tuple[str, float]]:
    """``(media range, q)`` in header order; a malformed ``q`` counts as 1, as most servers read it."""
    ranges = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(1.0, max(0.0, float(value)))
                except ValueError:
                    quality = 1.0
        ranges.append((media.lower(), quality))
    return ranges


def _quality(media: str, ranges: list[tuple[str, float]]) -> tuple[float, int]:
    """The q the most specific matching range gives ``media`` (RFC 9110 §12.5.1), and its position."""
    kind = media.split("/")[0]
    best: tuple[int, float, int] | None = None  # (specificity, q, position)
    for position, (candidate, quality) in enumerate(ranges):
        specificity = 2 if candidate == media else 1 if candidate == f"{kind}/*" else 0 if candidate == "*/*" else -1
        if specificity >= 0 and (best is None or specificity > best[0]):
            best = (specificity, quality, position)
    return (0.0, len(ranges)) if best is None else (best[1], best[2])


def negotiate_format(requested: ExportFormat | None, accept: str | None) -> ExportFormat:
    """``?format=`` wins; else the format the Accept header rates highest (q=0 refuses); else CSV.

    Ties go to the range listed first, and to CSV when only a wildcard matched both. Raises
    ``NotAcceptableError`` when the header accepts neither format, so the client hears 406 rather
    than receiving a body it said it cannot use.
    """
    if requested is not None:
        return requested
    ranges = _accept_ranges(accept or "")
    if not ranges:
        return "csv"
    rated = [(*_quality(media, ranges), fmt) for media, fmt in _OFFERED]
    quality, _position, fmt = max(rated, key=lambda item: (item[0], -item[1], item[2] == "csv"))
    if quality <= 0:
        raise NotAcceptableError("Accept names neither text/csv nor application/x-ndjson; or use ?format=csv|ndjson")
    return fmt


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def defuse_formula(value: str) -> str:
    """A leading ``'`` on text a spreadsheet would run as a formula (OWASP "CSV injection").

    Review text and brands come from anyone who can post a review; an analyst who opens the
    export in Excel or LibreOffice must not run ``=HYPERLINK(...)`` from it. The quote shows as
    nothing in a spreadsheet and is the documented cost for programs (``escape_formulas=false``).
    """
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def _cell(value: Any, escape_formulas: bool) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return defuse_formula(value) if escape_formulas else value
    return _plain(value)


def encode_csv(rows: Sequence[Sequence[Any]], header: bool, escape_formulas: bool = True) -> str:
    """RFC 4180 CSV: CRLF line ends, so a bare CR inside a review is quoted instead of ending the row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(PUBLIC_FIELDS)
    writer.writerows([_cell(v, escape_formulas) for v in row] for row in rows)
    return buffer.getvalue()


def encode_ndjson(rows: Sequence[Sequence[Any]]) -> str:
    lines = (
        json.dumps({k: _plain(v) for k, v in zip(PUBLIC_FIELDS, row, strict=True)}, ensure_ascii=False) for row in rows
    )
    return "".join(f"{line}\n" for line in lines)


def export_chunks(
    engine: Engine,
    statement: Select[tuple[object, ...]],
    fmt: ExportFormat,
    chunk_rows: int,
    escape_formulas: bool = True,
) -> Iterator[bytes]:
    """Yield the encoded export, one chunk of ``chunk_rows`` rows at a time (CSV header first).

    The first item is ``b""``, yielded once the connection is open and the statement sent: the
    route takes it before answering, so a database that is down gives a 503 instead of a 200
    with an empty body (the status line is gone once streaming starts).
    """
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, max_row_buffer=chunk_rows).execute(statement)
        yield b""
        if fmt == "csv":
            yield encode_csv([], header=True).encode()
        for chunk in result.partitions(chunk_rows):
            text = encode_csv(chunk, False, escape_formulas) if fmt == "csv" else encode_ndjson(chunk)
            yield text.encode()
