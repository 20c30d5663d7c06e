"""Full-text search kept behind the stream: a search table filled from a queue, not an index on the write path.

The GIN index on ``to_tsvector('english', sentence)`` made every insert parse its text (≈30–70 µs a
review in PostgreSQL) and update the GIN index inside the worker's merge statement: with a no-op
scorer on 2 cores it halved the pipeline, 9,269 against 18,129 reviews/s without it (stream/README.md).
Scoring cannot wait; search can wait a second. So:

* ``sentiment_search`` holds each row's ``tsvector`` and the GIN index, written by the search
  indexer (``core.search.index_pending``, run by the worker when the stream has no backlog);
* ``sentiment_search_pending`` is the queue of rows whose document is missing or stale. The
  statement-level triggers add a batch's new rows, and updated rows whose sentence changed, in
  the writer's own statement: an id per row, which costs the pipeline ~5% where the index cost half;
* a delete or a truncate of ``sentiments`` takes the rows out of both, as the rollups' triggers do.

The query API searches ``document @@ query`` (``query_api.filters.matching_ids``): a new or
re-worded review is found once the indexer has passed, about a second after it is stored while
the stream keeps up (the index was current at commit before; search is near-real-time now).

A queued row is *locked* by a second write to it (``ON CONFLICT … DO UPDATE``): the indexer takes
rows with ``FOR UPDATE SKIP LOCKED`` and reads their text in a later statement
(``core.search.index_pending``), so it never indexes the old text of a re-worded row and then
drops the queue entry.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from core.migrations import reader_role

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ENQUEUE = (
    "INSERT INTO sentiment_search_pending AS p (id) {rows} ORDER BY id"
    " ON CONFLICT (id) DO UPDATE SET queued_on = p.queued_on;"
)
# The queue entry first: an indexer holding it has its document written by the time the delete
# gets the entry, and the second statement then removes that document too.
_FORGET = (
    "DELETE FROM sentiment_search_pending WHERE id IN (SELECT id FROM old_rows);"
    "\nDELETE FROM sentiment_search WHERE id IN (SELECT id FROM old_rows);"
)
_FUNCTIONS = {
    "sentiment_search_enqueue_new": _ENQUEUE.format(rows="SELECT id FROM new_rows"),
    "sentiment_search_enqueue_edited": _ENQUEUE.format(
        rows="SELECT n.id FROM new_rows n JOIN old_rows o USING (id) WHERE n.sentence IS DISTINCT FROM o.sentence"
    ),
    "sentiment_search_forget": _FORGET,
    "sentiment_search_clear": "TRUNCATE sentiment_search, sentiment_search_pending;",
}
_TRIGGERS = (
    ("sentiments_search_insert", "INSERT", "REFERENCING NEW TABLE AS new_rows", "sentiment_search_enqueue_new"),
    (
        "sentiments_search_update",
        "UPDATE",
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "sentiment_search_enqueue_edited",
    ),
    ("sentiments_search_delete", "DELETE", "REFERENCING OLD TABLE AS old_rows", "sentiment_search_forget"),
    ("sentiments_search_truncate", "TRUNCATE", "", "sentiment_search_clear"),
)


def upgrade() -> None:
    op.create_table(
        "sentiment_search",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("document", postgresql.TSVECTOR(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sentiment_search")),
    )
    op.create_table(
        "sentiment_search_pending",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("queued_on", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sentiment_search_pending")),
    )
    for name, body in _FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n{body}\nRETURN NULL;\nEND $$"
        )
    # No write may slip between the backfill and the triggers.
    op.execute("LOCK TABLE sentiments IN SHARE ROW EXCLUSIVE MODE")
    for name, event, referencing, function in _TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON sentiments {referencing}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    # Writers wait for the backfill (≈30–70 µs a review: half a minute to a minute per million
    # rows); the GIN index is built after it, in one pass, rather than entry by entry.
    op.execute(
        "INSERT INTO sentiment_search (id, document)"
        " SELECT id, to_tsvector('english', sentence) FROM sentiments ORDER BY id"
    )
    op.create_index(
        "ix_sentiment_search_document", "sentiment_search", ["document"], unique=False, postgresql_using="gin"
    )
    op.drop_index("ix_sentiments_sentence_fts", table_name="sentiments", postgresql_using="gin")
    for table in ("sentiment_search", "sentiment_search_pending"):
        op.execute(f"GRANT SELECT ON {table} TO {reader_role()}")


def downgrade() -> None:
    op.create_index(
        "ix_sentiments_sentence_fts",
        "sentiments",
        [sa.text("to_tsvector('english', sentence)")],
        unique=False,
        postgresql_using="gin",
    )
    for table in ("sentiment_search", "sentiment_search_pending"):
        op.execute(f"REVOKE ALL ON {table} FROM {reader_role()}")
    for name, *_ in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON sentiments")
    for name in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_index("ix_sentiment_search_document", table_name="sentiment_search")
    op.drop_table("sentiment_search_pending")
    op.drop_table("sentiment_search")
