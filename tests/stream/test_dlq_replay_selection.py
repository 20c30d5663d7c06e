"""``dlq replay`` re-publishes only what can succeed, ``dlq show`` says where a letter came from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from core.config import KafkaSettings
from stream.dlq import DeadLetter, KafkaSender, dead_letter
from stream.records import Record, Rejected
from tests.fixtures.api import read_topic
from tests.fixtures.kafka import consume_all
from tests.fixtures.stream import EXPLODE, cli_app, produce

pytestmark = pytest.mark.integration


def _send_letters(kafka: KafkaSettings, letters: list[tuple[str, int, bytes]], replayed: bool = False) -> None:
    """Dead letters (reason, offset, value) straight onto the DLQ topic, as a worker would have sent them."""
    records = [
        Record(kafka.topic, 0, offset, f"k{offset}".encode(), value, None, replayed) for _, offset, value in letters
    ]
    rejected = [Rejected(record, reason, "x") for record, (reason, _, _) in zip(records, letters, strict=True)]
    KafkaSender(kafka).send_dead_letters(kafka.dlq_topic, [dead_letter(r) for r in rejected])


def _replay(*options: str) -> str:
    result = CliRunner().invoke(cli_app(), ["dlq", "replay", "--idle-timeout", "1", *options])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_replay_skips_letters_the_same_bytes_would_fail_again_and_says_how_to_send_them(
    kafka_settings: KafkaSettings,
) -> None:
    _send_letters(kafka_settings, [("bad_json", 0, b"{"), ("invalid", 1, b"{}"), ("scoring_failed", 2, b"{}")])

    first = _replay()
    again = _replay()

    assert "replayed 1 dead letters" in first
    assert "skipped 2 dead letters whose reason the same message always gets again (bad_json 1, invalid 1)" in first
    assert "--include-permanent" in first
    assert "replayed 0 dead letters" in again  # nothing sent twice
    assert "skipped" not in again
    assert "replayed 1 dead letters" in _replay("--reason", "bad_json")  # asked for by name
    assert "replayed 3 dead letters" in _replay("--include-permanent")
    assert "replayed 0 dead letters" in _replay("--include-permanent")
    published = read_topic(kafka_settings, 10, timeout=3)
    assert sorted(key or b"" for key, _ in published) == [b"k0", b"k0", b"k1", b"k2", b"k2"]


def test_a_letter_cut_to_fit_the_dlq_is_never_replayed_as_its_message(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    _send_letters(kafka_settings, [("too_large", 0, os.urandom(300_000)), ("scoring_failed", 1, b"{}")])

    replayed = _replay("--include-permanent")
    shown = CliRunner().invoke(cli_app(), ["dlq", "show", "--json", "--idle-timeout", "1"])
    (cut,) = [line for line in shown.stdout.splitlines() if '"too_large"' in line]
    letters = tmp_path / "letters.jsonl"
    letters.write_text(cut + "\n")
    from_file = CliRunner().invoke(cli_app(), ["dlq", "replay", "--file", str(letters)])

    assert "replayed 1 dead letters" in replayed
    assert "skipped 1 dead letters that no longer hold their message" in replayed
    assert "of the message's 300,000 bytes (sha256 " in replayed
    assert from_file.exit_code == 2, from_file.output
    assert f"error: cannot replay {kafka_settings.topic}[0]@0" in from_file.output
    assert [key for key, _ in read_topic(kafka_settings, 10, timeout=3)] == [b"k1"]


def test_dlq_show_marks_a_letter_whose_message_came_from_a_replay_and_a_cut_value(
    kafka_settings: KafkaSettings,
) -> None:
    _send_letters(kafka_settings, [("scoring_failed", 0, b"{}")], replayed=True)
    _send_letters(kafka_settings, [("too_large", 1, b"y" * 300_000)])

    shown = CliRunner().invoke(cli_app(), ["dlq", "show", "--idle-timeout", "1"])

    assert shown.exit_code == 0, shown.output
    assert f"{kafka_settings.topic}[0]@0" in shown.output
    assert "scoring_failed (replayed): x" in shown.output
    assert "too_large: x\n    utf-8, cut from 300,000 bytes, sha256 " in shown.output


def test_a_replayed_message_that_fails_again_comes_back_marked_as_from_a_replay(
    start_worker: Any, kafka_settings: KafkaSettings
) -> None:
    start_worker()
    doomed = json.dumps({"text": f"{EXPLODE} again", "source": "test", "review_id": "r1"}).encode()
    produce(kafka_settings, [(b"test:r1", doomed)])
    consume_all(kafka_settings, kafka_settings.dlq_topic, 1)

    assert "replayed 1 dead letters" in _replay()

    letters = [DeadLetter.from_json(v or b"") for _, v, _ in consume_all(kafka_settings, kafka_settings.dlq_topic, 2)]
    assert [(letter.reason, letter.replayed) for letter in letters] == [
        ("scoring_failed", False),
        ("scoring_failed", True),
    ]


def test_replay_by_reason_all_is_refused_and_keeps_no_position_from_the_include_permanent_one(
    kafka_settings: KafkaSettings,
) -> None:
    """`--reason all` matched nothing, committed past every letter under the group that
    --include-permanent uses, which then replayed nothing."""
    _send_letters(kafka_settings, [("bad_json", 0, b"{"), ("scoring_failed", 1, b"{}")])

    typo = CliRunner().invoke(cli_app(), ["dlq", "replay", "--idle-timeout", "1", "--reason", "all"])

    assert typo.exit_code == 2
    assert "unknown reason 'all'; the reasons are bad_json, blank_text," in typo.stderr
    assert "replayed 2 dead letters" in _replay("--include-permanent")


def test_a_fixed_letter_file_is_split_on_newlines_only_and_a_broken_line_is_named(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """A text holding U+2028 was cut in two by splitlines(): a JSONDecodeError traceback."""
    _send_letters(
        kafka_settings, [("scoring_failed", 0, json.dumps({"text": "line\u2028sep", "source": "t"}).encode())]
    )
    shown = CliRunner().invoke(cli_app(), ["dlq", "show", "--json", "--idle-timeout", "1"])
    (tmp_path / "fixed.jsonl").write_text(shown.stdout, encoding="utf-8")
    (tmp_path / "broken.jsonl").write_text(shown.stdout + "not a letter\n", encoding="utf-8")

    replayed = CliRunner().invoke(cli_app(), ["dlq", "replay", "--file", str(tmp_path / "fixed.jsonl")])
    broken = CliRunner().invoke(cli_app(), ["dlq", "replay", "--file", str(tmp_path / "broken.jsonl")])
    ignored = CliRunner().invoke(cli_app(), ["dlq", "replay", "--file", str(tmp_path / "fixed.jsonl"), "--group", "g"])

    assert replayed.exit_code == 0, replayed.output
    assert "replayed 1 dead letters" in replayed.stdout
    assert (broken.exit_code, ignored.exit_code) == (2, 2)
    assert "line 2 is not a dead letter from `dlq show --json`" in broken.stderr
    assert "--group apply to replays from the topic, not with --file" in ignored.stderr


def test_a_message_on_the_dlq_that_is_no_dead_letter_is_reported_not_hidden(kafka_settings: KafkaSettings) -> None:
    """JSON that is not a letter crashed both commands once, and a replay then stalled on it for good."""
    foreign = [b"someone else's message", b'["an", "array"]', b"null", json.dumps({"reason": ["x"]}).encode()]
    produce(kafka_settings, [(None, value) for value in foreign], topic=kafka_settings.dlq_topic)
    _send_letters(kafka_settings, [("scoring_failed", 0, b"{}")])

    shown = CliRunner().invoke(cli_app(), ["dlq", "show", "--idle-timeout", "1"])
    first, again = _replay(), _replay()

    assert shown.exit_code == 0, (shown.output, shown.exception)
    assert "1 dead letters" in shown.stderr
    for offset in range(len(foreign)):
        assert f"warning: offset {offset}: not a dead letter" in shown.stderr
    assert "replayed 1 dead letters" in first
    assert "replayed 0 dead letters" in again  # the replay moved past them


def test_a_replay_the_broker_refuses_says_refused_not_unconfirmed_after_a_wait(kafka_settings: KafkaSettings) -> None:
    _send_letters(kafka_settings, [("scoring_failed", 0, b"{}")])

    result = CliRunner().invoke(cli_app(), ["dlq", "replay", "--idle-timeout", "1", "--topic", "no such/topic"])

    assert result.exit_code == 2, result.output
    assert "1 of 1 refused by the broker" in result.stderr, result.stderr


def test_a_replay_stops_at_the_end_it_began_with_while_letters_keep_arriving(kafka_settings: KafkaSettings) -> None:
    """A worker dead-lettering a broken producer's messages every second kept the topic from ever
    going quiet: the replay read for ever and sent nothing."""
    import threading
    import time

    _send_letters(kafka_settings, [("scoring_failed", 0, b"{}"), ("scoring_failed", 1, b"{}")])
    stop = threading.Event()

    def trickle() -> None:  # for 30 s at most: a replay that reads until quiet then ends, late
        offset, until = 100, time.monotonic() + 30
        while not stop.wait(0.5) and time.monotonic() < until:
            _send_letters(kafka_settings, [("scoring_failed", offset, b"{}")])
            offset += 1

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        time.sleep(1)  # letters arriving before and while the replay reads
        started = time.monotonic()
        result = CliRunner().invoke(cli_app(), ["dlq", "replay", "--idle-timeout", "3"])
        took = time.monotonic() - started
    finally:
        stop.set()
        sender.join()

    assert result.exit_code == 0, (result.output, result.exception)
    assert took < 20, f"took {took:.1f}s"
    assert "replayed" in result.output


def test_a_letter_stamped_by_a_clock_ahead_hides_none_after_it_and_one_at_the_end_is_said_to_wait(
    kafka_settings: KafkaSettings,
) -> None:
    """Letters are stamped by the worker's clock: one ahead of this host's must not end the read there."""
    import time

    from confluent_kafka import Producer

    now_ms = int(time.time() * 1000)
    producer = Producer(kafka_settings.producer_config())
    stamps = [now_ms - 1000, now_ms + 600_000, now_ms - 500, now_ms - 400, now_ms + 600_000]
    for offset, stamp in enumerate(stamps):
        record = Record(kafka_settings.topic, 0, offset, f"k{offset}".encode(), b"{}", None)
        key, value, _ = dead_letter(Rejected(record, "scoring_failed", "x")).to_message()
        producer.produce(kafka_settings.dlq_topic, key=key, value=value, partition=0, timestamp=stamp)
    assert producer.flush(10) == 0

    shown = CliRunner().invoke(cli_app(), ["dlq", "show", "--json", "--idle-timeout", "1"])

    assert shown.exit_code == 0, (shown.output, shown.exception)
    offsets = [json.loads(line)["offset"] for line in shown.stdout.splitlines()]
    assert offsets == [0, 1, 2, 3]  # the one ahead is followed by older ones: skew, shown in order
    assert "1 dead letters arrived after this read began (or carry a clock ahead of this host's)" in shown.stderr
