"""POST /sentiments/ and /sentiments/by-key: submission lands on the real broker; the row is read back.

The stream worker is simulated the only way the API can observe it: a row with the message's
``review_key`` appears in the table after the message was published.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from core.config import ApiSettings, DatabaseSettings, KafkaSettings
from core.messages import MAX_TEXT_CHARS, ReviewMessage, parse_message, review_key
from tests.fixtures.api import build_app, insert_rows, make_rows, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
def submit_client(readonly_database_url: str, kafka_settings: KafkaSettings) -> Iterator[TestClient]:
    with TestClient(build_app(readonly_database_url, kafka_settings, submit_wait_max=5.0)) as client:
        yield client


def scored_row(key: str, text: str, **overrides: Any) -> dict[str, Any]:
    row = make_rows(1)[0]
    row.update(review_key=key, sentence=text, source="user", brand=None, rating=None, url=None, published_at=None)
    row.update(lang=None)
    row.update(overrides)
    row.pop("created_on")
    return row


def row_of(message: ReviewMessage) -> dict[str, Any]:
    """The row the stream worker stores for a message: its own fields, a score."""
    fields = ("brand", "rating", "url", "author", "lang", "published_at")
    return scored_row(message.review_key, message.text, **{name: getattr(message, name) for name in fields})


def worker_after_message(database_url: str, settings: KafkaSettings, delay: float = 0.0) -> threading.Thread:
    """Wait for the message on the topic, then write its scored row, as the stream worker would."""

    def run() -> None:
        messages = read_topic(settings, 1, timeout=20)
        time.sleep(delay)
        insert_rows(database_url, [row_of(parse_message(messages[0][1]))])

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def rejecter_after_message(database_url: str, settings: KafkaSettings) -> threading.Thread:
    """Wait for the message on the topic, then record its rejection with the worker's own sink."""
    from sqlalchemy import create_engine, pool

    from core.db import sqlalchemy_url
    from stream.records import Record, Rejected
    from stream.sink import PostgresSink

    def run() -> None:
        [(key, value)] = read_topic(settings, 1, timeout=20)
        message = parse_message(value)
        rejected = Rejected(
            Record(settings.topic, 0, 0, key, value), "scoring_failed", "RuntimeError: unreadable", message.review_key
        )
        engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
        try:
            PostgresSink(engine).record_rejections([rejected])
        finally:
            engine.dispose()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_submission_is_published_with_source_user_and_answered_202(
    submit_client: TestClient, kafka_settings: KafkaSettings
) -> None:
    review = {
        "text": "  The zip broke after two days.  ",
        "brand": "Acme",
        "rating": 2,
        "url": "https://shop.example/r/1",
        "author": "Sam",
        "published_at": "2026-11-21T09:00:00+23:00",  # an offset PostgreSQL refuses: sent on in UTC
        "lang": "en-GB",
    }
    response = submit_client.post("/sentiments/", json=review)

    assert response.status_code == 202
    key = review_key("user", "The zip broke after two days.", brand="Acme", author="Sam")
    body = response.json()
    location = body.pop("location")
    assert body == {"review_key": key, "status": "pending", "sentiment": None}
    assert re.fullmatch(
        rf"/sentiments/by-key/{re.escape(key)}\?after=\d{{4}}-\d\d-\d\dT[\d:.]+Z&version=[0-9a-f]{{16}}", location
    )
    assert response.headers["location"] == location

    [(message_key, value)] = read_topic(kafka_settings, 1)
    assert message_key == key.encode()
    assert value is not None
    payload = json.loads(value)
    assert payload == {
        "schema_version": 1,
        "text": "The zip broke after two days.",
        "source": "user",
        "brand": "Acme",
        "rating": 2,
        "url": "https://shop.example/r/1",
        "author": "Sam",
        "published_at": "2026-11-20T10:00:00Z",
        "lang": "en-GB",
    }
    assert parse_message(value).review_key == key


def test_a_submission_with_its_own_id_is_keyed_by_it(submit_client: TestClient, kafka_settings: KafkaSettings) -> None:
    response = submit_client.post("/sentiments/", json={"text": "Nice", "review_id": "order-77/a"})
    assert response.json()["review_key"] == "user:order-77/a"
    assert response.headers["location"].startswith("/sentiments/by-key/user:order-77%2Fa?after=")
    [(key, _)] = read_topic(kafka_settings, 1)
    assert key == b"user:order-77/a"


