"""Request and response bodies. Field names follow the seed API plus what analysts need."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, RootModel, StringConstraints
from starlette.responses import Response

from core.config.api import SUBMIT_BATCH_BOUND
from core.iso_time import IsoDateTime
from core.messages import MAX_TEXT_CHARS

_SENTIMENT_EXAMPLE: dict[str, JsonValue] = {
    "id": 42,
    "review_key": "scraper:trustpilot:5f2a9c",
    "sentence": "Delivery was fast and the support team solved my problem in minutes.",
    "sentiment_score": 0.93,
    "confidence": 0.88,
    "label": "positive",
    "suggested_rating": 5,
    "brand": "Acme",
    "source": "scraper:trustpilot",
    "rating": 5,
    "url": "https://www.trustpilot.com/reviews/5f2a9c",
    "lang": "en",
    "published_at": "2026-11-20T14:03:00Z",
    "model_version": "minilm-3c-20261122",
    "created_on": "2026-11-23T09:15:02.123456Z",
    "updated_on": None,
}


class SentimentOut(BaseModel):
    """One scored review as stored in ``sentiments`` (Kafka provenance and author left out)."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_SENTIMENT_EXAMPLE]})

    id: int = Field(description="Row id.")
    review_key: str = Field(description="Idempotency key: `source:review_id` or `source:sha256:<hash>`.")
    sentence: str = Field(description="The review text.")
    sentiment_score: float = Field(ge=0, le=1, description="Expected positivity in [0, 1].")
    confidence: float = Field(ge=0, le=1, description="Calibrated probability of `label`.")
    label: Literal["negative", "neutral", "positive"] = Field(description="Predicted label.")
    suggested_rating: int = Field(ge=1, le=5, description="The score mapped onto 1-5 stars.")
    brand: str | None = Field(description="Brand the review is about.")
    source: str = Field(description="Producer of the review.")
    rating: int | None = Field(description="Stars given by the author, when known.")
    url: str | None = Field(description="Where the review was published.")
    lang: str | None = Field(description="Language tag of the text.")
    published_at: datetime | None = Field(description="When the review was published.")
    model_version: str = Field(description="Model that produced the score.")
    created_on: datetime = Field(description="When the row was first scored.")
    updated_on: datetime | None = Field(
        description="When the row last changed: a newer model rescored it, or its review was edited."
    )


