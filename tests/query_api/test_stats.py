"""GET /sentiments/stats, /brands and the charts: the figures equal an independent Python computation."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from statistics import fmean
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.api import Seeded, build_app

pytestmark = pytest.mark.integration

Row = dict[str, Any]


def truncate(moment: datetime, bucket: str | None) -> datetime | None:
    if bucket is None:
        return None
    moment = moment.astimezone(UTC)
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if bucket == "day" else day - timedelta(days=day.weekday())


def expected_stats(
    rows: list[Row], group_by: str | None, bucket: str | None, time_field: str = "created_on"
) -> list[dict[str, Any]]:
    groups: dict[tuple[datetime | None, str | None], list[Row]] = defaultdict(list)
    for row in rows:
        if row[time_field] is None:
            continue
        group = row[group_by] if group_by else None
        groups[(truncate(row[time_field], bucket), None if group is None else str(group))].append(row)

    def order(key: tuple[datetime | None, str | None]) -> tuple[Any, ...]:
        moment, group = key
        return (moment is not None, moment or datetime.min.replace(tzinfo=UTC), group is not None, group or "")

    out = []
    for key in sorted(groups, key=order):
        members = groups[key]
        labels = Counter(r["label"] for r in members)
        out.append(
            {
                "bucket": key[0],
                "group": key[1],
                "count": len(members),
                "mean_score": fmean(r["sentiment_score"] for r in members),
                "labels": {name: labels.get(name, 0) for name in ("negative", "neutral", "positive")},
            }
        )
    return out


def normalise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**row, "bucket": datetime.fromisoformat(row["bucket"]) if row["bucket"] else None, "mean_score": None}
        for row in rows
    ]


def assert_same(served: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert normalise(served) == [{**row, "mean_score": None} for row in expected]
    for got, want in zip(served, expected, strict=True):
        assert got["mean_score"] == pytest.approx(want["mean_score"], rel=1e-9)


@pytest.mark.parametrize("bucket", [None, "hour", "day", "week"])
@pytest.mark.parametrize("group_by", [None, "brand", "source", "label", "rating"])
def test_stats_equal_a_python_computation(seeded_api: Seeded, group_by: str | None, bucket: str | None) -> None:
    params = {k: v for k, v in {"group_by": group_by, "bucket": bucket}.items() if v}
    body = seeded_api.client.get("/sentiments/stats", params=params).json()
    expected = expected_stats(seeded_api.rows, group_by, bucket)
    assert body["total"] == len(seeded_api.rows)
    assert (body["group_by"], body["bucket"], body["time_field"]) == (group_by, bucket, "created_on")
    assert_same(body["rows"], expected)


FILTERED: list[tuple[str, dict[str, Any], Callable[[Row], bool]]] = [
    ("brand", {"brand": "Acme"}, lambda r: r["brand"] == "Acme"),
    (
        "source and since",
        {"source": "user", "since": "2026-03-04T00:00:00Z"},
        lambda r: r["source"] == "user" and r["created_on"] >= datetime(2026, 3, 4, tzinfo=UTC),
    ),
    ("score range", {"min_score": 0.2, "max_score": 0.8}, lambda r: 0.2 <= r["sentiment_score"] <= 0.8),
    ("text", {"q": "delivery"}, lambda r: "delivery" in r["sentence"].split()),
    ("stars", {"min_rating": 2, "max_rating": 3}, lambda r: r["rating"] in (2, 3)),
    ("model version", {"model_version": "test-model-2"}, lambda r: r["model_version"] == "test-model-2"),
    (
        "publication range",
        {"published_since": "2026-01-20T00:00:00Z", "published_until": "2026-02-20T00:00:00Z"},
        lambda r: (
            r["published_at"] is not None
            and datetime(2026, 1, 20, tzinfo=UTC) <= r["published_at"] < datetime(2026, 2, 20, tzinfo=UTC)
        ),
    ),
]


@pytest.mark.parametrize(("params", "keep"), [f[1:] for f in FILTERED], ids=[f[0] for f in FILTERED])
def test_stats_apply_the_same_filters_as_the_list(
    seeded_api: Seeded, params: dict[str, Any], keep: Callable[[Row], bool]
) -> None:
    body = seeded_api.client.get("/sentiments/stats", params={**params, "group_by": "label", "bucket": "day"}).json()
    assert_same(body["rows"], expected_stats([r for r in seeded_api.rows if keep(r)], "label", "day"))


def test_stats_can_bucket_by_publication_time_leaving_out_rows_without_it(seeded_api: Seeded) -> None:
    params = {"group_by": "brand", "bucket": "week", "time_field": "published_at"}
    body = seeded_api.client.get("/sentiments/stats", params=params).json()
    expected = expected_stats(seeded_api.rows, "brand", "week", "published_at")
    assert body["total"] == sum(1 for r in seeded_api.rows if r["published_at"] is not None) < len(seeded_api.rows)
    assert_same(body["rows"], expected)


def test_a_publication_range_bounds_a_timeline_by_publication_time(seeded_api: Seeded) -> None:
    """What the dashboard asks for with "published" and a From/To: buckets of publication time,
    within the range (the since/until filters stay on scoring time)."""
    params = {
        "group_by": "label",
        "bucket": "day",
        "time_field": "published_at",
        "published_since": "2026-02-01T00:00:00Z",
        "published_until": "2026-02-15T00:00:00Z",
    }
    body = seeded_api.client.get("/sentiments/stats", params=params).json()
    kept = [
        r
        for r in seeded_api.rows
        if r["published_at"] is not None
        and datetime(2026, 2, 1, tzinfo=UTC) <= r["published_at"] < datetime(2026, 2, 15, tzinfo=UTC)
    ]
    assert kept
    assert len(kept) < len(seeded_api.rows)
    assert body["total"] == len(kept)
    assert_same(body["rows"], expected_stats(kept, "label", "day", "published_at"))
    assert {row["bucket"][:10] for row in body["rows"]} <= {f"2026-02-{d:02d}" for d in range(1, 15)}


def test_stats_over_nothing_are_empty(seeded_api: Seeded) -> None:
    body = seeded_api.client.get("/sentiments/stats", params={"brand": "Nobody"}).json()
    assert body["rows"] == []
    assert body["total"] == 0


def test_too_many_stats_rows_is_a_400_asking_for_a_coarser_bucket(seeded_api: Seeded) -> None:
    with TestClient(build_app(seeded_api.readonly_url, stats_max_rows=20)) as client:
        fine = client.get("/sentiments/stats", params={"bucket": "hour"})
        coarse = client.get("/sentiments/stats", params={"bucket": "week"})
        chart = client.get("/charts/timeline.svg", params={"bucket": "hour"})
    assert fine.status_code == chart.status_code == 400
    assert fine.json()["error"]["code"] == "too_many_rows"
    assert coarse.status_code == 200


def test_brands_list_counts_and_mean_scores(seeded_api: Seeded) -> None:
    body = seeded_api.client.get("/brands").json()
    by_brand: dict[str, list[float]] = defaultdict(list)
    for row in seeded_api.rows:
        if row["brand"] is not None:
            by_brand[row["brand"]].append(row["sentiment_score"])
    expected = sorted(by_brand.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    assert [b["brand"] for b in body] == [name for name, _ in expected]
    for served, (_, scores) in zip(body, expected, strict=True):
        assert served["count"] == len(scores)
        assert served["mean_score"] == pytest.approx(fmean(scores))


def test_brands_counted_by_publication_time_leave_out_reviews_outside_it(seeded_api: Seeded) -> None:
    since, until = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 20, tzinfo=UTC)
    params = {"published_since": since.isoformat(), "published_until": until.isoformat()}
    body = seeded_api.client.get("/brands", params=params).json()
    counts = Counter(
        r["brand"]
        for r in seeded_api.rows
        if r["brand"] is not None and r["published_at"] is not None and since <= r["published_at"] < until
    )
    assert {b["brand"]: b["count"] for b in body} == dict(counts)
    assert sum(counts.values()) < sum(1 for r in seeded_api.rows if r["brand"] is not None)


def test_brands_honour_filters_and_limit(seeded_api: Seeded) -> None:
    body = seeded_api.client.get("/brands", params={"label": "positive", "limit": 2}).json()
    positives = Counter(r["brand"] for r in seeded_api.rows if r["label"] == "positive" and r["brand"])
    assert len(body) == 2
    assert {b["brand"]: b["count"] for b in body}.items() <= positives.items()


def test_brands_can_be_searched_by_part_of_their_name_literally(seeded_api: Seeded) -> None:
    """The dashboard lists the top brands; a brand further down is found by typing part of it."""
    found = seeded_api.client.get("/brands", params={"name_contains": "LOBE"}).json()
    wildcard = seeded_api.client.get("/brands", params={"name_contains": "%"}).json()
    blank = seeded_api.client.get("/brands", params={"name_contains": "  "}).json()

    assert [b["brand"] for b in found] == ["Globex"]
    assert found[0]["count"] == sum(1 for r in seeded_api.rows if r["brand"] == "Globex")
    assert wildcard == []  # % is a character to find, not "anything"
    assert len(blank) == len({r["brand"] for r in seeded_api.rows if r["brand"]})


def test_the_timeline_chart_draws_one_bar_per_bucket_of_the_stats(seeded_api: Seeded) -> None:
    response = seeded_api.client.get("/charts/timeline.svg", params={"brand": "Globex", "bucket": "day"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    days = {truncate(r["created_on"], "day") for r in seeded_api.rows if r["brand"] == "Globex"}
    assert response.text.count('class="count"') == len(days)
    assert response.text.count('class="mean"') == len(days)
    assert "Globex" in response.text


def test_the_label_chart_shows_each_label_count(seeded_api: Seeded) -> None:
    response = seeded_api.client.get("/charts/labels.svg", params={"source": "cli"})
    counts = Counter(r["label"] for r in seeded_api.rows if r["source"] == "cli")
    for label in ("negative", "neutral", "positive"):
        assert re.search(rf">{counts[label]} \(\d+%\)<", response.text)
    empty = seeded_api.client.get("/charts/labels.svg", params={"brand": "Nobody"})
    assert empty.text.count(">0 (0%)<") == 3


def test_the_stars_chart_splits_each_star_rating_by_the_labels_read_in_the_text(seeded_api: Seeded) -> None:
    response = seeded_api.client.get("/charts/stars.svg", params={"brand": "Acme"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    rows = [r for r in seeded_api.rows if r["brand"] == "Acme"]
    tips = set(re.findall(r"<title>([^<]*\(\d+% of \d+\))</title>", response.text))
    expected = set()
    for stars in (1, 2, 3, 4, 5, None):
        rated = [r for r in rows if r["rating"] == stars]
        for label, count in Counter(r["label"] for r in rated).items():
            name = f"{stars}★" if stars else "none"
            expected.add(f"{name}: {count} {label} ({count / len(rated):.0%} of {len(rated)})")
    assert tips == expected
    assert "Acme" in response.text  # the subtitle names the filters
    empty = seeded_api.client.get("/charts/stars.svg", params={"brand": "Nobody"})
    assert "No reviews match these filters." in empty.text


def test_stats_by_star_rating_show_how_far_the_text_agrees_with_the_stars(seeded_api: Seeded) -> None:
    """One row per rating as text ("1"-"5"), unrated reviews as the null group, first."""
    body = seeded_api.client.get("/sentiments/stats", params={"group_by": "rating"}).json()
    assert body["group_by"] == "rating"
    assert [row["group"] for row in body["rows"]] == [None, "1", "2", "3", "4", "5"]
    assert_same(body["rows"], expected_stats(seeded_api.rows, "rating", None))


def test_stats_by_rating_over_whole_days_are_counted_from_the_rows_not_the_rollup(seeded_api: Seeded) -> None:
    """The daily rollup keeps no ratings: a whole-day range grouped by rating must still read the rows."""
    params = {"group_by": "rating", "bucket": "day", "since": "2026-03-03T00:00:00Z", "until": "2026-03-06T00:00:00Z"}
    body = seeded_api.client.get("/sentiments/stats", params=params).json()
    kept = [
        r
        for r in seeded_api.rows
        if datetime(2026, 3, 3, tzinfo=UTC) <= r["created_on"] < datetime(2026, 3, 6, tzinfo=UTC)
    ]
    assert_same(body["rows"], expected_stats(kept, "rating", "day"))
