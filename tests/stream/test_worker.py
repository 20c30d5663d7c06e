"""The worker end to end: real Tansu, real PostgreSQL, a worker subprocess, the lexicon scorer."""

from __future__ import annotations

from typing import Any

import pytest

from core.config import KafkaSettings
from tests.fixtures.stream import LexiconScorer, fetch_rows, make_reviews, produce_reviews, wait_for_rows

pytestmark = pytest.mark.integration


def test_n_messages_become_exactly_n_rows_with_the_scorers_scores(
    start_worker: Any, kafka_settings: KafkaSettings, database_url: str
) -> None:
    reviews = make_reviews(120)
    worker = start_worker()
    produce_reviews(kafka_settings, reviews)

    wait_for_rows(database_url, len(reviews), 60, worker)
    worker.wait_healthy()

    rows = {row["review_key"]: row for row in fetch_rows(database_url)}
    assert len(rows) == len(reviews)
    expected = LexiconScorer()
    for review in reviews:
        row = rows[review.review_key]
        score = expected.score_one(review.text)
        assert row["sentence"] == review.text
        assert row["sentiment_score"] == pytest.approx(score.sentiment_score)
        assert row["confidence"] == pytest.approx(score.confidence)
        assert (row["label"], row["suggested_rating"], row["model_version"]) == (
            score.label,
            score.suggested_rating,
            "lexicon-1",
        )
        assert (row["brand"], row["rating"], row["source"]) == (review.brand, review.rating, "test")
        assert row["kafka_topic"] == kafka_settings.topic
        assert 0 <= row["kafka_partition"] < kafka_settings.partitions
        assert row["kafka_offset"] >= 0
        assert row["updated_on"] is None
    assert "reviewscore_messages_scored_total 120.0" in worker.metrics()
