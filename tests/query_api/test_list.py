"""GET /sentiments/ and /sentiments/{id}: every filter and sort against the seeded rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.api import Seeded, build_app

pytestmark = pytest.mark.integration

Row = dict[str, Any]


def walk(seeded: Seeded, params: dict[str, Any], limit: int = 37) -> list[Row]:
    """Follow next_cursor to the end; returns every item in the order served."""
    items: list[Row] = []
    cursor = None
    for _ in range(1000):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = seeded.client.get("/sentiments/", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the walk did not end")


def ids(rows: list[Row]) -> list[int]:
    return [row["id"] for row in rows]


def newest_first(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r["created_on"], r["id"]), reverse=True)


FILTERS: list[tuple[str, dict[str, Any], Callable[[Row], bool]]] = [
    ("brand", {"brand": "Acme"}, lambda r: r["brand"] == "Acme"),
    ("source", {"source": "scraper:trustpilot"}, lambda r: r["source"] == "scraper:trustpilot"),
    ("label", {"label": "neutral"}, lambda r: r["label"] == "neutral"),
    ("min_score", {"min_score": 0.7}, lambda r: r["sentiment_score"] >= 0.7),
    ("max_score", {"max_score": 0.25}, lambda r: r["sentiment_score"] <= 0.25),
    (
        "score range",
        {"min_score": 0.3, "max_score": 0.6},
        lambda r: 0.3 <= r["sentiment_score"] <= 0.6,
    ),
    (
        "since",
        {"since": "2026-03-05T00:00:00Z"},
        lambda r: r["created_on"] >= datetime.fromisoformat("2026-03-05T00:00:00+00:00"),
    ),
    (
        "until",
        {"until": "2026-03-04T12:00:00+00:00"},
        lambda r: r["created_on"] < datetime.fromisoformat("2026-03-04T12:00:00+00:00"),
    ),
    (
        "naive since is UTC",
        {"since": "2026-03-05T06:00:00"},
        lambda r: r["created_on"] >= datetime.fromisoformat("2026-03-05T06:00:00+00:00"),
    ),
    (
        "published range",
        {"published_since": "2026-01-15T00:00:00Z", "published_until": "2026-02-10T00:00:00Z"},
        lambda r: (
            r["published_at"] is not None
            and datetime.fromisoformat("2026-01-15T00:00:00+00:00")
            <= r["published_at"]
            < datetime.fromisoformat("2026-02-10T00:00:00+00:00")
        ),
    ),
    (
        "published_since leaves out rows without a publication time",
        {"published_since": "2000-01-01"},
        lambda r: r["published_at"] is not None,
    ),
    ("min_rating", {"min_rating": 4}, lambda r: r["rating"] is not None and r["rating"] >= 4),
    ("max_rating", {"max_rating": 1}, lambda r: r["rating"] == 1),
    (
        "stars that disagree with the text",
        {"min_rating": 4, "label": "negative"},
        lambda r: r["rating"] is not None and r["rating"] >= 4 and r["label"] == "negative",
    ),
    ("model_version", {"model_version": "test-model-2"}, lambda r: r["model_version"] == "test-model-2"),
    ("a language of any region", {"lang": "EN"}, lambda r: r["lang"] in ("en", "en-GB")),
    ("a language's one region", {"lang": "en-gb"}, lambda r: r["lang"] == "en-GB"),
    ("another language", {"lang": "fr"}, lambda r: r["lang"] == "fr"),
    ("q one word", {"q": "refund"}, lambda r: "refund" in r["sentence"].split()),
    ("q stemmed", {"q": "refunds"}, lambda r: "refund" in r["sentence"].split()),
    (
        "q excluding",
        {"q": "refund -awful"},
        lambda r: "refund" in r["sentence"].split() and "awful" not in r["sentence"].split(),
    ),
    (
        "everything",
        {"brand": "Globex", "label": "positive", "min_score": 0.6, "since": "2026-03-03T00:00:00Z", "q": "great"},
        lambda r: (
            r["brand"] == "Globex"
            and r["label"] == "positive"
            and r["sentiment_score"] >= 0.6
            and r["created_on"] >= datetime.fromisoformat("2026-03-03T00:00:00+00:00")
            and "great" in r["sentence"].split()
        ),
    ),
]


@pytest.mark.parametrize(("params", "keep"), [f[1:] for f in FILTERS], ids=[f[0] for f in FILTERS])
def test_each_filter_returns_exactly_the_matching_rows_newest_first(
    seeded_api: Seeded, params: dict[str, Any], keep: Callable[[Row], bool]
) -> None:
    expected = newest_first([r for r in seeded_api.rows if keep(r)])
    assert expected, "the seed should exercise this filter"
    assert ids(walk(seeded_api, params)) == ids(expected)


@pytest.mark.parametrize(
    ("sort", "key", "reverse"),
    [
        ("newest", lambda r: (r["created_on"], r["id"]), True),
        ("oldest", lambda r: (r["created_on"], r["id"]), False),
        ("score_desc", lambda r: (r["sentiment_score"], r["id"]), True),
        ("score_asc", lambda r: (r["sentiment_score"], r["id"]), False),
        ("score", lambda r: (r["sentiment_score"], r["id"]), True),  # the name: highest first
    ],
)
def test_each_sort_walks_every_row_once_in_order(
    seeded_api: Seeded, sort: str, key: Callable[[Row], Any], reverse: bool
) -> None:
    expected = sorted(seeded_api.rows, key=key, reverse=reverse)
    assert ids(walk(seeded_api, {"sort": sort}, limit=23)) == ids(expected)


def test_sort_combines_with_filters(seeded_api: Seeded) -> None:
    expected = sorted(
        (r for r in seeded_api.rows if r["brand"] == "Initech"), key=lambda r: (r["sentiment_score"], r["id"])
    )
    assert ids(walk(seeded_api, {"brand": "Initech", "sort": "score_asc"}, limit=10)) == ids(expected)


def test_items_carry_the_seed_api_fields(seeded_api: Seeded) -> None:
    item = seeded_api.client.get("/sentiments/", params={"limit": 1}).json()["items"][0]
    row = next(r for r in seeded_api.rows if r["id"] == item["id"])
    for field in ("sentence", "sentiment_score", "confidence", "label", "suggested_rating", "brand", "source"):
        assert item[field] == row[field]
    assert datetime.fromisoformat(item["created_on"]) == row["created_on"]
    assert {"id", "created_on", "updated_on", "model_version", "published_at", "url", "rating"} <= item.keys()
    assert "author" not in item
    assert "kafka_offset" not in item


def test_default_page_size_is_50_and_the_maximum_500(seeded_api: Seeded) -> None:
    assert len(seeded_api.client.get("/sentiments/").json()["items"]) == 50
    assert len(seeded_api.client.get("/sentiments/", params={"limit": 500}).json()["items"]) == 300
    too_big = seeded_api.client.get("/sentiments/", params={"limit": 501})
    assert too_big.status_code == 422
    assert too_big.json()["error"]["details"][0]["loc"] == ["query", "limit"]


def test_the_last_page_has_no_cursor(seeded_api: Seeded) -> None:
    body = seeded_api.client.get("/sentiments/", params={"limit": 300}).json()
    assert len(body["items"]) == 300
    assert body["next_cursor"] is None


def test_an_empty_result_is_an_empty_page(seeded_api: Seeded) -> None:
    body = seeded_api.client.get("/sentiments/", params={"brand": "Nobody"}).json()
    assert body == {"items": [], "next_cursor": None, "limit": 50}


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "eyJ2Ijo5fQ", "W10", "eyJ2IjoxLCJzIjoibmV3ZXN0IiwiayI6MSwiaSI6MSwiZiI6IngifQ", "%%%", "ab"],
)
def test_a_malformed_cursor_is_a_400(seeded_api: Seeded, cursor: str) -> None:
    response = seeded_api.client.get("/sentiments/", params={"cursor": cursor})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


def test_a_cursor_does_not_continue_another_sort_or_other_filters(seeded_api: Seeded) -> None:
    cursor = seeded_api.client.get("/sentiments/", params={"limit": 5, "brand": "Acme"}).json()["next_cursor"]
    other_sort = seeded_api.client.get("/sentiments/", params={"cursor": cursor, "brand": "Acme", "sort": "oldest"})
    other_filter = seeded_api.client.get("/sentiments/", params={"cursor": cursor, "brand": "Globex"})
    assert other_sort.status_code == other_filter.status_code == 400
    assert "sort" in other_sort.json()["error"]["message"]
    assert "filters" in other_filter.json()["error"]["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_score": 0.8, "max_score": 0.2}, "min_score"),
        ({"since": "2026-03-05T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "since"),
        ({"min_score": 1.5}, "min_score"),
        ({"label": "happy"}, "label"),
        ({"sort": "random"}, "sort"),
        ({"since": "yesterday"}, "since"),
        ({"published_until": "last week"}, "published_until"),
        ({"min_rating": 0}, "min_rating"),
        ({"max_rating": 6}, "max_rating"),
        ({"min_rating": "four"}, "min_rating"),
        ({"min_rating": 5, "max_rating": 2}, "min_rating"),
        ({"model_version": "x" * 201}, "model_version"),
        ({"lang": "english please"}, "lang"),
        ({"lang": "e%"}, "lang"),
        ({"published_since": "2026-02-01T00:00:00Z", "published_until": "2026-01-01T00:00:00Z"}, "published_since"),
        ({"limit": 0}, "limit"),
        ({"q": "x" * 201}, "q"),
        ({"brand": "bad\x00brand"}, "brand"),
    ],
)
def test_invalid_parameters_are_a_422_naming_the_parameter(
    seeded_api: Seeded, params: dict[str, Any], field: str
) -> None:
    response = seeded_api.client.get("/sentiments/", params=params)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [field] == [d["loc"][-1] for d in error["details"]][:1]


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"since": "2026-03-05T25:00"}, "hour must be in 0..23"),
        ({"until": "2026-03-05T00:00:00+99:00"}, "the UTC offset must be less than 24 hours"),
        ({"since": "1700000000"}, "must be an ISO-8601 date-time"),
        ({"min_score": "nan"}, "finite number"),
        ({"since": "2026-W44"}, "valid datetime"),  # pydantic's forms only: no week dates, bare hours
        ({"since": "2026-11-01T00"}, "valid datetime"),
    ],
)
def test_a_bad_time_or_score_is_refused_saying_what_is_wrong_with_it(
    seeded_api: Seeded, params: dict[str, Any], said: str
) -> None:
    """A wrong hour or offset read "unexpected extra characters at the end of the input"; NaN
    read "should be less than or equal to 1"."""
    response = seeded_api.client.get("/sentiments/", params=params)

    assert response.status_code == 422
    assert said in response.json()["error"]["details"][0]["msg"]


@pytest.mark.parametrize("path", ["/sentiments/", "/sentiments/stats", "/brands", "/sentiments/export"])
def test_a_filter_given_twice_is_a_422_not_a_silent_choice_of_the_last(seeded_api: Seeded, path: str) -> None:
    response = seeded_api.client.get(path, params=[("brand", "Acme"), ("brand", "Initech"), ("label", "negative")])
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [(d["loc"], d["type"]) for d in error["details"]] == [(["query", "brand"], "repeated")]


@pytest.mark.parametrize(
    ("path", "typo"),
    [
        ("/sentiments/", "brnad"),
        ("/sentiments/stats", "days"),
        ("/brands", "brnad"),
        ("/sentiments/export", "sort"),
        ("/brands/trends", "day"),
        ("/charts/timeline.svg", "group_by"),
        ("/sentiments/by-key/user:1", "limit"),
    ],
)
def test_a_parameter_the_endpoint_does_not_take_is_a_422_naming_what_it_takes(
    seeded_api: Seeded, path: str, typo: str
) -> None:
    """``?brnad=Acme`` answered every brand's rows, as if nothing had been asked."""
    response = seeded_api.client.get(path, params={typo: "5"})

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert [(d["loc"], d["type"]) for d in error["details"]] == [(["query", typo], "unknown")]
    assert f"not a parameter of {path.replace('user:1', '{review_key}')}" in error["details"][0]["msg"]
    assert "takes" in error["message"]


