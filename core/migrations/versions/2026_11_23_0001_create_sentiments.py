"""Create the sentiments table, its query indexes and the SELECT-only reader role.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.migrations import reader_role

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sentiments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("review_key", sa.Text(), nullable=False),
        sa.Column("sentence", sa.Text(), nullable=False),
        sa.Column("sentiment_score", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("suggested_rating", sa.SmallInteger(), nullable=False),
        sa.Column("brand", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("author", sa.Text(), nullable=True),
        sa.Column("lang", sa.String(length=35), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("kafka_topic", sa.Text(), nullable=True),
        sa.Column("kafka_partition", sa.Integer(), nullable=True),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=True),
        sa.Column("created_on", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_on", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "sentiment_score >= 0 AND sentiment_score <= 1", name=op.f("ck_sentiments_sentiment_score_unit")
        ),
        sa.CheckConstraint("confidence >= 0 AND confidence <= 1", name=op.f("ck_sentiments_confidence_unit")),
        sa.CheckConstraint("suggested_rating BETWEEN 1 AND 5", name=op.f("ck_sentiments_suggested_rating_stars")),
        sa.CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name=op.f("ck_sentiments_rating_stars")),
        sa.CheckConstraint("label IN ('negative', 'neutral', 'positive')", name=op.f("ck_sentiments_label_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sentiments")),
        sa.UniqueConstraint("review_key", name=op.f("uq_sentiments_review_key")),
    )
    op.create_index("ix_sentiments_created_on_id", "sentiments", ["created_on", "id"])
    op.create_index("ix_sentiments_brand_created_on_id", "sentiments", ["brand", "created_on", "id"])
    op.create_index("ix_sentiments_source_created_on_id", "sentiments", ["source", "created_on", "id"])
    op.create_index("ix_sentiments_label_created_on_id", "sentiments", ["label", "created_on", "id"])
    op.create_index("ix_sentiments_sentiment_score_id", "sentiments", ["sentiment_score", "id"])
    op.create_index("ix_sentiments_published_at", "sentiments", ["published_at"])
    op.create_index(
        "ix_sentiments_sentence_fts",
        "sentiments",
        [sa.text("to_tsvector('english', sentence)")],
        postgresql_using="gin",
    )

    role = reader_role()
    # Roles are cluster-wide: create it once, grant per database.
    op.execute(
        f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE {role} LOGIN;
            END IF;
        END $$;
        """
    )
    op.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    # current_database(), not the URL: a URL without a database name connects to libpq's default.
    op.execute(
        f"DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), '{role}'); END $$"
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    op.execute(f"GRANT SELECT ON sentiments TO {role}")
    op.execute(f"GRANT SELECT ON alembic_version TO {role}")


def downgrade() -> None:
    role = reader_role()
    op.execute(f"REVOKE ALL ON sentiments FROM {role}")
    op.execute(f"REVOKE ALL ON alembic_version FROM {role}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {role}")
    op.execute(
        f"DO $$ BEGIN EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM %I', current_database(), '{role}'); END $$"
    )
    # Other databases of the cluster may still grant to the role; then it stays.
    op.execute(
        f"""
        DO $$ BEGIN
            DROP ROLE IF EXISTS {role};
        EXCEPTION WHEN dependent_objects_still_exist THEN NULL;
        END $$;
        """
    )
    op.drop_index("ix_sentiments_sentence_fts", table_name="sentiments")
    op.drop_index("ix_sentiments_published_at", table_name="sentiments")
    op.drop_index("ix_sentiments_sentiment_score_id", table_name="sentiments")
    op.drop_index("ix_sentiments_label_created_on_id", table_name="sentiments")
    op.drop_index("ix_sentiments_source_created_on_id", table_name="sentiments")
    op.drop_index("ix_sentiments_brand_created_on_id", table_name="sentiments")
    op.drop_index("ix_sentiments_created_on_id", table_name="sentiments")
    op.drop_table("sentiments")
