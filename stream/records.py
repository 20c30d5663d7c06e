"""The worker's view of one consumed message and the pure mapping from message + score to a row."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.messages import MessageError, ReviewMessage, parse_message
from core.text import is_blank
from model.base import Score


@dataclass(frozen=True, slots=True)
class Record:
    """A message as it came off the topic: raw bytes plus where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None  # seconds since the epoch (producer CreateTime)
    replayed: bool = False  # re-published by ``dlq replay``; ``timestamp`` is then the original's


LATEST_TIMESTAMP = datetime(9999, 12, 31, tzinfo=UTC).timestamp()
MAX_FUTURE_SECONDS = 3600.0
"""How far ahead of this worker's clock a producer's time may be: Kafka's own default bound
(``log.message.timestamp.after.max.ms``, one hour, since Kafka 3.6)."""


def sane_timestamp(seconds: float | None, now: float | None = None) -> float | None:
    """A message time that converts to a date and is not in the future, else ``None`` (no time:
    it orders nothing).

    Producers set CreateTime themselves: -1 (none), microseconds where milliseconds belong (year
    55,000), or a clock that runs ahead. Such a time must not make a good review unreadable, only
    time-less; and a future one must not pin its row, every later edit counting as older than it.
    """
    latest = min(LATEST_TIMESTAMP, (time.time() if now is None else now) + MAX_FUTURE_SECONDS)
    if seconds is None or not 0 < seconds < latest:
        return None
    return seconds


def replay_of(headers: Any) -> tuple[bool, float | None]:
    """Whether Kafka headers mark a ``dlq replay``, and the original message's time (seconds).

    Headers come as a list of pairs or a mapping, depending on the client. A malformed time is
    ignored (the record's own timestamp stands): it only orders versions, it never loses one.

    Total: any producer can set these headers, and this runs where a batch's messages become
    records, before any one of them can be dead-lettered alone, so an exception here would stop
    the whole batch (a crash loop, or, under Faust, offsets released for a batch never stored).
    """
    if not headers:
        return False, None
    try:
        pairs = headers.items() if isinstance(headers, dict) else headers
        found = {name: value for name, value in pairs if name in ("replayed_from", "original_timestamp")}
    except (TypeError, ValueError):
        return False, None
    if "replayed_from" not in found:
        return False, None
    try:
        millis = int(found["original_timestamp"])
    except (KeyError, TypeError, ValueError):  # absent, None, not digits, or over Python's 4,300 digits
        return True, None
    if not 0 < millis < LATEST_TIMESTAMP * 1000:  # checked on the int: a huge one overflows a float
        return True, None
    return True, sane_timestamp(millis / 1000)


def time_of(headers: Any, own: float | None) -> tuple[bool, float | None]:
    """Whether a record is a replay, and the time that orders it among versions of its review (seconds).

    A replay is as old as its original: its original's time, or none when the headers carry none,
    never the replay's own (``own``), which would count it as newer than an edit stored since.
    """
    replayed, original = replay_of(headers)
    return replayed, original if replayed else sane_timestamp(own)


BLANK_TEXT = "blank_text"
"""The reason of a message whose text has nothing left once cleaned for the model."""

INTERNAL_ERROR = "internal_error"
"""The reason of a message that made the worker's own code raise where no rule refused it."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that can never be scored, with a stable reason code for the dead-letter topic."""

    record: Record
    reason: str
    detail: str
    review_key: str | None = None  # when the message parsed: the submitter's handle on the rejection


@dataclass(frozen=True, slots=True)
class Parsed:
    record: Record
    message: ReviewMessage


def triage(records: Iterable[Record], max_text_chars: int) -> tuple[list[Parsed], list[Rejected]]:
    """Validate every record; one bad message never takes the rest of its batch down with it."""
    good: list[Parsed] = []
    bad: list[Rejected] = []
    for record in records:
        key: str | None = None
        try:
            message = parse_message(record.value)
            key = message.review_key
            unusable = _unusable(message.text, max_text_chars)
        except MessageError as exc:
            bad.append(Rejected(record, exc.reason, exc.detail))
            continue
        except Exception as exc:  # noqa: BLE001 - one message must not stop the stream, even through a bug
            # Not ``invalid``: an unexpected exception may be our bug, not the message's fault, and
            # ``internal_error`` is not a permanent reason, so a plain replay retries it after a fix.
            # The checks after parsing are inside too: a text that made one raise stopped the worker.
            detail = f"unexpected {type(exc).__name__} while parsing: {exc}"[:1000]
            bad.append(Rejected(record, INTERNAL_ERROR, detail, key))
            continue
        if unusable is not None:
            bad.append(Rejected(record, *unusable, key))
        else:
            good.append(Parsed(record, message))
    return good, bad


