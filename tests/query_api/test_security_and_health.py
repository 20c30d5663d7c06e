"""Hostile input, the read-only database role, health, readiness and metrics."""

from __future__ import annotations

import gc
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from core.config import ApiSettings, DatabaseSettings, KafkaSettings
from core.db import sqlalchemy_url
from tests.fixtures.api import Seeded, api_reads_waiting_on_a_lock, build_app, fetch_all, insert_rows, make_rows

pytestmark = pytest.mark.integration

INJECTIONS = [
    "' OR '1'='1",
    "Acme' OR 1=1 --",
    "'; DROP TABLE sentiments; --",
    "Robert'); DELETE FROM sentiments; --",
    '" OR ""="',
    "%' OR '%'='",
    "1; SELECT pg_sleep(5)",
    "' UNION SELECT * FROM pg_roles --",
    "$$; DROP TABLE sentiments; $$",
    "\\'; TRUNCATE sentiments; --",
    "a & | ! : * ( ) <-> b",
]
TEXT_PARAMETERS = [
    ("/sentiments/", "brand"),
    ("/sentiments/", "source"),
    ("/sentiments/", "q"),
    ("/sentiments/", "cursor"),
    ("/sentiments/stats", "brand"),
    ("/sentiments/stats", "source"),
    ("/sentiments/stats", "q"),
    ("/brands", "source"),
    ("/brands", "q"),
    ("/brands", "name_contains"),
    ("/sentiments/export", "brand"),
    ("/sentiments/export", "q"),
    ("/charts/timeline.svg", "brand"),
    ("/charts/labels.svg", "q"),
    ("/charts/stars.svg", "brand"),
    ("/sentiments/", "model_version"),
]


@pytest.mark.parametrize(("path", "parameter"), TEXT_PARAMETERS)
def test_sql_injection_strings_in_text_parameters_are_just_values(
    seeded_api: Seeded, path: str, parameter: str
) -> None:
    for hostile in INJECTIONS:
        response = seeded_api.client.get(path, params={parameter: hostile})
        if parameter == "cursor":
            assert response.status_code == 400, hostile
            continue
        assert response.status_code == 200, (hostile, response.text)
        if path == "/sentiments/" and parameter != "q":
            assert response.json()["items"] == [], hostile  # matched as a literal value, i.e. nothing
    assert len(fetch_all(seeded_api.database_url)) == len(seeded_api.rows)


def test_sql_injection_in_the_key_path_and_in_a_submission(seeded_api: Seeded) -> None:
    for hostile in INJECTIONS:
        response = seeded_api.client.get(f"/sentiments/by-key/{quote(hostile, safe='')}")
        assert response.status_code in (404, 422), hostile
        submitted = seeded_api.client.post("/sentiments/", json={"text": hostile, "brand": hostile})
        assert submitted.status_code == 503  # no broker in this app: validated, then refused
    assert len(fetch_all(seeded_api.database_url)) == len(seeded_api.rows)


def test_review_text_is_never_markup_in_the_charts(seeded_api: Seeded) -> None:
    svg = seeded_api.client.get("/charts/timeline.svg", params={"brand": "<script>alert(1)</script>"}).text
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg


def test_the_api_connection_can_neither_write_nor_escape_read_only_mode(seeded_api: Seeded) -> None:
    engine = seeded_api.client.app.state.reviewscore.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == "reviewscore_reader"
        assert conn.execute(text("SHOW transaction_read_only")).scalar() == "on"
    for statement in (
        "DELETE FROM sentiments",
        "UPDATE sentiments SET label = 'negative'",
        "SET TRANSACTION READ WRITE; DELETE FROM sentiments",
    ):
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text(statement))
    assert len(fetch_all(seeded_api.database_url)) == len(seeded_api.rows)


def test_a_derived_reader_url_switches_to_the_reader_role(database_url: str) -> None:
    """With only DATABASE_URL set, the API still connects as the SELECT-only role."""
    with TestClient(build_app(readonly_url=None, database_url=database_url)) as client:
        engine = client.app.state.reviewscore.engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == "reviewscore_reader"
        assert client.get("/sentiments/").status_code == 200


def test_an_app_needs_some_database_url() -> None:
    from core.config import ApiSettings, DatabaseSettings
    from query_api.app import create_app

    with pytest.raises(ValueError, match="DATABASE"):
        create_app(ApiSettings(), DatabaseSettings(), KafkaSettings())


def test_healthz_answers_without_dependencies(seeded_api: Seeded) -> None:
    assert seeded_api.client.get("/healthz").json() == {"status": "ok", "checks": {}}


