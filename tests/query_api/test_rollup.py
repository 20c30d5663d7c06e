"""The rollups behind stats and brands (brand-day, daily, all-time totals) equal the rows, whatever wrote them."""

from __future__ import annotations

import random
import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import product
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, insert, pool, text
from sqlalchemy.dialects import postgresql
from typer.testing import CliRunner

from core import migrate
from core.db import sqlalchemy_url
from core.rollup import ROLLUPS, drift
from core.schema import LABELS, Sentiment
from query_api.filters import Filters
from query_api.queries import brands_statement, rollup_answers, rollup_stats_statement, scan_stats_statement
from stream.sink import PostgresSink
from tests.fixtures.stream import cli_app

MIDNIGHT = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("filters", "bucket", "time_field", "answers"),
    [
        (Filters(), None, "created_on", True),
        (Filters(brand="Acme", source="user", label="positive"), "week", "created_on", True),
        (Filters(since=MIDNIGHT, until=MIDNIGHT + timedelta(days=30)), "day", "created_on", True),
        (Filters(q="   "), "day", "created_on", True),
        (Filters(), "hour", "created_on", False),
        (Filters(), "day", "published_at", False),
        (Filters(since=MIDNIGHT + timedelta(hours=6)), "day", "created_on", False),
        (Filters(until=MIDNIGHT + timedelta(microseconds=1)), None, "created_on", False),
        (Filters(min_score=0.0), "day", "created_on", False),
        (Filters(max_score=1.0), "day", "created_on", False),
        (Filters(q="delivery"), "day", "created_on", False),
        (Filters(published_since=MIDNIGHT), "day", "created_on", False),  # the rollup has no publication time
        (Filters(published_until=MIDNIGHT), None, "created_on", False),
        (Filters(min_rating=4), None, "created_on", True),  # the all-time totals keep the stars
        (Filters(brand="Acme", max_rating=2), None, "created_on", True),
        (Filters(min_rating=4), "day", "created_on", False),  # the daily rollup does not
        (Filters(min_rating=4, since=MIDNIGHT), None, "created_on", False),
    ],
)
def test_the_rollup_answers_only_whole_days_of_created_on_by_its_own_columns(
    filters: Filters, bucket: Any, time_field: Any, answers: bool
) -> None:
    assert rollup_answers(filters, bucket, time_field) is answers


@pytest.mark.parametrize(
    ("filters", "bucket", "answers"),
    [(Filters(), None, True), (Filters(source="user"), None, True), (Filters(), "day", False)],
)
def test_stats_by_star_rating_come_from_the_all_time_totals_only(filters: Filters, bucket: Any, answers: bool) -> None:
    assert rollup_answers(filters, bucket, "created_on", "rating") is answers


@pytest.mark.parametrize(
    ("filters", "group_by", "bucket", "table", "aggregated"),
    [
        # A brand's timeline: each (brand, day) is one row of the brand-day rollup, read as it is.
        (Filters(brand="Acme", since=MIDNIGHT), None, "day", "sentiment_brand_daily", False),
        (Filters(), "brand", "day", "sentiment_brand_daily", False),
        (Filters(brand="Acme"), None, "week", "sentiment_brand_daily", True),
        (Filters(), None, "day", "sentiment_brand_daily", True),  # every brand's day summed
        (Filters(since=MIDNIGHT), "brand", None, "sentiment_brand_daily", True),
        (Filters(brand="Acme", source="user"), None, "day", "sentiment_daily", True),  # sources are summed away there
        (Filters(label="negative"), None, "day", "sentiment_daily", True),
        (Filters(), "source", "day", "sentiment_daily", True),
        (Filters(), "label", "day", "sentiment_daily", True),
        (Filters(brand="Acme"), None, None, "sentiment_totals", True),  # no day matters
    ],
)
def test_stats_read_the_smallest_rollup_that_keeps_what_they_ask_apart(
    filters: Filters, group_by: Any, bucket: Any, table: str, aggregated: bool
) -> None:
    sql = str(rollup_stats_statement(filters, group_by, bucket, 100).compile(dialect=postgresql.dialect()))
    assert re.findall(r"FROM (\w+)", sql) == [table]
    assert ("sum(" in sql) is aggregated


def _random_rows(rng: random.Random, n: int, tag: str) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        # Seconds either side of midnight put rows on both sides of a day boundary.
        moment = MIDNIGHT + timedelta(days=rng.randrange(20), seconds=rng.choice([0, 1, -1, rng.randrange(86_400)]))
        label = rng.choice(LABELS)
        rows.append(
            {
                "review_key": f"{tag}-{i}",
                "sentence": f"review {i}",
                "sentiment_score": rng.random(),
                "confidence": rng.random(),
                "label": label,
                "suggested_rating": rng.randint(1, 5),
                "brand": rng.choice(["Acme", "Globex", None]),
                "rating": rng.choice([None, 1, 2, 3, 4, 5]),
                "source": rng.choice(["crawler", "user"]),
                "model_version": "v1",
                "created_on": moment,
            }
        )
    return rows