def test_a_key_with_dot_segments_still_locates_its_own_row(
    submit_client: TestClient, kafka_settings: KafkaSettings
) -> None:
    # Clients drop "/../" from a path before sending it: an unescaped "/" would lead elsewhere.
    response = submit_client.post("/sentiments/", json={"text": "Nice", "review_id": "a/../../healthz"})
    location = response.headers["location"]
    assert location.startswith("/sentiments/by-key/user:a%2F..%2F..%2Fhealthz?after=")
    followed = submit_client.get(location)
    assert followed.status_code == 404
    assert followed.json()["error"]["code"] == "pending"
    assert "user:a/../../healthz" in followed.json()["error"]["message"]


def test_wait_returns_the_scored_row_when_the_worker_writes_it_in_time(
    submit_client: TestClient, database_url: str, kafka_settings: KafkaSettings
) -> None:
    worker = worker_after_message(database_url, kafka_settings, delay=0.3)
    response = submit_client.post("/sentiments/", params={"wait": 5}, json={"text": "Lovely fabric", "brand": "Acme"})
    worker.join()

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "scored"
    assert body["sentiment"]["sentence"] == "Lovely fabric"
    assert body["sentiment"]["review_key"] == body["review_key"] == review_key("user", "Lovely fabric", brand="Acme")
    assert response.headers["location"] == body["location"]


def test_wait_gives_up_at_the_server_bound_and_answers_pending(
    readonly_database_url: str, kafka_settings: KafkaSettings
) -> None:
    with TestClient(build_app(readonly_database_url, kafka_settings, submit_wait_max=0.3)) as client:
        started = time.monotonic()
        response = client.post("/sentiments/", params={"wait": 60}, json={"text": "Nobody scores me"})
        elapsed = time.monotonic() - started
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert 0.3 <= elapsed < 5


def test_by_key_is_a_pending_404_until_the_row_lands_then_the_row(
    submit_client: TestClient, database_url: str, kafka_settings: KafkaSettings
) -> None:
    location = submit_client.post("/sentiments/", json={"text": "Arrived late"}).headers["location"]

    pending = submit_client.get(location)
    assert pending.status_code == 404
    assert pending.json()["error"]["code"] == "pending"

    worker = worker_after_message(database_url, kafka_settings, delay=0.3)
    waited = submit_client.get(location, params={"wait": 5})
    worker.join()
    assert waited.status_code == 200
    assert waited.json()["sentence"] == "Arrived late"
    assert submit_client.get(location).json() == waited.json()


def test_a_resubmitted_review_once_rejected_is_pending_at_its_location_not_rejected(
    submit_client: TestClient, database_url: str, kafka_settings: KafkaSettings
) -> None:
    """The first submission's rejection answered the second one's Location before the worker had
    seen it, and the dashboard stopped waiting and said "will not be scored"."""
    first = rejecter_after_message(database_url, kafka_settings)
    submit_client.post("/sentiments/", json={"text": "Retry me please", "brand": "Acme"})
    first.join()

    again = submit_client.post("/sentiments/", json={"text": "Retry me please", "brand": "Acme"})
    location = again.headers["location"]
    key_only = location.split("?")[0]

    assert again.status_code == 202
    assert submit_client.get(location).json()["error"]["code"] == "pending"
    assert submit_client.get(f"{location}&wait=0.3").json()["error"]["code"] == "pending"
    assert submit_client.get(key_only).json()["error"]["code"] == "rejected"  # the key alone: the last word
    naive = parse_qs(urlsplit(location).query)["after"][0].rstrip("Z")  # naive = UTC, as documented (it was a 500)
    assert submit_client.get(f"{key_only}?after={naive}").json()["error"]["code"] == "pending"


def test_a_review_the_worker_rejects_is_reported_with_its_reason_not_pending_for_ever(
    submit_client: TestClient, database_url: str, kafka_settings: KafkaSettings
) -> None:
    worker = rejecter_after_message(database_url, kafka_settings)
    submitted = submit_client.post("/sentiments/", params={"wait": 5}, json={"text": "A text the model chokes on"})
    worker.join()
    looked_up = submit_client.get(f"/sentiments/by-key/{review_key('user', 'A text the model chokes on')}")

    assert submitted.status_code == 422
    assert looked_up.status_code == 404
    for response in (submitted, looked_up):
        error = response.json()["error"]
        assert error["code"] == "rejected"
        assert "scoring_failed: RuntimeError: unreadable" in error["message"]


