"""Streaming CSV / NDJSON export: a server-side cursor read in chunks, encoded chunk by chunk.

Memory stays flat whatever the size: PostgreSQL hands over ``chunk_rows`` rows at a time
(``stream_results``), each chunk is encoded and yielded to the client before the next is read.
The generator owns its connection (not the request's session) because the body is sent after
the route function has returned; ``ExportResponse`` closes it when the response ends, however
it ends, so that connection goes back to the pool at once.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import anyio
from sqlalchemy import Engine, Select
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from query_api.queries import PUBLIC_FIELDS

ExportFormat = Literal["csv", "ndjson"]
MEDIA_TYPES: dict[ExportFormat, str] = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


# Other names a client may use to ask for NDJSON; the body is still labelled application/x-ndjson.
_NDJSON_ALIASES = ("application/ndjson", "application/jsonl", "application/json")
# (media type sent, its aliases, format)
_OFFERED: tuple[tuple[str, tuple[str, ...], ExportFormat], ...] = (
    ("text/csv", (), "csv"),
    ("application/x-ndjson", _NDJSON_ALIASES, "ndjson"),
)


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


def _quality(media: str, ranges: list[tuple[str, float]], aliases: tuple[str, ...] = ()) -> tuple[float, int]:
    """The q the most specific matching range gives ``media`` (RFC 9110 §12.5.1), and its position.

    Most specific first: ``media`` itself, then its ``aliases`` (the best-rated of them, as each
    is a full name of the format), then ``type/*``, then ``*/*``. Only the most specific level
    counts, so a q=0 there refuses the format even when a wildcard in the same header would take
    it: ``application/x-ndjson;q=0, application/*`` refuses NDJSON. Rating each alias as a type
    of its own would let ``application/*`` accept ``application/ndjson``, and the body would go
    out as application/x-ndjson to a client that had just refused exactly that.
    """
    kind = media.split("/")[0]
    best: tuple[int, float, int] | None = None  # (specificity, q, position)
    for position, (candidate, quality) in enumerate(ranges):
        if candidate == media:
            specificity = 3
        elif candidate in aliases:
            specificity = 2
        elif candidate == f"{kind}/*":
            specificity = 1
        elif candidate == "*/*":
            specificity = 0
        else:
            continue
        if best is None or specificity > best[0] or (specificity == best[0] == 2 and quality > best[1]):
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
    rated = [(*_quality(media, ranges, aliases), fmt) for media, aliases, fmt in _OFFERED]
    quality, _position, fmt = max(rated, key=lambda item: (item[0], -item[1], item[2] == "csv"))
    if quality <= 0:
        raise NotAcceptableError("Accept refuses both text/csv and application/x-ndjson; or use ?format=csv|ndjson")
    return fmt


def _plain(value: Any) -> Any:
    """Times as the JSON endpoints write them: ISO-8601 with ``Z`` for UTC (pydantic's form)."""
    if not isinstance(value, datetime):
        return value
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


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


# Line breaks to readers that split on more than "\n" (Python's str.splitlines, Unicode-aware line
# tools): json.dumps writes them raw inside strings, and such a reader cut a review's record in two.
_UNICODE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def encode_ndjson(rows: Sequence[Sequence[Any]]) -> str:
    lines = (
        json.dumps({k: _plain(v) for k, v in zip(PUBLIC_FIELDS, row, strict=True)}, ensure_ascii=False) for row in rows
    )
    return "".join(f"{line.translate(_UNICODE_BREAKS)}\n" for line in lines)


def export_chunks(
    engine: Engine,
    statement: Select[tuple[object, ...]],
    fmt: ExportFormat,
    chunk_rows: int,
    escape_formulas: bool = True,
) -> Generator[bytes, None, None]:
    """Yield the encoded export, one chunk of ``chunk_rows`` rows at a time (CSV header first).

    The first item is ``b""``, yielded once the connection is open and the statement sent: the
    route takes it before answering, so a database that is down gives a 503 instead of a 200
    with an empty body (the status line is gone once streaming starts).
    """
    with engine.connect() as conn:
        # A server-side cursor lives in a transaction; the API's engine runs its reads in autocommit.
        options = {"isolation_level": "READ COMMITTED", "stream_results": True, "max_row_buffer": chunk_rows}
        result = conn.execution_options(**options).execute(statement)
        yield b""
        if fmt == "csv":
            yield encode_csv([], header=True).encode()
        for chunk in result.partitions(chunk_rows):
            text = encode_csv(chunk, False, escape_formulas) if fmt == "csv" else encode_ndjson(chunk)
            yield text.encode()


class ExportResponse(StreamingResponse):
    """A streamed export that closes its generator when the response ends, however it ends.

    Starlette walks a sync iterator in the thread pool and never closes it. The route has already
    taken the first item, so the generator holds a pooled connection and an open server-side
    cursor; when the client leaves before or during the body (the send is cancelled, or raises
    on an ASGI 2.4 server) or sending fails, that connection stayed checked out until garbage
    collection, and a few such clients could empty the pool. Closing here runs the generator's
    ``with engine.connect()`` exit as soon as the response is over.
    """

    def __init__(self, chunks: Generator[bytes, None, None], media_type: str, headers: Mapping[str, str]) -> None:
        super().__init__(chunks, media_type=media_type, headers=headers)
        self._chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # In a thread: giving the connection back rolls back, a round trip that must not stall
            # the event loop. Shielded: a cancelled request task (a shutdown) must still close it.
            # The generator is idle here: a cancelled ``next`` in the thread pool is waited for.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self._chunks.close)
