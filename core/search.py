"""The full-text search table's upkeep: documents written from the queue the triggers fill.

Migration 0013 took the ``tsvector`` off the worker's merge: the triggers queue the ids of new
and re-worded rows in ``sentiment_search_pending``, and ``index_pending`` turns a slice of that
queue into documents in one statement. Whoever calls it (the worker's indexer thread,
``reviewscore search-index``) decides *when*; several callers at once share the queue through
``SKIP LOCKED``. Readers search the documents as the last pass left them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from core.schema import SEARCH_CONFIG

# One statement, so the queue entries go exactly when their documents are written. The sentence is
# read in the statement's snapshot: a row re-worded by a write still in flight has its queue entry
# locked by that write (the triggers' DO UPDATE), so SKIP LOCKED leaves it for a later pass rather
# than index the old words and drop the entry.
_INDEX_PENDING = text(
    f"""
    WITH taken AS (
        DELETE FROM sentiment_search_pending
        WHERE id IN (
            SELECT id FROM sentiment_search_pending ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
        )
        RETURNING id
    ), written AS (
        INSERT INTO sentiment_search AS s (id, document)
        SELECT r.id, to_tsvector('{SEARCH_CONFIG}', r.sentence)
        FROM sentiments r JOIN taken USING (id)
        ORDER BY r.id
        ON CONFLICT (id) DO UPDATE SET document = excluded.document
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM taken), (SELECT count(*) FROM written)
    """
)
_OLDEST = text(
    "SELECT extract(epoch FROM clock_timestamp() - queued_on)::float8 FROM sentiment_search_pending ORDER BY id LIMIT 1"
)
_PENDING = text("SELECT count(*) FROM sentiment_search_pending")
_REQUEUE = text(
    "INSERT INTO sentiment_search_pending (id) SELECT id FROM sentiments ORDER BY id ON CONFLICT (id) DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class Indexed:
    taken: int  # queue entries consumed
    written: int  # documents written: fewer when a queued row was deleted meanwhile


def index_pending(conn: Connection, limit: int) -> Indexed:
    """Write the documents of up to ``limit`` queued rows, oldest ids first; the caller commits."""
    taken, written = conn.execute(_INDEX_PENDING, {"limit": limit}).one()
    return Indexed(int(taken), int(written))


def oldest_pending_age(conn: Connection) -> float | None:
    """Seconds the first queued row has waited; None when nothing waits (the index is current)."""
    age = conn.execute(_OLDEST).scalar()
    return None if age is None else max(0.0, float(age))


def pending_count(conn: Connection) -> int:
    return int(conn.execute(_PENDING).scalar_one())


def requeue_all(conn: Connection) -> int:
    """Queue every row again (a rebuild after a change of configuration); returns how many were added."""
    return conn.execute(_REQUEUE).rowcount
