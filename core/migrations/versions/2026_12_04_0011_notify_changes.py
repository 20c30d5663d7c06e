"""Tell listeners when ``sentiments`` changes: one NOTIFY per writing statement, sent at commit.

The query API keeps rendered read answers (query_api/read_cache.py) and must drop them as soon as
the rows they came from change. A statement-level trigger runs once per statement, not per row
(the worker writes a batch in one statement), and PostgreSQL folds a transaction's identical
notifications into one that it sends only if the transaction commits: a rolled-back batch wakes
no one. The rollups are kept from ``sentiments`` by triggers in the same statements, so this one
channel covers them too; a rebuild of the rollups notifies by itself (``core.rollup.rebuild``).

The channel name is ``core.schema.CHANGES_CHANNEL``'s, written out here so this revision stays
what it was if the constant ever moves.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "sentiments_notify_change"


def upgrade() -> None:
    op.execute(
        f"CREATE FUNCTION {NAME}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\nPERFORM pg_notify('reviewscore_changes', '');\nRETURN NULL;\nEND $$"
    )
    op.execute(
        f"CREATE TRIGGER {NAME} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sentiments"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {NAME}()"
    )


def downgrade() -> None:
    op.execute(f"DROP TRIGGER {NAME} ON sentiments")
    op.execute(f"DROP FUNCTION {NAME}()")