def test_waiting_on_an_edit_answers_with_the_edited_row_not_the_previous_version(
    submit_client: TestClient, database_url: str, kafka_settings: KafkaSettings
) -> None:
    from sqlalchemy import create_engine, pool, text

    from core.db import sqlalchemy_url

    insert_rows(database_url, [scored_row("user:r9", "Fine so far", rating=4)])

    def worker() -> None:  # applies the edit after a while, as the stream worker would
        read_topic(kafka_settings, 1, timeout=20)
        time.sleep(0.5)
        engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
        with engine.begin() as conn:
            conn.execute(text("UPDATE sentiments SET sentence = 'It broke', rating = 1 WHERE review_key = 'user:r9'"))
        engine.dispose()

    thread = threading.Thread(target=worker)
    thread.start()
    response = submit_client.post(
        "/sentiments/", params={"wait": 5}, json={"text": "It broke", "rating": 1, "review_id": "r9"}
    )
    thread.join()

    assert response.status_code == 200
    assert (response.json()["sentiment"]["sentence"], response.json()["sentiment"]["rating"]) == ("It broke", 1)


def test_the_location_of_an_edit_is_pending_until_the_row_holds_the_edit_not_the_previous_version(
    submit_client: TestClient, database_url: str
) -> None:
    """It answered 200 with the old text and score at once, ``wait`` or not."""
    from sqlalchemy import create_engine, pool, text

    from core.db import sqlalchemy_url

    insert_rows(database_url, [scored_row("user:r10", "Fine so far", rating=4)])
    edit = {"text": "It broke", "rating": 1, "review_id": "r10", "published_at": "2026-11-21T09:00:00+01:00"}
    location = submit_client.post("/sentiments/", json=edit).headers["location"]

    before = submit_client.get(f"{location}&wait=0.3")
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    with engine.begin() as conn:  # what the worker does with the edit
        conn.execute(
            text(
                "UPDATE sentiments SET sentence = 'It broke', rating = 1, published_at = '2026-11-21T08:00:00Z' "
                "WHERE review_key = 'user:r10'"
            )
        )
    engine.dispose()
    after = submit_client.get(location)

    assert before.status_code == 404
    assert before.json()["error"]["code"] == "pending"
    assert after.status_code == 200, after.text
    assert (after.json()["sentence"], after.json()["rating"]) == ("It broke", 1)
    assert submit_client.get(location.split("?")[0]).status_code == 200  # the key alone: whatever is stored
    assert submit_client.get(location.split("?")[0], params={"version": "nope"}).status_code == 422


def test_the_location_of_a_version_a_later_one_replaced_says_superseded_not_pending_for_ever(
    submit_client: TestClient, database_url: str
) -> None:
    """Two edits in quick succession (or one key twice in a batch): the first never becomes the row."""
    from sqlalchemy import create_engine, pool, text

    from core.db import sqlalchemy_url

    first = submit_client.post("/sentiments/", json={"text": "Okay so far", "review_id": "r11"}).headers["location"]
    insert_rows(database_url, [scored_row("user:r11", "Broke after a week")])  # the second edit, stored
    before_its_time = submit_client.get(first)
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    with engine.begin() as conn:  # the worker stamps the row with its message's time: after the first
        conn.execute(text("UPDATE sentiments SET kafka_timestamp = now() WHERE review_key = 'user:r11'"))
    engine.dispose()
    superseded = submit_client.get(f"{first}&wait=5")

    assert before_its_time.json()["error"]["code"] == "pending"  # a row from before: the edit may still come
    assert superseded.status_code == 404
    assert superseded.json()["error"]["code"] == "superseded"
    assert "without `version`" in superseded.json()["error"]["message"]
    assert submit_client.get(first.split("?")[0]).json()["sentence"] == "Broke after a week"


def test_resubmitting_a_once_rejected_review_is_not_answered_with_the_old_rejection(
    submit_client: TestClient, database_url: str
) -> None:
    from sqlalchemy import create_engine, pool

    from core.db import sqlalchemy_url
    from stream.records import Record, Rejected
    from stream.sink import PostgresSink

    key = review_key("user", "Too long for yesterday's limit")
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    PostgresSink(engine).record_rejections([Rejected(Record("reviews", 0, 0, None, None), "too_long", "x", key)])
    engine.dispose()

    again = submit_client.post("/sentiments/", params={"wait": 1}, json={"text": "Too long for yesterday's limit"})

    assert again.status_code == 202  # pending: the worker has not answered this submission yet
    assert submit_client.get(f"/sentiments/by-key/{key}").json()["error"]["code"] == "rejected"


