"""The filters shared by list, stats, brands, export and the charts, as data and as SQL.

``Filters`` is a plain value; ``conditions()`` turns it into SQLAlchemy expressions with bound
parameters (so no text a client sends is ever spliced into SQL); ``filter_params`` declares and
documents the query parameters once for every endpoint, and ``read_filters`` is the dependency
that reads them.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_type_hints

from fastapi import Depends, Query, Request
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, ValidationError, create_model
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Float,
    Select,
    SmallInteger,
    String,
    bindparam,
    func,
    literal_column,
    or_,
    select,
)

from core.iso_time import IsoDateTime
from core.schema import SEARCH_CONFIG, Sentiment, sentiment_search
from query_api.errors import ApiError, FieldError

Label = Literal["negative", "neutral", "positive"]

# The configuration sentiment_search's documents were made with: a query parsed with another finds nothing.
_FTS_CONFIG: ColumnElement[str] = literal_column(f"'{SEARCH_CONFIG}'")


def refuse_nul(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; refuse it here instead of failing in the driver."""
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


@dataclass(frozen=True, slots=True)
class Filters:
    brand: str | None = None
    source: str | None = None
    label: Label | None = None
    min_score: float | None = None
    max_score: float | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None
    published_since: datetime | None = None
    published_until: datetime | None = None
    min_rating: int | None = None
    max_rating: int | None = None
    model_version: str | None = None
    lang: str | None = None

    def digest(self) -> str:
        """A short fingerprint, stored in cursors so a cursor is not replayed under other filters.

        Each release's filters are fingerprinted as that release did, up to the last one set: a
        cursor issued before an upgrade (or by a replica not yet upgraded) stays valid for the
        same request.
        """
        values = tuple(getattr(self, name) for name in _FILTER_NAMES)  # astuple deep-copied each value
        width = next(n for n in _RELEASED_WIDTHS if all(v is None for v in values[n:]))
        return hashlib.sha256(repr(values[:width]).encode()).hexdigest()[:12]


_FILTER_NAMES = tuple(field.name for field in fields(Filters))

# How many filters each release fingerprinted: brand … q; then the publication range; then the
# star ratings, the model version and the language. A new filter goes at the end, with a new width here.
_RELEASED_WIDTHS = (8, 10, 14)


def bound_values(filters: Filters) -> dict[str, Any]:
    """The filters that apply, by the name of their bound parameter in ``conditions``.

    A blank ``q`` does not apply. Two requests with the same keys build the same SQL, so a
    statement built once can run again with the other request's values (``queries.list_query``).
    """
    values = {name: getattr(filters, name) for name in _BOUND if getattr(filters, name) is not None}
    if "q" in values and not values["q"].strip():
        del values["q"]
    return values


_BOUND = (
    "brand",
    "source",
    "label",
    "min_score",
    "max_score",
    "since",
    "until",
    "q",
    "published_since",
    "published_until",
    "min_rating",
    "max_rating",
    "model_version",
    "lang",
)


def conditions(filters: Filters) -> list[ColumnElement[bool]]:
    """WHERE terms for ``filters``; each is index-friendly (equality, range, full-text).

    Every value is a bound parameter named as in ``bound_values``.
    """
    values = bound_values(filters)
    terms: list[ColumnElement[bool]] = []
    if "brand" in values:
        terms.append(Sentiment.brand == bindparam("brand", values["brand"]))
    if "source" in values:
        terms.append(Sentiment.source == bindparam("source", values["source"]))
    if "label" in values:
        terms.append(Sentiment.label == bindparam("label", values["label"], type_=String))
    if "min_score" in values:
        terms.append(Sentiment.sentiment_score >= bindparam("min_score", values["min_score"], type_=Float))
    if "max_score" in values:
        terms.append(Sentiment.sentiment_score <= bindparam("max_score", values["max_score"], type_=Float))
    if "since" in values:
        terms.append(Sentiment.created_on >= bindparam("since", values["since"], type_=DateTime(timezone=True)))
    if "until" in values:
        terms.append(Sentiment.created_on < bindparam("until", values["until"], type_=DateTime(timezone=True)))
    if "published_since" in values:
        moment = bindparam("published_since", values["published_since"], type_=DateTime(timezone=True))
        terms.append(Sentiment.published_at >= moment)
    if "published_until" in values:
        moment = bindparam("published_until", values["published_until"], type_=DateTime(timezone=True))
        terms.append(Sentiment.published_at < moment)
    if "min_rating" in values:
        terms.append(Sentiment.rating >= bindparam("min_rating", values["min_rating"], type_=SmallInteger))
    if "max_rating" in values:
        terms.append(Sentiment.rating <= bindparam("max_rating", values["max_rating"], type_=SmallInteger))
    if "model_version" in values:
        terms.append(Sentiment.model_version == bindparam("model_version", values["model_version"], type_=String))
    if "lang" in values:  # "en" is English of any region: en, en-GB, en-US
        tag = func.lower(Sentiment.lang)
        # Lowered in SQL, not here: a statement built once runs again with another request's value.
        language = func.lower(bindparam("lang", values["lang"], type_=String), type_=String)
        terms.append(or_(tag == language, tag.like(func.concat(language, "-%"))))  # the pattern holds no % or _
    if "q" in values:
        terms.append(Sentiment.id.in_(matching_ids(bindparam("q", values["q"], type_=String))))
    return terms


