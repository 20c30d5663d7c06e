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

from core.schema import CHANGES_CHANNEL, SEARCH_CONFIG

# Two statements in one transaction. The first takes the queue entries, locking them until
# commit: a writer re-wording one of those rows from now on waits on that lock in its trigger
# and then queues the row again. The second reads the sentences in a snapshot taken after the
# first, so it sees every re-wording that committed before the entries were taken. (One
# statement read them in the snapshot of its start: a re-wording committed between that start
# and the lock was indexed with its old words and lost its queue entry.) A queue entry a
# re-wording still in flight holds is skipped, left for a later pass.
_TAKE = text(
    """
    DELETE FROM sentiment_search_pending
    WHERE id IN (SELECT id FROM sentiment_search_pending ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING id
    """
)
_WRITE = text(
    f"""
    INSERT INTO sentiment_search AS s (id, document)
    SELECT r.id, to_tsvector('{SEARCH_CONFIG}', r.sentence) FROM sentiments r
    WHERE r.id = ANY(:ids)
    ORDER BY r.id
    ON CONFLICT (id) DO UPDATE SET document = excluded.document
    """
)
# The query API drops its cached answers on this channel: a cached ?q= answer predates the documents.
_NOTIFY = text("SELECT pg_notify(:channel, '')")
# min(queued_on), not the lowest id's: an old row re-worded now is queued now. The queue is short
# but for bursts (a 40,000-review one scans in a few ms).
_OLDEST = text("SELECT extract(epoch FROM clock_timestamp() - min(queued_on))::float8 FROM sentiment_search_pending")
_PENDING = text("SELECT count(*) FROM sentiment_search_pending")
_REQUEUE = text(
    "INSERT INTO sentiment_search_pending (id) SELECT id FROM sentiments ORDER BY id ON CONFLICT (id) DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class Indexed:
    taken: int  # queue entries consumed
    written: int  # documents written: fewer when a queued row was deleted meanwhile


def index_pending(conn: Connection, limit: int) -> Indexed:
    """Write the documents of up to ``limit`` queued rows, lowest ids first; the caller commits."""
    ids = list(conn.execute(_TAKE, {"limit": limit}).scalars())
    if not ids:
        return Indexed(0, 0)
    written = conn.execute(_WRITE, {"ids": ids}).rowcount
    if written:
        conn.execute(_NOTIFY, {"channel": CHANGES_CHANNEL})
    return Indexed(len(ids), written)


def oldest_pending_age(conn: Connection) -> float | None:
    """Seconds the longest-queued row has waited; None when nothing waits (the index is current)."""
    age = conn.execute(_OLDEST).scalar()
    return None if age is None else max(0.0, float(age))


def pending_count(conn: Connection) -> int:
    return int(conn.execute(_PENDING).scalar_one())


def requeue_all(conn: Connection) -> int:
    """Queue every row again (a rebuild after a change of configuration, or after writes made with
    the triggers disabled); returns how many were added. One statement over the whole table, so
    the session's statement timeout is lifted for this transaction."""
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    return conn.execute(_REQUEUE).rowcount
