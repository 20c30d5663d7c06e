"""Submission through Kafka (the API never writes to PostgreSQL) and the row it lands in."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy import Row, func, select
from starlette.concurrency import run_in_threadpool

from core.iso_time import IsoDateTime
from core.messages import REVIEW_COLUMNS, ReviewMessage
from core.text import is_blank
from query_api.deps import AppState, StateDep, connection_of, require_publisher
from query_api.errors import DATABASE_DOWN, ApiError, FieldError, responses, validation_details
from query_api.filters import as_utc
from query_api.key_gate import unauthorized
from query_api.publisher import PublishError
from query_api.queries import BY_KEY, PUBLIC_FIELDS, REJECTION_BY_KEY
from query_api.schemas import BatchItem, BatchSubmitted, SentimentOut, SubmitBatch, SubmitReview, Submitted
from query_api.submit_guard import NO_MATCH, client_id, key_owner, presented_key, retry_after, submission_source

log = logging.getLogger(__name__)
T = TypeVar("T")

router = APIRouter(tags=["submit"])

WaitQuery = Annotated[
    float,
    Query(
        ge=0,
        le=300,
        description=(
            "Seconds to wait for the worker to score the review before answering (0: answer at once). "
            "Capped by the server's API_SUBMIT_WAIT_MAX (30 s by default)."
        ),
        examples=[5],
    ),
]


@dataclass(frozen=True, slots=True)
class Submitter:
    """Who submits: ``client`` for the rate limit (the key's digest, else the address), and the
    ``source`` its reviews are published with (``api:<name>`` for a named key, else ``user``)."""

    client: str
    source: str


async def submitter(
    request: Request,
    state: StateDep,
    x_api_key: Annotated[
        str | None,
        Header(
            alias="X-API-Key",
            description=(
                "An API key, when the server requires one (API_SUBMIT_API_KEYS, API_SUBMIT_NAMED_KEYS); "
                "`Authorization: Bearer KEY` works as well. A named key's reviews get source `api:<name>`. "
                "Not declared as an OpenAPI security scheme: by default submission is open."
            ),
            examples=["CHANGE-ME-KEY"],
        ),
    ] = None,
) -> Submitter:
    """Who submits; 401 without a valid key when keys are configured (``SubmitKeyGate`` refuses
    those before the body is read: this is the same check for a route it was not told of)."""
    presented = presented_key(request.headers.get("authorization"), x_api_key)
    keys = state.submit_keys
    owner = key_owner(presented, keys) if keys and presented is not None else NO_MATCH
    if keys and owner is NO_MATCH:
        state.metrics.submissions.labels("unauthorized").inc()
        raise unauthorized(presented)
    client = client_id(presented if keys else None, request.client.host if request.client else None)
    return Submitter(client, submission_source(owner if isinstance(owner, str) else None))


SubmitterDep = Annotated[Submitter, Depends(submitter)]


def give_back_rate(state: AppState, client: str, reviews: int) -> None:
    """The tokens of reviews the broker did not take, back to ``client``: a failed send costs nothing."""
    if state.submit_limiter is not None and reviews > 0:
        state.submit_limiter.give_back(client, reviews)


def take_rate(state: AppState, client: str, reviews: int = 1) -> None:
    """429 with Retry-After when ``client`` is over its rate for ``reviews`` more reviews."""
    limiter = state.submit_limiter
    if limiter is None:
        return
    per_minute = state.api.submit_rate_per_minute
    if reviews > limiter.capacity:
        state.metrics.submissions.labels("rate_limited").inc()
        raise ApiError(
            429,
            "rate_limited",
            f"{reviews} reviews in one request exceed this client's burst of {int(limiter.capacity)} "
            f"(at most {per_minute} a minute): send smaller batches",
        )
    wait = limiter.take(client, reviews)
    if wait > 0:
        state.metrics.submissions.labels("rate_limited").inc()
        raise ApiError(
            429,
            "rate_limited",
            f"too many submissions from this client: at most {per_minute} a minute; retry in {retry_after(wait)} s",
            headers={"Retry-After": retry_after(wait)},
        )


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why the worker will not score a review (it went to the dead-letter topic)."""

    reason: str
    error: str

    def api_error(self, key: str, status: int) -> ApiError:
        return ApiError(status, "rejected", f"{key!r} will not be scored: {self.reason}: {self.error}")


@dataclass(frozen=True, slots=True)
class Superseded:
    """The row holds another version of the review, sent after this one: this one will never be the
    row (two edits in quick succession, the same key twice in one batch). Pending would be for ever."""

    def api_error(self, key: str) -> ApiError:
        return ApiError(
            404,
            "superseded",
            f"{key!r} holds a version of the review sent after this one; GET it without `version` for that one",
        )


Answer = Row[Any] | Rejection | Superseded | None


def _any_row(_row: Row[Any]) -> bool:
    return True


def _lookup(state: AppState, key: str, accepts_row: Callable[[Row[Any]], bool], since: datetime | None) -> Answer:
    """The key's row if ``accepts_row`` takes it; else its rejection (made after ``since``); else,
    when the row it refused was sent after ``since``, ``Superseded``; else None.

    The rejection is only read when the row does not settle it: the common lookup is one query.
    """
    with connection_of(state) as connection:
        row = connection.execute(BY_KEY, {"review_key": key}).first()
        if row is not None and accepts_row(row):
            return row
        rejected = connection.execute(REJECTION_BY_KEY, {"review_key": key}).first()
    if rejected is not None and (since is None or rejected.rejected_on >= since):
        return Rejection(rejected.reason, rejected.error)
    if row is not None and since is not None and row.sent_at is not None and row.sent_at > since:
        return Superseded()
    return None


def _database_now(state: AppState) -> datetime:
    with connection_of(state) as connection:
        now: datetime = connection.execute(select(func.now())).scalar_one()
    return now


# The review's fields the API reads back (the author is stored but never served).
_SERVED = {name: column for name, column in REVIEW_COLUMNS.items() if column in PUBLIC_FIELDS}


VERSION_HEX = 16  # 64 bits: a version tells apart edits of one review, not every review there is


def review_version(message: ReviewMessage) -> str:
    """What a stored row must hold to be this very submission, as the Location's ``version``.

    An edit under a known ``review_id`` first finds the previous version's row, which is not the
    answer to the submission: its Location read that row back as scored.
    """
    return _fingerprint(getattr(message, name) for name in _SERVED)


def _fingerprint(values: Iterable[Any]) -> str:
    def plain(value: Any) -> Any:  # the same instant from the message and from PostgreSQL
        return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value

    served = json.dumps([plain(value) for value in values], ensure_ascii=False)
    return hashlib.sha256(served.encode("utf-8", "surrogatepass")).hexdigest()[:VERSION_HEX]


def _holds(version: str) -> Callable[[Row[Any]], bool]:
    """Whether a stored row holds the submission of this ``review_version``."""

    def holds(row: Row[Any]) -> bool:
        return _fingerprint(getattr(row, column) for column in _SERVED.values()) == version

    return holds


async def wait_for_row(
    state: AppState,
    key: str,
    wait: float,
    accepts_row: Callable[[Row[Any]], bool] = _any_row,
    since: datetime | None = None,
) -> Answer:
    """Poll until the row (or its rejection) is there or ``wait`` (capped by the settings) runs out.

    A submission passes what settles it: a row holding this review, or a rejection made after it
    was sent (a re-submission of a once-rejected review must not find the old rejection).
    Async with the lookups in the thread pool: a waiting client holds no worker thread between polls.
    """
    deadline = time.monotonic() + min(wait, state.api.submit_wait_max)
    while True:
        async with state.read_slots.slot():
            found = await run_in_threadpool(_lookup, state, key, accepts_row, since)
        if found is not None or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(min(state.api.wait_poll_interval, max(0.0, deadline - time.monotonic())))


async def _unless_database_down(lookup: Awaitable[T]) -> T | None:
    """``lookup``'s result, or None when the database does not answer (logged, not raised)."""
    try:
        return await lookup
    except DATABASE_DOWN as exc:
        problem: Exception = exc
    except ApiError as exc:  # the API has no database at all
        problem = exc
    log.warning("submission: the wait skipped, the database did not answer: %s", problem)
    return None


def location_of(request: Request, key: str, after: datetime | None = None, version: str | None = None) -> str:
    """``/`` in a key is escaped too: clients drop ``..`` segments before sending a path.

    ``after``, the submission's time, makes the lookup ignore a rejection of an earlier
    submission of the same review: the new one is pending until the worker has seen it.
    ``version`` makes it ignore a row that still holds an earlier version of an edited review.
    """
    path = f"{request.scope.get('root_path', '')}/sentiments/by-key/{quote(key, safe=':')}"
    query = {} if after is None else {"after": after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    query |= {} if version is None else {"version": version}
    return f"{path}?{urlencode(query, safe=':')}" if query else path


def as_message(review: SubmitReview, source: str, where: list[str | int]) -> ReviewMessage | list[FieldError]:
    """The message a submitted review is published as, or why the contract refuses it, each
    problem located under ``where`` in the request (``body``, or ``body.reviews.3`` in a batch)."""
    try:
        message = ReviewMessage(source=source, **review.model_dump(exclude_none=True))
    except ValidationError as exc:
        details = validation_details(exc.errors(include_url=False, include_input=False))
        for detail in details:
            detail.loc = [*where, *detail.loc]
        return details
    if is_blank(message.text):  # the worker would dead-letter it as blank_text: say so now, not later
        blank = "nothing is left of the text once read as the model reads it (HTML entities, invisible characters)"
        return [FieldError(loc=[*where, "text"], msg=blank, type="blank_text")]
    return message


@router.post(
    "/sentiments/",
    status_code=202,
    response_model=Submitted,
    responses={
        200: {"model": Submitted, "description": "Scored within `wait`: the body carries the row."},
        **responses(400, 401, 413, 422, 429, 503),
    },
    summary="Submit a review (create_review)",
)
async def submit_review(
    review: SubmitReview,
    request: Request,
    response: Response,
    state: StateDep,
    who: SubmitterDep,
    wait: WaitQuery = 0,
) -> Submitted:
    """Publish the review to Kafka with `source=user` (`api:<name>` with a named key); 202 with its
    key and Location once the broker has it."""
    message = as_message(review, who.source, ["body"])
    if not isinstance(message, ReviewMessage):
        raise ApiError(422, "invalid_request", "the review does not satisfy the message contract", message)
    publisher = require_publisher(state)  # after validation: a bad body is a 422 even without a broker
    take_rate(state, who.client)  # a review, as in a batch: a refused body or a 503 costs the client nothing
    # The database only serves the wait: when it does not answer, the review is still accepted
    # (the broker is what accepts it) and the answer is a 202 pending.
    # Only a rejection made after this answers the submission (here and through the Location): the
    # database's clock, which stamps the worker's rejections, when the answer waits on the database
    # anyway; else this host's, so a submission without wait never waits on a slow database.
    since = await _unless_database_down(run_in_threadpool(_database_now, state)) if wait > 0 else None
    # Before the send, as for a batch: the worker can reject the review before this resumes.
    sent = since or datetime.now(UTC)
    try:
        await publisher.publish(message)
    except PublishError as exc:
        state.metrics.submissions.labels("failed").inc()
        give_back_rate(state, who.client, 1)
        raise ApiError(503, "broker_unavailable", f"the review was not accepted by the broker: {exc}") from exc
    state.metrics.submissions.labels("published").inc()
    key = message.review_key
    version = review_version(message)
    location = location_of(request, key, sent, version)
    response.headers["Location"] = location
    row = (
        await _unless_database_down(wait_for_row(state, key, wait, _holds(version), since))
        if since and wait > 0
        else None
    )
    if isinstance(row, Rejection):
        raise row.api_error(key, 422)
    if row is None or isinstance(row, Superseded):  # another submission's version won meanwhile
        return Submitted(review_key=key, status="pending", location=location, sentiment=None)
    response.status_code = 200
    return Submitted(review_key=key, status="scored", location=location, sentiment=SentimentOut.model_validate(row))


@router.post(
    "/sentiments/batch",
    status_code=202,
    response_model=BatchSubmitted,
    responses={
        207: {
            "model": BatchSubmitted,
            "description": "The broker confirmed some reviews and not others: each item says which.",
        },
        **responses(400, 401, 413, 422, 429, 503),
    },
    summary="Submit many reviews",
)
async def submit_batch(
    batch: SubmitBatch,
    request: Request,
    response: Response,
    state: StateDep,
    who: SubmitterDep,
) -> BatchSubmitted:
    """Publish every review as `POST /sentiments/` would; 202 once the broker has them all.

    All or nothing on validity: one invalid review is a 422 naming each invalid one by its index
    (`body.reviews.3.rating`), and none is sent. The broker may still confirm some and not others
    (207, each item saying which): send the failed ones again; with `review_id`s, or the same
    texts, sending the whole batch again is safe too, as the worker keeps one row per key. Every
    review costs one token of the client's rate.
    """
    count = len(batch.reviews)
    limit = state.api.submit_batch_max
    if count > limit:
        problem = FieldError(loc=["body", "reviews"], msg=f"at most {limit} reviews in one batch", type="too_long")
        raise ApiError(422, "invalid_request", f"{count} reviews in one batch: send at most {limit}", [problem])
    checked = [as_message(review, who.source, ["body", "reviews", i]) for i, review in enumerate(batch.reviews)]
    problems = [problem for result in checked if not isinstance(result, ReviewMessage) for problem in result]
    if problems:
        invalid = sum(not isinstance(result, ReviewMessage) for result in checked)
        raise ApiError(
            422, "invalid_request", f"{invalid} of the {count} reviews do not satisfy the message contract", problems
        )
    messages = [message for message in checked if isinstance(message, ReviewMessage)]
    publisher = require_publisher(state)
    take_rate(state, who.client, count)  # only for what is sent: a refused batch costs nothing
    since = datetime.now(UTC)
    results = await asyncio.gather(*(publisher.publish(message) for message in messages), return_exceptions=True)
    items = []
    for index, (message, result) in enumerate(zip(messages, results, strict=True)):
        key = message.review_key
        if isinstance(result, asyncio.CancelledError):
            raise result
        if isinstance(result, BaseException):
            # Any failure is this review's: the others are on the broker and must be reported.
            if not isinstance(result, PublishError):
                log.exception("batch submission: review %d not published", index, exc_info=result)
            items.append(BatchItem(index=index, status="failed", review_key=key, error=str(result) or repr(result)))
        else:
            location = location_of(request, key, since, review_version(message))
            items.append(BatchItem(index=index, status="pending", review_key=key, location=location))
    failed = [item for item in items if item.status == "failed"]
    if failed:
        state.metrics.submissions.labels("failed").inc(len(failed))
        give_back_rate(state, who.client, len(failed))
    state.metrics.submissions.labels("published").inc(count - len(failed))
    if len(failed) == count:
        raise ApiError(503, "broker_unavailable", f"the broker accepted none of the reviews: {failed[0].error}")
    if failed:
        response.status_code = 207
    return BatchSubmitted(accepted=count - len(failed), failed=len(failed), items=items)


@router.get(
    "/sentiments/by-key/{review_key:path}",
    response_model=SentimentOut,
    responses=responses(404, 422, 503),
    summary="A submitted review, once scored",
)
async def get_by_key(
    state: StateDep,
    review_key: Annotated[
        str,
        Path(
            min_length=1,
            max_length=512,
            description="The `review_key` a submission returned (URL-encoded).",
            examples=["user:sha256:0c1f2e3d4c5b6a79881726354453627a"],
        ),
    ],
    wait: WaitQuery = 0,
    after: Annotated[
        IsoDateTime | None,
        Query(
            description=(
                "Only a rejection made after this time counts (ISO-8601; naive = UTC). The Location of a "
                "submission carries its time here, so a re-submitted review that was once rejected is "
                "`pending`, not `rejected`, until the worker has seen it again."
            ),
            examples=["2026-12-03T09:40:00.000000Z"],
        ),
    ] = None,
    version: Annotated[
        str | None,
        Query(
            pattern=f"^[0-9a-f]{{{VERSION_HEX}}}$",
            description=(
                "Only a row holding this version of the review counts (the Location of a submission carries it): "
                "a review edited under its `review_id` is `pending` until the worker has stored the edit, not "
                "answered with the previous version."
            ),
            examples=["3f1c9a0b7d2e4f61"],
        ),
    ] = None,
) -> SentimentOut:
    """The scored row; 404 with code `pending` until the worker has scored it, `rejected` (and why) if it will
    not, `superseded` when the row holds a version of the review sent after the one `version` names."""
    if "\x00" in review_key:
        raise ApiError(422, "invalid_request", "review_key must not contain NUL characters")
    accepts = _any_row if version is None else _holds(version)
    row = await wait_for_row(state, review_key, wait, accepts, as_utc(after, "after"))
    if isinstance(row, Rejection):
        raise row.api_error(review_key, 404)
    if isinstance(row, Superseded):
        raise row.api_error(review_key)
    if row is None:
        raise ApiError(404, "pending", f"{review_key!r} is not scored yet (or was never submitted)")
    return SentimentOut.model_validate(row)
