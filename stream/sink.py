"""The Postgres sink: one multi-row upsert per batch, idempotent under re-delivery.

``INSERT … ON CONFLICT (review_key) DO UPDATE … WHERE model_version IS DISTINCT FROM`` makes
a replay of the same message with the same model a no-op (the row is not even rewritten),
while a new model version updates the scores and ``updated_on``. The whole batch is one
statement and one commit (quix-streams' sink contract: write first, commit offsets after).
A row the database refuses for good (a NUL byte in the text, a failed check) is isolated by
bisection so the rest of its batch still lands; it comes back as a rejection for the DLQ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

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
)
# What a new model version changes; the review's own fields stay as first stored.
_UPDATED = (
    "sentiment_score",
    "confidence",
    "label",
    "suggested_rating",
    "model_version",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)

UPSERT_SQL = (
    f"INSERT INTO sentiments ({', '.join(COLUMNS)}) VALUES %s "
    "ON CONFLICT (review_key) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _UPDATED)
    + ", updated_on = now() "
    "WHERE sentiments.model_version IS DISTINCT FROM excluded.model_version "
    "RETURNING (xmax = 0) AS inserted"
)


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
    """Writes scored rows through a pooled engine; one connection checkout per batch."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def upsert(self, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """One round trip: (inserted, updated). Raises on any database error."""
        if not rows:
            return 0, 0
        from psycopg2.extras import execute_values  # type: ignore[import-untyped,unused-ignore]

        template = "(" + ", ".join(f"%({name})s" for name in COLUMNS) + ")"
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                returned = execute_values(cursor, UPSERT_SQL, rows, template=template, page_size=len(rows), fetch=True)
            finally:
                cursor.close()
            raw.commit()
        except BaseException as exc:
            _reset_quietly(raw, discard=not is_row_error(exc))
            raise
        finally:
            raw.close()
        inserted = sum(1 for (was_insert,) in returned if was_insert)
        return inserted, len(returned) - inserted

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
