"""Migrations and the schema agree, run both ways, and the reader role can only read."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from core import migrate
from core.db import libpq_url, sqlalchemy_url
from core.messages import review_key
from core.schema import Base

pytestmark = pytest.mark.integration


def _tables(url: str) -> set[str]:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trip(database_url: str) -> None:
    assert migrate.head_revision() == "0013"
    assert migrate.current_revision(database_url) == "0013"
    migrate.downgrade(database_url, "base")
    assert migrate.current_revision(database_url) is None
    assert "sentiments" not in _tables(database_url)
    migrate.upgrade(database_url, "head")
    assert migrate.current_revision(database_url) == "0013"
    assert "sentiments" in _tables(database_url)


def test_autogenerate_finds_no_difference_between_schema_and_migrations(database_url: str) -> None:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_indexes_for_the_query_patterns_exist(engine: object) -> None:
    indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("sentiments")}  # type: ignore[arg-type]
    names = set(indexes)
    assert indexes["ix_sentiments_brand_created_on_id"]["dialect_options"]["postgresql_include"] == [
        "sentiment_score",
        "label",
    ]
    assert indexes["ix_sentiments_brand_published_at"]["column_names"] == ["brand", "published_at"]
    assert indexes["ix_sentiments_brand_published_at"]["dialect_options"]["postgresql_include"] == [
        "sentiment_score",
        "label",
    ]
    assert {
        "ix_sentiments_created_on_id",
        "ix_sentiments_brand_created_on_id",
        "ix_sentiments_label_created_on_id",
    } <= names
    # Full-text search is off the write path: its GIN index is on the table the indexer fills.
    assert "ix_sentiments_sentence_fts" not in names
    search = inspect(engine).get_indexes("sentiment_search")  # type: ignore[arg-type]
    assert [(ix["name"], ix["dialect_options"].get("postgresql_using")) for ix in search] == [
        ("ix_sentiment_search_document", "gin")
    ]


INSERT = text(
    "INSERT INTO sentiments (review_key, sentence, sentiment_score, confidence, label, suggested_rating,"
    " source, model_version) VALUES ('k', 'good', 0.9, 0.8, 'positive', 5, 'user', 'v1')"
)


def test_reader_role_can_select_but_not_write(database_url: str, readonly_database_url: str) -> None:
    writer = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    with writer.begin() as conn:
        conn.execute(INSERT)
    writer.dispose()

    reader = create_engine(sqlalchemy_url(readonly_database_url), poolclass=pool.NullPool)
    with reader.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sentiments")).scalar_one() == 1
        assert conn.execute(text("SELECT current_user")).scalar_one() == "reviewscore_reader"
        for rollup in ("sentiment_daily", "sentiment_totals"):
            assert conn.execute(text(f"SELECT sum(reviews) FROM {rollup}")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM rejected_reviews")).scalar_one() == 0
    for statement in (
        INSERT,
        text("UPDATE sentiments SET label = 'negative'"),
        text("DELETE FROM sentiments"),
        text("TRUNCATE sentiments"),
    ):
        with reader.connect() as conn:
            # Lift the role's read-only default to prove the privilege check itself refuses.
            conn.execute(text("SET default_transaction_read_only = off"))
            conn.execute(text("BEGIN READ WRITE"))
            with pytest.raises(ProgrammingError):
                conn.execute(statement)
    reader.dispose()


def test_database_rejects_scores_outside_the_contract(engine: object) -> None:
    from sqlalchemy.exc import IntegrityError

    bad = text(
        "INSERT INTO sentiments (review_key, sentence, sentiment_score, confidence, label, suggested_rating,"
        " source, model_version) VALUES ('k2', 'x', 1.5, 0.8, 'positive', 5, 'user', 'v1')"
    )
    with engine.begin() as conn, pytest.raises(IntegrityError):  # type: ignore[attr-defined]
        conn.execute(bad)


def test_session_fixture_rolls_back_between_tests_first(db_session: object) -> None:
    from sqlalchemy.orm import Session

    assert isinstance(db_session, Session)
    db_session.execute(INSERT)
    db_session.commit()
    assert db_session.execute(text("SELECT count(*) FROM sentiments")).scalar_one() == 1


def test_session_fixture_rolls_back_between_tests_second(db_session: object) -> None:
    from sqlalchemy.orm import Session

    assert isinstance(db_session, Session)
    assert db_session.execute(text("SELECT count(*) FROM sentiments")).scalar_one() == 0


def _old_key(source: str, sentence: str) -> str:
    """The first schema's key of a review without a producer id: source + text only."""
    return f"{source}:sha256:" + hashlib.sha256(f"{source}\x1f{sentence}".encode()).hexdigest()[:32]