FILTERS = [
    Filters(),
    Filters(brand="Acme"),
    Filters(source="user", label="negative"),
    Filters(since=MIDNIGHT + timedelta(days=3), until=MIDNIGHT + timedelta(days=11)),
]


RATING_FILTERS = [Filters(), Filters(brand="Acme"), Filters(min_rating=4), Filters(source="user", max_rating=2)]


def _normalised(conn: Connection, statement: Any) -> list[tuple[Any, ...]]:
    return [(*row[:3], round(float(row.mean_score), 9), *row[4:]) for row in conn.execute(statement)]


def assert_rollup_equals_rows(engine: Engine) -> None:
    with engine.connect() as conn:
        # Far from UTC, so a bucket that leaned on the session time zone would show.
        conn.execute(text("SET TIME ZONE 'Pacific/Chatham'"))
        exact = [(one.table, one.exact) for one in drift(conn)]
        assert exact == [("sentiment_brand_daily", True), ("sentiment_daily", True), ("sentiment_totals", True)]
        for filters, group_by, bucket in product(FILTERS, [None, "brand", "source", "label"], [None, "day", "week"]):
            from_rollup = _normalised(conn, rollup_stats_statement(filters, group_by, bucket, 10_000))  # type: ignore[arg-type]
            from_rows = _normalised(conn, scan_stats_statement(filters, group_by, bucket, "created_on", 10_000))  # type: ignore[arg-type]
            assert from_rollup == from_rows, (filters, group_by, bucket)
        # By the reviewers' stars: the all-time totals only (migration 0010).
        for filters, group_by in product(RATING_FILTERS, [None, "rating", "brand"]):
            from_rollup = _normalised(conn, rollup_stats_statement(filters, group_by, None, 10_000))  # type: ignore[arg-type]
            from_rows = _normalised(conn, scan_stats_statement(filters, group_by, None, "created_on", 10_000))  # type: ignore[arg-type]
            assert from_rollup == from_rows, (filters, group_by)
        # All time from the totals, a range of days from the daily rollup; with a name search too.
        for filters, name in product(FILTERS, [None, "GLOB"]):
            brands = conn.execute(brands_statement(filters, 100, name)).all()
            expected = conn.execute(
                brands_statement(replace(filters, min_score=0.0), 100, name)  # min_score: from the rows
            ).all()
            assert [(b, n, round(float(m), 9)) for b, n, m in brands] == [
                (b, n, round(float(m), 9)) for b, n, m in expected
            ], (filters, name)


@pytest.mark.integration
def test_the_rollup_equals_the_rows_through_inserts_rescoring_updates_deletes_and_truncate(engine: Engine) -> None:
    rng = random.Random(7)
    with engine.begin() as conn:
        conn.execute(insert(Sentiment), _random_rows(rng, 400, "a"))
    assert_rollup_equals_rows(engine)

    # The stream's own writes: a batch, its re-delivery (no change), then a new model version.
    batch = [
        {
            **row,
            "kafka_topic": "reviews",
            "kafka_partition": 0,
            "kafka_offset": i,
            "kafka_timestamp": None,
            "rating": None,
        }
        for i, row in enumerate(_random_rows(rng, 120, "b"))
    ]
    for row in batch:
        row.update(url=None, author=None, lang=None, published_at=None)
    for method in ("copy", "insert"):
        sink = PostgresSink(engine, method=method)
        sink.write([{k: v for k, v in row.items() if k != "created_on"} for row in batch])
        relabelled = [
            {**row, "model_version": f"v2-{method}", "label": rng.choice(LABELS), "sentiment_score": rng.random()}
            for row in batch
        ]
        sink.write([{k: v for k, v in row.items() if k != "created_on"} for row in relabelled])
        assert_rollup_equals_rows(engine)

    with engine.begin() as conn:
        conn.execute(text("UPDATE sentiments SET label = 'neutral', sentiment_score = 0.5 WHERE id % 3 = 0"))
        conn.execute(text("UPDATE sentiments SET created_on = created_on + interval '13 hours' WHERE id % 5 = 0"))
        conn.execute(text("UPDATE sentiments SET brand = NULL WHERE id % 7 = 0"))
        conn.execute(text("UPDATE sentiments SET rating = CASE WHEN rating IS NULL THEN 3 END WHERE id % 6 = 0"))
        conn.execute(text("UPDATE sentiments SET confidence = 0.1"))  # touches no rollup column
    assert_rollup_equals_rows(engine)

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM sentiments WHERE id % 4 = 1 OR label = 'positive'"))
    assert_rollup_equals_rows(engine)

    with engine.begin() as conn:
        conn.execute(text("TRUNCATE sentiments"))
        for rollup in ROLLUPS:
            assert conn.execute(text(f"SELECT count(*) FROM {rollup.table}")).scalar_one() == 0


