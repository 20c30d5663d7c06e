"""POST /sentiments/batch: many reviews in one request, each checked on its own, on the real broker."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.config import KafkaSettings
from core.messages import ReviewMessage, review_key
from tests.fixtures.api import build_app, free_port, insert_rows, read_topic
from tests.query_api.test_submit import row_of

pytestmark = pytest.mark.integration


@pytest.fixture
def batch_client(readonly_database_url: str, kafka_settings: KafkaSettings) -> Iterator[TestClient]:
    with TestClient(build_app(readonly_database_url, kafka_settings, submit_batch_max=5)) as client:
        yield client


def test_every_review_of_a_batch_is_published_and_answered_in_order(
    batch_client: TestClient, kafka_settings: KafkaSettings, database_url: str
) -> None:
    reviews = [
        {"text": "Arrived early, fits perfectly.", "brand": "Acme", "rating": 5, "review_id": "acme-1"},
        {"text": "  The zip broke in a week.  ", "brand": "Acme", "rating": 2},
        {"text": "Fine.", "lang": "en-GB", "published_at": "2026-11-20T10:00:00Z"},
    ]
    response = batch_client.post("/sentiments/batch", json={"reviews": reviews})

    assert response.status_code == 202
    body = response.json()
    keys = ["user:acme-1", review_key("user", "The zip broke in a week.", brand="Acme"), review_key("user", "Fine.")]
    assert (body["accepted"], body["failed"]) == (3, 0)
    assert [(i["index"], i["status"], i["review_key"]) for i in body["items"]] == [
        (0, "pending", keys[0]),
        (1, "pending", keys[1]),
        (2, "pending", keys[2]),
    ]
    sent = {key: json.loads(value) for key, value in read_topic(kafka_settings, 3) if key is not None}
    assert set(sent) == {key.encode() for key in keys}
    assert sent[keys[1].encode()]["text"] == "The zip broke in a week."
    assert all(message["source"] == "user" for message in sent.values())

    # Each item's location finds its row once the worker has written it.
    location = body["items"][0]["location"]
    assert re.fullmatch(r"/sentiments/by-key/user:acme-1\?after=\S+Z&version=[0-9a-f]{16}", location)
    insert_rows(database_url, [row_of(ReviewMessage(source="user", **reviews[0]))])
    assert batch_client.get(location).json()["review_key"] == "user:acme-1"


def test_one_invalid_review_is_a_422_naming_each_by_its_index_and_nothing_is_sent(
    batch_client: TestClient, kafka_settings: KafkaSettings
) -> None:
    reviews: list[Any] = [
        {"text": "Good value."},
        {"text": "   "},
        "not an object",
        {"text": "Lovely.", "rating": 9, "colour": "red"},
        {"text": "Will buy again.", "published_at": "20261124"},
    ]
    response = batch_client.post("/sentiments/batch", json={"reviews": reviews})

    assert response.status_code == 422
    refused = {tuple(detail["loc"]) for detail in response.json()["error"]["details"]}
    assert refused == {
        ("body", "reviews", 1, "text"),
        ("body", "reviews", 2),
        ("body", "reviews", 3, "rating"),
        ("body", "reviews", 3, "colour"),
        ("body", "reviews", 4, "published_at"),
    }
    assert read_topic(kafka_settings, 1, timeout=2) == []  # not even the valid first one


def test_the_message_contract_is_checked_for_every_review_too(
    batch_client: TestClient, kafka_settings: KafkaSettings
) -> None:
    """What the body schema admits but the message contract refuses (a relative URL) is named too."""
    reviews = [{"text": "Fine."}, {"text": "Nice.", "url": "/relative/path"}]
    response = batch_client.post("/sentiments/batch", json={"reviews": reviews})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"] == "1 of the 2 reviews do not satisfy the message contract"
    assert [d["loc"] for d in error["details"]] == [["body", "reviews", 1, "url"]]
    assert read_topic(kafka_settings, 1, timeout=2) == []


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"reviews": []}, ["body", "reviews"]),
        ({"reviews": [{"text": "a"}] * 6}, ["body", "reviews"]),  # over API_SUBMIT_BATCH_MAX=5
        ({"items": [{"text": "a"}]}, ["body", "reviews"]),
        ({"reviews": {"text": "a"}}, ["body", "reviews"]),
    ],
    ids=["empty", "over-the-maximum", "wrong-field", "not-a-list"],
)
def test_a_malformed_batch_is_a_422_and_publishes_nothing(
    batch_client: TestClient, kafka_settings: KafkaSettings, body: dict[str, Any], where: list[str]
) -> None:
    response = batch_client.post("/sentiments/batch", json=body)
    assert response.status_code == 422
    assert where in [d["loc"] for d in response.json()["error"]["details"]]
    assert read_topic(kafka_settings, 1, timeout=2) == []


def test_a_batch_needs_a_key_when_keys_are_set_and_costs_one_token_per_review(
    readonly_database_url: str, kafka_settings: KafkaSettings
) -> None:
    app = build_app(readonly_database_url, kafka_settings, submit_api_keys="k", submit_rate_per_minute=4)
    key = {"X-API-Key": "k"}
    with TestClient(app) as client:
        unkeyed = client.post("/sentiments/batch", json={"reviews": [{"text": "a"}]})
        three = client.post("/sentiments/batch", json={"reviews": [{"text": f"r{n}"} for n in range(3)]}, headers=key)
        two_more = client.post("/sentiments/batch", json={"reviews": [{"text": "x"}, {"text": "y"}]}, headers=key)
        too_big = client.post("/sentiments/batch", json={"reviews": [{"text": f"z{n}"} for n in range(5)]}, headers=key)
        metrics = client.get("/metrics").text

    assert unkeyed.status_code == 401
    assert three.status_code == 202
    assert two_more.status_code == 429  # one token left of the burst of four
    assert 1 <= int(two_more.headers["Retry-After"]) <= 30
    assert too_big.status_code == 429
    assert "send smaller batches" in too_big.json()["error"]["message"]
    assert "Retry-After" not in too_big.headers  # waiting would never make five fit
    assert 'reviewscore_api_submissions_total{outcome="published"} 3.0' in metrics
    assert len(read_topic(kafka_settings, 3)) == 3


def test_an_array_past_the_bound_is_refused_by_its_length_before_any_item_is_read(batch_client: TestClient) -> None:
    """140,000 one-byte items took 4 s and answered 20 MB of per-item errors."""
    started = time.monotonic()
    body = b'{"reviews": [' + b",".join([b"1"] * 100_000) + b"]}"
    response = batch_client.post("/sentiments/batch", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422
    [detail] = response.json()["error"]["details"]
    assert detail["loc"] == ["body", "reviews"]
    assert "at most 1000 reviews" in detail["msg"]
    assert len(response.content) < 1000
    assert time.monotonic() - started < 2


def test_a_refused_batch_costs_no_rate(readonly_database_url: str, kafka_settings: KafkaSettings) -> None:
    app = build_app(readonly_database_url, kafka_settings, submit_rate_per_minute=4)
    with TestClient(app) as client:
        refused = client.post("/sentiments/batch", json={"reviews": [{"text": "a"}, {"text": "b", "url": "/rel"}]})
        four = client.post("/sentiments/batch", json={"reviews": [{"text": f"r{n}"} for n in range(4)]})
    assert refused.status_code == 422
    assert four.status_code == 202  # the whole burst was still there


def test_a_review_the_publisher_fails_on_is_reported_failed_and_the_others_stand(
    readonly_database_url: str, kafka_settings: KafkaSettings
) -> None:
    app = build_app(readonly_database_url, kafka_settings)
    with TestClient(app) as client:
        publisher = app.state.reviewscore.publisher
        real = publisher.publish

        async def flaky(message: ReviewMessage) -> None:
            if message.text == "breaks":
                raise RuntimeError("serializer exploded")
            await real(message)

        publisher.publish = flaky
        reviews = [{"text": "fine"}, {"text": "breaks"}, {"text": "also fine"}]
        response = client.post("/sentiments/batch", json={"reviews": reviews})
        metrics = client.get("/metrics").text

    assert response.status_code == 207
    body = response.json()
    assert [item["status"] for item in body["items"]] == ["pending", "failed", "pending"]
    assert "serializer exploded" in body["items"][1]["error"]
    assert 'reviewscore_api_submissions_total{outcome="published"} 2.0' in metrics
    assert 'reviewscore_api_submissions_total{outcome="failed"} 1.0' in metrics
    assert len(read_topic(kafka_settings, 2)) == 2


def test_get_on_the_batch_path_is_a_405_naming_post_not_a_row_id(batch_client: TestClient) -> None:
    response = batch_client.get("/sentiments/batch")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert batch_client.get("/sentiments/batches").status_code == 422  # any other segment is still an id


def test_an_unreachable_broker_is_a_503_and_counts_every_review_failed(readonly_database_url: str) -> None:
    dead = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", topic="reviews-nowhere")
    with TestClient(build_app(readonly_database_url, dead, publish_timeout=1.0)) as client:
        started = time.monotonic()
        response = client.post("/sentiments/batch", json={"reviews": [{"text": "lost?"}, {"text": "also lost?"}]})
        metrics = client.get("/metrics").text

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "broker_unavailable"
    assert time.monotonic() - started < 5  # both waited at once, not one after the other
    assert 'reviewscore_api_submissions_total{outcome="failed"} 2.0' in metrics


def test_a_batch_with_a_text_the_worker_would_find_blank_is_refused_naming_it(client: TestClient) -> None:
    response = client.post("/sentiments/batch", json={"reviews": [{"text": "Fine"}, {"text": "&nbsp;\u200b"}]})

    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert (detail["loc"], detail["type"]) == (["body", "reviews", 1, "text"], "blank_text")