INVALID: list[tuple[dict[str, Any], str]] = [
    ({}, "text"),
    ({"text": ""}, "text"),
    ({"text": "   "}, "text"),
    ({"text": "x" * 20_001}, "text"),
    ({"text": "ok", "rating": 6}, "rating"),
    ({"text": "ok", "rating": "5"}, "rating"),
    ({"text": "ok", "url": "javascript:alert(1)"}, "url"),
    ({"text": "ok", "lang": "not a tag"}, "lang"),
    ({"text": "ok", "published_at": "last week"}, "published_at"),
    ({"text": "ok", "published_at": 1700000000}, "published_at"),  # read as a Unix time before
    ({"text": "ok", "source": "scraper:trustpilot"}, "source"),
    ({"text": 42}, "text"),
    # What PostgreSQL would refuse after a 202 (the review pending for ever) is a 422 instead.
    ({"text": "NUL \x00 inside"}, "text"),
    ({"text": "ok", "brand": "Ac\x00me"}, "brand"),
    ({"text": "ok", "published_at": "0001-01-01T00:00:00+23:00"}, "published_at"),
    # What the worker would dead-letter as blank_text (nothing left once read as the model reads it).
    ({"text": "&nbsp;"}, "text"),
    ({"text": "&amp;nbsp; \u200b"}, "text"),
    ({"text": "\x01\x02"}, "text"),
    # Another user's review without an id has the key `user:sha256:…`, readable off the API:
    # an id of that shape would overwrite it.
    ({"text": "Acme is a scam", "review_id": "sha256:0c1f2e3d4c5b6a79881726354453627a"}, "review_id"),
    ({"text": "Acme is a scam", "review_id": "\x1fsha256:0c1f2e3d4c5b6a79881726354453627a"}, "review_id"),
]