class Page(BaseModel):
    """One page of a keyset walk; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[SentimentOut]
    next_cursor: str | None = Field(description="Opaque cursor of the next page; null on the last page.")
    limit: int = Field(description="Page size used.")


class LabelCounts(BaseModel):
    negative: int = 0
    neutral: int = 0
    positive: int = 0


class StatsRow(BaseModel):
    bucket: datetime | None = Field(description="Start of the time bucket (UTC); null without bucketing.")
    group: str | None = Field(
        description=(
            'Value of the group_by column (a rating as text, "1"-"5"); null without grouping, '
            "or for reviews with no brand or no rating."
        )
    )
    count: int = Field(description="Reviews in this bucket and group.")
    mean_score: float = Field(description="Mean sentiment_score.")
    labels: LabelCounts = Field(description="Reviews per predicted label.")


class Stats(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "group_by": "brand",
                    "bucket": "day",
                    "time_field": "created_on",
                    "total": 12,
                    "rows": [
                        {
                            "bucket": "2026-11-23T00:00:00Z",
                            "group": "Acme",
                            "count": 12,
                            "mean_score": 0.71,
                            "labels": {"negative": 2, "neutral": 1, "positive": 9},
                        }
                    ],
                }
            ]
        }
    )

    group_by: Literal["brand", "source", "label", "rating"] | None
    bucket: Literal["hour", "day", "week"] | None
    time_field: Literal["created_on", "published_at"]
    total: int = Field(description="Reviews counted over all rows.")
    rows: list[StatsRow] = Field(description="Ordered by bucket, then group.")


class BrandOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"brand": "Acme", "count": 1234, "mean_score": 0.64}]})

    brand: str
    count: int = Field(description="Reviews of this brand matching the filters.")
    mean_score: float = Field(description="Their mean sentiment_score.")


BrandList = RootModel[list[BrandOut]]


class Window(BaseModel):
    since: datetime = Field(description="Start of the window (inclusive, UTC).")
    until: datetime = Field(description="End of the window (exclusive, UTC).")


class WindowFigures(BaseModel):
    count: int = Field(description="Reviews of the brand in the window matching the filters.")
    mean_score: float = Field(description="Their mean sentiment_score.")
    negative_share: float = Field(description="The share of them labelled negative, 0-1.")


class BrandTrend(BaseModel):
    brand: str
    change: float = Field(description="current.mean_score minus previous.mean_score: below 0, the brand fell.")
    negative_share_change: float = Field(description="current.negative_share minus previous.negative_share.")
    current: WindowFigures
    previous: WindowFigures


class Trends(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "time_field": "created_on",
                    "days": 7,
                    "min_count": 10,
                    "order": "falling",
                    "current": {"since": "2026-11-17T00:00:00Z", "until": "2026-11-24T00:00:00Z"},
                    "previous": {"since": "2026-11-10T00:00:00Z", "until": "2026-11-17T00:00:00Z"},
                    "brands": [
                        {
                            "brand": "Acme",
                            "change": -0.18,
                            "negative_share_change": 0.21,
                            "current": {"count": 48, "mean_score": 0.49, "negative_share": 0.42},
                            "previous": {"count": 51, "mean_score": 0.67, "negative_share": 0.21},
                        }
                    ],
                }
            ]
        }
    )

    time_field: Literal["created_on", "published_at"]
    days: int = Field(description="Length of each window in days.")
    min_count: int = Field(description="Brands with fewer reviews than this in either window are left out.")
    order: Literal["falling", "rising"]
    current: Window
    previous: Window = Field(description="The window of the same length just before the current one.")
    brands: list[BrandTrend] = Field(
        description="Largest drop of the mean score first (`falling`) or largest rise first (`rising`)."
    )


class ModelResponse(Response):
    """A response model rendered to JSON by pydantic-core in one pass.

    A route that returns the model itself has FastAPI dump it to a dict, validate that dict
    against the response model again and ``json.dumps`` the result: 2.3 ms for a page of 50
    rows here against 0.5 ms for this, and 7.1 against 3.2 ms for a year of daily stats. The
    models are built from database rows already, so the second validation checks nothing new;
    the routes keep ``response_model`` for the OpenAPI schema.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if not isinstance(content, BaseModel):
            raise TypeError(f"ModelResponse renders pydantic models, not {type(content).__name__}")
        return content.__pydantic_serializer__.to_json(content)


class RowsResponse(Response):
    """Database rows (as dicts of plain values) rendered to JSON by orjson, no models built.

    A page of 50 rows cost 0.09 ms to validate into ``SentimentOut`` models and 0.08 ms to
    render, against 0.03 ms for orjson to render the dicts, bytes for bytes the same
    (``tests/query_api/test_rendering.py`` pins that for the values a row can hold). The rows
    come from columns whose types and CHECK constraints say what the models would check, so
    building the models per request checked nothing; the routes keep ``response_model`` for the
    OpenAPI schema.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z)


ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]


class SubmitReview(BaseModel):
    """A review typed by a user; it is published to Kafka with ``source=user`` and scored there."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "text": "The jacket arrived a day early and fits perfectly.",
                    "brand": "Acme",
                    "rating": 5,
                    "lang": "en",
                }
            ]
        },
    )

    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)] = Field(
        description="The review text (not empty after stripping whitespace)."
    )
    brand: ShortText | None = Field(default=None, description="Brand or company the review is about.")
    rating: Annotated[int, Field(ge=1, le=5, strict=True)] | None = Field(
        default=None, description="The author's own 1-5 stars."
    )
    url: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None, description="Absolute http(s) URL of the review, if it lives somewhere."
    )
    author: ShortText | None = Field(default=None, description="Name to show with the review.")
    review_id: ShortText | None = Field(
        default=None, description="Your own stable id: re-submitting with it updates one row instead of adding one."
    )
    published_at: IsoDateTime | None = Field(default=None, description="When it was written (ISO-8601).")
    lang: Annotated[str, StringConstraints(max_length=35)] | None = Field(
        default=None, description="BCP-47 language tag, e.g. `en`."
    )


