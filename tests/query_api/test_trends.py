"""GET /brands/trends: which brands' sentiment moved between two windows, against a Python computation."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from statistics import fmean
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.dialects import postgresql

from query_api.filters import Filters
from query_api.queries import TimeField, Windows, trend_windows, trends_statement
from tests.fixtures.api import Seeded, build_app, insert_rows, label_for, make_row

pytestmark = pytest.mark.integration

Row = dict[str, Any]
WHOLE_DAYS_END = datetime(2026, 3, 7, tzinfo=UTC)  # the seeded rows are scored 2026-03-02 … 03-09


def expected_trends(
    rows: list[Row],
    end: datetime,
    days: int,
    *,
    time_field: str = "created_on",
    min_count: int = 1,
    keep: Callable[[Row], bool] = lambda _: True,
) -> dict[str, dict[str, Any]]:
    """Per brand with ``min_count`` rows in both windows: counts, means, negative shares, change."""
    middle, start = end - timedelta(days=days), end - timedelta(days=2 * days)
    windows: dict[str, dict[str, list[Row]]] = defaultdict(lambda: {"current": [], "previous": []})
    for row in rows:
        moment = row[time_field]
        if row["brand"] is None or moment is None or not keep(row) or not start <= moment < end:
            continue
        windows[row["brand"]]["current" if moment >= middle else "previous"].append(row)

    def figures(members: list[Row]) -> dict[str, Any]:
        return {
            "count": len(members),
            "mean_score": fmean(r["sentiment_score"] for r in members),
            "negative_share": sum(r["label"] == "negative" for r in members) / len(members),
        }

    out = {}
    for brand, split in windows.items():
        if min(len(split["current"]), len(split["previous"])) < min_count:
            continue
        now, before = figures(split["current"]), figures(split["previous"])
        out[brand] = {"current": now, "previous": before, "change": now["mean_score"] - before["mean_score"]}
    return out


def assert_trends(served: list[dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    assert {b["brand"] for b in served} == set(expected)
    for brand in served:
        want = expected[brand["brand"]]
        assert brand["change"] == pytest.approx(want["change"])
        for window in ("current", "previous"):
            assert brand[window]["count"] == want[window]["count"]
            assert brand[window]["mean_score"] == pytest.approx(want[window]["mean_score"])
            assert brand[window]["negative_share"] == pytest.approx(want[window]["negative_share"])
        shares = brand["current"]["negative_share"] - brand["previous"]["negative_share"]
        assert brand["negative_share_change"] == pytest.approx(shares)


@pytest.mark.parametrize(
    "end",
    [WHOLE_DAYS_END, WHOLE_DAYS_END + timedelta(hours=13, minutes=5)],
    ids=["whole-days-from-the-rollup", "part-days-from-the-rows"],
)
def test_trends_compare_each_brand_across_two_windows_as_python_does(seeded_api: Seeded, end: datetime) -> None:
    body = seeded_api.client.get("/brands/trends", params={"end": end.isoformat(), "days": 2, "min_count": 1}).json()

    expected = expected_trends(seeded_api.rows, end, 2)
    assert len(expected) == 3  # every brand has reviews in both windows: the comparison is not vacuous
    assert_trends(body["brands"], expected)
    windows = [datetime.fromisoformat(body[w][edge]) for w in ("previous", "current") for edge in ("since", "until")]
    assert windows == [end - timedelta(days=4), end - timedelta(days=2), end - timedelta(days=2), end]
    assert [b["change"] for b in body["brands"]] == sorted(b["change"] for b in body["brands"])


def test_rising_lists_the_largest_rise_first_and_limit_keeps_the_top(seeded_api: Seeded) -> None:
    params = {"end": WHOLE_DAYS_END.isoformat(), "days": 2, "min_count": 1, "order": "rising"}
    rising = seeded_api.client.get("/brands/trends", params=params).json()["brands"]
    top = seeded_api.client.get("/brands/trends", params={**params, "limit": 1}).json()["brands"]

    expected = expected_trends(seeded_api.rows, WHOLE_DAYS_END, 2)
    assert [b["brand"] for b in rising] == sorted(expected, key=lambda name: -expected[name]["change"])
    assert top == rising[:1]


def test_brands_with_too_few_reviews_in_either_window_are_left_out(seeded_api: Seeded) -> None:
    counts = expected_trends(seeded_api.rows, WHOLE_DAYS_END, 2)
    smallest = min(min(b["current"]["count"], b["previous"]["count"]) for b in counts.values())
    params = {"end": WHOLE_DAYS_END.isoformat(), "days": 2, "min_count": smallest + 1}

    body = seeded_api.client.get("/brands/trends", params=params).json()

    assert_trends(body["brands"], expected_trends(seeded_api.rows, WHOLE_DAYS_END, 2, min_count=smallest + 1))
    assert len(body["brands"]) < len(counts)
    assert body["min_count"] == smallest + 1


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"source": "user"}, lambda r: r["source"] == "user"),
        ({"label": "negative"}, lambda r: r["label"] == "negative"),
        ({"lang": "en"}, lambda r: r["lang"].startswith("en")),
        ({"min_rating": 4}, lambda r: r["rating"] is not None and r["rating"] >= 4),
    ],
    ids=["source-from-the-daily-rollup", "label-from-the-daily-rollup", "lang-from-the-rows", "stars-from-the-rows"],
)
def test_trends_apply_the_shared_filters(
    seeded_api: Seeded, params: dict[str, Any], keep: Callable[[Row], bool]
) -> None:
    query = {"end": WHOLE_DAYS_END.isoformat(), "days": 2, "min_count": 1, **params}
    body = seeded_api.client.get("/brands/trends", params=query).json()
    assert_trends(body["brands"], expected_trends(seeded_api.rows, WHOLE_DAYS_END, 2, keep=keep))


def test_trends_by_publication_time_leave_out_reviews_without_one(seeded_api: Seeded) -> None:
    end = datetime(2026, 2, 15, tzinfo=UTC)  # publication times spread over the 60 days before 03-02
    params = {"end": end.isoformat(), "days": 10, "min_count": 1, "time_field": "published_at"}
    body = seeded_api.client.get("/brands/trends", params=params).json()

    expected = expected_trends(seeded_api.rows, end, 10, time_field="published_at")
    assert expected
    assert_trends(body["brands"], expected)
    assert body["time_field"] == "published_at"


def test_the_default_windows_end_at_the_next_utc_midnight(seeded_api: Seeded) -> None:
    body = seeded_api.client.get("/brands/trends").json()
    until = datetime.fromisoformat(body["current"]["until"])
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert until in (today + timedelta(days=1), today + timedelta(days=2))  # a run across midnight
    assert (body["days"], body["min_count"], body["order"]) == (7, 5, "falling")
    assert body["brands"] == []  # the seeded reviews are months old


@pytest.mark.parametrize("name", ["since", "until", "published_since", "published_until"])
def test_a_time_range_filter_is_refused_naming_end_and_days(seeded_api: Seeded, name: str) -> None:
    response = seeded_api.client.get("/brands/trends", params={name: "2026-03-01T00:00:00Z"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"][0]["loc"] == ["query", name]
    assert "end and days" in error["details"][0]["msg"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"end": "0001-01-05T00:00:00Z", "days": 7}, "end"),
        ({"days": 0}, "days"),
        ({"days": 367}, "days"),
        ({"min_count": 0}, "min_count"),
        ({"order": "sideways"}, "order"),
        ({"end": "20261124"}, "end"),
    ],
)
def test_bad_trend_parameters_are_a_422_naming_the_parameter(
    seeded_api: Seeded, params: dict[str, Any], field: str
) -> None:
    response = seeded_api.client.get("/brands/trends", params=params)
    assert response.status_code == 422
    assert [d["loc"][-1] for d in response.json()["error"]["details"]] == [field]


def rollup_read(filters: Filters, windows: Windows, time_field: TimeField = "created_on") -> str | None:
    """The rollup the trends statement reads, or None for the rows."""
    statement = trends_statement(filters, windows, time_field, 5, "falling", 9)
    sql = str(statement.compile(dialect=postgresql.dialect()))
    return next((table for table in ("sentiment_brand_daily", "sentiment_daily") if table in sql), None)


def test_whole_days_of_scoring_time_read_a_rollup_and_anything_else_the_rows() -> None:
    whole = trend_windows(WHOLE_DAYS_END, 7)
    part = trend_windows(WHOLE_DAYS_END + timedelta(hours=1), 7)

    assert rollup_read(Filters(), whole) == "sentiment_brand_daily"
    assert rollup_read(Filters(brand="Acme"), whole) == "sentiment_brand_daily"
    assert rollup_read(Filters(source="user"), whole) == "sentiment_daily"  # only it keeps sources apart
    assert rollup_read(Filters(label="negative"), whole) == "sentiment_daily"
    assert rollup_read(Filters(), part) is None
    assert rollup_read(Filters(), whole, "published_at") is None
    assert rollup_read(Filters(q="refund"), whole) is None


def test_tied_brands_rank_alike_from_the_rollup_and_from_the_rows(
    database_url: str, readonly_database_url: str
) -> None:
    """Both fall by 0.3 exactly; float sums made the rows path say -0.30000000000000004 and -0.29999999999999993."""
    rng = random.Random(1)
    day = datetime(2026, 3, 9, 12, tzinfo=UTC)
    plan = {"Alpha": ([0.5], [0.1, 0.2, 0.3]), "Beta": ([0.5], [0.15, 0.15, 0.3])}
    rows = [
        make_row(0, rng, brand=brand, sentiment_score=score, label=label_for(score), created_on=moment)
        for brand, windows in plan.items()
        for moment, scores in zip((day - timedelta(days=1), day), windows, strict=True)
        for score in scores
    ]
    for i, row in enumerate(rows):
        row["review_key"] = f"tie-{i}"
    insert_rows(database_url, rows)
    params = {"end": "2026-03-10T00:00:00Z", "days": 1, "min_count": 1}
    with TestClient(build_app(readonly_database_url)) as client:
        rollup = client.get("/brands/trends", params=params).json()["brands"]
        scanned = client.get("/brands/trends", params={**params, "min_score": 0}).json()["brands"]

    assert [(b["brand"], b["change"]) for b in rollup] == [
        ("Alpha", pytest.approx(-0.3)),
        ("Beta", pytest.approx(-0.3)),
    ]
    assert [(b["brand"], b["change"]) for b in scanned] == [(b["brand"], b["change"]) for b in rollup]
