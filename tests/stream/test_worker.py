"""The worker end to end: real Tansu, real PostgreSQL, a worker subprocess, the lexicon scorer."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from core.config import KafkaSettings, ModelSettings
from core.db import sqlalchemy_url
from core.messages import parse_message
from model.scorer import load_scorer
from stream.dlq import MAX_EMBEDDED_BYTES, DeadLetter, KafkaSender
from tests.fixtures.kafka import consume_all
from tests.fixtures.stream import (
    EXPLODE,
    OUT_OF_RANGE,
    UNTOKENIZABLE,
    cli_app,
    count_rows,
    fetch_rows,
    make_reviews,
    produce,
    produce_reviews,
    wait_for_rows,
    wait_until,
    wait_until_indexed,
)

pytestmark = pytest.mark.integration


def _model_env(model_dir: Path) -> dict[str, str]:
    """Worker settings that load a real model artifact through ``model.load_scorer``."""
    return {"STREAM_SCORER": "", "MODEL_PATH": str(model_dir), "MODEL_DEVICE": "cpu", "MODEL_VARIANT": "fp32"}


def test_n_messages_become_exactly_n_rows_with_the_scorers_scores(
    start_worker: Any, kafka_settings: KafkaSettings, database_url: str, tiny_model_dir: Path
) -> None:
    tiny_scorer = load_scorer(tiny_model_dir, ModelSettings(variant="fp32", device="cpu"))  # as the worker loads it
    reviews = make_reviews(120)
    worker = start_worker(**_model_env(tiny_model_dir))
    produce_reviews(kafka_settings, reviews)

    wait_for_rows(database_url, len(reviews), 90, worker)
    worker.wait_healthy()

    rows = {row["review_key"]: row for row in fetch_rows(database_url)}
    assert len(rows) == len(reviews)
    expected = dict(zip((r.review_key for r in reviews), tiny_scorer.predict([r.text for r in reviews]), strict=True))
    for review in reviews:
        row, score = rows[review.review_key], expected[review.review_key]
        assert row["sentence"] == review.text
        assert row["sentiment_score"] == pytest.approx(score.sentiment_score, abs=1e-4)
        assert row["confidence"] == pytest.approx(score.confidence, abs=1e-4)
        assert (row["label"], row["suggested_rating"], row["model_version"]) == (
            score.label,
            score.suggested_rating,
            tiny_scorer.model_version,
        )
        assert (row["brand"], row["rating"], row["source"]) == (review.brand, review.rating, "test")
        assert row["kafka_topic"] == kafka_settings.topic
        assert 0 <= row["kafka_partition"] < kafka_settings.partitions
        assert row["kafka_offset"] >= 0
        assert row["updated_on"] is None
    assert "reviewscore_messages_scored_total 120.0" in worker.metrics()
    # The worker keeps full-text search current behind the stream, once it has no backlog.
    writer = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        wait_until_indexed(writer, timeout=30)
        with writer.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM sentiment_search")).scalar_one() == len(reviews)
    finally:
        writer.dispose()
    wait_until(lambda: "reviewscore_search_indexed_total 120.0" in worker.metrics(), 10, what="indexed metric")


def test_republishing_changes_nothing_and_a_new_model_version_updates_the_rows(
    start_worker: Any, kafka_settings: KafkaSettings, database_url: str
) -> None:
    reviews = make_reviews(40)
    first = start_worker()
    produce_reviews(kafka_settings, reviews)
    wait_for_rows(database_url, 40, 60, first)
    before = {r["review_key"]: r for r in fetch_rows(database_url)}

    produce_reviews(kafka_settings, reviews)
    wait_until(lambda: 'reviewscore_rows_written_total{outcome="unchanged"} 40.0' in first.metrics(), 30, what="replay")
    assert fetch_rows(database_url) == list(before.values())
    first.stop()

    second = start_worker(RS_TEST_SCORER_VERSION="lexicon-2")
    produce_reviews(kafka_settings, reviews)
    wait_until(lambda: {r["model_version"] for r in fetch_rows(database_url)} == {"lexicon-2"}, 60, what="new version")
    after = fetch_rows(database_url)
    assert len(after) == 40
    for row in after:
        old = before[row["review_key"]]
        assert row["updated_on"] is not None
        assert (row["id"], row["created_on"]) == (old["id"], old["created_on"])
    assert second.alive


def _poison(kafka: KafkaSettings) -> list[tuple[str, bytes | None, bytes | None]]:
    """(expected reason, key, value) for every kind of message that can never be scored."""

    def doc(**fields: Any) -> bytes:
        return json.dumps({"source": "test", **fields}).encode()

    return [
        ("empty", b"p-empty", b""),
        ("empty", b"p-tombstone", None),
        ("not_utf8", None, b"\xff\xfe\x00binary"),
        ("bad_json", b"p-json", b'{"text": "unterminated'),
        ("not_object", b"p-array", b'["a", "list"]'),
        ("not_object", b"p-string", b'"just a string"'),
        ("invalid", b"p-missing", doc(brand="Acme")),
        ("invalid", b"p-blank", doc(text="   \n\t ")),
        ("invalid", b"p-type", doc(text=12345)),
        ("invalid", b"p-rating", doc(text="Fine", rating=7)),
        ("invalid", b"p-rating-str", doc(text="Fine", rating="5")),
        ("invalid", b"p-date", doc(text="Fine", published_at="yesterday-ish")),
        ("invalid", b"p-url", doc(text="Fine", url="javascript:alert(1)")),
        ("unsupported_version", b"p-version", doc(text="Fine", schema_version=2)),
        ("too_long", b"p-long", doc(text="word " * 400)),
        ("too_large", b"p-large", doc(text="x", padding="y" * 300_000)),
        ("invalid", b"p-nul", doc(text="A NUL \u0000 byte Postgres cannot store")),
        ("invalid", b"p-lang", doc(text="Fine", lang="en" + "-abcdefgh" * 4)),
        ("db_rejected", b"p-score", doc(text=f"{OUT_OF_RANGE}: a model bug the table's checks catch")),
        ("scoring_failed", b"p-model", doc(text=f"{EXPLODE} makes the model raise")),
        ("scoring_failed", b"p-tokens", doc(text=f"{UNTOKENIZABLE} makes the tokenizer raise")),
        ("bad_json", b"p-deep", b'{"text": "Fine", "source": "test", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
        ("bad_json", b"p-bigint", b'{"text": "Fine", "source": "test", "rating": ' + b"4" * 5_000 + b"}"),
    ]


KEYED_REASONS = ("too_long", "scoring_failed", "db_rejected")


def rejections(database_url: str) -> dict[str, str]:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT review_key, reason FROM rejected_reviews")).all()
    finally:
        engine.dispose()
    return dict(rows)


def test_poison_messages_go_to_the_dlq_with_their_reason_and_good_traffic_is_scored(
    start_worker: Any, kafka_settings: KafkaSettings, database_url: str
) -> None:
    poison = _poison(kafka_settings)
    reviews = make_reviews(60)
    good = [r.to_kafka() for r in reviews]
    mixed: list[tuple[bytes | None, bytes | None]] = []
    for i, (_, key, value) in enumerate(poison):
        mixed.extend(good[i * 3 : i * 3 + 3])
        mixed.append((key, value))
    mixed.extend(good[len(poison) * 3 :])
    # Good reviews whose replay headers are garbage (any producer can set them): scored, time-less.
    odd_headers = [
        {"replayed_from": b"x:0:1", "original_timestamp": b"1" * 400},  # overflows a float
        {"replayed_from": b"x:0:2", "original_timestamp": b"\xff"},
        {"replayed_from": b"x:0:3", "original_timestamp": b"-1"},
    ]
    with_headers = make_reviews(len(odd_headers))
    worker = start_worker(STREAM_MAX_TEXT_CHARS="1000")
    produce(kafka_settings, mixed)
    KafkaSender(kafka_settings).send(
        kafka_settings.topic, [(*r.to_kafka(), h) for r, h in zip(with_headers, odd_headers, strict=True)]
    )
    reviews += with_headers

    wait_for_rows(database_url, len(reviews), 60, worker)
    dlq = consume_all(kafka_settings, kafka_settings.dlq_topic, len(poison))
    letters = [DeadLetter.from_json(value or b"") for _, value, _ in dlq]

    assert sorted(r["review_key"] for r in fetch_rows(database_url)) == sorted(r.review_key for r in reviews)
    by_value = {letter.value_sha256: letter for letter in letters}  # a long one holds only its first 64 KiB
    assert len(letters) == len(poison)
    for reason, key, value in poison:
        letter = by_value[None if value is None else hashlib.sha256(value).hexdigest()]
        assert letter.reason == reason, (reason, letter)
        assert letter.value_truncated == (len(value or b"") > MAX_EMBEDDED_BYTES)
        assert letter.original_key() == key
        assert letter.error
        assert (letter.topic, letter.offset >= 0) == (kafka_settings.topic, True)
    assert sorted((key or b"", headers["reason"]) for key, _, headers in dlq) == sorted(
        (key or b"", reason.encode()) for reason, key, _ in poison
    )
    assert worker.alive
    worker.wait_healthy()
    metrics = worker.metrics()
    assert 'reviewscore_messages_dead_lettered_total{reason="invalid"} 9.0' in metrics
    # The dead letters that parsed have a key, and the API can tell their submitter why.
    keyed = {parse_message(value).review_key: reason for reason, _, value in poison if reason in KEYED_REASONS}
    assert rejections(database_url) == keyed
    assert f"reviewscore_messages_consumed_total {len(mixed) + len(with_headers)}.0" in metrics


def test_a_worker_refuses_to_start_on_a_schema_older_than_its_code(
    database_url: str, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core import migrate

    migrate.downgrade(database_url, "0004")
    monkeypatch.setenv("DATABASE_URL", database_url)

    result = CliRunner().invoke(cli_app(), ["worker"])

    assert result.exit_code == 2, (result.output, result.exception)
    assert f"at migration 0004 and this code needs {migrate.head_revision()}" in result.output
    assert "reviewscore migrate" in result.output


def test_rescore_on_a_schema_older_than_its_code_says_to_migrate(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was a ProgrammingError traceback ("relation ... does not exist" on a new database)."""
    from core import migrate

    migrate.downgrade(database_url, "base")
    monkeypatch.setenv("DATABASE_URL", database_url)

    result = CliRunner().invoke(cli_app(), ["rescore"])

    assert result.exit_code == 2, (result.output, result.exception)
    assert "reviewscore migrate" in result.output