def test_readyz_is_ok_when_database_and_broker_answer(
    readonly_database_url: str, kafka_settings: KafkaSettings
) -> None:
    with TestClient(build_app(readonly_database_url, kafka_settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert (checks["database"], checks["broker"]) == ("ok", "ok")
    assert checks["read_cache"] in ("ok", "off: connecting")  # reported, never required


def test_readyz_names_what_is_missing(seeded_api: Seeded, kafka_bootstrap: tuple[str, str]) -> None:
    no_broker = seeded_api.client.get("/readyz")
    assert no_broker.status_code == 503
    assert no_broker.json()["error"]["code"] == "not_ready"
    assert [d["loc"] for d in no_broker.json()["error"]["details"]] == [["broker"]]

    servers, flavor = kafka_bootstrap
    no_topic = KafkaSettings(bootstrap_servers=servers, flavor=flavor, topic="never-created-topic")  # type: ignore[arg-type]
    with TestClient(build_app(seeded_api.readonly_url, no_topic)) as client:
        missing_topic = client.get("/readyz").json()["error"]["details"]
    assert missing_topic[0]["loc"] == ["broker"]
    assert "missing" in missing_topic[0]["msg"]


def test_readiness_on_the_database_alone_stays_ok_without_a_broker_and_reports_it(seeded_api: Seeded) -> None:
    """A load balancer probing /readyz took every replica out during a broker outage, though
    reads work without one; it probes ?require=database."""
    ready = seeded_api.client.get("/readyz", params={"require": "database"})
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["broker"] != "ok"
    assert seeded_api.client.get("/readyz").status_code == 503


def test_a_database_that_is_gone_makes_reads_503_and_readyz_say_so(seeded_api: Seeded) -> None:
    gone = seeded_api.readonly_url.replace("/rs_api_", "/rs_gone_")
    with TestClient(build_app(gone)) as client:
        listed = client.get("/sentiments/")
        ready = client.get("/readyz")
        database_only = client.get("/readyz", params={"require": "database"})
    assert listed.status_code == 503
    assert database_only.status_code == 503
    assert listed.json()["error"]["code"] == "database_unavailable"
    assert ready.status_code == 503
    assert "database" in ready.json()["error"]["message"]


def test_a_pool_with_no_free_connection_makes_reads_503_not_500(seeded_api: Seeded) -> None:
    """Slow export downloads hold their connections: the rest waited ``pool_timeout`` and got a 500."""
    from query_api.app import create_app

    app = create_app(
        ApiSettings(),
        DatabaseSettings(readonly_url=seeded_api.readonly_url, pool_size=1, max_overflow=0, pool_timeout=0.2),
        KafkaSettings(),
    )
    with TestClient(app) as client, app.state.reviewscore.engine.connect():  # the pool's only connection
        answers = {path: client.get(path) for path in ("/sentiments/", "/sentiments/stats", "/brands", "/sentiments/1")}

    for path, answer in answers.items():
        assert answer.status_code == 503, (path, answer.text)
        assert answer.json()["error"]["code"] == "database_unavailable"


def test_metrics_count_requests_by_route_template(seeded_api: Seeded) -> None:
    row_id = seeded_api.rows[0]["id"]
    seeded_api.client.get(f"/sentiments/{row_id}")
    seeded_api.client.get("/sentiments/999999")
    body = seeded_api.client.get("/metrics")
    assert body.headers["content-type"].startswith("text/plain")
    assert 'route="/sentiments/{sentiment_id}",status="200"' in body.text
    assert 'route="/sentiments/{sentiment_id}",status="404"' in body.text
    assert f"/sentiments/{row_id}" not in body.text
    assert "reviewscore_api_request_duration_seconds_bucket" in body.text


def _api_backends(database_url: str) -> set[int]:
    admin = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with admin.connect() as conn:
            pids = conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE application_name = 'reviewscore-api' AND datname = current_database()"
                )
            ).scalars()
            return set(pids)
    finally:
        admin.dispose()


def _drop_connections(database_url: str, pids: set[int]) -> None:
    """What a database restart does to an API's pool: its server connections die."""
    admin = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with admin.connect() as conn:
            for pid in pids:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()


def test_after_the_database_drops_its_connections_the_api_fails_once_with_503_then_recovers(
    seeded_api: Seeded,
) -> None:
    row_id = seeded_api.rows[0]["id"]
    others = _api_backends(seeded_api.database_url)  # the shared client's pool stays untouched
    with TestClient(build_app(seeded_api.readonly_url)) as client:
        assert client.get(f"/sentiments/{row_id}").status_code == 200
        ours = _api_backends(seeded_api.database_url) - others
        assert ours
        _drop_connections(seeded_api.database_url, ours)
        stale = client.get(f"/sentiments/{row_id}")
        after = [client.get(f"/sentiments/{row_id}").status_code for _ in range(3)]
    assert stale.status_code == 503
    assert stale.json()["error"]["code"] == "database_unavailable"
    assert after == [200, 200, 200]


