"""Read endpoints over ``sentiments``: list, stats, brands, export, one row."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import AfterValidator
from sqlalchemy import Row
from starlette.convertors import StringConvertor, register_url_convertor

from core.config.api import PAGE_LIMIT_BOUND
from core.iso_time import IsoDateTime
from query_api import trends
from query_api.cursor import SORTS, Cursor, CursorError, Sort, decode_cursor, encode_cursor, is_time_sort
from query_api.deps import StateDep, engine_of, read
from query_api.errors import ApiError, FieldError, responses
from query_api.export import (
    MEDIA_TYPES,
    ExportFormat,
    ExportResponse,
    NotAcceptableError,
    export_chunks,
    negotiate_format,
)
from query_api.filters import Filters, FiltersDep, as_utc, refuse_nul
from query_api.queries import (
    BY_ID,
    Bucket,
    GroupBy,
    TimeField,
    TrendOrder,
    brands_statement,
    export_statement,
    list_query,
    next_utc_midnight,
    stats_query,
    trend_windows,
    trends_statement,
)
from query_api.schemas import (
    BrandList,
    BrandOut,
    BrandTrend,
    ModelResponse,
    Page,
    RowsResponse,
    SentimentOut,
    Stats,
    Trends,
)

router = APIRouter(tags=["sentiments"])


class _RowIdConvertor(StringConvertor):
    """Any path segment but ``batch``: that one is ``POST /sentiments/batch``'s, so a GET there is
    a 405 naming POST (and ``Allow`` says so), not an id that fails to parse. Every other segment
    reaches the route, where a non-integer is the documented 422."""

    regex = "(?!batch$)[^/]+"


register_url_convertor("row_id", _RowIdConvertor())

MAX_ID = 2**63 - 1

SortQuery = Annotated[
    Literal["newest", "oldest", "score_desc", "score_asc", "score"],
    Query(
        description=(
            "Order of the walk: `newest` / `oldest` by scoring time, `score_desc` (or `score`) / "
            "`score_asc` by sentiment_score; ties are broken by id so the order is total."
        ),
        examples=list(SORTS),
    ),
]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=512,
        description="`next_cursor` of the previous page; it only continues the same sort and filters.",
        examples=["eyJ2IjoxLCJzIjoibmV3ZXN0Ii..."],
    ),
]
LimitQuery = Annotated[
    int | None,
    Query(ge=1, le=PAGE_LIMIT_BOUND, description="Rows per page (default 50, at most 500).", examples=[50]),
]


def _limit_over(maximum: int) -> ApiError:
    """A limit over a maximum the settings lowered, located like the schema's own refusals."""
    most = f"limit must be at most {maximum}"
    return ApiError(
        422, "invalid_request", most, [FieldError(loc=["query", "limit"], msg=most, type="less_than_equal")]
    )


def _page_limit(state: StateDep, limit: int | None) -> int:
    chosen = limit or state.api.page_limit_default
    if chosen > state.api.page_limit_max:
        raise _limit_over(state.api.page_limit_max)
    return chosen


def _cursor_after(row: Row[Any], sort: Sort, filters_digest: str) -> str:
    key = row.created_on if is_time_sort(sort) else row.sentiment_score
    return encode_cursor(Cursor(sort, key, row.id, filters_digest))


@router.get("/sentiments/", response_model=Page, responses=responses(400, 422, 503), summary="List scored reviews")
async def list_sentiments(
    state: StateDep,
    filters: FiltersDep,
    sort: SortQuery = "newest",
    cursor: CursorQuery = None,
    limit: LimitQuery = None,
) -> Response:
    """One page of reviews matching the filters; follow `next_cursor` for the next page."""
    sort = "score_desc" if sort == "score" else sort  # the seed's name: highest first
    size = _page_limit(state, limit)
    digest = filters.digest()
    try:
        after = decode_cursor(cursor, sort, digest) if cursor else None
    except CursorError as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from exc
    statement, params = list_query(filters, sort, after, size)

    def page(rows: Sequence[Row[Any]]) -> Response:
        more = len(rows) > size
        rows = rows[:size]
        next_cursor = _cursor_after(rows[-1], sort, digest) if more else None
        # Dicts zipped with names read once (Row._asdict looks its names up again for every row),
        # rendered as they are: see RowsResponse.
        names = rows[0]._fields if rows else ()
        items = [dict(zip(names, row, strict=True)) for row in rows]
        return RowsResponse({"items": items, "next_cursor": next_cursor, "limit": size})

    # First pages only: the dashboard and every analyst open those, while a cursor is one
    # client's walk, asked for once (kept, such pages would push the aggregates out).
    key = None if cursor else ("list", filters, sort, size)
    return await read(state, lambda connection: connection.execute(statement, params).all(), page, key)


