"""Reviews the worker could parse but not store, by key, so a submitter can be told why.

A dead letter goes to the DLQ topic for operators; a user who submitted through the API only
has the review_key, and without this table its by-key lookup said "pending" for ever. The
worker records the key, reason and error of every dead letter that has one (``too_long``,
``scoring_failed``, ``db_rejected``: a message that did not parse has no key). A later score
of the same key (a replay after a fix) wins: readers look at ``sentiments`` first.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.migrations import reader_role

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rejected_reviews",
        sa.Column("review_key", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("kafka_topic", sa.Text(), nullable=True),
        sa.Column("kafka_partition", sa.Integer(), nullable=True),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=True),
        sa.Column("rejected_on", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("review_key", name=op.f("pk_rejected_reviews")),
    )
    op.execute(f"GRANT SELECT ON rejected_reviews TO {reader_role()}")


def downgrade() -> None:
    op.execute(f"REVOKE ALL ON rejected_reviews FROM {reader_role()}")
    op.drop_table("rejected_reviews")
