"""Two versions of one review in a batch: the newest is kept, and when it cannot be, the one before.

One upsert statement may touch a row once, so a batch keeps one version per review key. Whether
a good version survives must not depend on where the batch boundaries fell: had the versions
arrived in separate batches, the older would be stored and the newer dead-lettered.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from core.config import KafkaSettings
from core.messages import ReviewMessage
from stream.dlq import KafkaSender
from stream.pipeline import BatchOutcome, BatchProcessor
from stream.records import Record
from stream.sink import PostgresSink
from tests.fixtures.stream import EXPLODE, OUT_OF_RANGE, LexiconScorer, fetch_rows

pytestmark = pytest.mark.integration


def _process(kafka: KafkaSettings, engine: Engine, texts: list[str]) -> BatchOutcome:
    """One batch holding ``texts`` as successive versions (one producer time apart) of one review."""
    processor = BatchProcessor(
        LexiconScorer(), PostgresSink(engine), KafkaSender(kafka, flush_timeout=10), kafka.dlq_topic,
        20_000, 16_384, 64, retry_initial=0.05, retry_max=0.5,
    )  # fmt: skip
    records = []
    for offset, text_ in enumerate(texts):
        key, value = ReviewMessage(text=text_, source="test", review_id="r1").to_kafka()
        records.append(Record(kafka.topic, 0, offset, key, value, 1_700_000_000.0 + offset))
    return processor.process(records)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [(f"{EXPLODE} edited", "scoring_failed"), (f"{OUT_OF_RANGE} edited", "db_rejected")],
    ids=["the model refuses the edit", "the table refuses the edit"],
)
def test_when_the_newest_version_is_refused_the_one_before_is_stored(
    kafka_settings: KafkaSettings, engine: Engine, database_url: str, edit: str, reason: str
) -> None:
    outcome = _process(kafka_settings, engine, ["Great product, works well", edit])

    assert [row["sentence"] for row in fetch_rows(database_url)] == ["Great product, works well"]
    assert [(letter.offset, letter.reason) for letter in outcome.dead] == [(1, reason)]
    assert (outcome.consumed, outcome.scored, outcome.inserted) == (2, 1, 1)


def test_the_newest_good_version_wins_and_older_ones_are_not_dead_lettered(
    kafka_settings: KafkaSettings, engine: Engine, database_url: str
) -> None:
    outcome = _process(kafka_settings, engine, ["First take", f"{EXPLODE} second", "Third take, final"])

    assert [row["sentence"] for row in fetch_rows(database_url)] == ["Third take, final"]
    assert outcome.dead == []


def test_every_version_refused_means_every_version_dead_lettered(
    kafka_settings: KafkaSettings, engine: Engine, database_url: str
) -> None:
    outcome = _process(kafka_settings, engine, [f"{OUT_OF_RANGE} one", f"{EXPLODE} two", f"{OUT_OF_RANGE} three"])

    assert fetch_rows(database_url) == []
    assert sorted((letter.offset, letter.reason) for letter in outcome.dead) == [
        (0, "db_rejected"),
        (1, "scoring_failed"),
        (2, "db_rejected"),
    ]


def test_the_rejection_kept_for_a_review_is_its_newest_versions(
    kafka_settings: KafkaSettings, engine: Engine, database_url: str
) -> None:
    """What a submitter waiting on the newest version is told: its reason, not an older version's."""
    _process(kafka_settings, engine, [f"{OUT_OF_RANGE} older", f"{EXPLODE} newest"])

    with engine.connect() as conn:
        kept = conn.execute(text("SELECT reason, kafka_offset FROM rejected_reviews")).all()
    assert [tuple(row) for row in kept] == [("scoring_failed", 1)]
