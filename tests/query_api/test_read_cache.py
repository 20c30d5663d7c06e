"""The read cache answers what a fresh read would, and serves nothing it cannot keep honest."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from core.db import libpq_url, sqlalchemy_url
from query_api.read_cache import ReadCache
from stream.sink import PostgresSink
from tests.fixtures.api import api_reads_waiting_on_a_lock, build_app, insert_rows, make_rows
from tests.fixtures.database import hot_standby

HEADERS = [(b"content-type", b"application/json")]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def live_cache(
    max_bytes: int = 10_000, max_age: float = 60.0, staleness: float = 0.0, clock: Callable[[], float] = time.monotonic
) -> ReadCache:
    cache = ReadCache(max_bytes, max_age, staleness, clock=clock)
    cache.set_live(True)
    return cache


def test_an_answer_is_served_until_the_data_changes() -> None:
    cache = live_cache()
    assert cache.put("k", cache.generation, HEADERS, b"[1]")
    hit = cache.get("k")
    assert hit is not None
    assert hit.body == b"[1]"
    assert list(hit.raw_headers) == HEADERS
    cache.changed()
    assert cache.get("k") is None
    assert len(cache) == 0
    assert cache.size_bytes == 0


def test_an_answer_read_before_a_change_is_not_kept_after_it() -> None:
    cache = live_cache()
    generation = cache.generation  # the route reads it, then queries
    cache.changed()  # a write commits while the query runs
    assert not cache.put("k", generation, HEADERS, b"[old]")
    assert cache.get("k") is None


def test_nothing_is_kept_while_no_listener_hears_changes() -> None:
    cache = ReadCache(10_000, 60.0)
    assert not cache.put("k", cache.generation, HEADERS, b"[1]")
    cache.set_live(True)
    assert cache.put("k", cache.generation, HEADERS, b"[1]")
    cache.set_live(False)  # the connection dropped: a change may go unheard from now on
    assert cache.get("k") is None
    assert not cache.put("k", cache.generation, HEADERS, b"[1]")


def test_an_answer_older_than_the_max_age_is_read_again() -> None:
    clock = Clock()
    cache = live_cache(max_age=60.0, clock=clock)
    cache.put("k", cache.generation, HEADERS, b"[1]")
    clock.now += 59.9
    assert cache.get("k") is not None
    clock.now += 0.2
    assert cache.get("k") is None
    assert len(cache) == 0


def test_the_least_recently_used_answers_go_first_when_the_bytes_run_out() -> None:
    cache = live_cache(max_bytes=2_000)
    body = b"x" * (200 - len(b"content-type") - len(b"application/json"))  # 200 bytes an entry
    for key in range(10):
        assert cache.put(key, cache.generation, HEADERS, body)
    assert cache.size_bytes == 2_000
    assert cache.get(0) is not None  # 0 is now the most recent
    cache.put("new", cache.generation, HEADERS, body)
    assert cache.get(1) is None  # the least recent went
    assert cache.get(0) is not None
    assert cache.get("new") is not None
    assert cache.size_bytes == 2_000


def test_an_answer_over_an_eighth_of_the_budget_is_not_kept() -> None:
    cache = live_cache(max_bytes=8_000)
    assert not cache.put("big", cache.generation, [], b"x" * 1_001)
    assert cache.put("fits", cache.generation, [], b"x" * 1_000)


def test_a_key_stored_again_replaces_its_answer_and_its_bytes() -> None:
    cache = live_cache()
    cache.put("k", cache.generation, [], b"12345")
    cache.put("k", cache.generation, [], b"12")
    hit = cache.get("k")
    assert hit is not None
    assert hit.body == b"12"
    assert cache.size_bytes == 2


def test_with_a_staleness_an_answer_outlives_the_change_after_it_by_that_long() -> None:
    clock = Clock()
    cache = live_cache(staleness=1.0, clock=clock)
    cache.put("k", cache.generation, HEADERS, b"[old]")
    clock.now += 10  # unchanged data: served for as long as max_age allows
    assert cache.get("k") is not None
    cache.changed()
    clock.now += 0.6
    cache.changed()  # a second change does not extend it: the first one after the read counts
    clock.now += 0.3
    assert cache.get("k") is not None
    clock.now += 0.2
    assert cache.get("k") is None


def test_with_a_staleness_a_read_begun_before_a_change_is_kept_but_never_over_a_newer_one() -> None:
    clock = Clock()
    cache = live_cache(staleness=1.0, clock=clock)
    before = cache.generation
    cache.changed()
    assert cache.put("k", cache.generation, HEADERS, b"[new]")
    assert not cache.put("k", before, HEADERS, b"[old]")  # finished last, read first
    hit = cache.get("k")
    assert hit is not None
    assert hit.body == b"[new]"
    assert cache.put("j", before, HEADERS, b"[old]")  # within a second of the change: servable
    clock.now += 1.0
    assert cache.get("j") is None
    assert not cache.put("j", before, HEADERS, b"[old]")


def test_with_a_staleness_answers_out_of_date_are_freed_at_the_next_change() -> None:
    clock = Clock()
    cache = live_cache(staleness=1.0, clock=clock)
    cache.put("k", cache.generation, HEADERS, b"[old]")
    cache.changed()
    assert cache.put("j", cache.generation, HEADERS, b"[new]")
    clock.now += 1.5
    cache.changed()  # "k" can no longer be served: its bytes go now, not when it is next asked for
    assert len(cache) == 1
    assert cache.get("j") is not None  # out of date only since the change just now: a second more
    assert cache.size_bytes == len(b"[new]") + len(b"content-type") + len(b"application/json")


def test_with_a_staleness_a_lost_listener_still_drops_everything() -> None:
    cache = live_cache(staleness=5.0)
    cache.put("k", cache.generation, HEADERS, b"[1]")
    cache.set_live(False)
    assert cache.get("k") is None
    cache.set_live(True)
    assert cache.get("k") is None


# --- against a real PostgreSQL -------------------------------------------------------------------


def _wait(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _cache_counts(client: TestClient) -> dict[str, float]:
    registry = client.app.state.reviewscore.metrics.registry  # type: ignore[attr-defined]
    return {
        outcome: registry.get_sample_value("reviewscore_api_read_cache_total", {"outcome": outcome}) or 0.0
        for outcome in ("hit", "joined", "miss", "uncached")
    }


@pytest.fixture
def cached_client(database_url: str, readonly_database_url: str) -> Iterator[TestClient]:
    insert_rows(database_url, make_rows(30))
    with TestClient(build_app(readonly_database_url)) as client:
        cache = client.app.state.reviewscore.cache  # type: ignore[attr-defined]
        _wait(lambda: cache.live, "the change listener")
        yield client


@pytest.mark.integration
def test_a_repeated_read_is_served_from_the_cache_and_a_write_shows_at_once(
    cached_client: TestClient, database_url: str
) -> None:
    client = cached_client
    state = client.app.state.reviewscore  # type: ignore[attr-defined]
    first = client.get("/sentiments/stats", params={"group_by": "brand"})
    again = client.get("/sentiments/stats", params={"group_by": "brand"})
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers["content-type"] == "application/json"
    assert again.headers["content-length"] == str(len(first.content))
    assert _cache_counts(client) == {"hit": 1.0, "joined": 0.0, "miss": 1.0, "uncached": 0.0}
    assert client.get("/readyz", params={"require": "database"}).json()["checks"]["read_cache"] == "ok"

    generation = state.cache.generation
    # The worker's own write path: COPY into staging and one merge.
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        rows = make_rows(5, seed=99, start=1000)
        provenance = {"kafka_topic": "reviews", "kafka_partition": 0, "kafka_timestamp": None}
        batch = [
            {**{k: v for k, v in row.items() if k != "created_on"}, **provenance, "kafka_offset": offset}
            for offset, row in enumerate(rows)
        ]
        assert PostgresSink(engine).write(batch).inserted == 5
    finally:
        engine.dispose()
    _wait(lambda: state.cache.generation > generation, "the write's notification")
    after = client.get("/sentiments/stats", params={"group_by": "brand"}).json()
    assert after["total"] == first.json()["total"] + 5
    assert _cache_counts(client)["miss"] == 2.0


@pytest.mark.integration
def test_every_cached_route_answers_again_as_it_did_the_first_time(cached_client: TestClient) -> None:
    client = cached_client
    row_id = client.get("/sentiments/", params={"limit": 1}).json()["items"][0]["id"]
    paths = [
        ("/sentiments/", {"brand": "Acme", "sort": "score_desc", "limit": 5}),
        ("/sentiments/stats", {"bucket": "day", "group_by": "label"}),
        ("/brands", {"limit": 10}),
        ("/brands/trends", {"end": "2026-03-03T00:00:00Z", "days": 1, "min_count": 1}),
        ("/charts/timeline.svg", {"bucket": "day"}),
        ("/charts/labels.svg", {}),
        ("/charts/stars.svg", {"brand": "Acme"}),
    ]
    for path, params in paths:
        fresh = client.get(path, params=params)
        kept = client.get(path, params=params)
        assert fresh.status_code == kept.status_code == 200, path
        assert (kept.content, kept.headers) == (fresh.content, fresh.headers), path
        head = client.head(path, params=params)  # a hit too: the GET's status and headers, no body
        assert (head.status_code, head.content, head.headers) == (200, b"", fresh.headers), path
    assert _cache_counts(client) == {"hit": 2 * len(paths), "joined": 0.0, "miss": len(paths) + 1, "uncached": 0.0}
    # Rows by id and pages after the first are not kept at all.
    cursor = client.get("/sentiments/", params={"limit": 2}).json()["next_cursor"]
    for _ in range(2):
        assert client.get(f"/sentiments/{row_id}").status_code == 200
        assert client.get("/sentiments/", params={"limit": 2, "cursor": cursor}).status_code == 200
        assert client.get("/sentiments/stats", params={"bucket": "hour", "group_by": "brand"}).status_code == 200
    counts = _cache_counts(client)
    assert counts["hit"] == 2 * len(paths) + 1  # the stats, asked twice


@pytest.mark.integration
def test_a_lost_listener_turns_the_cache_off_until_it_listens_again(
    cached_client: TestClient, database_url: str, pg_server_url: str
) -> None:
    client = cached_client
    state = client.app.state.reviewscore  # type: ignore[attr-defined]
    client.get("/brands")
    assert client.get("/brands").status_code == 200
    connects = state.listener.connects
    admin = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'reviewscore-api-changes' AND datname = current_database()"
                )
            ).scalars()
            assert list(ended) == [True]
        _wait(lambda: not state.cache.live or state.listener.connects > connects, "the listener to notice")
        # Written while nobody may be listening: no cached answer may hide it.
        insert_rows(database_url, make_rows(3, seed=5, start=2000))
        before = _cache_counts(client)["hit"]
        brands = client.get("/brands").json()
        assert sum(brand["count"] for brand in brands) == len(
            [row for row in make_rows(30) + make_rows(3, seed=5, start=2000) if row["brand"] is not None]
        )
        assert _cache_counts(client)["hit"] == before
        _wait(lambda: state.cache.live and state.listener.connects > connects, "the listener to reconnect")
        # Live again: answers are kept and served again (the insert's own notification, when the
        # listener was back in time to hear it, may empty the cache once more in between).
        before = _cache_counts(client)["hit"]

        def served_from_the_cache() -> bool:
            assert client.get("/brands").json() == brands
            return _cache_counts(client)["hit"] > before

        _wait(served_from_the_cache, "a hit after the reconnect")
    finally:
        admin.dispose()


@pytest.mark.integration
@pytest.mark.parametrize(
    "silence",
    [
        "DROP TRIGGER sentiments_notify_change ON sentiments",  # a schema before 0011
        "ALTER TABLE sentiments DISABLE TRIGGER sentiments_notify_change",  # a bulk load's habit
    ],
)
def test_a_database_that_announces_no_changes_gets_no_cache(
    database_url: str, readonly_database_url: str, silence: str
) -> None:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(silence))
        insert_rows(database_url, make_rows(10))
        with TestClient(build_app(readonly_database_url)) as client:
            state = client.app.state.reviewscore  # type: ignore[attr-defined]
            _wait(
                lambda: "no enabled sentiments_notify_change trigger" in (state.listener.last_error or ""), "the check"
            )
            assert state.listener.connects == 0
            ready = client.get("/readyz", params={"require": "database"})
            assert ready.status_code == 200  # reported, not required
            assert "no enabled sentiments_notify_change trigger" in ready.json()["checks"]["read_cache"]
            assert client.get("/brands").status_code == 200
            insert_rows(database_url, make_rows(4, seed=3, start=500))
            brands = client.get("/brands").json()
            assert state.cache.live is False
            assert sum(brand["count"] for brand in brands) == 10 + 4 - sum(
                1 for row in make_rows(10) + make_rows(4, seed=3, start=500) if row["brand"] is None
            )
            assert _cache_counts(client) == {"hit": 0.0, "joined": 0.0, "miss": 0.0, "uncached": 2.0}
    finally:
        engine.dispose()


@pytest.mark.integration
def test_an_api_reading_from_a_replica_says_the_cache_needs_the_primary_and_still_answers(
    database_url: str, readonly_database_url: str, pg_server_url: str, tmp_path: Path
) -> None:
    # A hot standby refuses LISTEN and never hears the primary's NOTIFY: it must say why the cache
    # is off, in words an operator can act on, rather than retry a bare SQL error for ever.
    insert_rows(database_url, make_rows(12))
    with hot_standby(pg_server_url, tmp_path) as standby:
        replica = make_url(readonly_database_url).set(
            query={**make_url(readonly_database_url).query, **make_url(standby).query}
        )
        with TestClient(build_app(libpq_url(replica))) as client:
            state = client.app.state.reviewscore  # type: ignore[attr-defined]
            _wait(lambda: "hot standby" in (state.listener.last_error or ""), "the check")
            assert "DATABASE_READONLY_URL" in state.listener.last_error
            assert "API_READ_CACHE_MB=0" in state.listener.last_error
            assert state.listener.connects == 0
            ready = client.get("/readyz", params={"require": "database"})
            assert ready.status_code == 200
            assert "hot standby" in ready.json()["checks"]["read_cache"]
            brands = client.get("/brands")  # read from the replica, uncached
            assert brands.status_code == 200
            assert sum(b["count"] for b in brands.json()) == sum(1 for r in make_rows(12) if r["brand"] is not None)
            assert state.cache.live is False


@pytest.mark.integration
def test_the_cache_can_be_turned_off(readonly_database_url: str, database_url: str) -> None:
    insert_rows(database_url, make_rows(5))
    with TestClient(build_app(readonly_database_url, read_cache_mb=0)) as client:
        state = client.app.state.reviewscore  # type: ignore[attr-defined]
        assert state.cache is None
        assert state.listener is None
        assert client.get("/readyz", params={"require": "database"}).json()["checks"]["read_cache"].startswith("off")
        assert client.get("/brands").status_code == client.get("/brands").status_code == 200
        assert _cache_counts(client) == {"hit": 0.0, "joined": 0.0, "miss": 0.0, "uncached": 0.0}


@pytest.mark.integration
def test_identical_reads_in_flight_run_one_query(cached_client: TestClient, database_url: str) -> None:
    """After a change, every client of a dashboard asks again at once; one query answers them all."""
    client = cached_client
    admin = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with ThreadPoolExecutor(8) as background, admin.connect() as locker:
            locker.execute(text("LOCK TABLE sentiment_totals IN ACCESS EXCLUSIVE MODE"))  # /brands waits
            asked = [background.submit(client.get, "/brands") for _ in range(8)]
            _wait(lambda: api_reads_waiting_on_a_lock(admin) == 1, "the first read to reach PostgreSQL")
            time.sleep(0.5)  # the other seven arrive meanwhile
            assert api_reads_waiting_on_a_lock(admin) == 1
            locker.rollback()
            answers = [future.result(timeout=30) for future in asked]
    finally:
        admin.dispose()
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.content for answer in answers}) == 1
    counts = _cache_counts(client)
    assert counts["miss"] == 1
    assert counts["joined"] >= 1
    assert counts["joined"] + counts["hit"] == 7


@pytest.mark.integration
def test_a_change_announced_while_a_read_waits_its_turn_does_not_void_its_answer(
    database_url: str, readonly_database_url: str
) -> None:
    """Under load a read queues for its turn (ReadSlots) while a worker commits batch after batch:
    what it reads after the wait is current, so it is kept and the requests that joined it get it."""
    insert_rows(database_url, make_rows(30))
    admin = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    app = build_app(readonly_database_url, read_concurrency=1, read_slot_hold=60)
    try:
        with TestClient(app) as client, ThreadPoolExecutor(4) as background, admin.connect() as locker:
            state = client.app.state.reviewscore  # type: ignore[attr-defined]
            _wait(lambda: state.cache.live, "the change listener")
            locker.execute(text("BEGIN"))
            locker.execute(text("LOCK TABLE sentiment_brand_daily IN ACCESS EXCLUSIVE MODE"))
            stuck = background.submit(client.get, "/sentiments/stats", params={"bucket": "day"})  # holds the slot
            _wait(lambda: api_reads_waiting_on_a_lock(admin) == 1, "the first read to reach PostgreSQL")
            queued = [background.submit(client.get, "/brands") for _ in range(3)]  # one reads, two join it
            _wait(lambda: state.read_slots.waiting == 1, "the /brands read to queue for its turn")
            time.sleep(0.5)  # the other two arrive meanwhile, and join it rather than queue
            assert state.read_slots.waiting == 1
            generation = state.cache.generation
            with admin.connect() as conn:
                conn.execute(text("NOTIFY reviewscore_changes"))
            _wait(lambda: state.cache.generation > generation, "the change to be heard")
            locker.execute(text("ROLLBACK"))
            assert stuck.result(timeout=30).status_code == 200
            answers = [future.result(timeout=30) for future in queued]
            again = client.get("/brands")
    finally:
        admin.dispose()
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.content for answer in answers}) == 1
    assert again.content == answers[0].content
    counts = _cache_counts(client)
    assert counts["uncached"] == 1  # the stats read, whose query began before the change
    assert counts["miss"] == 1  # the /brands read that waited through the change: kept after all
    assert counts["joined"] == 2
    assert counts["hit"] == 1


@pytest.mark.integration
def test_a_refusal_is_not_kept(database_url: str, readonly_database_url: str) -> None:
    insert_rows(database_url, make_rows(30))
    with TestClient(build_app(readonly_database_url, stats_max_rows=2)) as client:
        cache = client.app.state.reviewscore.cache  # type: ignore[attr-defined]
        _wait(lambda: cache.live, "the change listener")
        for _ in range(2):
            refused = client.get("/sentiments/stats", params={"bucket": "hour"})
            assert refused.status_code == 400
            assert refused.json()["error"]["code"] == "too_many_rows"
        assert len(cache) == 0
        assert _cache_counts(client)["hit"] == 0


@pytest.mark.integration
def test_when_the_shared_read_fails_the_waiting_requests_share_the_next_one(
    cached_client: TestClient, database_url: str
) -> None:
    """A cancelled query (a statement timeout, an operator) fails its own request only; the others
    that waited for it do not each run their own."""
    client = cached_client
    admin = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with ThreadPoolExecutor(8) as background, admin.connect() as locker:
            locker.execute(text("BEGIN"))
            locker.execute(text("LOCK TABLE sentiment_totals IN ACCESS EXCLUSIVE MODE"))
            asked = [background.submit(client.get, "/brands") for _ in range(8)]
            _wait(lambda: api_reads_waiting_on_a_lock(admin) == 1, "the first read to reach PostgreSQL")
            time.sleep(0.5)  # the other seven join it meanwhile
            with admin.connect() as conn:
                conn.execute(text(_CANCEL_THE_WAITING_READ))
            _wait(lambda: _cancelled(asked), "the cancelled read's answer")
            time.sleep(0.5)  # the seven look again: one reads, six join it
            assert api_reads_waiting_on_a_lock(admin) == 1
            locker.execute(text("ROLLBACK"))
            answers = [future.result(timeout=30) for future in asked]
    finally:
        admin.dispose()
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * 7 + [503]
    assert len({answer.content for answer in answers if answer.status_code == 200}) == 1
    counts = _cache_counts(client)
    assert counts["miss"] == 1
    assert counts["joined"] + counts["hit"] == 6


_CANCEL_THE_WAITING_READ = (
    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    " AND datname = current_database() AND application_name = 'reviewscore-api'"
)


def _cancelled(asked: list[Any]) -> bool:
    return any(future.done() for future in asked)


@pytest.mark.integration
def test_with_a_staleness_a_write_shows_once_that_long_has_passed(
    database_url: str, readonly_database_url: str
) -> None:
    insert_rows(database_url, make_rows(20))
    with TestClient(build_app(readonly_database_url, read_cache_staleness=3.0)) as client:
        state = client.app.state.reviewscore  # type: ignore[attr-defined]
        _wait(lambda: state.cache.live, "the change listener")
        before = client.get("/sentiments/stats").json()["total"]
        generation = state.cache.generation
        insert_rows(database_url, make_rows(2, seed=8, start=100))
        _wait(lambda: state.cache.generation > generation, "the write's notification")
        heard = time.monotonic()
        answer = client.get("/sentiments/stats")
        assert time.monotonic() - heard < 3.0  # else the next line could not tell
        assert answer.json()["total"] == before  # served from before the write, within the 3 s
        time.sleep(max(0.0, 3.05 - (time.monotonic() - heard)))
        assert client.get("/sentiments/stats").json()["total"] == before + 2
