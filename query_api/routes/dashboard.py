"""The analysts' dashboard: a static page, its script, and the two SVG charts it shows."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Row
from starlette.types import Scope

from core.schema import LABELS
from query_api.charts import Point, StarRow, labels_svg, stars_svg, timeline_svg
from query_api.deps import StateDep, read
from query_api.errors import ApiError, responses
from query_api.filters import Filters, FiltersDep
from query_api.queries import Bucket, TimeField, stats_query

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SVG = "image/svg+xml"
# Revalidate on every load (the ETag makes that a 304): after a deploy, a browser must not pair
# a heuristically cached old script with the new page or API.
REVALIDATE = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["dashboard"])


def _svg_response(body: str) -> Response:
    return Response(body, media_type=SVG, headers={"Cache-Control": "no-store"})


def describe_filters(filters: Filters) -> str:
    """What the chart counts, as its title says it: the brand, then source, label, search and dates applied."""
    parts = [filters.brand if filters.brand is not None else "all brands"]
    if filters.source:
        parts.append(filters.source)
    if filters.label:
        parts.append(filters.label)
    if stars := _stars(filters.min_rating, filters.max_rating):
        parts.append(stars)
    if filters.model_version:
        parts.append(f"model {filters.model_version}")
    if filters.lang:
        parts.append(f"lang {filters.lang}")
    if filters.q:
        parts.append(f"“{filters.q}”")
    for name, since, until in (
        ("scored", filters.since, filters.until),
        ("published", filters.published_since, filters.published_until),
    ):
        if span := _span(since, until):
            parts.append(f"{name} {span}")
    return " · ".join(parts)


def _stars(low: int | None, high: int | None) -> str | None:
    """The reviewer's stars as a reader says them: "4–5★", "5★", "≥ 4★", "≤ 2★"."""
    if low is None and high is None:
        return None
    if low is None:
        return f"≤ {high}★"
    if high is None:
        return f"≥ {low}★"
    return f"{low}★" if low == high else f"{low}–{high}★"


def _span(since: datetime | None, until: datetime | None) -> str | None:
    """A range as a reader says it: whole UTC days as dates with the last day included
    (``until`` is exclusive), other moments to the minute."""

    def moment(t: datetime) -> str:
        t = t.astimezone(UTC)
        return t.date().isoformat() if t.time() == time(0) else t.strftime("%Y-%m-%d %H:%M UTC")

    def last(t: datetime) -> str:
        t = t.astimezone(UTC)
        return (t - timedelta(days=1)).date().isoformat() if t.time() == time(0) else moment(t)

    if since is None:
        return None if until is None else f"until {last(until)}"
    if until is None:
        return f"since {moment(since)}"
    return f"{moment(since)} – {last(until)}" if until > since else "(an empty range)"


# The page runs its own script file only: no inline script or event attribute, whatever markup
# might reach the page (the charts are imported as SVG nodes), and it cannot be framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@router.get("/", include_in_schema=False)
def dashboard() -> FileResponse:
    headers = {**REVALIDATE, "Content-Security-Policy": CONTENT_SECURITY_POLICY}
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=headers)


SWAGGER_UI = "static/vendor/swagger_ui"  # relative: under a root_path the page finds them too


@router.get("/docs", include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI from this app's own static files: FastAPI's default page loads its script from
    jsDelivr, and was blank wherever that cannot be reached (the embedded demo's machines)."""
    return get_swagger_ui_html(
        openapi_url=f"{request.scope.get('root_path', '')}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
    )


class DashboardAssets(StaticFiles):
    """The page's script and stylesheet, revalidated like the page itself."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(REVALIDATE)
        return response


@router.get(
    "/charts/timeline.svg",
    response_class=Response,
    responses={200: {"content": {SVG: {"example": "<svg ...>...</svg>"}}}, **responses(400, 422, 503)},
    summary="Sentiment-over-time chart",
)
async def timeline_chart(
    state: StateDep,
    filters: FiltersDep,
    bucket: Annotated[Bucket, Query(description="Time bucket of each bar.", examples=["day"])] = "day",
    time_field: Annotated[
        TimeField, Query(description="Timestamp the buckets are cut from.", examples=["created_on"])
    ] = "created_on",
) -> Response:
    """Mean sentiment per bucket over the review counts, as SVG."""
    statement, params = stats_query(filters, None, bucket, time_field, state.api.stats_max_rows)

    def chart(rows: Sequence[Row[Any]]) -> Response:
        if len(rows) > state.api.stats_max_rows:
            raise ApiError(400, "too_many_rows", "too many buckets: use a coarser bucket or narrower filters")
        points = [Point(row.bucket, row.n, float(row.mean_score)) for row in rows]
        return _svg_response(
            timeline_svg(points, f"Mean sentiment per {bucket}", bucket, subtitle=describe_filters(filters))
        )

    key = ("timeline", filters, bucket, time_field)
    return await read(state, lambda connection: connection.execute(statement, params).all(), chart, key)


# The charts that count reviews (no time axis) count what the timeline counts for the same view.
CountedTimeField = Annotated[
    TimeField,
    Query(
        description="published_at: only reviews with a publication time, as the timeline counts them then.",
        examples=["created_on"],
    ),
]


def _label_counts(row: Row[Any]) -> dict[str, int]:
    """A stats row's count per predicted label (its columns are named for the labels)."""
    return {label: getattr(row, label) for label in LABELS}


@router.get(
    "/charts/labels.svg",
    response_class=Response,
    responses={200: {"content": {SVG: {"example": "<svg ...>...</svg>"}}}, **responses(422, 503)},
    summary="Label distribution chart",
)
async def labels_chart(
    state: StateDep,
    filters: FiltersDep,
    time_field: CountedTimeField = "created_on",
) -> Response:
    """Reviews per predicted label, as SVG."""
    statement, params = stats_query(filters, None, None, time_field, 1)

    def chart(row: Row[Any] | None) -> Response:
        counts = _label_counts(row) if row is not None else dict.fromkeys(LABELS, 0)
        return _svg_response(labels_svg(counts, "Labels", subtitle=describe_filters(filters)))

    key = ("labels", filters, time_field)
    return await read(state, lambda connection: connection.execute(statement, params).first(), chart, key)


@router.get(
    "/charts/stars.svg",
    response_class=Response,
    responses={200: {"content": {SVG: {"example": "<svg ...>...</svg>"}}}, **responses(422, 503)},
    summary="Text against stars chart",
)
async def stars_chart(
    state: StateDep,
    filters: FiltersDep,
    time_field: CountedTimeField = "created_on",
) -> Response:
    """Per star rating the reviewers gave, the labels the model read in their text, as SVG."""
    statement, params = stats_query(filters, "rating", None, time_field, 6)

    def chart(rows: Sequence[Row[Any]]) -> Response:
        star_rows = [
            StarRow(
                int(row.group) if row.group is not None else None,
                _label_counts(row),
                float(row.mean_score),
            )
            for row in rows
        ]
        return _svg_response(stars_svg(star_rows, "Text against stars", subtitle=describe_filters(filters)))

    key = ("stars", filters, time_field)
    return await read(state, lambda connection: connection.execute(statement, params).all(), chart, key)
