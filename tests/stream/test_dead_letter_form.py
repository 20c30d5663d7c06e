"""The dead letter's form at its limits, and which letters a replay re-publishes: pure, no broker."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from typing import Any

import pytest

from stream.dlq import (
    MAX_EMBEDDED_BYTES,
    PERMANENT_REASONS,
    DeadLetter,
    TruncatedLetterError,
    dead_letter,
    select_for_replay,
    sort_too_large,
)
from stream.records import Record, Rejected, triage

KAFKA_MESSAGE_MAX_BYTES = 1_000_000  # librdkafka's default message.max.bytes


def _rejected(value: bytes | None, key: bytes | None = b"k", replayed: bool = False) -> Rejected:
    (rejected,) = triage([Record("reviews", 1, 7, key, value, 1_700_000_000.0, replayed)], 20_000)[1]
    return rejected


@pytest.mark.parametrize(
    ("value", "encoding"),
    [
        (b"\x01" * 170_000, "utf-8"),  # valid UTF-8, but every byte escapes to six in JSON
        (os.urandom(760_000), "base64"),  # binary: base64 adds a third
        (b'{"text": "' + "é".encode() * 200_000 + b'"', "utf-8"),  # multi-byte text, cut mid-character
    ],
)
def test_a_letter_of_a_huge_message_keeps_its_start_size_and_digest_and_fits_one_kafka_message(
    value: bytes, encoding: str
) -> None:
    letter = DeadLetter.from_json(dead_letter(_rejected(value)).to_json())

    assert len(letter.to_json()) < KAFKA_MESSAGE_MAX_BYTES // 2
    assert letter.value_truncated
    assert letter.value_encoding == encoding
    assert (letter.value_bytes, letter.value_sha256) == (len(value), hashlib.sha256(value).hexdigest())
    assert letter.value is not None
    kept = base64.b64decode(letter.value) if encoding == "base64" else letter.value.encode("utf-8")
    assert value.startswith(kept)
    assert MAX_EMBEDDED_BYTES - 4 < len(kept) <= MAX_EMBEDDED_BYTES
    with pytest.raises(TruncatedLetterError, match="re-publish the message from its source"):
        letter.original_value()


def test_a_letter_of_an_ordinary_message_holds_it_whole_with_its_size_and_digest() -> None:
    value = b"{broken json"
    letter = DeadLetter.from_json(dead_letter(_rejected(value)).to_json())

    assert not letter.value_truncated
    assert not letter.key_truncated
    assert letter.original_value() == value
    assert (letter.value_bytes, letter.value_sha256) == (len(value), hashlib.sha256(value).hexdigest())
    assert letter.replay_refusal() is None
    assert letter.dlq_version == 2


def test_a_huge_key_is_cut_too_and_the_letter_is_then_not_keyed_by_it() -> None:
    letter = dead_letter(_rejected(b"{}", key=b"k" * 300_000))

    key, value, headers = letter.to_message()

    assert letter.key_truncated
    assert key is None
    assert value is not None
    assert len(value) < KAFKA_MESSAGE_MAX_BYTES
    assert headers == {"reason": letter.reason.encode()}
    assert letter.replay_refusal() is not None


def test_the_stripped_letter_sent_when_the_whole_one_is_refused_still_identifies_the_message() -> None:
    value = os.urandom(5_000)
    letter = dead_letter(Rejected(Record("reviews", 0, 3, b"key", value, None), "not_utf8", "x" * 50_000))

    stripped = DeadLetter.from_json(letter.stripped().to_json())

    assert (stripped.value, stripped.value_encoding) == (None, "none")
    assert stripped.value_truncated
    assert (stripped.original_key(), stripped.key_truncated) == (b"key", False)  # still keyed and found by it
    assert letter.stripped().to_message()[0] == b"key"
    long_key = dead_letter(Rejected(Record("reviews", 0, 4, b"k" * 5_000, value, None), "not_utf8", "x"))
    stripped_long = long_key.stripped()
    assert (stripped_long.key, stripped_long.key_truncated) == (None, True)  # the stripped form stays small
    assert len(stripped_long.to_json()) < 2_000
    assert (stripped.value_bytes, stripped.value_sha256) == (5_000, hashlib.sha256(value).hexdigest())
    assert len(stripped.error) == 1000
    assert (stripped.topic, stripped.partition, stripped.offset, stripped.reason) == ("reviews", 0, 3, "not_utf8")
    assert "holds none of the message's 5,000 bytes" in (stripped.replay_refusal() or "")


def test_a_version_1_letter_reads_as_a_whole_message_never_replayed() -> None:
    v1 = {
        "reason": "bad_json",
        "error": "Expecting value",
        "topic": "reviews",
        "partition": 0,
        "offset": 9,
        "value": "{nope",
        "value_encoding": "utf-8",
        "key": None,
        "key_encoding": "none",
        "timestamp": None,
        "dead_lettered_at": "2026-12-01T00:00:00.000+00:00",
        "dlq_version": 1,
    }

    letter = DeadLetter.from_json(json.dumps(v1))

    assert letter.original_value() == b"{nope"
    assert not letter.value_truncated
    assert not letter.replayed


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda letter: [letter], "a JSON list, not an object"),
        (lambda letter: {**letter, "reason": ["bad_json"]}, 'reason is ["bad_json"], not str'),
        (lambda letter: {**letter, "partition": "0"}, 'partition is "0", not int'),
        (lambda letter: {**letter, "offset": True}, "offset is true, not int"),
        (lambda letter: {**letter, "value_encoding": "rot13"}, "value_encoding 'rot13' is not one of"),
        (lambda letter: {k: v for k, v in letter.items() if k != "topic"}, "missing topic"),
    ],
)
def test_json_that_is_no_letter_is_refused_with_what_is_wrong(change: Any, why: str) -> None:
    letter = json.loads(dead_letter(_rejected(b"{nope")).to_json())

    with pytest.raises(ValueError, match=re.escape(why)):
        DeadLetter.from_json(json.dumps(change(letter)))


def test_the_letter_of_a_replayed_message_says_it_came_from_a_replay() -> None:
    assert dead_letter(_rejected(b"{nope", replayed=True)).replayed
    assert not dead_letter(_rejected(b"{nope")).replayed


def _letter(reason: str, offset: int, value: bytes = b"{}") -> DeadLetter:
    return dead_letter(Rejected(Record("reviews", 0, offset, None, value, None), reason, "x"))


def test_a_plain_replay_leaves_letters_the_same_bytes_would_fail_again_and_never_sends_a_cut_one() -> None:
    letters = [
        _letter("bad_json", 0),
        _letter("invalid", 1),
        _letter("scoring_failed", 2),
        _letter("too_long", 3),
        _letter("invalid", 4),
        _letter("too_large", 5, os.urandom(300_000)),
    ]

    plain = select_for_replay(letters)
    everything = select_for_replay(letters, include_permanent=True)
    asked = select_for_replay(letters, reason="invalid")

    assert [letter.offset for letter in plain.send] == [2, 3]
    assert plain.permanent == {"bad_json": 1, "invalid": 2}
    assert [letter.offset for letter in plain.truncated] == [5]
    assert [letter.offset for letter in everything.send] == [0, 1, 2, 3, 4]
    assert [letter.offset for letter in everything.truncated] == [5]
    assert ([letter.offset for letter in asked.send], asked.permanent, asked.unselected) == ([1, 4], {}, 4)


def test_only_reasons_that_depend_on_the_model_the_table_or_a_setting_are_replayed_by_default() -> None:
    assert {"scoring_failed", "db_rejected", "too_long"}.isdisjoint(PERMANENT_REASONS)
    assert {"empty", "too_large", "not_utf8", "bad_json", "not_object", "invalid"} <= PERMANENT_REASONS


def test_the_plan_for_too_large_refusals_tries_a_letter_alone_before_stripping_it() -> None:
    # The broker refused a record batch holding letters 1, 2 and 4; letter 2 had been sent alone.
    # (Tansu has no record-batch limit to refuse with, so the broker side of this is not driven.)
    assert sort_too_large({1, 2, 4}, tried_alone={2}, count=5) == ({2}, {1, 4})
    assert sort_too_large({0}, tried_alone=set(), count=1) == ({0}, set())  # alone in its request already
    assert sort_too_large(set(), tried_alone={3}, count=5) == (set(), set())


def test_json_nested_too_deeply_for_the_parser_is_no_letter_and_says_so() -> None:
    """A RecursionError escaped as a RuntimeError: `dlq show` and every `dlq replay` stopped at that offset."""
    with pytest.raises(ValueError, match="nested too deeply"):
        DeadLetter.from_json(b"[" * 100_000 + b"]" * 100_000)