class Submitted(BaseModel):
    """Answer to a submission: ``pending`` until the worker has scored it, then ``scored``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "review_key": "user:sha256:0c1f2e3d4c5b6a79881726354453627a",
                    "status": "pending",
                    "location": (
                        "/sentiments/by-key/user:sha256:0c1f2e3d4c5b6a79881726354453627a"
                        "?after=2026-12-03T09:40:00.000000Z&version=3f1c9a0b7d2e4f61"
                    ),
                    "sentiment": None,
                }
            ]
        }
    )

    review_key: str = Field(description="Key of the row the review will land in.")
    status: Literal["pending", "scored"]
    location: str = Field(description="Where to GET the scored row.")
    sentiment: SentimentOut | None = Field(description="The scored row when `status` is `scored`.")


def _at_most_the_batch_bound(value: object) -> object:
    if isinstance(value, list) and len(value) > SUBMIT_BATCH_BOUND:
        raise ValueError(f"at most {SUBMIT_BATCH_BOUND} reviews in one batch, got {len(value)}")
    return value


class SubmitBatch(BaseModel):
    """Up to API_SUBMIT_BATCH_MAX reviews in one request, each as ``POST /sentiments/`` takes one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reviews": [
                        {"text": "Arrived early, fits perfectly.", "brand": "Acme", "rating": 5, "review_id": "a-1"},
                        {"text": "The zip broke in a week.", "brand": "Acme", "rating": 2, "review_id": "a-2"},
                    ]
                }
            ]
        },
    )

    # The length is checked before any item is: 140,000 tiny items in a 280 kB body took 4 s and
    # answered 20 MB of errors. Not a maxItems in the schema: a client's bound is the setting
    # (API_SUBMIT_BATCH_MAX, checked by the route), and generated bodies near a 1,000-item
    # maxItems run past the body limit (413) rather than meeting the schema's bound.
    reviews: Annotated[list[SubmitReview], BeforeValidator(_at_most_the_batch_bound)] = Field(
        min_length=1,
        description=(
            "The reviews, each as the body of `POST /sentiments/`; at most API_SUBMIT_BATCH_MAX (500 by default), "
            "and the body at most API_MAX_BODY_BYTES."
        ),
    )


class BatchItem(BaseModel):
    index: int = Field(description="Position of the review in `reviews`, from 0.")
    status: Literal["pending", "failed"] = Field(
        description="`pending`: the broker has it and the worker will score it; `failed`: not confirmed, send it again."
    )
    review_key: str = Field(description="Key of the row it will land in.")
    location: str | None = Field(default=None, description="Where to GET the scored row (`pending` only).")
    error: str | None = Field(default=None, description="Why the broker did not confirm it (`failed` only).")


class BatchSubmitted(BaseModel):
    """Answer to a batch: one item per review, in the order sent."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "accepted": 2,
                    "failed": 0,
                    "items": [
                        {
                            "index": 0,
                            "status": "pending",
                            "review_key": "user:a-1",
                            "location": (
                                "/sentiments/by-key/user:a-1?after=2026-12-03T09:40:00.000000Z&version=3f1c9a0b7d2e4f61"
                            ),
                            "error": None,
                        },
                        {
                            "index": 1,
                            "status": "pending",
                            "review_key": "user:a-2",
                            "location": (
                                "/sentiments/by-key/user:a-2?after=2026-12-03T09:40:00.000000Z&version=9b04d2c7e1a85f36"
                            ),
                            "error": None,
                        },
                    ],
                }
            ]
        }
    )

    accepted: int = Field(description="Reviews the broker confirmed.")
    failed: int = Field(description="Reviews the broker did not confirm: send them again (their keys make it safe).")
    items: list[BatchItem]


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok", "checks": {"database": "ok"}}]})

    status: Literal["ok"]
    checks: dict[str, str] = Field(default_factory=dict, description="Result of each dependency check.")
