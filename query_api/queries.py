"""The read queries, as pure statement builders (SQL first, Pydantic second).

Every statement is built from ``Filters`` and enumerated options only; values travel as bound
parameters. Each query is shaped for an index of the first migration: keyset pages walk
``(created_on, id)`` / ``(sentiment_score, id)`` (optionally behind an equality on brand,
source or label). Stats and brands read a rollup whenever the request can be answered from
whole UTC days of ``created_on`` by brand, source and label: the all-time totals (migration
0004) when there is no time range or bucket, else the brand-day rollup (0012) unless a source or
label filters or groups the answer, else the daily rollup (0003). Anything else
aggregates the rows, one brand's ``(brand, created_on)`` range through a covering index.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from functools import reduce
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Double,
    Numeric,
    Select,
    Table,
    Text,
    bindparam,
    cast,
    func,
    literal_column,
    not_,
    select,
    true,
    tuple_,
)

from core.schema import LABELS, Sentiment, rejected_reviews, sentiment_brand_daily, sentiment_daily, sentiment_totals
from query_api.cursor import Cursor, Sort, is_time_sort
from query_api.filters import Filters, bound_values, conditions

GroupBy = Literal["brand", "source", "label", "rating"]
Bucket = Literal["hour", "day", "week"]
TimeField = Literal["created_on", "published_at"]
TrendOrder = Literal["falling", "rising"]

# SQLAlchemy 2.1 types a Select by its column types; these builders return varying shapes.
Statement = Select[*tuple[Any, ...]]

PUBLIC_COLUMNS = (
    Sentiment.id,
    Sentiment.review_key,
    Sentiment.sentence,
    Sentiment.sentiment_score,
    Sentiment.confidence,
    Sentiment.label,
    Sentiment.suggested_rating,
    Sentiment.brand,
    Sentiment.source,
    Sentiment.rating,
    Sentiment.url,
    Sentiment.lang,
    Sentiment.published_at,
    Sentiment.model_version,
    Sentiment.created_on,
    Sentiment.updated_on,
)
PUBLIC_FIELDS = tuple(column.key for column in PUBLIC_COLUMNS)


def _where(filters: Filters) -> ColumnElement[bool]:
    terms = conditions(filters)
    if not terms:
        return true()
    combined = terms[0]
    for term in terms[1:]:
        combined = combined & term
    return combined


def sort_key(sort: Sort) -> ColumnElement[object]:
    return Sentiment.created_on if is_time_sort(sort) else Sentiment.sentiment_score  # type: ignore[return-value]


def list_statement(filters: Filters, sort: Sort, after: Cursor | None, limit: int) -> Statement:
    """One page, fetching ``limit + 1`` rows so the caller knows whether another page exists.

    Every value is a named bound parameter (see ``list_query``).
    """
    key = sort_key(sort)
    descending = sort in ("newest", "score_desc")
    stmt = select(*PUBLIC_COLUMNS).where(_where(filters))
    if after is not None:
        position = tuple_(key, Sentiment.id)
        bound = tuple_(bindparam("after_key", after.key, type_=key.type), bindparam("after_id", after.id))
        stmt = stmt.where(position < bound if descending else position > bound)
    order = (key.desc(), Sentiment.id.desc()) if descending else (key.asc(), Sentiment.id.asc())
    return stmt.order_by(*order).limit(bindparam("limit", limit + 1, type_=BigInteger))


SHAPES_KEPT = 256
"""Statements kept per kind of query. A client picks the shape (any subset of 14 filters, and
more), ~17 KiB each: a client walking them must not grow the process without bound."""


def _shared(kept: dict[Any, Statement], shape: Any, build: Callable[[], Statement]) -> Statement:
    """The statement kept for ``shape``, built and kept on first use; all dropped when full.

    Dropping them all beats an LRU's bookkeeping on every request: a client walking shapes costs
    a rebuild (~0.4 ms) of the few shapes real traffic uses, once per ``SHAPES_KEPT`` new ones.
    """
    statement = kept.get(shape)
    if statement is None:
        if len(kept) >= SHAPES_KEPT:
            kept.clear()
        statement = kept.setdefault(shape, build())
    return statement


_PAGES: dict[tuple[frozenset[str], Sort, bool], Statement] = {}


def list_query(filters: Filters, sort: Sort, after: Cursor | None, limit: int) -> tuple[Statement, dict[str, Any]]:
    """``list_statement`` built once per shape of request (which filters, sort, cursor or not),
    and the parameters of this request.

    Executing a statement object SQLAlchemy has seen before skips building the expression, its
    cache key and the result-map adaptation: 0.9 ms against 2.2 ms for a page here. Real traffic
    uses a few shapes; ``_shared`` bounds what a client asking for every one can make us keep.
    """
    values = bound_values(filters)
    values["limit"] = limit + 1
    if after is not None:
        values.update(after_key=after.key, after_id=after.id)
    shape = (frozenset(values), sort, after is not None)
    return _shared(_PAGES, shape, lambda: list_statement(filters, sort, after, limit)), values


# Built once: executing the same statement object with new parameters skips building the
# expression, its cache key and the result-map adaptation, about half of a lookup's CPU.
BY_ID: Statement = select(*PUBLIC_COLUMNS).where(Sentiment.id == bindparam("row_id"))
"""One row by id; execute with ``{"row_id": ...}``."""
BY_KEY: Statement = select(*PUBLIC_COLUMNS, Sentiment.kafka_timestamp.label("sent_at")).where(
    Sentiment.review_key == bindparam("review_key")
)
"""One row by review key, with when its message was sent; execute with ``{"review_key": ...}``."""
REJECTION_BY_KEY: Statement = select(
    rejected_reviews.c.reason, rejected_reviews.c.error, rejected_reviews.c.rejected_on
).where(rejected_reviews.c.review_key == bindparam("review_key"))
"""Why the worker dead-lettered a parsed review, by key; execute with ``{"review_key": ...}``."""


def _time_column(time_field: TimeField) -> ColumnElement[object]:
    return Sentiment.created_on if time_field == "created_on" else Sentiment.published_at  # type: ignore[return-value]


def _utc(moment: datetime) -> datetime:
    """Filters document a naive time as UTC."""
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment


def _whole_day(moment: datetime | None) -> bool:
    return moment is None or _utc(moment).time() == time(0)


# The filters a rollup row can answer; any other filter that applies sends the request to the rows,
# so a filter added later is never silently ignored by the rollup path.
_ROLLUP_FILTERS = frozenset({"brand", "source", "label", "since", "until"})
# The all-time totals also keep the reviewer's stars (migration 0010); the daily rollup does not.
_TOTALS_FILTERS = frozenset({"min_rating", "max_rating"})


def rollup_answers(
    filters: Filters, bucket: Bucket | None, time_field: TimeField, group_by: GroupBy | None = None
) -> bool:
    """Whether a rollup holds the answer: whole UTC days of created_on, rollup columns only; by
    star rating (a group or a filter), only the all-time totals, so no bucket and no time range."""
    applied = set(bound_values(filters))
    if not (
        time_field == "created_on"
        and bucket != "hour"
        and (_ROLLUP_FILTERS | _TOTALS_FILTERS).issuperset(applied)
        and _whole_day(filters.since)
        and _whole_day(filters.until)
    ):
        return False
    by_rating = group_by == "rating" or bool(applied & _TOTALS_FILTERS)
    return not by_rating or _rollup_table(filters, bucket, group_by) is sentiment_totals


def _rollup_table(filters: Filters, bucket: Bucket | None, group_by: GroupBy | None) -> Table:
    """The smallest rollup that holds the answer; only where ``rollup_answers`` holds.

    All-time totals where no day matters; where days do, the brand-day rollup (a row a day) unless
    a source or a label narrows or groups the answer, which only the daily rollup keeps apart.
    """
    if bucket is None and filters.since is None and filters.until is None:
        return sentiment_totals
    if filters.source is None and filters.label is None and group_by in (None, "brand"):
        return sentiment_brand_daily
    return sentiment_daily


def _reviews_of_row(rollup: Table) -> ColumnElement[Any]:
    """The reviews one rollup row counts: the brand-day rollup keeps them per label."""
    if rollup is sentiment_brand_daily:
        return reduce(operator.add, (rollup.c[label] for label in LABELS))
    return rollup.c.reviews


def _rollup_values(filters: Filters) -> dict[str, Any]:
    """The filters a rollup query binds, by the name of their parameter in ``_rollup_where``."""
    values = {name: getattr(filters, name) for name in _ROLLUP_BOUND if getattr(filters, name) is not None}
    if filters.since is not None:
        values["since_day"] = _utc(filters.since).date()
    if filters.until is not None:
        values["until_day"] = _utc(filters.until).date()
    return values


_ROLLUP_BOUND = ("brand", "source", "label", "min_rating", "max_rating")


def _rollup_where(filters: Filters, rollup: Table) -> list[ColumnElement[bool]]:
    """WHERE terms over a rollup; every value a bound parameter named as in ``_rollup_values``."""
    columns = rollup.c
    values = _rollup_values(filters)
    terms: list[ColumnElement[bool]] = [
        columns[name] == bindparam(name, values[name]) for name in ("brand", "source", "label") if name in values
    ]
    if "since_day" in values:
        terms.append(columns.day >= bindparam("since_day", values["since_day"]))
    if "until_day" in values:
        terms.append(columns.day < bindparam("until_day", values["until_day"]))
    if "min_rating" in values:  # the totals only (``rollup_answers``)
        terms.append(columns.rating >= bindparam("min_rating", values["min_rating"]))
    if "max_rating" in values:
        terms.append(columns.rating <= bindparam("max_rating", values["max_rating"]))
    return terms


def _order_by_bucket_then_group(stmt: Statement, max_rows: int) -> Statement:
    return stmt.order_by(literal_column("1").asc().nulls_first(), literal_column("2").asc().nulls_first()).limit(
        max_rows + 1
    )


def stats_statement(
    filters: Filters, group_by: GroupBy | None, bucket: Bucket | None, time_field: TimeField, max_rows: int
) -> Statement:
    """Count, mean score and per-label counts per (bucket, group), ordered by bucket then group.

    From the rollup when it holds the answer (``rollup_answers``), else from the rows.
    """
    if rollup_answers(filters, bucket, time_field, group_by):
        return rollup_stats_statement(filters, group_by, bucket, max_rows)
    return scan_stats_statement(filters, group_by, bucket, time_field, max_rows)


_STATS: dict[tuple[Any, ...], Statement] = {}


def stats_query(
    filters: Filters, group_by: GroupBy | None, bucket: Bucket | None, time_field: TimeField, max_rows: int
) -> tuple[Statement, dict[str, Any]]:
    """``stats_statement`` built once per shape of request, and the parameters of this request.

    As ``list_query`` does for pages: building the statement, its cache key and its compiled form
    cost 0.4 ms of a stats request's 2.8 ms here. The shape is whatever the SQL text depends on:
    rollup or rows (and which rollup), which filters apply, the grouping, bucket, time field and
    row bound; the values are bound parameters.
    """
    if rollup_answers(filters, bucket, time_field, group_by):
        values = _rollup_values(filters)
        shape: tuple[Any, ...] = ("rollup", _rollup_table(filters, bucket, group_by).name, frozenset(values))
    else:
        values = bound_values(filters)
        shape = ("rows", time_field, frozenset(values))
    shape += (group_by, bucket, max_rows)
    return _shared(_STATS, shape, lambda: stats_statement(filters, group_by, bucket, time_field, max_rows)), values


def rollup_stats_statement(
    filters: Filters, group_by: GroupBy | None, bucket: Bucket | None, max_rows: int
) -> Statement:
    """``stats_statement`` over a rollup; only valid where ``rollup_answers`` holds.

    Days become UTC midnights and weeks their Monday, the same instants ``date_trunc(…, 'UTC')``
    gives on the rows; the casts keep the session time zone out of it. With no bucket and no
    time range the all-time totals answer, a few rows per brand however long the history.
    """
    if bucket == "hour":
        raise ValueError("the rollup holds whole days; hourly stats aggregate the rows")
    table = _rollup_table(filters, bucket, group_by)
    rollup = table.c
    instant = {
        None: "NULL::timestamptz",
        "day": "(day::timestamp AT TIME ZONE 'UTC')",
        "week": "(date_trunc('week', day::timestamp) AT TIME ZONE 'UTC')",
    }[bucket]
    columns: list[ColumnElement[Any]] = [literal_column(instant, DateTime(timezone=True)).label("bucket")]
    group: ColumnElement[Any] = getattr(rollup, group_by) if group_by else literal_column("NULL::text")
    if group_by == "rating":  # as text, as the rows give it
        group = cast(group, Text)
    columns.append(group.label("group"))
    if table is sentiment_brand_daily and bucket == "day" and (filters.brand is not None or group_by == "brand"):
        # Each (brand, day) is one row of this rollup, so each group is a single row: read as
        # they are, a brand-year skips the aggregate (0.30 against 0.65 ms of PostgreSQL here).
        reviews_of_row = _reviews_of_row(table)
        exact = [reviews_of_row.label("n"), cast(rollup.score_sum / reviews_of_row, Double).label("mean_score")]
        rows = select(*columns, *exact, *(rollup[label] for label in LABELS)).where(*_rollup_where(filters, table))
        return _order_by_bucket_then_group(rows.where(reviews_of_row > 0), max_rows)
    if table is sentiment_brand_daily:  # the labels are its columns
        per_label = [func.sum(rollup[label]) for label in LABELS]
        reviews = reduce(operator.add, per_label)
        label_counts = [cast(total, BigInteger).label(label) for total, label in zip(per_label, LABELS, strict=True)]
    else:
        reviews = func.sum(rollup.reviews)
        label_counts = [
            cast(func.coalesce(reviews.filter(rollup.label == label), 0), BigInteger).label(label) for label in LABELS
        ]
    # The mean as float8, as avg() over the rows gives it: psycopg2 turns numeric into a Decimal
    # through Python, a third of the fetch's CPU for a year of days here. Cast in PostgreSQL, the
    # value is the same double float() of that Decimal gave (both round the same decimal once).
    mean = cast(func.sum(rollup.score_sum) / reviews, Double)
    aggregates = [cast(reviews, BigInteger).label("n"), mean.label("mean_score")]
    stmt: Statement = select(*columns, *aggregates, *label_counts).where(*_rollup_where(filters, table))
    # Grouping by the day column itself lets one brand's range come out of the index in day order.
    by_bucket: ColumnElement[Any] | None = None  # totals have no day column to name
    if bucket is not None:
        by_bucket = rollup.day if bucket == "day" else literal_column("1")
    by_group: ColumnElement[Any] | None = literal_column("2") if group_by else None
    grouping: list[ColumnElement[Any]] = [key for key in (by_bucket, by_group) if key is not None]
    # Groups can sum to zero reviews after deletes or re-labelling: they do not exist in the rows.
    return _order_by_bucket_then_group(stmt.group_by(*grouping).having(reviews > 0), max_rows)


def scan_stats_statement(
    filters: Filters, group_by: GroupBy | None, bucket: Bucket | None, time_field: TimeField, max_rows: int
) -> Statement:
    """``stats_statement`` aggregated from the rows: any filter, any bucket, either time field.

    Buckets are truncated in UTC whatever the session time zone; ``bucket`` is one of three
    literals, so rendering it into the SQL text is safe and lets GROUP BY repeat the expression.
    """
    columns: list[ColumnElement[object]] = []
    if bucket is not None:
        unit: ColumnElement[str] = literal_column(f"'{bucket}'")
        utc: ColumnElement[str] = literal_column("'UTC'")
        columns.append(func.date_trunc(unit, _time_column(time_field), utc).label("bucket"))
    else:
        columns.append(literal_column("NULL::timestamptz").label("bucket"))
    if group_by == "rating":  # as text, so every group reads alike ("4" for four stars)
        stars: ColumnElement[Any] = cast(Sentiment.rating, Text)
        columns.append(stars.label("group"))
    elif group_by is not None:
        columns.append(getattr(Sentiment, group_by).label("group"))
    else:
        columns.append(literal_column("NULL::text").label("group"))
    label_counts = [func.count().filter(Sentiment.label == label).label(label) for label in LABELS]
    aggregates = [func.count().label("n"), func.avg(Sentiment.sentiment_score).label("mean_score"), *label_counts]
    stmt: Statement = select(*columns, *aggregates).where(_where(filters))
    if time_field == "published_at":
        stmt = stmt.where(Sentiment.published_at.is_not(None))
    flags = ((1, bucket), (2, group_by))
    grouping: list[ColumnElement[Any]] = [literal_column(str(i)) for i, flag in flags if flag is not None]
    # Without GROUP BY an aggregate returns one row even over nothing; HAVING drops that row.
    stmt = stmt.group_by(*grouping) if grouping else stmt.having(func.count() > 0)
    return _order_by_bucket_then_group(stmt, max_rows)


def brands_statement(filters: Filters, limit: int, name_contains: str | None = None) -> Statement:
    """Brands with their review counts and mean score, most reviewed first.

    ``name_contains`` keeps brands whose name holds that text, case-insensitively and literally
    (``%`` and ``_`` are not wildcards): the dashboard's brand search, for brands past the top ones.
    """
    name = name_contains.strip() if name_contains else ""
    if rollup_answers(filters, None, "created_on"):
        rollup = _rollup_table(filters, None, "brand")
        reviews = func.sum(_reviews_of_row(rollup))
        mean_score = (func.sum(rollup.c.score_sum) / reviews).label("mean_score")
        named = [rollup.c.brand.icontains(name, autoescape=True)] if name else []
        return (
            select(rollup.c.brand, cast(reviews, BigInteger).label("n"), mean_score)
            .where(*_rollup_where(filters, rollup), rollup.c.brand.is_not(None), *named)
            .group_by(rollup.c.brand)
            .having(reviews > 0)
            .order_by(literal_column("n").desc(), rollup.c.brand.asc())
            .limit(limit)
        )
    count = func.count().label("n")
    named = [Sentiment.brand.icontains(name, autoescape=True)] if name else []
    return (
        select(Sentiment.brand, count, func.avg(Sentiment.sentiment_score).label("mean_score"))
        .where(_where(filters), Sentiment.brand.is_not(None), *named)
        .group_by(Sentiment.brand)
        .order_by(count.desc(), Sentiment.brand.asc())
        .limit(limit)
    )


@dataclass(frozen=True, slots=True)
class Windows:
    """Two adjacent windows of one length: the previous one is [start, middle), the current [middle, end)."""

    start: datetime
    middle: datetime
    end: datetime


def trend_windows(end: datetime, days: int) -> Windows:
    """The ``days`` before ``end`` and the ``days`` before those; OverflowError before year 1."""
    length = timedelta(days=days)
    return Windows(end - 2 * length, end - length, end)


def next_utc_midnight(now: datetime) -> datetime:
    """The default end of the trend windows: today counts, and whole days let the rollup answer."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=1)


