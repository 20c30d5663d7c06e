"""Dead letters reach the real broker whatever they carry, once each, through outages."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine

from core.config import KafkaSettings
from core.embedded import free_port
from stream.dlq import DeadLetter, DeliveryError, KafkaSender, dead_letter
from stream.pipeline import AbandonedError, BatchProcessor
from stream.records import Record, Rejected
from stream.sink import PostgresSink
from tests.fixtures.api import read_topic
from tests.fixtures.kafka import consume_all
from tests.fixtures.stream import LexiconScorer, fetch_rows, make_reviews

pytestmark = pytest.mark.integration


def test_a_dead_letter_too_large_for_the_broker_arrives_without_the_original_bytes(
    kafka_settings: KafkaSettings,
) -> None:
    value = b"\x01" * 170_000  # escaped in JSON: a 1,020,300-byte letter when embedded whole
    whole = dead_letter(Rejected(Record("reviews", 0, 4, b"k", value, None), "bad_json", "x"), max_embedded_bytes=10**6)
    small = dead_letter(Rejected(Record("reviews", 0, 5, b"k2", b"{nope", None), "bad_json", "y"))
    assert len(whole.to_json()) > 1_000_000

    KafkaSender(kafka_settings, flush_timeout=10).send_dead_letters(kafka_settings.dlq_topic, [whole, small])

    sent = consume_all(kafka_settings, kafka_settings.dlq_topic, 2)
    letters = {letter.offset: letter for letter in (DeadLetter.from_json(v or b"") for _, v, _ in sent)}
    assert sorted(letters) == [4, 5]
    assert (letters[4].value, letters[4].value_truncated, letters[4].value_bytes) == (None, True, 170_000)
    assert letters[4].replay_refusal() is not None
    assert letters[5].original_value() == b"{nope"
    assert sorted(key or b"" for key, _, _ in sent) == [b"k", b"k2"]  # the stripped letter keeps its key


def test_a_batch_holding_a_message_too_large_to_dead_letter_whole_completes(
    kafka_settings: KafkaSettings, engine: Engine, database_url: str
) -> None:
    processor = BatchProcessor(
        LexiconScorer(), PostgresSink(engine), KafkaSender(kafka_settings, flush_timeout=10), kafka_settings.dlq_topic,
        20_000, 16_384, 64, retry_initial=0.05, retry_max=0.5,
    )  # fmt: skip
    review = make_reviews(1)[0]
    huge = os.urandom(760_000)  # accepted by the producer that published it; base64 alone is 1,013,336 bytes
    records = [Record(kafka_settings.topic, 0, 0, *review.to_kafka(), None), Record("reviews", 0, 1, b"h", huge, None)]
    give_up = threading.Timer(60, processor.abandon.set)  # before the fix it retried for ever
    give_up.start()
    try:
        outcome = processor.process(records)
    except AbandonedError as exc:
        pytest.fail(f"the batch never completed: {exc}")
    finally:
        give_up.cancel()

    assert [letter.reason for letter in outcome.dead] == ["too_large"]
    (sent,) = consume_all(kafka_settings, kafka_settings.dlq_topic, 1)
    letter = DeadLetter.from_json(sent[1] or b"")
    assert (letter.offset, letter.value_truncated, letter.value_bytes) == (1, True, 760_000)
    assert [row["review_key"] for row in fetch_rows(database_url)] == [review.review_key]


@contextmanager
def _forwarding(listen_port: int, target: str) -> Iterator[None]:
    """A TCP forwarder from ``listen_port`` to ``target``: the broker's address appears while it runs."""
    host, port = target.rsplit(":", 1)
    server = socket.create_server(("127.0.0.1", listen_port))
    server.settimeout(0.2)
    stop = threading.Event()

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with source, sink:
            try:
                while chunk := source.recv(65_536):
                    sink.sendall(chunk)
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection((host, int(port)))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        server.close()


def test_messages_a_broker_out_of_reach_never_confirmed_arrive_once_each_when_it_returns(
    kafka_settings: KafkaSettings,
) -> None:
    assert kafka_settings.bootstrap_servers
    port = free_port()  # nothing listens there yet: the broker is out of reach
    unreachable = kafka_settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{port}"})
    sender = KafkaSender(unreachable, flush_timeout=0.5)
    messages = [(b"k1", b"letter-1", {}), (b"k2", b"letter-2", {})]
    for _ in range(4):  # the pipeline's retries while the broker is down
        with pytest.raises(DeliveryError):
            sender.send(kafka_settings.dlq_topic, messages)

    with _forwarding(port, kafka_settings.bootstrap_servers.split(",")[0]):
        deadline = time.monotonic() + 60
        while True:  # retried as the pipeline does, until the broker confirms
            try:
                sender.send(kafka_settings.dlq_topic, messages)
                break
            except DeliveryError:
                assert time.monotonic() < deadline, "the broker never confirmed"

    dlq = kafka_settings.model_copy(update={"topic": kafka_settings.dlq_topic, "partitions": 1})
    arrived = read_topic(dlq, expected=100, timeout=3)  # everything there is, not only the first two
    assert sorted(value for _, value in arrived) == [b"letter-1", b"letter-2"]