def _unusable(text: str, max_text_chars: int) -> tuple[str, str] | None:
    """Why a valid message's text cannot be scored (reason, detail), or None."""
    if len(text) > max_text_chars:
        return "too_long", f"text has {len(text)} characters, limit {max_text_chars}"
    if is_blank(text):
        # "&nbsp;", a zero-width space: not blank to the contract, nothing to the model, which
        # would score it as an arbitrary review (it never saw one: training skips them).
        return BLANK_TEXT, "text is empty once cleaned as the model reads it (HTML entities, invisible characters)"
    return None


def versions_per_key(parsed: Sequence[Parsed]) -> list[list[Parsed]]:
    """Every review key's messages, newest first; the first of each is the one written.

    One INSERT … ON CONFLICT may touch a row only once. The newest by producer time wins, the
    later one on a tie or without times: the same rule the sink applies against the stored row,
    so a batch holding an edit and a replay of the version before it keeps the edit. The older
    versions are the fallbacks: when the newest cannot be scored or stored, the next one takes
    its place, as it would have had the two arrived in different batches.
    """
    groups: dict[str, list[Parsed]] = {}
    for item in parsed:
        groups.setdefault(item.message.review_key, []).append(item)
    position = {id(item): i for i, item in enumerate(parsed)}
    ordered = [_newest_first(group) for group in groups.values()]
    return sorted(ordered, key=lambda versions: position[id(versions[0])])  # in the order the kept ones came


def _newest_first(group: list[Parsed]) -> list[Parsed]:
    remaining = list(group)
    ordered: list[Parsed] = []
    while remaining:
        winner = 0
        for i in range(1, len(remaining)):
            if _newer(remaining[i].record, remaining[winner].record):
                winner = i
        ordered.append(remaining.pop(winner))
    return ordered


def next_versions(refused: Iterable[Rejected], fallbacks: dict[str, list[Parsed]]) -> list[Parsed]:
    """The next older version of each refused review that has one (taken out of ``fallbacks``)."""
    out = []
    for rejected in refused:
        older = fallbacks.get(rejected.review_key or "")
        if older:
            out.append(older.pop(0))
    return out


def newest_rejection_per_key(rejected: Iterable[Rejected]) -> list[Rejected]:
    """One keyed rejection per review: the newest version's, which is what its submitter waits on.

    A batch can refuse two versions of one review (the newest, then the fallback before it).
    """
    kept: dict[str, Rejected] = {}
    for item in rejected:
        if item.review_key is None:
            continue
        other = kept.get(item.review_key)
        if other is None or _newer(item.record, other.record):
            kept[item.review_key] = item
    return list(kept.values())


def _newer(record: Record, than: Record) -> bool:
    """By producer time where both have one and they differ, else the later message (one review
    key is one partition, so its offsets are its arrival order)."""
    if record.timestamp and than.timestamp and record.timestamp != than.timestamp:
        return record.timestamp > than.timestamp
    return record.offset > than.offset


def to_row(item: Parsed, score: Score) -> dict[str, Any]:
    """The ``sentiments`` row of one scored message, Kafka provenance included."""
    message, record = item.message, item.record
    return {
        "review_key": message.review_key,
        "sentence": message.text,
        "sentiment_score": score.sentiment_score,
        "confidence": score.confidence,
        "label": score.label,
        "suggested_rating": score.suggested_rating,
        "brand": message.brand,
        "source": message.source,
        "rating": message.rating,
        "url": message.url,
        "author": message.author,
        "lang": message.lang,
        "published_at": message.published_at,
        "model_version": score.model_version,
        "kafka_topic": record.topic,
        "kafka_partition": record.partition,
        "kafka_offset": record.offset,
        "kafka_timestamp": datetime.fromtimestamp(record.timestamp, UTC) if record.timestamp else None,
    }
