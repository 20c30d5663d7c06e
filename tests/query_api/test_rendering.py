"""List pages and stats answers are rendered from plain values by orjson (``RowsResponse``), not
through their models; the bytes must be those the models render, for any value a row holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from query_api.queries import PUBLIC_FIELDS, Bucket, GroupBy, TimeField
from query_api.routes.sentiments import _stats_answer
from query_api.schemas import LabelCounts, ModelResponse, Page, RowsResponse, SentimentOut, Stats, StatsRow

# What PostgreSQL text can hold: any character but NUL, no lone surrogates.
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
unit = st.floats(min_value=0, max_value=1, allow_nan=False)
# psycopg2 hands timestamptz over as timezone(timedelta(0)) in a UTC session; either way UTC.
moments = st.builds(
    lambda moment, zone: moment.replace(tzinfo=zone),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.sampled_from([UTC, timezone(timedelta(0))]),
)
rows = st.fixed_dictionaries(
    {
        "id": st.integers(min_value=1, max_value=2**63 - 1),
        "review_key": texts,
        "sentence": texts,
        "sentiment_score": unit,
        "confidence": unit,
        "label": st.sampled_from(["negative", "neutral", "positive"]),
        "suggested_rating": st.integers(1, 5),
        "brand": st.none() | texts,
        "source": texts,
        "rating": st.none() | st.integers(1, 5),
        "url": st.none() | texts,
        "lang": st.none() | texts,
        "published_at": st.none() | moments,
        "model_version": texts,
        "created_on": moments,
        "updated_on": st.none() | moments,
    }
)


def as_selected(row: dict[str, Any]) -> dict[str, Any]:
    """The dict the list route builds: the page query's columns, in their order."""
    return {name: row[name] for name in PUBLIC_FIELDS}


def test_the_page_query_selects_the_models_fields_in_the_models_order() -> None:
    # The rendered keys come in the query's order now, no longer the model's.
    assert tuple(SentimentOut.model_fields) == PUBLIC_FIELDS


@settings(max_examples=400, deadline=None)
@given(st.lists(rows, max_size=5), st.none() | texts, st.integers(1, 500))
def test_a_page_of_rows_renders_as_its_models_render(
    items: list[dict[str, Any]], cursor: str | None, limit: int
) -> None:
    models = Page(items=[SentimentOut.model_validate(item) for item in items], next_cursor=cursor, limit=limit)
    selected = [as_selected(item) for item in items]
    rendered = RowsResponse({"items": selected, "next_cursor": cursor, "limit": limit}).body
    assert rendered == ModelResponse(models).body


@given(rows)
def test_the_scores_edge_values_render_alike(row: dict[str, Any]) -> None:
    for score in (0.0, 1.0, 5e-324, 1e-7, 1e-5, 0.1 + 0.2, 0.9999999999999999, 1 / 3):
        item = as_selected({**row, "sentiment_score": score, "confidence": 1 - score})
        model = Page(items=[SentimentOut.model_validate(item)], next_cursor=None, limit=1)
        assert RowsResponse({"items": [item], "next_cursor": None, "limit": 1}).body == ModelResponse(model).body


# As both stats statements select them: (bucket, group, n, mean_score, negative, neutral, positive).
# Counts up to 2**60, so five rows' total still fits the 64 bits orjson renders.
stats_rows = st.tuples(
    st.none() | moments,
    st.none() | texts,
    st.integers(0, 2**60),
    unit.map(lambda mean: Decimal(repr(mean))),
    st.integers(0, 2**60),
    st.integers(0, 2**60),
    st.integers(0, 2**60),
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([None, "brand", "source", "label", "rating"]),
    st.sampled_from([None, "hour", "day", "week"]),
    st.sampled_from(["created_on", "published_at"]),
    st.lists(stats_rows, max_size=5),
)
def test_a_stats_answer_renders_as_its_model_renders(
    group_by: GroupBy | None, bucket: Bucket | None, time_field: TimeField, rows: list[tuple[Any, ...]]
) -> None:
    model = Stats(
        group_by=group_by,
        bucket=bucket,
        time_field=time_field,
        total=sum(row[2] for row in rows),
        rows=[
            StatsRow(
                bucket=moment,
                group=group,
                count=n,
                mean_score=float(mean),
                labels=LabelCounts(negative=negative, neutral=neutral, positive=positive),
            )
            for moment, group, n, mean, negative, neutral, positive in rows
        ],
    )
    assert _stats_answer(rows, group_by, bucket, time_field).body == ModelResponse(model).body  # type: ignore[arg-type]
