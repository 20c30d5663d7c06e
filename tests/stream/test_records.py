"""Pure mapping: raw record -> validated message or a rejection reason; message + score -> row; DLQ form."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from model.base import Score
from stream.consumer import record_of
from stream.dlq import PERMANENT_REASONS, DeadLetter, dead_letter
from stream.records import (
    INTERNAL_ERROR,
    Parsed,
    Record,
    Rejected,
    replay_of,
    sane_timestamp,
    to_row,
    triage,
    versions_per_key,
)


def _record(value: bytes | None, offset: int = 0, key: bytes | None = b"k") -> Record:
    return Record("reviews", 2, offset, key, value, 1_700_000_000.0)


def test_triage_keeps_good_messages_and_names_the_reason_of_each_bad_one() -> None:
    good = json.dumps({"text": "Great service", "source": "test"}).encode()
    records = [
        _record(good, 0),
        _record(b"\xff\xfe", 1),
        _record(b"{oops", 2),
        _record(json.dumps({"text": "x" * 50, "source": "test"}).encode(), 3),
        _record(None, 4),
        # Not blank to the contract, nothing to the model: scored, it would get an arbitrary label.
        _record(json.dumps({"text": "&nbsp; \u200b", "source": "test"}).encode(), 5),
        _record(json.dumps({"text": "\u2060 &shy; \u200d &#8288; \ufe0f", "source": "test"}).encode(), 6),
    ]
    parsed, rejected = triage(records, max_text_chars=40)
    assert [p.record.offset for p in parsed] == [0]
    assert [(r.record.offset, r.reason) for r in rejected] == [
        (1, "not_utf8"),
        (2, "bad_json"),
        (3, "too_long"),
        (4, "empty"),
        (5, "blank_text"),
        (6, "blank_text"),
    ]
    assert rejected[-1].review_key is not None  # its submitter can be told why


def newest(parsed: list[Parsed]) -> list[Parsed]:
    """The version of each review a batch writes."""
    return [versions[0] for versions in versions_per_key(parsed)]


def test_the_same_review_twice_in_a_batch_is_written_once_with_the_latest_copy() -> None:
    value = json.dumps({"text": "Fine", "source": "test", "review_id": "1"}).encode()
    parsed, _ = triage([_record(value, 0), _record(b'{"text": "Other", "source": "test"}', 1), _record(value, 2)], 100)
    assert [p.record.offset for p in newest(parsed)] == [1, 2]


def test_within_a_batch_the_newest_version_of_a_review_wins_whatever_the_order() -> None:
    old = json.dumps({"text": "Fine", "source": "test", "review_id": "1"}).encode()
    new = json.dumps({"text": "Broke in a week", "source": "test", "review_id": "1"}).encode()
    records = [Record("reviews", 0, 5, b"k", new, 2_000.0), Record("reviews", 0, 6, b"k", old, 1_000.0)]
    parsed, _ = triage(records, 100)
    assert [p.message.text for p in newest(parsed)] == ["Broke in a week"]
    untimed = [Record("reviews", 0, 5, b"k", new), Record("reviews", 0, 6, b"k", old)]
    parsed, _ = triage(untimed, 100)
    assert [p.message.text for p in newest(parsed)] == ["Fine"]  # no times: the later one


def test_a_replay_and_its_original_time_are_read_from_headers_of_either_client() -> None:
    headers = [("replayed_from", b"reviews:0:5"), ("original_timestamp", b"1700000000123")]
    assert replay_of(headers) == (True, 1_700_000_000.123)
    assert replay_of(dict(headers)) == (True, 1_700_000_000.123)
    assert replay_of([("replayed_from", b"reviews:0:5")]) == (True, None)  # a letter without a time
    assert replay_of([("replayed_from", b"x"), ("original_timestamp", b"soon")]) == (True, None)
    assert replay_of([("original_timestamp", b"1700000000123")]) == (False, None)  # not a replay


@pytest.mark.parametrize(
    "original",
    [b"1" * 400, b"9" * 5000, b"-5", b"0", b"1e3", b"\xff\xfe", b"", None, b"253402300800000"],
    ids=["400 digits", "5000 digits", "negative", "zero", "float", "not utf-8", "empty", "none", "year 10000"],
)
def test_a_malformed_original_time_is_ignored_never_raised(original: bytes | None) -> None:
    """Any producer can set these headers: a bad one costs the record its time, not its batch."""
    assert replay_of([("replayed_from", b"reviews:0:5"), ("original_timestamp", original)]) == (True, None)


def test_headers_of_an_unexpected_shape_are_not_a_replay() -> None:
    assert replay_of([("replayed_from",)]) == (False, None)
    assert replay_of(42) == (False, None)
    assert replay_of([("reason", b"invalid")]) == (False, None)
    assert replay_of(None) == (False, None)
    micros = [("replayed_from", b"x"), ("original_timestamp", b"1700000000123000")]
    assert replay_of(micros) == (True, None)  # year 55,000: no usable time, still a replay


def test_a_time_no_date_can_hold_leaves_the_review_untimed_instead_of_unreadable() -> None:
    assert sane_timestamp(1_700_000_000.5) == 1_700_000_000.5
    assert sane_timestamp(-0.001) is None  # CreateTime -1: none set
    assert sane_timestamp(1_700_000_000_000_000.0) is None  # microseconds sent as milliseconds
    assert sane_timestamp(None) is None


def test_a_time_from_a_clock_running_ahead_leaves_the_review_untimed_instead_of_pinning_its_row() -> None:
    now = 1_700_000_000.0
    assert sane_timestamp(now + 600, now=now) == now + 600  # minutes of skew: kept
    assert sane_timestamp(now + 7200, now=now) is None  # hours ahead: every later edit would look older
    future = str(int((time.time() + 86_400 * 365) * 1000)).encode()
    assert replay_of([("replayed_from", b"reviews:0:5"), ("original_timestamp", future)]) == (True, None)


def test_messages_that_break_the_json_parser_itself_are_dead_lettered_not_raised() -> None:
    deep = b'{"text": "Fine", "source": "test", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    big_number = b'{"text": "Fine", "source": "test", "rating": ' + b"4" * 5_000 + b"}"
    parsed, rejected = triage(
        [_record(deep, 0), _record(big_number, 1), _record(b'{"text": "ok", "source": "t"}', 2)], 100
    )
    assert [p.record.offset for p in parsed] == [2]
    assert [(r.record.offset, r.reason) for r in rejected] == [(0, "bad_json"), (1, "bad_json")]
    assert "RecursionError" in rejected[0].detail


def test_a_message_our_own_code_raises_on_is_an_internal_error_that_replay_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import stream.records

    def buggy(value: bytes | None) -> object:
        raise KeyError("a bug, not the message's fault")

    monkeypatch.setattr(stream.records, "parse_message", buggy)
    parsed, rejected = triage([_record(b'{"text": "ok", "source": "t"}', 7)], 100)
    assert parsed == []
    assert [(r.record.offset, r.reason) for r in rejected] == [(7, INTERNAL_ERROR)]
    assert "unexpected KeyError while parsing" in rejected[0].detail
    assert INTERNAL_ERROR not in PERMANENT_REASONS  # a plain ``dlq replay`` retries it once fixed


def test_a_check_after_parsing_that_raises_costs_only_its_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """The length and blankness checks ran outside the guard: one text that made them raise
    stopped the batch engine's worker and held the Faust one in retries, every partition with it."""
    import stream.records

    def buggy(text: str) -> bool:
        if text == "boom":
            raise ValueError("a bug, not the message's fault")
        return False

    monkeypatch.setattr(stream.records, "is_blank", buggy)
    parsed, rejected = triage(
        [_record(b'{"text": "boom", "source": "t"}', 1), _record(b'{"text": "ok", "source": "t"}', 2)], 100
    )
    assert [p.record.offset for p in parsed] == [2]
    assert [(r.record.offset, r.reason, r.review_key is not None) for r in rejected] == [(1, INTERNAL_ERROR, True)]


