"""Who may submit and how often: API keys and the per-client rate limit on POST /sentiments/."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from core.config import KafkaSettings
from query_api.submit_guard import NO_MATCH, RateLimiter, client_id, key_owner, presented_key, retry_after
from tests.fixtures.api import build_app, read_topic


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_burst_then_one_submission_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=6, burst=2, clock=clock)  # one every 10 s
    assert [limiter.take("a"), limiter.take("a")] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(10.0)  # the third waits for a token
    assert limiter.take("b") == 0.0  # another client has a bucket of its own
    clock.now += 5
    assert limiter.take("a") == pytest.approx(5.0)  # refused attempts take nothing
    clock.now += 5
    assert limiter.take("a") == 0.0
    clock.now += 3600
    assert [limiter.take("a") for _ in range(3)][:2] == [0.0, 0.0]  # refilled to the burst, not beyond


def test_the_limiter_forgets_the_least_recent_clients_past_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    import query_api.submit_guard as guard

    monkeypatch.setattr(guard, "MAX_CLIENTS", 2)
    limiter = RateLimiter(per_minute=1, clock=Clock())
    for client in ("a", "b", "c"):
        assert limiter.take(client) == 0.0
    assert limiter.take("a") == 0.0  # forgotten, so a full bucket again
    assert limiter.take("c") > 0  # remembered: empty


@pytest.mark.parametrize(
    ("authorization", "header", "key"),
    [
        ("Bearer k1", None, "k1"),
        ("bearer  k1 ", None, "k1"),
        ("Basic dXNlcjpwYXNz", "k2", "k2"),
        (None, " k2 ", "k2"),
        ("Bearer ", None, None),
        (None, None, None),
    ],
)
def test_a_key_comes_from_bearer_or_x_api_key(authorization: str | None, header: str | None, key: str | None) -> None:
    assert presented_key(authorization, header) == key


def test_keys_are_compared_whole_and_counted_by_digest() -> None:
    assert key_owner("k1", [(None, "k0"), (None, "k1")]) is None  # an unnamed key matched
    assert key_owner("k1", [(None, "k0"), ("shop-a", "k1")]) == "shop-a"
    assert key_owner("k", [(None, "k1")]) is NO_MATCH  # a prefix is not the key
    assert key_owner("k1", []) is NO_MATCH
    assert client_id("secret", "10.0.0.1").startswith("key:")
    assert "secret" not in client_id("secret", "10.0.0.1")
    assert client_id(None, "10.0.0.1") == "addr:10.0.0.1"
    assert [retry_after(0.01), retry_after(1.0), retry_after(9.2)] == ["1", "1", "10"]


@pytest.mark.parametrize(
    ("value", "keys"),
    [
        ("old-key, new-key", ["old-key", "new-key"]),
        ('["old-key", "new-key"]', ["old-key", "new-key"]),  # the JSON list other list settings take
        (" , ", []),
        ("[not json", ["[not json"]),  # not refused: the error would print the keys
    ],
)
def test_keys_are_read_comma_separated_or_as_a_json_list(
    value: str, keys: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.config import ApiSettings

    monkeypatch.setenv("API_SUBMIT_API_KEYS", value)
    assert [key.get_secret_value() for key in ApiSettings().submit_api_keys] == keys


@pytest.mark.integration
def test_with_keys_set_a_submission_needs_one_and_reads_stay_open(
    readonly_database_url: str, kafka_settings: KafkaSettings
) -> None:
    app = build_app(readonly_database_url, kafka_settings, submit_api_keys="old-key, new-key")
    body = {"text": "Keyed review"}
    with TestClient(app) as client:
        missing = client.post("/sentiments/", json=body)
        wrong = client.post("/sentiments/", json=body, headers={"Authorization": "Bearer nope"})
        bearer = client.post("/sentiments/", json=body, headers={"Authorization": "Bearer new-key"})
        header = client.post("/sentiments/", json={"text": "Second"}, headers={"X-API-Key": "old-key"})
        unkeyed_bad_body = client.post("/sentiments/", json={"text": ""})
        # Settled from the headers, before the body is read: not JSON, or over the size limit.
        unkeyed_not_json = client.post("/sentiments/", content=b"{not json", headers=JSON)
        too_big = b"x" * (app.state.reviewscore.api.max_body_bytes + 1)
        unkeyed_too_big = client.post("/sentiments/batch", content=too_big, headers=JSON)
        keyed_not_json = client.post("/sentiments/", content=b"{not json", headers={**JSON, "X-API-Key": "old-key"})
        reads = [client.get(path).status_code for path in ("/sentiments/", "/sentiments/stats", "/brands", "/")]
        metrics = client.get("/metrics").text

    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.json()["error"]["code"] == "unauthorized"
    assert "is missing" in missing.json()["error"]["message"]
    assert "is not a valid key" in wrong.json()["error"]["message"]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert unkeyed_bad_body.status_code == 401  # who may submit is settled before what was sent
    assert (unkeyed_not_json.status_code, unkeyed_too_big.status_code) == (401, 401)
    assert unkeyed_too_big.json()["error"]["code"] == "unauthorized"
    assert unkeyed_too_big.headers["WWW-Authenticate"].startswith("Bearer")
    assert keyed_not_json.status_code == 422  # a keyed client hears what is wrong with its body
    assert (bearer.status_code, header.status_code) == (202, 202)
    assert reads == [200, 200, 200, 200]
    assert 'reviewscore_api_submissions_total{outcome="unauthorized"} 5.0' in metrics
    sent = sorted(value for _, value in read_topic(kafka_settings, 2, timeout=20))
    assert sent == sorted(_values_of("Keyed review", "Second"))


JSON = {"Content-Type": "application/json"}


def _values_of(*texts: str) -> list[bytes]:
    from core.messages import ReviewMessage

    return [ReviewMessage(text=text, source="user").to_kafka()[1] for text in texts]


@pytest.mark.integration
def test_a_client_over_the_rate_gets_429_with_retry_after_and_others_do_not(
    readonly_database_url: str, kafka_settings: KafkaSettings
) -> None:
    app = build_app(readonly_database_url, kafka_settings, submit_api_keys="a,b", submit_rate_per_minute=2)
    with TestClient(app) as client:
        # Refused reviews cost nothing, as in a batch: two typos used to spend the whole minute.
        refused = [client.post("/sentiments/", json={"text": ""}, headers={"X-API-Key": "a"}) for _ in range(3)]
        first = [client.post("/sentiments/", json={"text": f"A {n}"}, headers={"X-API-Key": "a"}) for n in range(3)]
        other = client.post("/sentiments/", json={"text": "B 0"}, headers={"X-API-Key": "b"})
        metrics = client.get("/metrics").text

    assert [r.status_code for r in refused] == [422, 422, 422]
    assert [r.status_code for r in first] == [202, 202, 429]
    limited = first[2]
    assert limited.json()["error"]["code"] == "rate_limited"
    assert "at most 2 a minute" in limited.json()["error"]["message"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    assert other.status_code == 202  # the limit counts per key
    assert 'reviewscore_api_submissions_total{outcome="rate_limited"} 1.0' in metrics


@pytest.mark.integration
def test_a_named_key_publishes_as_its_own_source_so_producers_ids_never_collide(
    readonly_database_url: str, kafka_settings: KafkaSettings
) -> None:
    ka, kb = "key-of-shop-a-0001", "key-of-shop-b-0002"
    named = {"shop-a": ka, "shop-b": f"{kb}\n"}  # a Secret read from a file ends in a newline
    app = build_app(readonly_database_url, kafka_settings, submit_api_keys="plain", submit_named_keys=named)
    review = {"text": "Arrived on time.", "review_id": "r1"}
    with TestClient(app) as client:
        missing = client.post("/sentiments/", json=review)
        as_a = client.post("/sentiments/", json=review, headers={"X-API-Key": ka})
        as_b = client.post("/sentiments/batch", json={"reviews": [review]}, headers={"Authorization": f"Bearer {kb}"})
        plain = client.post("/sentiments/", json=review, headers={"X-API-Key": "plain"})

    assert missing.status_code == 401  # named keys alone make a key required
    assert as_a.json()["review_key"] == "api:shop-a:r1"
    assert as_b.json()["items"][0]["review_key"] == "api:shop-b:r1"
    assert plain.json()["review_key"] == "user:r1"
    sources = sorted(json.loads(value)["source"] for _, value in read_topic(kafka_settings, 3))
    assert sources == ["api:shop-a", "api:shop-b", "user"]


@pytest.mark.parametrize(
    "value",
    [
        '{"Shop": "s3cret-key-value-0001"}',
        '{"a:b": "s3cret-key-value-0001"}',
        '{"": "s3cret-key-value-0001"}',
        '{"sha256": "s3cret-key-value-0001"}',
        '{"s3cret-key-value-0001": "shop-a"}',  # names and keys swapped: the "name" is the key
        '{"shop-a": "short"}',
        '["s3cret-key-value-0001"]',
        "s3cret-key-value-0001",
    ],
)
def test_named_keys_that_cannot_be_used_are_refused_without_echoing_a_key(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    from core.config import ApiSettings

    monkeypatch.setenv("API_SUBMIT_NAMED_KEYS", value)
    with pytest.raises(ValidationError) as refused:
        ApiSettings()
    assert "s3cret-key-value" not in str(refused.value)


@pytest.mark.parametrize("blank", ["", "  ", "{}"])
def test_blank_named_keys_are_none(blank: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import ApiSettings

    monkeypatch.setenv("API_SUBMIT_NAMED_KEYS", blank)  # compose passes ${API_SUBMIT_NAMED_KEYS:-}
    assert ApiSettings().submit_named_keys == {}


def test_one_key_for_two_producers_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from core.config import ApiSettings

    monkeypatch.setenv("API_SUBMIT_API_KEYS", "shared-key-000000001")
    monkeypatch.setenv("API_SUBMIT_NAMED_KEYS", '{"shop-a": "shared-key-000000001"}')
    with pytest.raises(ValidationError, match="more than once") as refused:
        ApiSettings()
    assert "shared-key" not in str(refused.value)


class _Refusing:
    """A broker that takes nothing: every publish fails after the API took its tokens."""

    async def publish(self, message: object) -> None:
        from query_api.publisher import PublishError

        raise PublishError("broker down")

    def close(self) -> None:
        pass

    def ping(self, timeout: float = 2.0) -> str:
        return "down"


def test_reviews_the_broker_did_not_take_cost_the_client_nothing(readonly_database_url: str) -> None:
    """A client retrying through a broker outage was throttled for a minute after it, for nothing sent."""
    with TestClient(build_app(readonly_database_url, submit_rate_per_minute=3)) as client:
        body = {"reviews": [{"text": "one"}, {"text": "two"}, {"text": "three"}]}
        no_broker = [client.post("/sentiments/batch", json=body), client.post("/sentiments/", json={"text": "four"})]
        client.app.state.reviewscore.publisher = _Refusing()  # type: ignore[attr-defined]
        refused = [client.post("/sentiments/batch", json=body), client.post("/sentiments/", json={"text": "five"})]

    assert [(r.status_code, r.json()["error"]["code"]) for r in no_broker + refused] == [
        (503, "broker_unavailable")
    ] * 4


def test_submissions_refused_before_routing_are_counted_under_their_route(readonly_database_url: str) -> None:
    """A 401 or a 413 is answered before routing: they were counted under `unmatched`."""
    with TestClient(build_app(readonly_database_url, submit_api_keys="k" * 20, max_body_bytes=1024)) as client:
        assert client.post("/sentiments/", json={"text": "hi"}).status_code == 401
        big = client.post("/sentiments/", json={"text": "x" * 2000}, headers={"X-API-Key": "k" * 20})
        assert big.status_code == 413
        assert client.get("/no/such/page").status_code == 404
        metrics = client.get("/metrics").text

    for status in ("401", "413"):
        assert f'reviewscore_api_requests_total{{method="POST",route="/sentiments/",status="{status}"}} 1.0' in metrics
    assert 'reviewscore_api_requests_total{method="GET",route="unmatched",status="404"} 1.0' in metrics