@router.get("/sentiments/stats", response_model=Stats, responses=responses(400, 422, 503), summary="Aggregate scores")
async def sentiment_stats(
    state: StateDep,
    filters: FiltersDep,
    group_by: Annotated[
        GroupBy | None,
        Query(
            description=(
                "Group rows by this column (none: one group); `rating` groups by the producer's stars, "
                "so the mean score per star shows how far the text and the stars agree."
            ),
            examples=["brand"],
        ),
    ] = None,
    bucket: Annotated[
        Bucket | None,
        Query(description="Time bucket, truncated in UTC; weeks start on Monday (none: one bucket).", examples=["day"]),
    ] = None,
    time_field: Annotated[
        TimeField,
        Query(
            description=(
                "Timestamp the buckets are cut from: `created_on` (when scored) or `published_at` "
                "(when written; rows without it are left out). since/until filter created_on; "
                "published_since/published_until filter published_at."
            ),
            examples=["created_on"],
        ),
    ] = "created_on",
) -> Response:
    """Count, mean score and label distribution per (bucket, group)."""
    statement, params = stats_query(filters, group_by, bucket, time_field, state.api.stats_max_rows)

    def stats(rows: Sequence[Row[Any]]) -> Response:
        if len(rows) > state.api.stats_max_rows:
            raise ApiError(
                400,
                "too_many_rows",
                f"more than {state.api.stats_max_rows} rows: use a coarser bucket or narrower filters",
            )
        return _stats_answer(rows, group_by, bucket, time_field)

    key = ("stats", filters, group_by, bucket, time_field)
    return await read(state, lambda connection: connection.execute(statement, params).all(), stats, key)


def _stats_answer(
    rows: Sequence[Row[Any]], group_by: GroupBy | None, bucket: Bucket | None, time_field: TimeField
) -> Response:
    # Plain values rendered by orjson (RowsResponse), no models: for a year of days, building the
    # models row by row cost 6.8 ms here, validating these values in one pass 1.4 ms, and rendering
    # the models 0.8 ms more. Both statements select (bucket, group, n, mean_score, negative,
    # neutral, positive) in that order.
    out = [
        {
            "bucket": None if moment is None else moment.astimezone(UTC),
            "group": group,
            "count": n,
            "mean_score": float(mean),
            "labels": {"negative": negative, "neutral": neutral, "positive": positive},
        }
        for moment, group, n, mean, negative, neutral, positive in map(tuple, rows)
    ]
    total = sum(r["count"] for r in out)
    body = {"group_by": group_by, "bucket": bucket, "time_field": time_field, "total": total, "rows": out}
    return RowsResponse(body)


@router.get("/brands", response_model=list[BrandOut], responses=responses(422, 503), summary="Brands")
async def list_brands(
    state: StateDep,
    filters: FiltersDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most brands returned.", examples=[100])] = 100,
    name_contains: Annotated[
        str | None,
        Query(
            max_length=256,
            description=(
                "Only brands whose name contains this text (case-insensitive; `%` and `_` match themselves; "
                "surrounding spaces are ignored, and a blank value filters nothing)."
            ),
            examples=["acme"],
        ),
        AfterValidator(refuse_nul),
    ] = None,
) -> Response:
    """Brands with their review counts and mean score, most reviewed first."""
    statement = brands_statement(filters, limit, name_contains)

    def brands(rows: Sequence[Row[Any]]) -> ModelResponse:
        return ModelResponse(
            BrandList([BrandOut(brand=row.brand, count=row.n, mean_score=float(row.mean_score)) for row in rows])
        )

    key = ("brands", filters, limit, name_contains)
    return await read(state, lambda connection: connection.execute(statement).all(), brands, key)


_TIME_RANGES = ("since", "until", "published_since", "published_until")


def _refuse_time_ranges(filters: Filters) -> None:
    """The trend windows are the time range; a second one would silently cut a window short."""
    problems = [
        FieldError(loc=["query", name], msg="the windows are set by end and days", type="extra_forbidden")
        for name in _TIME_RANGES
        if getattr(filters, name) is not None
    ]
    if problems:
        raise ApiError(422, "invalid_request", "trends take end and days, not a time range", problems)