@pytest.mark.integration
def test_concurrent_writers_on_the_same_days_neither_deadlock_nor_drift(engine: Engine) -> None:
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        sink = PostgresSink(engine)
        try:
            for round_ in range(15):
                rows = _random_rows(rng, 40, f"w{seed}-{round_}")
                rng.shuffle(rows)
                for row in rows:
                    row.update(
                        rating=None,
                        url=None,
                        author=None,
                        lang=None,
                        published_at=None,
                        kafka_topic="t",
                        kafka_partition=seed,
                        kafka_offset=round_,
                        kafka_timestamp=None,
                    )
                    del row["created_on"]
                result = sink.write(rows)
                assert result.inserted == 40, result
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT sum(reviews) FROM sentiment_daily")).scalar_one() == 4 * 15 * 40
    assert_rollup_equals_rows(engine)


@pytest.mark.integration
def test_the_migration_backfills_the_rollup_from_existing_rows(database_url: str) -> None:
    migrate.downgrade(database_url, "0002")
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(insert(Sentiment), _random_rows(random.Random(3), 200, "old"))
        migrate.upgrade(database_url, "head")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT sum(reviews) FROM sentiment_daily")).scalar_one() == 200
            assert conn.execute(text("SELECT sum(reviews) FROM sentiment_totals")).scalar_one() == 200
            brand_days = "SELECT sum(negative + neutral + positive) FROM sentiment_brand_daily"
            assert conn.execute(text(brand_days)).scalar_one() == 200
        assert_rollup_equals_rows(engine)
    finally:
        engine.dispose()


@pytest.mark.integration
def test_rollup_command_reports_drift_from_writes_that_bypassed_triggers_and_rebuilds(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    with engine.begin() as conn:
        conn.execute(insert(Sentiment), _random_rows(random.Random(5), 50, "kept"))
    exact = CliRunner().invoke(cli_app(), ["rollup"])
    assert exact.exit_code == 0, exact.output
    assert "sentiment_daily exact: 0 missing, 0 extra groups" in exact.output
    assert "sentiment_totals exact: 0 missing, 0 extra groups" in exact.output
    assert "sentiment_brand_daily exact: 0 missing, 0 extra groups" in exact.output

    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE sentiments DISABLE TRIGGER USER"))
        conn.execute(insert(Sentiment), _random_rows(random.Random(6), 30, "bypass"))
        conn.execute(text("ALTER TABLE sentiments ENABLE TRIGGER USER"))
    drifted = CliRunner().invoke(cli_app(), ["rollup"])
    assert drifted.exit_code == 1
    assert "sentiment_daily drifted" in drifted.output
    assert "sentiment_totals drifted" in drifted.output
    assert "sentiment_brand_daily drifted" in drifted.output

    rebuilt = CliRunner().invoke(cli_app(), ["rollup", "--rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "before the rebuild: sentiment_daily drifted" in rebuilt.output  # what it repaired
    assert "sentiment_totals rebuilt" in rebuilt.output
    assert "after it: sentiment_daily exact" in rebuilt.output
    assert "after it: sentiment_totals exact" in rebuilt.output
    assert "after it: sentiment_brand_daily exact" in rebuilt.output
    assert_rollup_equals_rows(engine)

    # Triggers left off: a rebuild is exact for a moment and then drifts again; it says why.
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE sentiments DISABLE TRIGGER USER"))
    try:
        off = CliRunner().invoke(cli_app(), ["rollup", "--rebuild"])
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE sentiments ENABLE TRIGGER USER"))
    assert off.exit_code == 1
    assert "error: triggers disabled on sentiments (sentiments_brand_daily_delete, " in off.output
    assert "sentiments_daily_insert" in off.output
    assert "ALTER TABLE sentiments ENABLE TRIGGER USER" in off.output


@pytest.mark.integration
def test_rollup_command_on_a_database_without_the_rollup_says_to_migrate(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate.downgrade(database_url, "0002")
    monkeypatch.setenv("DATABASE_URL", database_url)

    result = CliRunner().invoke(cli_app(), ["rollup"])

    assert result.exit_code == 2
    assert "reviewscore migrate" in result.output


@pytest.mark.integration
def test_rollup_command_refuses_a_database_at_another_revision(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollups' keys follow the migrations (0010 added the rating): against another revision a
    check reports drift that is not there, and a rebuild writes the other release's key."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    migrate.downgrade(database_url, "0009")
    try:
        result = CliRunner().invoke(cli_app(), ["rollup", "--rebuild"])
        assert result.exit_code == 2
        assert "0009" in result.stderr
        assert "matching release" in result.stderr
    finally:
        migrate.upgrade(database_url, "head")
