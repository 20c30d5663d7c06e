"""The worker's search indexer: it yields to a backlog, never past its lag bound, and survives an outage."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, create_engine, text
from typer.testing import CliRunner

from core.search import pending_count
from stream.metrics import Metrics
from stream.search_indexer import SearchIndexer, has_backlog, should_index
from tests.fixtures.stream import cli_app, wait_until_indexed


def test_nothing_queued_means_nothing_to_do() -> None:
    assert not should_index(None, backlog=False, max_lag=30)


def test_it_indexes_at_once_when_the_stream_keeps_up() -> None:
    assert should_index(0.0, backlog=False, max_lag=30)


def test_a_backlog_defers_it_until_the_oldest_row_has_waited_max_lag() -> None:
    assert not should_index(29.9, backlog=True, max_lag=30)
    assert should_index(30.0, backlog=True, max_lag=30)


def test_only_a_recent_full_batch_counts_as_a_backlog() -> None:
    assert has_backlog((100.0, 256), max_batch=256, now=100.5)
    assert not has_backlog((100.0, 255), max_batch=256, now=100.5)  # the consumer ran dry
    assert not has_backlog((100.0, 256), max_batch=256, now=101.5)  # the last batch is old news
    assert not has_backlog((0.0, 0), max_batch=256, now=0.5)  # no batch yet


def seed(engine: Engine, count: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sentiments (review_key, sentence, sentiment_score, confidence, label, suggested_rating,"
                " source, model_version) SELECT 'k' || i, 'review number ' || i, 0.5, 0.5, 'neutral', 3, 'user', 'v1'"
                " FROM generate_series(1, :n) AS i"
            ),
            {"n": count},
        )


@pytest.mark.integration
def test_a_step_under_backlog_waits_and_one_past_the_lag_bound_indexes(engine: Engine) -> None:
    seed(engine, 5)
    metrics = Metrics()
    deferring = SearchIndexer(engine, backlog=lambda: True, batch=2, max_lag=3600, metrics=metrics)
    assert deferring.step() == 0
    assert metrics.registry.get_sample_value("reviewscore_search_lag_seconds") > 0  # reported while it defers

    overdue = SearchIndexer(engine, backlog=lambda: True, batch=2, max_lag=0, metrics=metrics)
    assert overdue.step() == 2  # one slice per step
    with engine.connect() as conn:
        assert pending_count(conn) == 3
    assert metrics.registry.get_sample_value("reviewscore_search_indexed_total") == 2


@pytest.mark.integration
def test_the_thread_drains_the_queue_in_slices_and_stops(engine: Engine) -> None:
    seed(engine, 25)
    indexer = SearchIndexer(engine, backlog=lambda: False, batch=10, interval=0.05).start()
    try:
        wait_until_indexed(engine, timeout=10)
        reworded = 3
        with engine.begin() as conn:
            reword = text("UPDATE sentiments SET sentence = sentence || ' refunded' WHERE id <= :n")
            conn.execute(reword, {"n": reworded})
        wait_until_indexed(engine, timeout=10)  # re-worded rows too
    finally:
        indexer.stop()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sentiment_search")).scalar_one() == 25
        hits = "SELECT count(*) FROM sentiment_search WHERE document @@ to_tsquery('english', 'refund')"
        assert conn.execute(text(hits)).scalar_one() == reworded


@pytest.mark.integration
def test_the_thread_outlives_a_database_it_cannot_reach(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none", pool_pre_ping=False)
    indexer = SearchIndexer(unreachable, backlog=lambda: False, interval=0.01).start()
    try:
        time.sleep(0.3)
        assert indexer.running
    finally:
        indexer.stop()
        unreachable.dispose()
    assert any("search indexer" in record.getMessage() for record in caplog.records)


@pytest.mark.integration
def test_the_search_index_command_writes_what_waits_and_a_rebuild_writes_everything_again(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(engine, 7)
    monkeypatch.setenv("DATABASE_URL", database_url)

    first = CliRunner().invoke(cli_app(), ["search-index", "--batch-size", "3"])
    again = CliRunner().invoke(cli_app(), ["search-index"])
    rebuilt = CliRunner().invoke(cli_app(), ["search-index", "--rebuild"])

    assert first.exit_code == 0, first.output
    assert "7 rows waiting" in first.output
    assert "wrote 7 search documents" in first.output
    assert "wrote 0 search documents" in again.output
    assert "queued 7 rows again" in rebuilt.output
    assert "wrote 7 search documents" in rebuilt.output
    with engine.connect() as conn:
        assert pending_count(conn) == 0