def test_with_pre_ping_a_dropped_connection_costs_no_failed_request(seeded_api: Seeded) -> None:
    row_id = seeded_api.rows[0]["id"]
    others = _api_backends(seeded_api.database_url)
    with TestClient(build_app(seeded_api.readonly_url, db_pre_ping=True)) as client:
        assert client.get(f"/sentiments/{row_id}").status_code == 200
        ours = _api_backends(seeded_api.database_url) - others
        assert ours
        _drop_connections(seeded_api.database_url, ours)
        assert client.get(f"/sentiments/{row_id}").status_code == 200


def test_the_dashboard_and_its_assets_are_revalidated_after_a_deploy(seeded_api: Seeded) -> None:
    for path in ("/", "/static/dashboard.js", "/static/dashboard.css"):
        response = seeded_api.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "no-cache", path
        assert response.headers["etag"], path


def test_the_dashboard_page_allows_only_its_own_script_and_cannot_be_framed(seeded_api: Seeded) -> None:
    policy = seeded_api.client.get("/").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"  # no inline script, no event attribute
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"


def test_answers_do_not_depend_on_the_database_servers_time_zone(database_url: str, readonly_database_url: str) -> None:
    # Year 1 reads back as year 0 in New York: the driver cannot hold it, so API sessions run in UTC.
    row = {**make_rows(1)[0], "published_at": datetime(1, 1, 1, tzinfo=UTC)}
    [row_id] = insert_rows(database_url, [row])
    writer = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with writer.connect() as conn:
        conn.execute(text(f"ALTER DATABASE \"{make_url(database_url).database}\" SET timezone = 'America/New_York'"))
    writer.dispose()
    with TestClient(build_app(readonly_database_url)) as client:
        one = client.get(f"/sentiments/{row_id}")
        stats = client.get("/sentiments/stats", params={"time_field": "published_at", "bucket": "day"})
        exported = client.get("/sentiments/export", params={"format": "ndjson"})
    assert one.status_code == 200
    assert one.json()["published_at"].startswith("0001-01-01T00:00:00")
    assert stats.status_code == 200
    assert stats.json()["rows"][0]["bucket"].startswith("0001-01-01T00:00:00")
    assert len(exported.text.splitlines()) == 1


def test_a_read_waiting_on_the_database_does_not_hold_up_other_requests(seeded_api: Seeded) -> None:
    """The read routes are async and send their query to the thread pool: a query run on the event
    loop would stall every request of the process behind the slowest one."""
    admin = create_engine(sqlalchemy_url(seeded_api.database_url), poolclass=pool.NullPool)
    row_id = seeded_api.rows[0]["id"]
    with TestClient(build_app(seeded_api.readonly_url)) as client, ThreadPoolExecutor(1) as background:
        with admin.connect() as locker:
            locker.execute(text("LOCK TABLE sentiments IN ACCESS EXCLUSIVE MODE"))  # every SELECT waits
            blocked = background.submit(client.get, f"/sentiments/{row_id}")
            _wait_for_a_backend_waiting_on_a_lock(admin)
            started = time.monotonic()
            health = client.get("/healthz")
            answered_in = time.monotonic() - started
            assert not blocked.done()
            locker.rollback()  # the lock goes; the read goes through
        answer = blocked.result(timeout=30)
    admin.dispose()

    assert health.status_code == 200
    assert answered_in < 2
    assert answer.status_code == 200
    assert answer.json()["id"] == row_id


def _wait_for_a_backend_waiting_on_a_lock(admin: Engine) -> None:
    deadline = time.monotonic() + 10
    while not api_reads_waiting_on_a_lock(admin):
        if time.monotonic() > deadline:
            raise AssertionError("the read never reached the database")
        time.sleep(0.05)


def test_the_app_keeps_its_start_up_heap_out_of_full_collections_while_it_serves(seeded_api: Seeded) -> None:
    """A full collection walked the ~130k objects start-up built, stalling every request for ~80 ms."""
    with TestClient(build_app(seeded_api.readonly_url)) as client:
        assert client.get("/healthz").status_code == 200
        frozen = gc.get_freeze_count()
    assert frozen > 10_000
    assert gc.get_freeze_count() == 0  # stopped: whatever it built is collectable again
