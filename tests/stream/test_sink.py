"""The Postgres sink and the rescore job against a real database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from core.messages import ReviewMessage
from model.base import Score
from stream.records import Record, to_row, triage
from stream.rescore import pending_rows, rescore_rows
from stream.sink import PostgresSink
from tests.fixtures.stream import LexiconScorer, cli_app, fetch_rows, make_reviews

pytestmark = pytest.mark.integration


def _rows(n: int, version: str = "lexicon-1", tag: str = "s") -> list[dict[str, Any]]:
    scorer = LexiconScorer(model_version=version)
    records = [Record("reviews", i % 4, i, *r.to_kafka(), None) for i, r in enumerate(make_reviews(n, tag))]
    parsed, _ = triage(records, 20_000)
    return [to_row(p, s) for p, s in zip(parsed, scorer.predict([p.message.text for p in parsed]), strict=True)]


def test_a_batch_is_one_round_trip_and_redelivery_with_the_same_model_changes_nothing(
    engine: Engine, database_url: str
) -> None:
    sink = PostgresSink(engine)
    first = sink.write(_rows(50))
    before = fetch_rows(database_url)

    again = sink.write(_rows(50))

    assert (first.inserted, first.updated, first.round_trips) == (50, 0, 1)
    assert (again.inserted, again.updated, again.unchanged, again.round_trips) == (0, 0, 50, 1)
    assert fetch_rows(database_url) == before


def test_a_new_model_version_updates_scores_and_updated_on_but_keeps_id_and_created_on(
    engine: Engine, database_url: str
) -> None:
    sink = PostgresSink(engine)
    sink.write(_rows(20))
    before = {r["review_key"]: r for r in fetch_rows(database_url)}

    result = sink.write(_rows(20, version="lexicon-2"))

    assert (result.inserted, result.updated) == (0, 20)
    for row in fetch_rows(database_url):
        old = before[row["review_key"]]
        assert row["model_version"] == "lexicon-2"
        assert row["updated_on"] is not None
        assert row["updated_on"] >= old["created_on"]
        assert (row["id"], row["created_on"], row["sentence"]) == (old["id"], old["created_on"], old["sentence"])


def _scored(messages: list[ReviewMessage], offset: int = 0, at: float | None = None) -> list[dict[str, Any]]:
    records = [Record("reviews", 0, offset + i, *m.to_kafka(), at) for i, m in enumerate(messages)]
    parsed, _ = triage(records, 20_000)
    scores = LexiconScorer().predict([p.message.text for p in parsed])
    return [to_row(p, s) for p, s in zip(parsed, scores, strict=True)]


@pytest.mark.parametrize("method", ["copy", "insert"])
def test_an_edited_review_under_the_same_id_replaces_its_row_and_is_scored_again(
    engine: Engine, database_url: str, method: str
) -> None:
    sink = PostgresSink(engine, method=method)  # type: ignore[arg-type]
    original = ReviewMessage(text="Great shoes, fast delivery", source="scraper:shop", review_id="r1", rating=5)
    edited = ReviewMessage(
        text="Awful: the shoes broke after a week", source="scraper:shop", review_id="r1", rating=1, brand="Acme"
    )
    sink.write(_scored([original]))
    (before,) = fetch_rows(database_url)

    result = sink.write(_scored([edited], offset=1))
    again = sink.write(_scored([edited], offset=2))  # the edit re-delivered: nothing to change

    (after,) = fetch_rows(database_url)
    (expected,) = LexiconScorer().predict([edited.text])
    assert (result.updated, again.unchanged) == (1, 1)
    assert (after["id"], after["created_on"]) == (before["id"], before["created_on"])
    assert (after["sentence"], after["rating"], after["brand"]) == (edited.text, 1, "Acme")
    assert (after["label"], after["sentiment_score"]) == (expected.label, pytest.approx(expected.sentiment_score))
    assert after["label"] != before["label"]
    assert after["kafka_offset"] == 1
    assert after["updated_on"] is not None


@pytest.mark.parametrize("method", ["copy", "insert"])
def test_an_older_version_of_an_edited_review_never_brings_the_old_text_back(
    engine: Engine, database_url: str, method: str
) -> None:
    sink = PostgresSink(engine, method=method)  # type: ignore[arg-type]
    original = ReviewMessage(text="Great shoes", source="scraper:shop", review_id="r1", rating=5)
    edited = ReviewMessage(text="The shoes broke after a week", source="scraper:shop", review_id="r1", rating=1)
    sink.write(_scored([edited], offset=7, at=2_000.0))

    # The original, published before the edit, arrives after it: a dead letter replayed with
    # its original time, or a re-delivery after a consumer-group reset.
    stale = sink.write(_scored([original], offset=9, at=1_000.0))
    (row,) = fetch_rows(database_url)
    assert (stale.updated, stale.unchanged) == (0, 1)
    assert (row["sentence"], row["rating"], row["kafka_offset"]) == (edited.text, 1, 7)
    assert row["kafka_timestamp"] == datetime.fromtimestamp(2_000.0, UTC)

    # The producer publishing the original text again, later, is an edit like any other.
    reverted = sink.write(_scored([original], offset=11, at=3_000.0))
    (row,) = fetch_rows(database_url)
    assert reverted.updated == 1
    assert (row["sentence"], row["rating"]) == (original.text, 5)


def test_a_new_model_version_rescoring_on_redelivery_is_not_held_back_by_time(
    engine: Engine, database_url: str
) -> None:
    sink = PostgresSink(engine)
    review = ReviewMessage(text="Great shoes", source="scraper:shop", review_id="r1")
    sink.write(_scored([review], at=1_000.0))
    rows = _scored([review], at=1_000.0)
    for row in rows:
        row["model_version"] = "lexicon-2"

    result = sink.write(rows)

    assert result.updated == 1
    assert fetch_rows(database_url)[0]["model_version"] == "lexicon-2"


def test_the_same_words_about_two_brands_without_ids_are_two_rows(engine: Engine, database_url: str) -> None:
    sink = PostgresSink(engine)
    acme = ReviewMessage(text="Great quality!", source="user", brand="Acme")
    globex = ReviewMessage(text="Great quality!", source="user", brand="Globex")

    first = sink.write(_scored([acme]))
    second = sink.write(_scored([globex], offset=1))
    again = sink.write(_scored([acme], offset=2))  # the first one re-published: still one row for Acme

    assert (first.inserted, second.inserted, again.unchanged) == (1, 1, 1)
    assert sorted(r["brand"] for r in fetch_rows(database_url)) == ["Acme", "Globex"]


def test_rejections_are_kept_by_key_and_the_latest_reason_wins(engine: Engine) -> None:
    from stream.records import Rejected

    sink = PostgresSink(engine)
    record = Record("reviews", 2, 40, b"k", b"{}")
    sink.record_rejections([Rejected(record, "too_long", "text has 30000 characters", "user:a")])
    sink.record_rejections(
        [
            Rejected(record, "scoring_failed", "first", "user:b"),
            Rejected(record, "scoring_failed", "then \x00 this", "user:b"),  # NUL: PostgreSQL text refuses it
            Rejected(record, "bad_json", "no key, nothing to record"),
            Rejected(record, "db_rejected", "CheckViolation: …", "user:a"),
        ]
    )

    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT review_key, reason, error, kafka_partition, kafka_offset FROM rejected_reviews ORDER BY 1")
        ).all()
    assert [tuple(row) for row in stored] == [
        ("user:a", "db_rejected", "CheckViolation: …", 2, 40),
        ("user:b", "scoring_failed", "then  this", 2, 40),
    ]


def test_a_row_the_database_refuses_is_isolated_and_the_rest_of_the_batch_lands(
    engine: Engine, database_url: str
) -> None:
    rows = _rows(9)
    rows[4] = {**rows[4], "sentence": "NUL \x00 inside"}
    rows[7] = {**rows[7], "label": "ecstatic"}  # violates the label check constraint

    result = PostgresSink(engine).write(rows)

    assert result.inserted == 7
    assert sorted(row["review_key"] for row, _ in result.rejected) == sorted(
        [rows[4]["review_key"], rows[7]["review_key"]]
    )
    assert any("NUL" in why for _, why in result.rejected)
    assert any("CheckViolation" in why for _, why in result.rejected)
    assert len(fetch_rows(database_url)) == 7


@pytest.mark.parametrize("method", ["copy", "insert"])
def test_both_write_methods_store_every_field_exactly(engine: Engine, database_url: str, method: str) -> None:
    published = datetime(2026, 11, 20, 14, 3, 0, 123456, tzinfo=UTC)
    tricky = "tab\there, line\nbreak, back\\slash \\N, CR\r, quote ' \" and ünïcödé ✓"
    row = {**_rows(1)[0], "sentence": tricky, "published_at": published, "brand": None, "confidence": 1e-05}

    result = PostgresSink(engine, method=method).write([row])  # type: ignore[arg-type]

    assert (result.inserted, result.rejected) == (1, [])
    (stored,) = fetch_rows(database_url)
    assert {name: stored[name] for name in row} == row


def test_rescore_brings_every_row_to_the_new_version_and_resumes_where_it_stopped(
    engine: Engine, database_url: str
) -> None:
    PostgresSink(engine).write(_rows(30))
    new = LexiconScorer(model_version="lexicon-2")

    assert rescore_rows(engine, new, batch_size=8, limit=10).rescored == 10
    assert pending_rows(engine, "lexicon-2") == 20
    assert rescore_rows(engine, new, batch_size=8).rescored == 20
    assert rescore_rows(engine, new, batch_size=8).rescored == 0

    rows = fetch_rows(database_url)
    assert {r["model_version"] for r in rows} == {"lexicon-2"}
    assert all(r["updated_on"] is not None for r in rows)
    for row in rows:
        assert row["sentiment_score"] == pytest.approx(new.score_one(row["sentence"]).sentiment_score)


def test_rescore_never_puts_scores_of_an_old_text_on_a_row_edited_meanwhile(engine: Engine, database_url: str) -> None:
    sink = PostgresSink(engine)
    sink.write(_scored([ReviewMessage(text="Great shoes", source="shop", review_id="r1")]))
    edited = ReviewMessage(text="Awful shoes, broken and rude staff", source="shop", review_id="r1")

    class EditsWhileScoring(LexiconScorer):
        def predict(self, texts: Sequence[str]) -> list[Score]:
            sink.write(_scored([edited], offset=1))  # the worker lands an edit mid-page
            return super().predict(texts)

    rescore_rows(engine, EditsWhileScoring(model_version="lexicon-2"))

    (row,) = fetch_rows(database_url)
    assert row["sentence"] == edited.text
    assert (row["model_version"], row["label"]) == ("lexicon-1", LexiconScorer().score_one(edited.text).label)
    assert pending_rows(engine, "lexicon-2") == 1  # the next run re-scores the new text


def test_rescore_command_reports_what_it_did(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    PostgresSink(engine).write(_rows(12))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("STREAM_SCORER", "tests.fixtures.stream:make_test_scorer")
    monkeypatch.setenv("RS_TEST_SCORER_VERSION", "lexicon-3")

    result = CliRunner().invoke(cli_app(), ["rescore", "--batch-size", "5"])

    assert result.exit_code == 0, result.output
    assert "12 rows not at model version lexicon-3" in result.output
    assert "re-scored 12 rows to model version lexicon-3" in result.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sentiments WHERE model_version = 'lexicon-3'")).scalar() == 12