def test_the_page_and_the_probes_ignore_parameters_they_do_not_take(seeded_api: Seeded) -> None:
    for path in ("/", "/healthz", "/metrics"):
        response = seeded_api.client.get(path, params=[("utm_source", "mail"), ("utm_source", "again")])
        assert response.status_code == 200, (path, response.text)


def test_a_limit_over_a_lowered_maximum_names_the_parameter_like_any_other_422(seeded_api: Seeded) -> None:
    with TestClient(
        build_app(seeded_api.readonly_url, page_limit_max=10, page_limit_default=10, export_max_rows=20)
    ) as client:
        answers = [client.get("/sentiments/", params={"limit": 11}), client.get("/sentiments/export?limit=21")]

    for answer in answers:
        assert answer.status_code == 422
        [detail] = answer.json()["error"]["details"]
        assert (detail["loc"], detail["type"]) == (["query", "limit"], "less_than_equal")
        assert "limit must be at most" in detail["msg"]


def test_one_row_by_id(seeded_api: Seeded) -> None:
    row = seeded_api.rows[17]
    body = seeded_api.client.get(f"/sentiments/{row['id']}").json()
    assert body["id"] == row["id"]
    assert body["sentence"] == row["sentence"]
    assert body["review_key"] == row["review_key"]


@pytest.mark.parametrize("row_id", ["999999", "9223372036854775807"])
def test_a_missing_id_is_a_typed_404(seeded_api: Seeded, row_id: str) -> None:
    response = seeded_api.client.get(f"/sentiments/{row_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("row_id", ["0", "-1", "abc", "9223372036854775808", "1.5"])
def test_an_impossible_id_is_a_422(seeded_api: Seeded, row_id: str) -> None:
    response = seeded_api.client.get(f"/sentiments/{row_id}")
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["path", "sentiment_id"]
