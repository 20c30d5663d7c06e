"""The Postgres sink: one upsert per batch, idempotent under re-delivery.

The batch is COPYed into a per-connection temporary staging table, then merged with
``INSERT … SELECT … ON CONFLICT (review_key) DO UPDATE … WHERE (model_version, sentence, …) IS
DISTINCT FROM …``, which makes a replay of the same message with the same model a no-op (the row
is not even rewritten) while a new model version, or an edited review under the same
``review_id``, updates the row and ``updated_on``. One transaction
and one commit per batch (quix-streams' sink contract: write first, commit offsets after).
COPY beats a multi-row ``INSERT … VALUES`` once batches are large (bench/stream.py measures
both: psycopg2 builds the VALUES list in Python, row by row); ``method="insert"`` keeps the
single-statement form for comparison. A row the database refuses for good (a NUL byte in the
text, a failed check) is isolated by bisection so the rest of its batch still lands; it
comes back as a rejection for the DLQ.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine

from core.messages import REVIEW_COLUMNS
from stream.records import Rejected

COLUMNS = (
    "review_key",
    "sentence",
    "sentiment_score",
    "confidence",
    "label",
    "suggested_rating",
    "brand",
    "source",
    "rating",
    "url",
    "author",
    "lang",
    "published_at",
    "model_version",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
)
# What a message for a stored review_key may change: everything but the key and the source
# (part of the key). ``created_on`` stays; ``updated_on`` says when it last changed.
_UPDATED = tuple(name for name in COLUMNS if name not in ("review_key", "source"))
# What makes it a change: a new model version, or an edit of the review (the producer's
# review_id kept, the text, rating, brand … changed; the worker scored the new text). The
# same message again, with the same model, matches on all of them and rewrites nothing.
_COMPARED = ("model_version", *REVIEW_COLUMNS.values())
_CHANGED = (
    f"({', '.join(f'sentiments.{name}' for name in _COMPARED)}) IS DISTINCT FROM "
    f"({', '.join(f'excluded.{name}' for name in _COMPARED)})"
)
# ... unless it is older than the message that wrote the row (producer time; a replay keeps its
# original's): an old version of an edited review, replayed from the dead-letter topic or
# re-delivered after a consumer-group reset, leaves the edit alone. Without times on both
# sides, the later message wins.
_NOT_OLDER = "NOT coalesce(excluded.kafka_timestamp < sentiments.kafka_timestamp, false)"
_ON_CONFLICT = (
    "ON CONFLICT (review_key) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _UPDATED)
    + f", updated_on = now() WHERE {_CHANGED} AND {_NOT_OLDER} "
)

UPSERT_SQL = f"INSERT INTO sentiments ({', '.join(COLUMNS)}) VALUES %s {_ON_CONFLICT}RETURNING (xmax = 0) AS inserted"

_STAGING = "reviewscore_staging"
CREATE_STAGING_SQL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} ON COMMIT DELETE ROWS AS "
    f"SELECT {', '.join(COLUMNS)} FROM sentiments WITH NO DATA"
)
COPY_SQL = f"COPY {_STAGING} ({', '.join(COLUMNS)}) FROM STDIN"
MERGE_SQL = (
    f"WITH merged AS (INSERT INTO sentiments ({', '.join(COLUMNS)}) "
    f"SELECT {', '.join(COLUMNS)} FROM {_STAGING} {_ON_CONFLICT}RETURNING (xmax = 0) AS inserted) "
    "SELECT count(*) FILTER (WHERE inserted), count(*) FROM merged"
)


REJECT_SQL = (
    "INSERT INTO rejected_reviews (review_key, reason, error, kafka_topic, kafka_partition, kafka_offset) "
    "VALUES %s ON CONFLICT (review_key) DO UPDATE SET reason = excluded.reason, error = excluded.error, "
    "kafka_topic = excluded.kafka_topic, kafka_partition = excluded.kafka_partition, "
    "kafka_offset = excluded.kafka_offset, rejected_on = now()"
)


def copy_text(rows: Sequence[dict[str, Any]]) -> str:
    """Rows in COPY's text format (tab-separated, ``\\N`` for NULL, backslash escapes).

    PostgreSQL text cannot hold a NUL character: it raises ``ValueError`` (as psycopg2 does
    for a parameter), a row error that the sink's bisection turns into a ``db_rejected``
    dead letter for that row only.
    """
    buffer = io.StringIO()
    write = buffer.write
    for row in rows:
        write("\t".join([_copy_field(row[name]) for name in COLUMNS]))
        write("\n")
    return buffer.getvalue()


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        text: str = value
        if "\x00" in text:
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
            text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        return text
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@dataclass
class WriteResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    round_trips: int = 0


def is_row_error(exc: BaseException) -> bool:
    """Errors caused by the data of some row (retrying cannot help; isolating the row can).

    psycopg2 refuses a NUL character client-side with a plain ``ValueError``; connection
    failures are never ``ValueError``s, so counting it here cannot hide an outage.
    """
    import psycopg2  # type: ignore[import-untyped,unused-ignore]

    return isinstance(exc, psycopg2.DataError | psycopg2.IntegrityError | ValueError)


class PostgresSink:
    """Writes scored rows through a pooled engine; one connection checkout and one commit per batch."""

    def __init__(self, engine: Engine, method: Literal["copy", "insert"] = "copy") -> None:
        self._engine = engine
        self._method = method

    def upsert(self, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """One transaction: (inserted, updated). Raises on any database error."""
        if not rows:
            return 0, 0
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                if self._method == "copy":
                    inserted, touched = self._copy_merge(raw, cursor, rows)
                else:
                    inserted, touched = self._insert_values(cursor, rows)
            finally:
                cursor.close()
            raw.commit()
        except BaseException as exc:
            raw.info.pop(_STAGING, None)  # its creation may have been rolled back with the batch
            _reset_quietly(raw, discard=not is_row_error(exc))
            raise
        finally:
            raw.close()
        return inserted, touched - inserted

    @staticmethod
    def _copy_merge(raw: Any, cursor: Any, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
        if not raw.info.get(_STAGING):  # once per pooled connection (a session-lifetime temp table)
            cursor.execute(CREATE_STAGING_SQL)
            raw.info[_STAGING] = True
        cursor.copy_expert(COPY_SQL, io.StringIO(copy_text(rows)))
        cursor.execute(MERGE_SQL)
        inserted, touched = cursor.fetchone()
        return int(inserted), int(touched)

    @staticmethod
    def _insert_values(cursor: Any, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
        from psycopg2.extras import execute_values  # type: ignore[import-untyped,unused-ignore]

        template = "(" + ", ".join(f"%({name})s" for name in COLUMNS) + ")"
        returned = execute_values(cursor, UPSERT_SQL, rows, template=template, page_size=len(rows), fetch=True)
        return sum(1 for (was_insert,) in returned if was_insert), len(returned)

    def record_rejections(self, rejections: Sequence[Rejected]) -> None:
        """Upsert why each keyed review was dead-lettered (the latest reason wins); one round trip."""
        latest = {r.review_key: r for r in rejections if r.review_key is not None}
        values = [
            (key, r.reason, r.detail.replace("\x00", ""), r.record.topic, r.record.partition, r.record.offset)
            for key, r in latest.items()
        ]
        if values:
            execute_values_committed(self._engine, REJECT_SQL, values)

    def write(self, rows: Sequence[dict[str, Any]]) -> WriteResult:
        """Upsert all rows; rows the database refuses are bisected out and reported, not raised."""
        result = WriteResult()
        self._write_isolating(list(rows), result)
        result.unchanged = len(rows) - len(result.rejected) - result.inserted - result.updated
        return result

    def _write_isolating(self, rows: list[dict[str, Any]], result: WriteResult) -> None:
        if not rows:
            return
        result.round_trips += 1
        try:
            inserted, updated = self.upsert(rows)
        except Exception as exc:
            if not is_row_error(exc):
                raise
            if len(rows) == 1:
                result.rejected.append((rows[0], _first_line(exc)))
                return
            middle = len(rows) // 2
            self._write_isolating(rows[:middle], result)
            self._write_isolating(rows[middle:], result)
            return
        result.inserted += inserted
        result.updated += updated


def execute_values_committed(engine: Engine, sql: str, values: Sequence[tuple[Any, ...]]) -> None:
    """One ``VALUES %s`` statement for all ``values`` in its own transaction, on a pooled connection."""
    from psycopg2.extras import execute_values  # type: ignore[import-untyped,unused-ignore]

    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            execute_values(cursor, sql, values, page_size=len(values))
        finally:
            cursor.close()
        raw.commit()
    except BaseException:
        _reset_quietly(raw, discard=True)
        raise
    finally:
        raw.close()


def _reset_quietly(raw: Any, discard: bool) -> None:
    """Roll back; after a connection-level failure also drop the connection from the pool."""
    try:
        if discard:
            raw.invalidate()
        else:
            raw.rollback()
    except Exception:  # noqa: BLE001 - the connection may already be gone; the original error matters
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0]}"