@router.get(
    "/brands/trends", response_model=Trends, responses=responses(422, 503), summary="Brands whose sentiment moved"
)
async def brand_trends(
    state: StateDep,
    filters: FiltersDep,
    days: Annotated[
        int,
        Query(
            ge=1,
            le=366,
            description="Length of each window in days: the current one against the one before.",
            examples=[7],
        ),
    ] = 7,
    end: Annotated[
        IsoDateTime | None,
        Query(
            description=(
                "End of the current window (exclusive; ISO-8601, naive = UTC). Default: the next UTC "
                "midnight, so today counts."
            ),
            examples=["2026-11-24T00:00:00Z"],
        ),
    ] = None,
    time_field: Annotated[
        TimeField,
        Query(
            description="Timestamp the windows cut: `created_on` (scored) or `published_at` (written).",
            examples=["published_at"],
        ),
    ] = "created_on",
    min_count: Annotated[
        int,
        Query(
            ge=1,
            le=1_000_000,
            description=(
                "Brands with fewer reviews than this in either window are left out (a mean of few moves by chance)."
            ),
            examples=[10],
        ),
    ] = 5,
    order: Annotated[
        TrendOrder,
        Query(description="`falling`: largest drops first; `rising`: largest rises first.", examples=["falling"]),
    ] = "falling",
    limit: Annotated[int, Query(ge=1, le=1000, description="Most brands returned.", examples=[20])] = 20,
) -> Response:
    """Brands whose mean score moved most between the last `days` days and the `days` before.

    The shared filters apply (source, label, stars, language, …) except the time ranges, which
    `end` and `days` replace. Brands without `min_count` reviews in both windows are left out.
    """
    _refuse_time_ranges(filters)
    anchor = as_utc(end, "end") or next_utc_midnight(datetime.now(UTC))
    try:
        windows = trend_windows(anchor, days)
    except OverflowError:
        problem = FieldError(loc=["query", "end"], msg="the windows would start before year 1", type="range")
        raise ApiError(422, "invalid_request", "end is too early for these days", [problem]) from None
    statement = trends_statement(filters, windows, time_field, min_count, order, limit)

    def answer(brands: list[BrandTrend]) -> ModelResponse:
        return ModelResponse(trends.answer(windows, days, time_field, min_count, order, brands))

    key = ("trends", filters, windows, time_field, min_count, order, limit)
    return await read(state, lambda connection: trends.brand_trends(connection.execute(statement)), answer, key)


@router.get(
    "/sentiments/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The matching rows, streamed in id order.",
            "content": {
                "text/csv": {"example": "id,review_key,sentence,...\n42,user:sha256:0c1f,Great fit,...\n"},
                "application/x-ndjson": {"example": '{"id": 42, "sentence": "Great fit", "...": "..."}\n'},
            },
        },
        **responses(406, 422, 503),
    },
    summary="Export as CSV or NDJSON",
)
def export_sentiments(
    state: StateDep,
    filters: FiltersDep,
    format: Annotated[
        ExportFormat | None,
        Query(
            description="`csv` or `ndjson`; overrides the Accept header. Default: from Accept, else csv.",
            examples=["ndjson"],
        ),
    ] = None,
    limit: Annotated[
        int | None, Query(ge=1, description="Export at most this many rows (default: all).", examples=[100000])
    ] = None,
    escape_formulas: Annotated[
        bool,
        Query(
            description=(
                "CSV only: put a `'` before text that starts with `=`, `+`, `-`, `@`, tab or CR, so a "
                "spreadsheet shows it instead of running it as a formula. `false` for byte-exact text."
            ),
            examples=[True],
        ),
    ] = True,
    accept: Annotated[
        str | None,
        Header(
            description="`text/csv` or `application/x-ndjson` (q-values honoured; 406 when neither).",
            examples=["application/x-ndjson"],
        ),
    ] = None,
) -> ExportResponse:
    """Every row matching the filters, streamed chunk by chunk (memory stays flat)."""
    if limit is not None and limit > state.api.export_max_rows:
        raise _limit_over(state.api.export_max_rows)
    try:
        fmt = negotiate_format(format, accept)
    except NotAcceptableError as exc:
        raise ApiError(406, "not_acceptable", str(exc), headers={"Vary": "Accept"}) from None  # as the 200s
    statement = export_statement(filters, limit)
    chunks = export_chunks(engine_of(state), statement, fmt, state.api.export_chunk_rows, escape_formulas)
    next(chunks)  # connect and send the statement now: a failure is still a proper error status
    extension = "csv" if fmt == "csv" else "ndjson"
    headers = {"Content-Disposition": f'attachment; filename="sentiments.{extension}"', "Vary": "Accept"}
    # ExportResponse, not StreamingResponse: the generator now holds a connection, and a client
    # that leaves early must not keep it checked out until garbage collection.
    return ExportResponse(chunks, media_type=MEDIA_TYPES[fmt], headers=headers)


@router.get(
    "/sentiments/{sentiment_id:row_id}",
    response_model=SentimentOut,
    responses=responses(404, 422, 503),
    summary="One review",
)
async def get_sentiment(
    state: StateDep,
    sentiment_id: Annotated[int, Path(ge=1, le=MAX_ID, description="Row id.", examples=[42])],
) -> Response:
    """One scored review by id; 404 `not_found` when there is none."""

    def one(row: Row[Any] | None) -> ModelResponse:
        if row is None:
            raise ApiError(404, "not_found", f"no sentiment with id {sentiment_id}")
        return ModelResponse(SentimentOut.model_validate(row))

    # Not cached: one index lookup already, and every id is its own key; a client walking the ids
    # would push the aggregates, which are asked for again and again, out of the cache.
    return await read(state, lambda connection: connection.execute(BY_ID, {"row_id": sentiment_id}).first(), one)