def matching_ids(q: ColumnElement[str]) -> Select[tuple[int]]:
    """Ids of the rows whose indexed text matches the web-search query ``q``.

    The documents are written behind the stream (migration 0013), so a search sees the text as of
    the indexer's last pass: a new or re-worded review is found about a second after it is stored
    (up to STREAM_SEARCH_MAX_LAG while the stream works through a backlog). A semi-join on purpose:
    PostgreSQL can then walk the list's sort index and test each row's stored document (0.3 ms for
    a term in a fifth of 1M rows), or start from the GIN index for a rare one. Reading the queued
    rows' text as well made it a union it had to build in full first (1.4 s for that query).
    """
    query = func.websearch_to_tsquery(_FTS_CONFIG, q)
    return select(sentiment_search.c.id).where(sentiment_search.c.document.op("@@")(query))


def as_utc(value: datetime | None, name: str) -> datetime | None:
    """Naive times are taken as UTC, like the message contract does; aware ones are converted
    to UTC, because PostgreSQL refuses offsets beyond ±15:59 that Python accepts."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        problem = FieldError(loc=["query", name], msg="out of the supported range", type="range")
        raise ApiError(422, "invalid_request", f"{name} is out of range", [problem]) from exc


async def filter_params(
    brand: Annotated[
        str | None,
        Query(max_length=256, description="Only reviews of this brand (exact match).", examples=["Acme"]),
        AfterValidator(refuse_nul),
    ] = None,
    source: Annotated[
        str | None,
        Query(
            max_length=128,
            description="Only reviews from this source, e.g. `user` or `scraper:trustpilot` (exact match).",
            examples=["scraper:trustpilot"],
        ),
        AfterValidator(refuse_nul),
    ] = None,
    label: Annotated[
        Label | None, Query(description="Only reviews with this predicted label.", examples=["negative"])
    ] = None,
    min_score: Annotated[
        float | None,
        Query(ge=0, le=1, allow_inf_nan=False, description="Lowest sentiment_score (inclusive).", examples=[0.5]),
    ] = None,
    max_score: Annotated[
        float | None,
        Query(ge=0, le=1, allow_inf_nan=False, description="Highest sentiment_score (inclusive).", examples=[1.0]),
    ] = None,
    since: Annotated[
        IsoDateTime | None,
        Query(
            description="Only reviews scored at or after this time (ISO-8601; naive = UTC).",
            examples=["2026-11-01T00:00:00Z"],
        ),
    ] = None,
    until: Annotated[
        IsoDateTime | None,
        Query(
            description="Only reviews scored before this time (ISO-8601, exclusive; naive = UTC).",
            examples=["2026-12-01T00:00:00Z"],
        ),
    ] = None,
    published_since: Annotated[
        IsoDateTime | None,
        Query(
            description=(
                "Only reviews published at or after this time (ISO-8601; naive = UTC); "
                "reviews without a `published_at` are left out."
            ),
            examples=["2026-11-01T00:00:00Z"],
        ),
    ] = None,
    published_until: Annotated[
        IsoDateTime | None,
        Query(
            description=(
                "Only reviews published before this time (ISO-8601, exclusive; naive = UTC); "
                "reviews without a `published_at` are left out."
            ),
            examples=["2026-12-01T00:00:00Z"],
        ),
    ] = None,
    min_rating: Annotated[
        int | None,
        Query(
            ge=1,
            le=5,
            description=(
                "Lowest star `rating` the producer gave (inclusive, 1-5); reviews without a rating are left out. "
                "With `label=negative`, `min_rating=4` finds praise in stars that reads as a complaint."
            ),
            examples=[4],
        ),
    ] = None,
    max_rating: Annotated[
        int | None,
        Query(
            ge=1,
            le=5,
            description="Highest star `rating` (inclusive, 1-5); reviews without a rating are left out.",
            examples=[2],
        ),
    ] = None,
    model_version: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Only reviews scored by this model version (exact match): those a rescore has not reached.",
            examples=["reviewscore-sentiment-transformer-50f58a99fec9"],
        ),
        AfterValidator(refuse_nul),
    ] = None,
    lang: Annotated[
        str | None,
        Query(
            max_length=35,
            pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
            description=(
                "Only reviews in this language (BCP-47, any case): `en` matches `en`, `en-GB` and `en-US`; "
                "`en-GB` only itself. Reviews with no language tag are left out."
            ),
            examples=["en"],
        ),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description=(
                "Full-text search in the review text (English stemming; web-search syntax: "
                '`"exact phrase"`, `or`, `-excluded`).'
            ),
            examples=["fast delivery"],
        ),
        AfterValidator(refuse_nul),
    ] = None,
) -> Filters:
    """Validate the shared filters; contradictory ranges are a client error, not an empty page.

    Async although it awaits nothing: it does no I/O, and FastAPI would otherwise run it in the
    thread pool."""
    problems: list[FieldError] = []
    if min_score is not None and max_score is not None and min_score > max_score:
        problems.append(FieldError(loc=["query", "min_score"], msg="min_score exceeds max_score", type="range"))
    if min_rating is not None and max_rating is not None and min_rating > max_rating:
        problems.append(FieldError(loc=["query", "min_rating"], msg="min_rating exceeds max_rating", type="range"))
    since, until = as_utc(since, "since"), as_utc(until, "until")
    published_since = as_utc(published_since, "published_since")
    published_until = as_utc(published_until, "published_until")
    for start, end, prefix in ((since, until, ""), (published_since, published_until, "published_")):
        if start is not None and end is not None and start > end:
            message = f"{prefix}since is after {prefix}until"
            problems.append(FieldError(loc=["query", f"{prefix}since"], msg=message, type="range"))
    if problems:
        raise ApiError(422, "invalid_request", "contradictory filters", problems)
    return Filters(
        brand,
        source,
        label,
        min_score,
        max_score,
        since,
        until,
        q,
        published_since,
        published_until,
        min_rating,
        max_rating,
        model_version,
        lang.lower() if lang else lang,  # one fingerprint for "EN" and "en"
    )


FILTER_NAMES: tuple[str, ...] = tuple(inspect.signature(filter_params).parameters)
"""The query parameters ``filter_params`` declares, in its order."""

# The parameters' own declarations (types, bounds, validators) as one model. FastAPI checks each
# query parameter apart, with Python-level bookkeeping around every one: 0.3 ms a request here
# for the fourteen, a quarter of what an uncached page cost the API; one model validation checks
# the same declarations in pydantic-core in a few microseconds.
_DECLARED: dict[str, Any] = {
    name: (hint, None) for name, hint in get_type_hints(filter_params, include_extras=True).items() if name != "return"
}
_FilterQuery: type[BaseModel] = create_model("FilterQuery", **_DECLARED)

_NO_FILTERS = Filters()


async def read_filters(request: Request) -> Filters:
    """The shared filters, read off the query string and validated as ``filter_params`` declares them.

    Its errors are FastAPI's own, located in the query, so a client sees no difference. The
    parameters are documented from ``filter_params`` (``query_api.openapi``) and taken by
    ``check_query_parameters`` through ``FILTER_NAMES``.
    """
    given = request.query_params
    values = {name: given[name] for name in FILTER_NAMES if name in given}
    if not values:
        return _NO_FILTERS
    try:
        parsed = _FilterQuery.model_validate(values)
    except ValidationError as exc:
        errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors + _route_parameter_errors(request)) from None
    return await filter_params(**{name: getattr(parsed, name) for name in values})


def _route_parameter_errors(request: Request) -> list[Any]:
    """What the route's own parameters would be refused for, in FastAPI's order.

    Raising from a dependency stops FastAPI before it reads the route's parameters; a client
    sent ``?min_score=abc&limit=0`` and must hear of both, as when the filters were FastAPI's.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return []
    own = route.dependant
    errors: list[Any] = []
    for declared, received in (
        (own.path_params, request.path_params),
        (own.query_params, request.query_params),
        (own.header_params, request.headers),
        (own.cookie_params, request.cookies),
    ):
        errors += request_params_to_args(declared, received)[1]
    return errors


FiltersDep = Annotated[Filters, Depends(read_filters)]