def test_0006_rekeys_stored_reviews_by_brand_and_author_and_leaves_the_rest(database_url: str) -> None:
    migrate.downgrade(database_url, "0005")
    rows = [
        # (review_key as stored, sentence, brand, author)
        (_old_key("user", "Great quality!"), "Great quality!", "Acme", None),
        (_old_key("user", "Runs small."), "Runs small.", None, "Jane D."),
        (_old_key("user", "Just fine."), "Just fine.", None, None),
        ("scraper:x:r-1", "Great quality!", "Globex", "Sam"),
        ("legacy-key", "Great quality!", "Initech", None),
    ]
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    insert = text(
        "INSERT INTO sentiments (review_key, sentence, sentiment_score, confidence, label, suggested_rating,"
        " brand, author, source, model_version)"
        " VALUES (:key, :sentence, 0.9, 0.8, 'positive', 5, :brand, :author, :source, 'v1')"
    )
    with engine.begin() as conn:
        for key, sentence, brand, author in rows:
            source = "scraper:x" if key.startswith("scraper:x") else "user"
            conn.execute(insert, {"key": key, "sentence": sentence, "brand": brand, "author": author, "source": source})
    rollup = text("SELECT brand, source, label, reviews FROM sentiment_totals ORDER BY 1, 2, 3")
    with engine.connect() as conn:
        totals_before = conn.execute(rollup).all()

    migrate.upgrade(database_url, "head")

    with engine.connect() as conn:
        stored = conn.execute(text("SELECT sentence || '|' || coalesce(brand, ''), review_key FROM sentiments"))
        keys = dict(stored.all())
        assert conn.execute(rollup).all() == totals_before
    engine.dispose()
    assert keys == {
        "Great quality!|Acme": review_key("user", "Great quality!", brand="Acme"),
        "Runs small.|": review_key("user", "Runs small.", author="Jane D."),
        "Just fine.|": review_key("user", "Just fine."),
        "Great quality!|Globex": "scraper:x:r-1",
        "Great quality!|Initech": "legacy-key",
    }
    assert keys["Great quality!|Acme"] != _old_key("user", "Great quality!")


def test_a_schema_behind_the_code_or_ahead_of_it_is_told_apart(database_url: str) -> None:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    head = migrate.head_revision()
    assert migrate.schema_mismatch(database_url) is None

    migrate.downgrade(database_url, "0005")
    assert migrate.schema_mismatch(database_url) == (
        "behind",
        f"the database is at migration 0005 and this code needs {head}: run `reviewscore migrate`",
    )
    migrate.upgrade(database_url, "head")

    # A revision this code has never heard of: the next release migrated, then this one came back.
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    try:
        kind, why = migrate.schema_mismatch(database_url) or ("", "")
        assert kind == "ahead"
        assert "at migration 0999, newer than this code" in why
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
        engine.dispose()


