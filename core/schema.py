"""The PostgreSQL schema: one table of scored reviews, shaped for the analysts' query patterns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names keep Alembic migrations reviewable and reversible.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

LABELS = ("negative", "neutral", "positive")

CHANGES_CHANNEL = "reviewscore_changes"
"""The channel a NOTIFY goes to when a statement writes ``sentiments`` (migration 0011), or when
the rollups are rebuilt; the query API listens on it to drop cached answers."""
CHANGES_TRIGGER = "sentiments_notify_change"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Sentiment(Base):
    """One scored review. ``review_key`` makes re-delivery idempotent."""

    __tablename__ = "sentiments"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    review_key: Mapped[str] = mapped_column(Text, unique=True)
    sentence: Mapped[str] = mapped_column(Text)
    sentiment_score: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(16))
    suggested_rating: Mapped[int] = mapped_column(SmallInteger)
    brand: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    url: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    lang: Mapped[str | None] = mapped_column(String(35))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    model_version: Mapped[str] = mapped_column(Text)
    kafka_topic: Mapped[str | None] = mapped_column(Text)
    kafka_partition: Mapped[int | None] = mapped_column(Integer)
    kafka_offset: Mapped[int | None] = mapped_column(BigInteger)
    # The producer's time of the message that wrote the row (a replay keeps the original's):
    # an older message for the same key never overwrites a newer one.
    kafka_timestamp: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_on: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_on: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("sentiment_score >= 0 AND sentiment_score <= 1", name="sentiment_score_unit"),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_unit"),
        CheckConstraint("suggested_rating BETWEEN 1 AND 5", name="suggested_rating_stars"),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating_stars"),
        CheckConstraint("label IN ('negative', 'neutral', 'positive')", name="label_known"),
        # Keyset pagination newest/oldest first: (created_on, id) is a total order.
        Index("ix_sentiments_created_on_id", "created_on", "id"),
        # Per-brand timelines; covering (INCLUDE) so a brand's daily stats read only the index.
        Index(
            "ix_sentiments_brand_created_on_id",
            "brand",
            "created_on",
            "id",
            postgresql_include=["sentiment_score", "label"],
        ),
        # Per-source timelines; label filters and distributions.
        Index("ix_sentiments_source_created_on_id", "source", "created_on", "id"),
        Index("ix_sentiments_label_created_on_id", "label", "created_on", "id"),
        # Sort by score with a keyset tiebreaker.
        Index("ix_sentiments_sentiment_score_id", "sentiment_score", "id"),
        Index("ix_sentiments_published_at", "published_at"),
        # One brand's timeline by publication time, covering like the created_on one (migration 0009).
        Index(
            "ix_sentiments_brand_published_at",
            "brand",
            "published_at",
            postgresql_include=["sentiment_score", "label"],
        ),
        # Full-text search for ?q= lives in sentiment_search, filled behind the stream (migration 0013).
    )


sentiment_daily = Table(
    "sentiment_daily",
    Base.metadata,
    Column("brand", Text, nullable=True),
    Column("day", Date, nullable=False),
    Column("source", Text, nullable=False),
    Column("label", String(16), nullable=False),
    Column("reviews", BigInteger, nullable=False),
    Column("score_sum", Numeric, nullable=False),
    Index("ux_sentiment_daily_key", "brand", "day", "source", "label", unique=True, postgresql_nulls_not_distinct=True),
)
"""Reviews and score sum per (brand, UTC day of ``created_on``, source, label).

Written only by the triggers of migration 0003, in the same transaction as the rows they
summarise, so stats read from it equal stats aggregated from ``sentiments``. ``reviews`` can
reach 0 after deletes or re-labelling; readers drop such groups. Exactness is checked by
``core.rollup.drift`` and restored by ``reviewscore rollup --rebuild``.
"""


sentiment_brand_daily = Table(
    "sentiment_brand_daily",
    Base.metadata,
    Column("brand", Text, nullable=True),
    Column("day", Date, nullable=False),
    *(Column(label, BigInteger, nullable=False) for label in LABELS),
    Column("score_sum", Numeric, nullable=False),
    Index("ux_sentiment_brand_daily_key", "brand", "day", unique=True, postgresql_nulls_not_distinct=True),
)
"""Reviews per label and the score sum per (brand, UTC day of ``created_on``): ``sentiment_daily``
with the source summed away and the labels as columns, so one brand's timeline reads one row a
day (migration 0012). Written only by its triggers, like the other rollups; a group can reach all
zeros, and readers drop it.
"""


sentiment_totals = Table(
    "sentiment_totals",
    Base.metadata,
    Column("brand", Text, nullable=True),
    Column("source", Text, nullable=False),
    Column("label", String(16), nullable=False),
    Column("reviews", BigInteger, nullable=False),
    Column("score_sum", Numeric, nullable=False),
    Column("rating", SmallInteger, nullable=True),
    Index(
        "ux_sentiment_totals_key",
        "brand",
        "source",
        "label",
        "rating",
        unique=True,
        postgresql_nulls_not_distinct=True,
    ),
)
"""Reviews and score sum per (brand, source, label, rating) over all time: ``sentiment_daily``
without the day, with the reviewer's stars (migration 0010: the stars chart's all-time answer).

Written only by the triggers of migration 0004, like the daily rollup, for the questions with no
time range (the brand list, all-time label distributions), which would otherwise sum every day.
"""


SEARCH_CONFIG = "english"
"""The text search configuration of ``sentiment_search.document`` and of every query against it."""

sentiment_search = Table(
    "sentiment_search",
    Base.metadata,
    Column("id", BigInteger, primary_key=True),
    Column("document", TSVECTOR, nullable=False),
    Index("ix_sentiment_search_document", "document", postgresql_using="gin"),
)
"""``to_tsvector('english', sentence)`` of each scored review, by ``sentiments.id``, with the GIN
index that ``?q=`` searches (migration 0013).

Written by the search indexer (``core.search.index_pending``) from ``sentiment_search_pending``,
not by the worker's merge: parsing every text there halved the pipeline's throughput. A row
whose id is pending has no document yet, or a stale one, until the indexer's next pass.
"""

sentiment_search_pending = Table(
    "sentiment_search_pending",
    Base.metadata,
    Column("id", BigInteger, primary_key=True),
    Column("queued_on", DateTime(timezone=True), server_default=func.now(), nullable=False),
)
"""Ids of the ``sentiments`` rows whose search document is missing or stale: filled by the
triggers of migration 0013 in the writing statement (new rows, and updated rows whose sentence
changed), emptied by the search indexer."""


rejected_reviews = Table(
    "rejected_reviews",
    Base.metadata,
    Column("review_key", Text, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("kafka_topic", Text),
    Column("kafka_partition", Integer),
    Column("kafka_offset", BigInteger),
    Column("rejected_on", DateTime(timezone=True), server_default=func.now(), nullable=False),
)
"""The reason a parsed review was dead-lettered, by ``review_key`` (migration 0005).

Written by the worker next to the dead letter; read by ``GET /sentiments/by-key/{key}`` so a
submitter learns why a review will not be scored. A row in ``sentiments`` for the same key wins.
"""
