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


def negotiate_format(requested: ExportFormat | None, accept: str | None) -> ExportFormat:
    """``?format=`` wins; else the first of CSV / NDJSON the Accept header names; else CSV."""
    if requested is not None:
        return requested
    for part in (accept or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json"):
            return "ndjson"
        if media in ("text/csv", "text/*"):
            return "csv"
    return "csv"


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def encode_csv(rows: Sequence[Sequence[Any]], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(PUBLIC_FIELDS)
    writer.writerows([_plain(v) if v is not None else "" for v in row] for row in rows)
    return buffer.getvalue()


def encode_ndjson(rows: Sequence[Sequence[Any]]) -> str:
    lines = (
        json.dumps({k: _plain(v) for k, v in zip(PUBLIC_FIELDS, row, strict=True)}, ensure_ascii=False) for row in rows
    )
    return "".join(f"{line}\n" for line in lines)


def export_chunks(
    engine: Engine, statement: Select[tuple[object, ...]], fmt: ExportFormat, chunk_rows: int
) -> Iterator[bytes]:
    """Yield the encoded export, one chunk of ``chunk_rows`` rows at a time (CSV header first)."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, max_row_buffer=chunk_rows).execute(statement)
        if fmt == "csv":
            yield encode_csv([], header=True).encode()
        for chunk in result.partitions(chunk_rows):
            text = encode_csv(chunk, header=False) if fmt == "csv" else encode_ndjson(chunk)
            yield text.encode()