def trends_statement(
    filters: Filters,
    windows: Windows,
    time_field: TimeField,
    min_count: int,
    order: TrendOrder,
    limit: int | None,
    fell_by: float | None = None,
) -> Statement:
    """Per brand, count, mean score and negatives in each window, with the change of the mean.

    Brands with fewer than ``min_count`` reviews in either window are left out: a mean over a
    handful of reviews moves by chance. ``falling`` lists the largest drops first, ties by name.
    ``fell_by`` keeps only the brands whose mean fell by that much or more, with a hair of slack (a
    fall shown as -0.05 must meet a drop of 0.05 whatever the last bits of the sums): an alert's
    threshold, so an alert reads every such brand without a limit. Whole UTC days
    of created_on with rollup filters only read a rollup (the brand-day one without a source or label
    filter); anything else the rows, through
    the time index. ``filters`` must leave every time range unset: the windows are the range.
    """
    if time_field == "created_on":
        ranged = replace(filters, since=windows.start, until=windows.end)
    else:
        ranged = replace(filters, published_since=windows.start, published_until=windows.end)
    if rollup_answers(ranged, "day", time_field) and _whole_day(windows.middle):
        table = _rollup_table(ranged, "day", "brand")
        daily = table.c
        brand: ColumnElement[Any] = daily.brand
        current: ColumnElement[bool] = daily.day >= _utc(windows.middle).date()
        where = [*_rollup_where(ranged, table), daily.brand.is_not(None)]

        if table is sentiment_brand_daily:  # the labels are its columns

            def reviews(condition: ColumnElement[bool], negative: bool = False) -> ColumnElement[Any]:
                counted = daily.negative if negative else _reviews_of_row(table)
                return cast(func.coalesce(func.sum(counted).filter(condition), 0), BigInteger)
        else:

            def reviews(condition: ColumnElement[bool], negative: bool = False) -> ColumnElement[Any]:
                counted = condition & (daily.label == "negative") if negative else condition
                return cast(func.coalesce(func.sum(daily.reviews).filter(counted), 0), BigInteger)

        def score_sum(condition: ColumnElement[bool]) -> ColumnElement[Any]:
            return func.sum(daily.score_sum).filter(condition)
    else:
        brand = Sentiment.brand  # type: ignore[assignment]
        current = _time_column(time_field) >= windows.middle
        where = [_where(ranged), Sentiment.brand.is_not(None)]

        def reviews(condition: ColumnElement[bool], negative: bool = False) -> ColumnElement[Any]:
            return func.count().filter(condition & (Sentiment.label == "negative") if negative else condition)

        def score_sum(condition: ColumnElement[bool]) -> ColumnElement[Any]:
            # In numeric, as the rollup sums: float sums made equal changes differ in the last
            # bit, so tied brands came out in another order (and across a limit) than there.
            return func.sum(cast(Sentiment.sentiment_score, Numeric)).filter(condition)

    previous = not_(current)
    n_now, n_before = reviews(current), reviews(previous)
    mean_now = score_sum(current) / func.nullif(n_now, 0)  # HAVING leaves no empty window; this is belt and braces
    mean_before = score_sum(previous) / func.nullif(n_before, 0)
    change = (mean_now - mean_before).label("change")
    columns = [
        brand.label("brand"),
        n_now.label("n_now"),
        mean_now.label("mean_now"),
        reviews(current, negative=True).label("negative_now"),
        n_before.label("n_before"),
        mean_before.label("mean_before"),
        reviews(previous, negative=True).label("negative_before"),
        change,
    ]
    first = change.asc() if order == "falling" else change.desc()
    having = [n_now >= min_count, n_before >= min_count]
    if fell_by is not None:
        having.append(change <= -fell_by + 1e-9)
    stmt = select(*columns).where(*where).group_by(brand).having(*having).order_by(first, brand.asc())
    return stmt.limit(limit) if limit is not None else stmt


def export_statement(filters: Filters, limit: int | None) -> Statement:
    """All matching rows in id order (stable, and what a downstream loader can resume from)."""
    stmt = select(*PUBLIC_COLUMNS).where(_where(filters)).order_by(Sentiment.id.asc())
    return stmt.limit(limit) if limit is not None else stmt