def test_migrations_run_on_a_url_that_names_no_database(pg_server_url: str) -> None:
    """libpq then connects to the database named like the user; the grants must follow it there."""
    owner = f"rs_nodb_{uuid.uuid4().hex[:8]}"
    reader = f"{owner}_reader"
    admin = create_engine(sqlalchemy_url(pg_server_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {owner} LOGIN SUPERUSER"))
        conn.execute(text(f'CREATE DATABASE "{owner}" OWNER {owner}'))
    # URL.set() skips None values; _replace really clears the database name.
    url = libpq_url(make_url(pg_server_url)._replace(username=owner, password=None, database=None))
    granted = text(
        "SELECT EXISTS (SELECT FROM pg_database, aclexplode(datacl) AS acl WHERE datname = current_database()"
        " AND acl.grantee = to_regrole(:role)::oid AND acl.privilege_type = 'CONNECT')"
    )
    try:
        migrate.upgrade(url, "head", reader)
        assert migrate.current_revision(url) == migrate.head_revision()
        engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar_one() == owner
            assert conn.execute(granted, {"role": reader}).scalar_one() is True
        engine.dispose()

        migrate.downgrade(url, "base", reader)
        assert migrate.current_revision(url) is None
        with admin.connect() as conn:  # CONNECT revoked, so nothing kept the role: it is gone
            assert conn.execute(text("SELECT to_regrole(:role)"), {"role": reader}).scalar_one() is None
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{owner}" WITH (FORCE)'))
            conn.execute(text(f"DROP ROLE IF EXISTS {reader}"))
            conn.execute(text(f"DROP ROLE IF EXISTS {owner}"))
        admin.dispose()


def test_0008_frees_rows_a_future_producer_time_pinned_and_keeps_the_others(database_url: str) -> None:
    """Such a row refused every later edit of its review as "older" than the future time."""
    migrate.downgrade(database_url, "0007")
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    insert = text(
        "INSERT INTO sentiments (review_key, sentence, sentiment_score, confidence, label, suggested_rating,"
        " source, model_version, kafka_timestamp)"
        " VALUES (:key, 'Fine.', 0.5, 0.5, 'neutral', 3, 'user', 'v1', now() + CAST(:ahead AS interval))"
    )
    with engine.begin() as conn:
        for key, ahead in [("user:pinned", "30 days"), ("user:soon", "10 minutes"), ("user:past", "-1 day")]:
            conn.execute(insert, {"key": key, "ahead": ahead})

    migrate.upgrade(database_url, "head")

    with engine.connect() as conn:
        kept = dict(conn.execute(text("SELECT review_key, kafka_timestamp IS NOT NULL FROM sentiments")).all())
    engine.dispose()
    assert kept == {"user:pinned": False, "user:soon": True, "user:past": True}


def test_upgrading_a_database_ahead_of_the_code_leaves_it_and_says_why(database_url: str) -> None:
    """`infra up` and `worker --embedded` on a state directory a newer checkout migrated: alembic's
    "Can't locate revision" traceback, now a warning and the database left as it is."""
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    head = migrate.head_revision()
    assert migrate.upgrade_unless_ahead(database_url) is None

    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    try:
        why = migrate.upgrade_unless_ahead(database_url)
        assert why is not None
        assert "at migration 0999, newer than this code" in why
        assert migrate.current_revision(database_url) == "0999"
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
        engine.dispose()


def test_0009_builds_its_index_again_after_a_build_cut_short(database_url: str) -> None:
    """CREATE INDEX CONCURRENTLY cut short leaves an INVALID index that IF NOT EXISTS would keep."""
    migrate.downgrade(database_url, "0008")
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    valid = text(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname = 'ix_sentiments_brand_published_at'"
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE INDEX ix_sentiments_brand_published_at ON sentiments (brand)"))
            conn.execute(
                text(
                    "UPDATE pg_index SET indisvalid = false WHERE indexrelid ="
                    " 'ix_sentiments_brand_published_at'::regclass"
                )
            )
            assert conn.execute(valid).scalar_one() is False
        migrate.upgrade(database_url, "head")
        with engine.connect() as conn:
            assert conn.execute(valid).scalar_one() is True
        indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("sentiments")}
        assert indexes["ix_sentiments_brand_published_at"]["column_names"] == ["brand", "published_at"]
    finally:
        engine.dispose()


def test_0010_keys_the_totals_by_rating_from_the_rows_and_back(database_url: str) -> None:
    from core.rollup import drift

    migrate.downgrade(database_url, "0009")
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    totals = text("SELECT count(*), sum(reviews) FROM sentiment_totals")
    try:
        with engine.begin() as conn:
            for n, rating in enumerate([None, 1, 5, 5, 5, None]):
                conn.execute(
                    text(
                        "INSERT INTO sentiments (review_key, sentence, sentiment_score, confidence, label,"
                        " suggested_rating, brand, source, rating, model_version)"
                        " VALUES (:key, 'x', 0.5, 0.9, 'neutral', 3, 'Acme', 'cli', :rating, 'v1')"
                    ),
                    {"key": f"m10-{n}", "rating": rating},
                )
            assert tuple(conn.execute(totals).one()) == (1, 6)  # one (brand, source, label) group
        migrate.upgrade(database_url, "head")
        with engine.connect() as conn:
            assert tuple(conn.execute(totals).one()) == (3, 6)  # None, 1 and 5 stars
            assert all(one.exact for one in drift(conn))
        migrate.downgrade(database_url, "0009")
        with engine.connect() as conn:
            assert tuple(conn.execute(totals).one()) == (1, 6)
    finally:
        migrate.upgrade(database_url, "head")
        engine.dispose()


def test_0010_waits_for_a_writer_in_flight_instead_of_deadlocking_with_it(database_url: str) -> None:
    """A writer's statement locks sentiments, then its trigger the totals; the migration altered
    the totals first and then asked for sentiments: PostgreSQL aborted it as the deadlock's victim."""
    migrate.downgrade(database_url, "0009")
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO sentiments (review_key, sentence, sentiment_score, confidence, label,"
                        " suggested_rating, brand, source, rating, model_version)"
                        " SELECT 'w-' || g, 'x', 0.5, 0.9, 'neutral', 3, 'Acme', 'cli', 4, 'v1'"
                        " FROM generate_series(1, 10) g, (SELECT pg_sleep(0.5)) s"
                    )
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(0.2)  # the writer's statement runs: it holds sentiments, not yet the totals
        migrate.upgrade(database_url, "head", lock_timeout_ms=10_000)
        thread.join()
        assert errors == []
        assert migrate.current_revision(database_url) == "0013"
        with engine.connect() as conn:
            assert conn.execute(text("SELECT sum(reviews) FROM sentiment_totals WHERE rating = 4")).scalar_one() == 10
    finally:
        migrate.upgrade(database_url, "head")
        engine.dispose()


def test_0011_announces_each_committed_write_once_and_a_rolled_back_one_never(
    database_url: str, readonly_database_url: str
) -> None:
    """The API's read cache drops its answers on these notifications; one missed is a stale answer."""
    import select

    import psycopg2  # type: ignore[import-untyped,unused-ignore]

    from core.rollup import rebuild
    from core.schema import CHANGES_CHANNEL

    listener = psycopg2.connect(readonly_database_url)  # the reader role may listen
    listener.autocommit = True
    listener.cursor().execute(f"LISTEN {CHANGES_CHANNEL}")
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    insert = text(
        "INSERT INTO sentiments (review_key, sentence, sentiment_score, confidence, label, suggested_rating,"
        " brand, source, model_version) SELECT :prefix || g, 'x', 0.5, 0.9, 'neutral', 3, 'Acme', 'cli', 'v1'"
        " FROM generate_series(1, 3) g"
    )

    def announced() -> int:
        """Notifications that arrive until one has and a moment more has passed (5 s at most)."""
        count, deadline = 0, time.monotonic() + 5
        while time.monotonic() < deadline:
            select.select([listener], [], [], 0.1)
            listener.poll()
            count += len(listener.notifies)
            listener.notifies.clear()
            if count:
                deadline = min(deadline, time.monotonic() + 0.2)
        return count

    def marker() -> None:
        """A write that announces itself: anything before it that did would arrive first."""
        with engine.begin() as conn:
            conn.execute(insert, {"prefix": f"m-{uuid.uuid4().hex[:6]}-"})

    try:
        with engine.begin() as conn:
            conn.execute(insert, {"prefix": "a-"})  # three rows, one statement
        assert announced() == 1
        with engine.begin() as conn:  # two statements, folded into one notification at commit
            conn.execute(insert, {"prefix": "b-"})
            conn.execute(text("UPDATE sentiments SET model_version = 'v2' WHERE review_key LIKE 'a-%'"))
        assert announced() == 1
        with engine.connect() as conn:
            conn.execute(text("DELETE FROM sentiments"))
            conn.rollback()
        marker()
        assert announced() == 1  # the marker's alone
        with engine.begin() as conn:
            rebuild(conn)  # the rollups change without a row of sentiments changing
        assert announced() == 1
        migrate.downgrade(database_url, "0010")
        with engine.begin() as conn:
            conn.execute(insert, {"prefix": "c-"})
            conn.execute(text("SELECT pg_notify(:channel, 'marker')"), {"channel": CHANGES_CHANNEL})
        assert announced() == 1  # the explicit one alone
    finally:
        migrate.upgrade(database_url, "head")
        listener.close()
        engine.dispose()
