"""The search table behind the stream: what the triggers queue and what the indexer writes (migration 0013)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Connection, Engine, text

from core.search import index_pending, oldest_pending_age, pending_count, requeue_all

pytestmark = pytest.mark.integration


def add(conn: Connection, key: str, sentence: str) -> int:
    return int(
        conn.execute(
            text(
                "INSERT INTO sentiments (review_key, sentence, sentiment_score, confidence, label, suggested_rating,"
                " source, model_version) VALUES (:key, :sentence, 0.9, 0.8, 'positive', 5, 'user', 'v1') RETURNING id"
            ),
            {"key": key, "sentence": sentence},
        ).scalar_one()
    )


def queued(conn: Connection) -> list[int]:
    return list(conn.execute(text("SELECT id FROM sentiment_search_pending ORDER BY id")).scalars())


def documents(conn: Connection) -> dict[int, str]:
    rows = conn.execute(text("SELECT id, document::text AS document FROM sentiment_search ORDER BY id"))
    return {row.id: row.document for row in rows}


def matches(conn: Connection, words: str) -> list[int]:
    return list(
        conn.execute(
            text("SELECT id FROM sentiment_search WHERE document @@ websearch_to_tsquery('english', :q) ORDER BY id"),
            {"q": words},
        ).scalars()
    )


def test_new_rows_wait_in_the_queue_until_the_indexer_writes_their_documents(engine: Engine) -> None:
    with engine.begin() as conn:
        first, second = add(conn, "a", "Refunds took weeks"), add(conn, "b", "Lovely dress")
    with engine.begin() as conn:
        assert queued(conn) == [first, second]
        assert documents(conn) == {}
        assert oldest_pending_age(conn) is not None

    with engine.begin() as conn:
        done = index_pending(conn, limit=1)  # oldest id first
    assert (done.taken, done.written) == (1, 1)
    with engine.begin() as conn:
        assert queued(conn) == [second]
        assert matches(conn, "refund") == [first]  # stemmed, as the old index was
        index_pending(conn, limit=10)
    with engine.begin() as conn:
        assert queued(conn) == []
        assert oldest_pending_age(conn) is None
        assert matches(conn, "dress") == [second]


def test_a_rescore_queues_nothing_and_a_reworded_row_is_queued_again(engine: Engine) -> None:
    with engine.begin() as conn:
        row = add(conn, "a", "Refunds took weeks")
        index_pending(conn, limit=10)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE sentiments SET sentiment_score = 0.1, model_version = 'v2' WHERE id = :id"), {"id": row}
        )
        assert queued(conn) == []
    with engine.begin() as conn:
        conn.execute(text("UPDATE sentiments SET sentence = 'Fast delivery' WHERE id = :id"), {"id": row})
        assert queued(conn) == [row]
        assert matches(conn, "refund") == [row]  # the stale document stays until the indexer passes
        index_pending(conn, limit=10)
    with engine.begin() as conn:
        assert matches(conn, "refund") == []
        assert matches(conn, "delivery") == [row]


def test_deleted_and_truncated_rows_leave_no_document_and_no_queue_entry(engine: Engine) -> None:
    with engine.begin() as conn:
        indexed, waiting = add(conn, "a", "Refunds took weeks"), add(conn, "b", "Lovely dress")
        index_pending(conn, limit=1)
        conn.execute(text("DELETE FROM sentiments WHERE id IN (:a, :b)"), {"a": indexed, "b": waiting})
        assert (documents(conn), queued(conn)) == ({}, [])
        add(conn, "c", "Refunds took weeks")
        index_pending(conn, limit=10)
        add(conn, "d", "Lovely dress")
        conn.execute(text("TRUNCATE sentiments"))
        assert (documents(conn), queued(conn)) == ({}, [])


def test_a_queued_row_being_reworded_is_left_for_a_later_pass(engine: Engine) -> None:
    """The race the triggers' DO UPDATE closes: the indexer must not write the old words of a row
    whose new words are committing and then drop its queue entry."""
    with engine.begin() as conn:
        row = add(conn, "a", "Refunds took weeks")
    with engine.connect() as writer:
        writer.execute(text("UPDATE sentiments SET sentence = 'Fast delivery' WHERE id = :id"), {"id": row})
        # The writer's transaction is open: its trigger holds the row's queue entry.
        with engine.begin() as conn:
            assert index_pending(conn, limit=10).taken == 0
        writer.commit()
    with engine.begin() as conn:
        assert index_pending(conn, limit=10).written == 1
        assert matches(conn, "delivery") == [row]
        assert matches(conn, "refund") == []


def test_a_rebuild_queues_every_row_once(engine: Engine) -> None:
    with engine.begin() as conn:
        rows = [add(conn, "a", "Refunds took weeks"), add(conn, "b", "Lovely dress")]
        index_pending(conn, limit=1)
        assert requeue_all(conn) == 1  # the other one was still queued
        assert pending_count(conn) == 2
        assert index_pending(conn, limit=10).written == 2
        assert sorted(documents(conn)) == rows


def test_a_row_reworded_while_the_indexer_holds_its_entry_is_queued_again(engine: Engine) -> None:
    """The indexer has taken the entry and may have read the old words: the re-wording waits for it
    to commit and then queues the row again, so the new words are indexed on the next pass."""
    with engine.begin() as conn:
        row = add(conn, "a", "Refunds took weeks")

    def reword() -> None:
        with engine.begin() as writer:
            writer.execute(text("UPDATE sentiments SET sentence = 'Fast delivery' WHERE id = :id"), {"id": row})

    with engine.connect() as indexer:
        assert index_pending(indexer, limit=10).written == 1  # its transaction is still open
        writer = threading.Thread(target=reword)
        writer.start()
        writer.join(0.5)
        assert writer.is_alive()  # its trigger waits on the entry the indexer took
        indexer.commit()
    writer.join(10)
    with engine.begin() as conn:
        assert queued(conn) == [row]
        index_pending(conn, limit=10)
        assert (matches(conn, "delivery"), matches(conn, "refund")) == ([row], [])