def test_a_character_reference_longer_than_an_int_can_be_is_read_and_scored() -> None:
    """``&#1111…1;`` (4,301 digits) made html.unescape raise inside the checks: the worker stopped."""
    text = "Great product &#" + "1" * 4301 + ";"
    parsed, rejected = triage([_record(json.dumps({"text": text, "source": "t"}).encode(), 3)], 20_000)
    assert ([p.record.offset for p in parsed], rejected) == ([3], [])


def test_a_row_carries_the_scores_the_message_fields_and_kafka_provenance() -> None:
    value = json.dumps(
        {
            "text": "Lovely",
            "source": "scraper:x",
            "review_id": "9",
            "brand": "Acme",
            "rating": 5,
            "published_at": "2026-01-02T03:04:05",
        }
    ).encode()
    (parsed,), _ = triage([_record(value, 41)], 100)
    row = to_row(parsed, Score("positive", 0.9, 0.8, 5, "v1"))
    assert row["review_key"] == "scraper:x:9"
    assert (row["sentence"], row["brand"], row["rating"], row["source"]) == ("Lovely", "Acme", 5, "scraper:x")
    assert (row["sentiment_score"], row["confidence"], row["label"], row["suggested_rating"]) == (
        0.9,
        0.8,
        "positive",
        5,
    )
    assert (row["model_version"], row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == (
        "v1",
        "reviews",
        2,
        41,
    )
    assert row["published_at"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert row["kafka_timestamp"] == datetime.fromtimestamp(1_700_000_000.0, UTC)
    assert isinstance(parsed, Parsed)


def test_a_dead_letter_keeps_the_original_bytes_utf8_as_text_and_binary_as_base64() -> None:
    _, (text_bad,) = triage([_record(b"{oops", 5)], 100)
    _, (binary_bad,) = triage([_record(b"\xff\x00\x01", 6, key=b"\xfe")], 100)
    for rejected, encoding in ((text_bad, "utf-8"), (binary_bad, "base64")):
        letter = DeadLetter.from_json(dead_letter(rejected).to_json())
        assert letter.value_encoding == encoding
        assert letter.original_value() == rejected.record.value
        assert letter.original_key() == rejected.record.key
        assert (letter.topic, letter.partition, letter.offset) == ("reviews", 2, rejected.record.offset)
        assert letter.reason == rejected.reason
        assert letter.error
        assert letter.timestamp == 1_700_000_000.0
        assert datetime.fromisoformat(letter.dead_lettered_at).tzinfo is not None
    assert text_bad.reason == "bad_json"
    assert binary_bad.reason == "not_utf8"


class _ConfluentMessage:
    """The accessor shape of ``confluent_kafka.Message`` (its instances cannot be built in Python)."""

    def __init__(self, timestamp_ms: int, headers: list[tuple[str, bytes]] | None = None) -> None:
        self._timestamp, self._headers = timestamp_ms, headers

    def timestamp(self) -> tuple[int, int]:
        return 1, self._timestamp  # TIMESTAMP_CREATE_TIME

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def topic(self) -> str:
        return "reviews"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"{}"


def test_a_producer_time_in_microseconds_leaves_the_record_untimed() -> None:
    assert record_of(_ConfluentMessage(1_700_000_000_123)).timestamp == 1_700_000_000.123
    assert record_of(_ConfluentMessage(1_700_000_000_123_000)).timestamp is None
    assert record_of(_ConfluentMessage(-1)).timestamp is None


def test_a_replay_without_its_originals_time_is_untimed_not_as_new_as_its_replay() -> None:
    """Stamped with the replay's own time, an old version counted as newer than an edit stored
    since, replaced it, and then refused the edit's re-delivery as older."""
    now_ms = int(time.time() * 1000)
    replay = record_of(_ConfluentMessage(now_ms, [("replayed_from", b"reviews:0:5")]))
    assert (replay.replayed, replay.timestamp) == (True, None)
    timed = record_of(_ConfluentMessage(now_ms, [("replayed_from", b"x"), ("original_timestamp", b"1700000000123")]))
    assert timed.timestamp == 1_700_000_000.123


def test_a_letter_of_an_untimed_message_is_replayed_as_old_as_its_dead_lettering() -> None:
    """Its original was published before it was dead-lettered: an edit stored after that still wins."""
    from stream.cli import _replayed

    letter = dead_letter(Rejected(_record(b'{"text": "ok", "source": "t"}', 4), "scoring_failed", "boom"))
    letter = replace(letter, timestamp=None, dead_lettered_at="2026-12-05T01:00:00.250+00:00")
    _key, _value, headers = _replayed(letter)
    assert headers["original_timestamp"] == b"1796432400250"
    assert "original_timestamp" not in _replayed(replace(letter, dead_lettered_at="not a time"))[2]