def test_worker_start_problems_are_one_line_errors(
    database_url: str, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each was a traceback: a broker that does not answer when the topics are created, a metrics
    port another worker holds; and --model was silently ignored under STREAM_SCORER."""
    import socket

    from core.embedded import free_port

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("STREAM_SCORER", "tests.fixtures.stream:make_test_scorer")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = CliRunner().invoke(cli_app(), ["worker", "--web-port", str(port)])
    both = CliRunner().invoke(cli_app(), ["worker", "--model", str(tmp_path)])
    missing = CliRunner().invoke(cli_app(), ["worker", "--no-create-topics"], env={"KAFKA_TOPIC": "no-such-topic"})
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")  # nothing listens there
    no_broker = CliRunner().invoke(cli_app(), ["worker"])
    # Was Faust's crash with a KafkaConnectionError traceback when the topics are infra's to create.
    no_broker_no_create = CliRunner().invoke(cli_app(), ["worker", "--no-create-topics"])

    for result in (in_use, both, no_broker, missing, no_broker_no_create):
        assert result.exit_code == 2, (result.output, result.exception)
        assert result.output.startswith("error: ") or "\nerror: " in result.output, result.output
    assert f"cannot serve metrics and health on 127.0.0.1:{port}" in in_use.output
    assert "pass --web-port" in in_use.output
    assert "--model and STREAM_SCORER=" in both.output
    assert "could not create the topics" in no_broker.output
    assert "no broker answers" in no_broker_no_create.output
    assert "topic 'no-such-topic' missing (--no-create-topics: infra creates them)" in missing.output


def test_dlq_commands_against_a_broker_that_is_down_are_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.embedded import free_port

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")  # nothing listens there
    for command in (["dlq", "show"], ["dlq", "replay"]):
        result = CliRunner().invoke(cli_app(), command)
        assert result.exit_code == 2, (result.output, result.exception)
        assert "error: could not" in result.output


@pytest.mark.parametrize("command", [["dlq", "show"], ["dlq", "replay"]])
def test_an_idle_timeout_that_would_read_nothing_is_refused(command: list[str]) -> None:
    """With 0 or less, `dlq show` printed "0 dead letters" over a topic that held some."""
    result = CliRunner().invoke(cli_app(), [*command, "--idle-timeout", "0"])
    assert result.exit_code == 2
    assert "--idle-timeout" in result.output


def test_a_replay_from_a_file_that_is_no_text_or_to_the_dlq_itself_is_refused(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    binary = tmp_path / "letters.jsonl"
    binary.write_bytes(b"\xff\xfe{}\n")
    from_binary = CliRunner().invoke(cli_app(), ["dlq", "replay", "--file", str(binary)])
    into_dlq = CliRunner().invoke(
        cli_app(), ["dlq", "replay", "--idle-timeout", "1", "--topic", kafka_settings.dlq_topic]
    )
    assert (from_binary.exit_code, into_dlq.exit_code) == (2, 2)
    assert f"error: {binary} is not UTF-8 text" in from_binary.stderr
    assert f"error: {kafka_settings.dlq_topic!r} is the dead-letter topic itself" in into_dlq.stderr


def _letters(kafka: KafkaSettings, reasons: list[str], first_offset: int) -> None:
    """Dead letters straight onto the DLQ topic, as a worker would have sent them."""
    from stream.dlq import KafkaSender, dead_letter
    from stream.records import Record, Rejected

    records = [Record(kafka.topic, 0, first_offset + i, f"k{first_offset + i}".encode(), b"{}", None) for i in range(9)]
    letters = [dead_letter(Rejected(record, reason, "x")) for record, reason in zip(records, reasons, strict=False)]
    KafkaSender(kafka).send_dead_letters(kafka.dlq_topic, letters)


def test_dlq_replay_sends_each_dead_letter_once_unless_asked_to_start_over(kafka_settings: KafkaSettings) -> None:
    from tests.fixtures.api import read_topic

    def replay(*options: str) -> str:
        result = CliRunner().invoke(cli_app(), ["dlq", "replay", "--idle-timeout", "1", *options])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    _letters(kafka_settings, ["db_rejected", "scoring_failed"], 0)
    assert "replayed 2 dead letters" in replay()
    assert "replayed 0 dead letters" in replay()  # nothing new: nothing sent twice

    _letters(kafka_settings, ["db_rejected"], 2)
    assert "replayed 1 dead letters" in replay()
    # Each --reason selection keeps its own position; --from-beginning starts over.
    assert "replayed 2 dead letters" in replay("--reason", "db_rejected")
    assert "replayed 0 dead letters" in replay("--reason", "db_rejected")
    assert "replayed 3 dead letters" in replay("--from-beginning")

    published = read_topic(kafka_settings, 8, timeout=5)
    every_one, the_rejected_ones = [b"k0", b"k1", b"k2"], [b"k0", b"k2"]
    assert sorted(key or b"" for key, _ in published) == sorted([*every_one, *the_rejected_ones, *every_one])


def test_dlq_show_lists_dead_letters_and_replay_of_a_fixed_one_gets_it_scored(
    start_worker: Any, kafka_settings: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    worker = start_worker()
    broken = json.dumps({"text": "Great shop, fast delivery", "source": "test", "review_id": "r1", "rating": 9})
    produce(kafka_settings, [(b"test:r1", broken.encode()), (b"x", b"{nope")])
    consume_all(kafka_settings, kafka_settings.dlq_topic, 2)
    runner = CliRunner()

    shown = runner.invoke(cli_app(), ["dlq", "show", "--idle-timeout", "1"])
    as_json = runner.invoke(cli_app(), ["dlq", "show", "--json", "--reason", "invalid", "--idle-timeout", "1"])

    assert shown.exit_code == 0, shown.output
    assert "invalid: rating: Input should be less than or equal to 5" in shown.output
    assert "bad_json" in shown.output
    assert f"{kafka_settings.topic}[" in shown.output
    (line,) = [x for x in as_json.stdout.splitlines() if x.startswith("{")]
    letter = json.loads(line)
    letter["value"] = letter["value"].replace('"rating": 9', '"rating": 5')
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text(json.dumps(letter) + "\n")

    replayed = runner.invoke(cli_app(), ["dlq", "replay", "--file", str(fixed)])

    assert replayed.exit_code == 0, replayed.output
    assert "replayed 1 dead letters" in replayed.output
    wait_for_rows(database_url, 1, 30, worker)
    (row,) = fetch_rows(database_url)
    assert (row["review_key"], row["rating"]) == ("test:r1", 5)


@pytest.mark.parametrize("original_time", ["kept", "unknown"])
def test_replaying_a_fixed_letter_of_a_version_edited_since_leaves_the_edit_in_place(
    start_worker: Any, kafka_settings: KafkaSettings, database_url: str, tmp_path: Path, original_time: str
) -> None:
    """With its original's time unknown (none, or a clock far ahead), the replay counts as old as its
    dead-lettering: before, it counted as new as the replay and replaced the edit."""
    worker = start_worker()
    first = json.dumps({"text": "Great shop, fast delivery", "source": "test", "review_id": "r1", "rating": 9})
    produce(kafka_settings, [(b"test:r1", first.encode())])
    consume_all(kafka_settings, kafka_settings.dlq_topic, 1)
    edit = json.dumps({"text": "The parcel never came", "source": "test", "review_id": "r1", "rating": 1})
    produce(kafka_settings, [(b"test:r1", edit.encode())])
    wait_for_rows(database_url, 1, 30, worker)
    shown = CliRunner().invoke(cli_app(), ["dlq", "show", "--json", "--idle-timeout", "1"])
    (line,) = [x for x in shown.stdout.splitlines() if x.startswith("{")]
    letter = json.loads(line)
    letter["value"] = letter["value"].replace('"rating": 9', '"rating": 5')
    if original_time == "unknown":
        letter["timestamp"] = None
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text(json.dumps(letter) + "\n")

    replayed = CliRunner().invoke(cli_app(), ["dlq", "replay", "--file", str(fixed)])

    assert replayed.exit_code == 0, replayed.output
    wait_until(lambda: 'reviewscore_rows_written_total{outcome="unchanged"} 1.0' in worker.metrics(), 30, what="replay")
    (row,) = fetch_rows(database_url)
    assert (row["sentence"], row["rating"]) == ("The parcel never came", 1)
    # The replay's original time is not pipeline latency: only the two first deliveries count.
    assert "reviewscore_end_to_end_seconds_count 2.0" in worker.metrics()


@pytest.mark.slow
def test_sigkill_at_random_points_then_restart_loses_and_duplicates_nothing(
    start_worker: Any, kafka_settings: KafkaSettings, database_url: str
) -> None:
    rng = random.Random()
    reviews = make_reviews(800)
    produce_reviews(kafka_settings, reviews)
    settings = {"RS_TEST_SCORER_DELAY": "0.15", "STREAM_MAX_BATCH": "40"}
    worker = start_worker(**settings)
    kills_mid_stream = 0
    for _ in range(3):
        wait_until(lambda: count_rows(database_url) > 0, 60, what="progress")
        time.sleep(rng.uniform(0.1, 0.8))
        worker.signal(signal.SIGKILL)
        worker.wait(10)
        kills_mid_stream += count_rows(database_url) < len(reviews)
        worker = start_worker(**settings)

    assert kills_mid_stream >= 2
    wait_for_rows(database_url, len(reviews), 120, worker)
    rows = fetch_rows(database_url, "review_key")
    assert len(rows) == len(reviews)
    assert sorted(r["review_key"] for r in rows) == sorted(r.review_key for r in reviews)


@pytest.mark.slow
def test_postgres_unavailable_for_seconds_the_worker_retries_reports_unhealthy_and_recovers(
    start_worker: Any, kafka_settings: KafkaSettings, database_url: str, pg_server_url: str
) -> None:
    worker = start_worker()
    first, second = make_reviews(30), make_reviews(50)
    produce_reviews(kafka_settings, first)
    wait_for_rows(database_url, 30, 60, worker)

    with blocked_database(pg_server_url, database_url):
        produce_reviews(kafka_settings, second)
        wait_until(lambda: (worker.health() or (0, {}))[0] == 503, 30, what="unhealthy while the database is down")
        _, report = worker.health() or (0, {})
        assert "write failing" in report["problem"]
        time.sleep(2.0)
        assert worker.alive

    wait_for_rows(database_url, 80, 60, worker)
    worker.wait_healthy(20)
    assert len(fetch_rows(database_url)) == 80
    retries = [line for line in worker.metrics().splitlines() if line.startswith("reviewscore_retries_total")]
    assert any('operation="write"' in line and not line.endswith(" 0.0") for line in retries), retries


def test_a_model_failing_on_every_text_is_waited_out_not_dead_lettered(
    start_worker: Any, kafka_settings: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    down = tmp_path / "model-down"
    down.touch()
    reviews = make_reviews(40)
    worker = start_worker(RS_TEST_SCORER_DOWN=str(down))
    produce_reviews(kafka_settings, reviews)

    wait_until(lambda: (worker.health() or (0, {}))[0] == 503, 30, what="unhealthy while the model fails")
    _, report = worker.health() or (0, {})
    assert "score failing" in report["problem"]
    assert "known-good text" in report["problem"]
    assert count_rows(database_url) == 0
    down.unlink()

    wait_for_rows(database_url, len(reviews), 60, worker)
    worker.wait_healthy(20)
    assert sorted(r["review_key"] for r in fetch_rows(database_url)) == sorted(r.review_key for r in reviews)
    assert consume_all(kafka_settings, kafka_settings.dlq_topic, 1, timeout=3) == []
    assert 'reviewscore_retries_total{operation="score"}' in worker.metrics()


@pytest.mark.slow
def test_two_workers_in_one_group_share_the_partitions_and_score_each_review_once(
    start_worker: Any, kafka_settings: KafkaSettings, database_url: str
) -> None:
    settings = {"RS_TEST_SCORER_DELAY": "0.02", "STREAM_MAX_BATCH": "20"}
    workers = [start_worker(**settings), start_worker(**settings)]
    for worker in workers:
        worker.wait_healthy()
    # The group must have settled (both members hold partitions, all four held) before traffic
    # flows: a rebalance mid-stream can stall faust-streaming's fetcher (see stream/README.md).
    wait_until(lambda: _group_settled(workers, kafka_settings.partitions), 60, what="both workers assigned")
    reviews = make_reviews(400)
    for i in range(0, 400, 40):  # a steady stream, shared by the two members
        produce_reviews(kafka_settings, reviews[i : i + 40])
        time.sleep(0.4)

    wait_for_rows(database_url, 400, 90, *workers)

    rows = fetch_rows(database_url, "review_key, kafka_partition")
    assert len(rows) == 400
    assert {r["kafka_partition"] for r in rows} == set(range(kafka_settings.partitions))
    scored = [_scored(w.metrics()) for w in workers]
    assert all(n > 0 for n in scored), scored
    assert sum(scored) >= 400


def test_sigterm_lets_the_in_flight_batch_commit_before_exit(
    start_worker: Any, kafka_settings: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    mark = tmp_path / "predicting"
    reviews = make_reviews(100)
    produce_reviews(kafka_settings, reviews)
    worker = start_worker(
        RS_TEST_SCORER_DELAY="3", RS_TEST_SCORER_MARK=str(mark), STREAM_MAX_BATCH="500", STREAM_MAX_WAIT="1.5"
    )
    wait_until(mark.exists, 60, interval=0.05, what="a batch in the model")
    assert count_rows(database_url) == 0

    worker.signal(signal.SIGTERM)
    code = worker.wait(60)

    assert code == 0, worker.log()[-3000:]
    assert count_rows(database_url) == 100
    assert "in-flight batch committed" in worker.log()
    # ... and its offsets: the next worker of the group starts after it, re-reading nothing.
    successor = start_worker()
    successor.wait_healthy(60)
    wait_until(lambda: _metric(successor.metrics(), "reviewscore_assigned_partitions") > 0, 60, what="assignment")
    time.sleep(2)
    assert _metric(successor.metrics(), "reviewscore_messages_consumed_total") == 0


def _scored(metrics: str) -> float:
    return _metric(metrics, "reviewscore_messages_scored_total")


def _metric(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _group_settled(workers: list[Any], partitions: int) -> bool:
    held = [_metric(w.metrics(), "reviewscore_assigned_partitions") for w in workers]
    return all(n > 0 for n in held) and sum(held) == partitions


@contextmanager
def blocked_database(server_url: str, database_url: str) -> Iterator[None]:
    """Refuse new connections to the test database and cut the open ones, then let them back."""
    name = make_url(database_url).database
    admin = create_engine(sqlalchemy_url(server_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


@pytest.mark.parametrize("stream_engine", ["batch"])
def test_overlapped_writes_keep_every_review_exactly_once_through_a_kill_and_a_clean_stop(
    start_worker: Any, kafka_settings: KafkaSettings, database_url: str
) -> None:
    reviews = make_reviews(300)
    produce_reviews(kafka_settings, reviews)
    settings = {"STREAM_OVERLAP_WRITES": "true", "RS_TEST_SCORER_DELAY": "0.1", "STREAM_MAX_BATCH": "30"}
    worker = start_worker(**settings)
    wait_until(lambda: count_rows(database_url) > 0, 60, what="progress")
    worker.signal(signal.SIGKILL)
    worker.wait(10)

    worker = start_worker(**settings)
    wait_for_rows(database_url, len(reviews), 90, worker)
    worker.signal(signal.SIGTERM)

    assert worker.wait(30) == 0, worker.log()[-3000:]
    keys = [r["review_key"] for r in fetch_rows(database_url, "review_key")]
    assert sorted(keys) == sorted(r.review_key for r in reviews)


@pytest.mark.parametrize("stream_engine", ["faust"])
def test_json_logs_stay_json_for_the_whole_run_of_the_faust_worker(
    start_worker: Any, kafka_settings: KafkaSettings, database_url: str
) -> None:
    """Faust replaced the logging setup once its worker started: two JSON lines, then its text
    format, also for our own "worker stopped" (compose and k8s set REVIEWSCORE_LOG_JSON)."""
    worker = start_worker(REVIEWSCORE_LOG_JSON="true")
    produce_reviews(kafka_settings, make_reviews(3))
    wait_for_rows(database_url, 3, 60, worker)
    worker.stop()

    lines = [
        line for line in worker.log().splitlines() if line.strip() and not line.startswith("%")
    ]  # librdkafka's own
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    assert any(r.get("msg") == "worker stopped" for r in records), records[-3:]