@pytest.mark.parametrize(("body", "field"), INVALID)
def test_an_invalid_submission_is_a_422_naming_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    response = client.post("/sentiments/", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in [d["loc"][-1] for d in error["details"]]


def test_invalid_submissions_publish_nothing(submit_client: TestClient, kafka_settings: KafkaSettings) -> None:
    for body, _ in INVALID:
        assert submit_client.post("/sentiments/", json=body).status_code == 422
    assert submit_client.post("/sentiments/", json={"text": "the only valid one"}).status_code == 202
    messages = read_topic(kafka_settings, len(INVALID) + 1, timeout=2)
    assert [parse_message(value).text for _, value in messages] == ["the only valid one"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"not json", "application/json"),
        (b'["a list"]', "application/json"),
        (b'["a list"]', "application/merge-patch+json"),  # JSON to FastAPI: not told to send JSON
        (b"text=hi", "text/plain"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_422(client: TestClient, content: bytes, content_type: str) -> None:
    response = client.post("/sentiments/", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    told = "must be JSON (Content-Type: application/json), not text/plain" in response.json()["error"]["message"]
    assert told == (content_type == "text/plain")


def test_the_longest_review_fits_the_body_limit_however_the_client_escapes_it(
    submit_client: TestClient, kafka_settings: KafkaSettings
) -> None:
    longest = "😀" * MAX_TEXT_CHARS  # json.dumps escapes each as a surrogate pair, 12 bytes: 240 kB
    short = "😀" * 256
    review = {"text": longest, "brand": short, "author": short, "review_id": short, "rating": 5}
    review |= {"url": "https://shop.example/" + "😀" * 2000, "lang": "en-GB", "published_at": "2026-11-20T10:00:00Z"}
    body = json.dumps(review).encode()
    assert len(body) > 270_000  # every field at its limit

    response = submit_client.post("/sentiments/", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 202, response.text
    [(_, value)] = read_topic(kafka_settings, 1)
    assert json.loads(value or b"")["text"] == longest


def test_an_oversized_body_is_a_413_declared_or_streamed(client: TestClient) -> None:
    big = json.dumps({"text": "x" * 300_000}).encode()
    declared = client.post("/sentiments/", content=big, headers={"Content-Type": "application/json"})

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    streamed = client.post("/sentiments/", content=chunks(), headers={"Content-Type": "application/json"})
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "body_too_large"


def test_without_a_broker_submissions_are_a_503_and_reads_still_work(client: TestClient) -> None:
    refused = client.post("/sentiments/", json={"text": "hello"})
    listed = client.get("/sentiments/")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "broker_unavailable"
    assert listed.status_code == 200


def test_with_the_database_down_a_submission_the_broker_took_is_a_202_not_a_503(
    kafka_settings: KafkaSettings,
) -> None:
    """A 503 says "not accepted": the broker had the review, so a wait the database cannot serve
    ends as a pending 202 with its Location, not as an error the client would retry."""
    from tests.fixtures.api import free_port

    down = f"postgresql://reviewscore_reader@127.0.0.1:{free_port()}/nothing"
    with TestClient(build_app(down, kafka_settings, submit_wait_max=5.0)) as client:
        response = client.post("/sentiments/?wait=1", json={"text": "Kept while the database is away"})

    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert response.headers["location"] == response.json()["location"]
    [(key, _)] = read_topic(kafka_settings, 1)
    assert key == response.json()["review_key"].encode()


def test_a_submission_whose_wait_finds_the_pool_busy_is_a_202_with_its_location(
    readonly_database_url: str, kafka_settings: KafkaSettings
) -> None:
    """The broker took the review just before another request took the last connection: this
    was a 500 without a Location, for a review that was on its way to be scored."""
    from query_api.app import create_app

    database = DatabaseSettings(readonly_url=readonly_database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    app = create_app(ApiSettings(submit_wait_max=5.0), database, kafka_settings)
    with TestClient(app) as client:
        state = app.state.reviewscore
        publish, held = state.publisher.publish, []

        async def publish_then_the_pool_is_taken(message: Any) -> None:
            await publish(message)
            held.append(state.engine.connect())

        state.publisher.publish = publish_then_the_pool_is_taken
        try:
            response = client.post("/sentiments/?wait=1", json={"text": "Sent while the pool is busy"})
        finally:
            for connection in held:
                connection.close()

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    assert response.headers["location"] == response.json()["location"]
    assert len(read_topic(kafka_settings, 1)) == 1


def test_an_unreachable_broker_is_a_503_after_the_publish_timeout(readonly_database_url: str) -> None:
    from tests.fixtures.api import free_port

    dead = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", topic="reviews-nowhere")
    with TestClient(build_app(readonly_database_url, dead, publish_timeout=1.0)) as client:
        started = time.monotonic()
        response = client.post("/sentiments/", json={"text": "lost?"})
        metrics = client.get("/metrics").text
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "broker_unavailable"
    assert time.monotonic() - started < 5
    assert 'reviewscore_api_submissions_total{outcome="failed"} 1.0' in metrics


def test_a_submission_abandoned_before_its_acknowledgement_leaves_the_publisher_working() -> None:
    """The delivery report of a request that gave up must not break the delivery thread."""
    import asyncio

    from core.messages import ReviewMessage
    from query_api.publisher import Publisher, PublishError
    from tests.fixtures.api import free_port

    dead = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", topic="reviews-nowhere")
    publisher = Publisher(dead, timeout=0.5)

    async def abandon_then_publish() -> None:
        abandoned = asyncio.create_task(publisher.publish(ReviewMessage(text="gone", source="user")))
        await asyncio.sleep(0.05)
        abandoned.cancel()
        await asyncio.sleep(1.0)  # the broker's refusal of the abandoned message arrives now
        with pytest.raises(PublishError):
            await publisher.publish(ReviewMessage(text="next", source="user"))

    try:
        asyncio.run(abandon_then_publish())
        assert publisher._poller.is_alive()
    finally:
        publisher.close()


class _RejectedBeforeTheAck:
    """A broker whose acknowledgement reaches the API after the worker already rejected the review
    (a fast rejection, blank or too long, or a busy event loop between the ack and the resume)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    async def publish(self, message: ReviewMessage) -> None:
        import asyncio

        from sqlalchemy import create_engine, pool

        from core.db import sqlalchemy_url
        from stream.records import Record, Rejected
        from stream.sink import PostgresSink

        key, value = message.to_kafka()
        rejected = Rejected(Record("reviews", 0, 0, key, value), "scoring_failed", "boom", message.review_key)

        def reject() -> None:
            engine = create_engine(sqlalchemy_url(self.database_url), poolclass=pool.NullPool)
            try:
                PostgresSink(engine).record_rejections([rejected])
            finally:
                engine.dispose()

        await asyncio.to_thread(reject)
        await asyncio.sleep(0.01)

    def close(self) -> None:
        pass

    def ping(self, timeout: float = 2.0) -> str:
        return "ok"


def test_a_rejection_recorded_before_the_broker_acknowledged_is_reported_at_the_location(
    database_url: str, readonly_database_url: str
) -> None:
    """The Location's time was taken after the acknowledgement, later than the rejection: pending for ever."""
    with TestClient(build_app(readonly_database_url, database_url=database_url)) as client:
        client.app.state.reviewscore.publisher = _RejectedBeforeTheAck(database_url)  # type: ignore[attr-defined]
        posted = client.post("/sentiments/", json={"text": "A text the model chokes on"})
        assert posted.status_code == 202
        answer = client.get(posted.headers["location"])

    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "rejected")
