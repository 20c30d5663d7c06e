"""The dead-letter contract (DESIGN.md) and its producer/reader.

A dead letter is a JSON object carrying everything needed to understand and replay a message:
the original key and value (UTF-8 text when they decode, base64 otherwise), the reason code
and message of the error, the source topic/partition/offset and when it happened. The reason
is also a Kafka header so consumers can filter without parsing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from core.config import KafkaSettings
from stream.records import Rejected

DLQ_VERSION = 1


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    error: str
    topic: str
    partition: int
    offset: int
    value: str | None
    value_encoding: str  # "utf-8", "base64" or "none"
    key: str | None
    key_encoding: str
    timestamp: float | None
    dead_lettered_at: str
    dlq_version: int = DLQ_VERSION

    def original_value(self) -> bytes | None:
        return _decode(self.value, self.value_encoding)

    def original_key(self) -> bytes | None:
        return _decode(self.key, self.key_encoding)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes | str) -> DeadLetter:
        data: dict[str, Any] = json.loads(raw)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def _encode(raw: bytes | None) -> tuple[str | None, str]:
    if raw is None:
        return None, "none"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def _decode(text: str | None, encoding: str) -> bytes | None:
    if text is None or encoding == "none":
        return None
    if encoding == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8")


def dead_letter(rejected: Rejected, now: datetime | None = None) -> DeadLetter:
    """Pure: the dead letter of one rejected record."""
    record = rejected.record
    value, value_encoding = _encode(record.value)
    key, key_encoding = _encode(record.key)
    return DeadLetter(
        reason=rejected.reason,
        error=rejected.detail,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        value=value,
        value_encoding=value_encoding,
        key=key,
        key_encoding=key_encoding,
        timestamp=record.timestamp,
        dead_lettered_at=(now or datetime.now(UTC)).isoformat(timespec="milliseconds"),
    )


# (key, value, headers) of one message for ``KafkaSender.send``.
Outgoing = tuple[bytes | None, bytes | None, dict[str, bytes]]


class DeliveryError(RuntimeError):
    """The broker did not confirm some messages; the caller retries the whole send."""


class KafkaSender:
    """A confluent-kafka producer that sends a list and waits until every message is confirmed.

    Used for dead letters from the worker thread and by ``dlq replay``; blocking on purpose:
    the batch is acknowledged only after its dead letters are durable.
    """

    def __init__(self, settings: KafkaSettings, flush_timeout: float = 30.0) -> None:
        from confluent_kafka import Producer

        self._producer = Producer(settings.producer_config())
        self._flush_timeout = flush_timeout

    def send(self, topic: str, messages: Sequence[Outgoing]) -> None:
        errors: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        for key, value, headers in messages:
            while True:
                try:
                    self._producer.produce(topic, key=key, value=value, headers=headers, on_delivery=on_delivery)
                    break
                except BufferError:
                    self._producer.poll(0.1)
        remaining = self._producer.flush(self._flush_timeout)
        if remaining or errors:
            raise DeliveryError(f"{remaining} unconfirmed, {len(errors)} failed: {errors[:3]}")

    def send_dead_letters(self, topic: str, letters: Sequence[DeadLetter]) -> None:
        self.send(
            topic,
            [(letter.original_key(), letter.to_json(), {"reason": letter.reason.encode()}) for letter in letters],
        )


class DeadLetterReader:
    """Reads the DLQ topic with directly assigned partitions (no group join, which Tansu holds for seconds).

    Without a ``group`` it starts at the beginning and commits nothing: ``dlq show`` leaves no
    trace. With one it starts where that group's last ``commit`` left off (the beginning the
    first time, or with ``from_beginning``), so ``dlq replay`` re-publishes each dead letter once
    however often it runs; the caller commits only after the broker confirmed the re-published
    messages, so a failed replay is repeated, never skipped.
    """

    def __init__(self, settings: KafkaSettings, group: str | None = None, from_beginning: bool = False) -> None:
        import uuid

        from confluent_kafka import Consumer

        self.topic_name = settings.dlq_topic
        self.group = group
        self.from_beginning = from_beginning or group is None
        self._next: dict[int, int] = {}
        self._consumer = Consumer(
            settings.consumer_config(group_id=group or f"reviewscore-dlq-reader-{uuid.uuid4().hex[:8]}")
        )
        try:
            topic = self._consumer.list_topics(self.topic_name, timeout=10).topics.get(self.topic_name)
            if topic is None or topic.error is not None:
                raise RuntimeError(f"dead-letter topic {self.topic_name!r} not found")
            self._partitions = sorted(topic.partitions)
        except BaseException:
            self._consumer.close()  # a broker that is down must not leave a client retrying behind
            raise

    def __enter__(self) -> DeadLetterReader:
        return self

    def __exit__(self, *_: object) -> None:
        self._consumer.close()

    def read(self, idle_timeout: float = 3.0, on_error: Callable[[str], None] | None = None) -> Iterator[DeadLetter]:
        """Dead letters in partition order from the start position, until none arrives for ``idle_timeout``."""
        import time

        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        starts = [TopicPartition(self.topic_name, p, OFFSET_BEGINNING) for p in self._partitions]
        if not self.from_beginning:
            # A partition this group never committed (offset -1001) starts at the beginning.
            committed = self._consumer.committed(starts, timeout=10)
            for tp in committed:
                if tp.error is not None:  # unknown is not "never": starting over would re-send everything
                    raise RuntimeError(f"position of {self.group!r} on partition {tp.partition}: {tp.error}")
                tp.offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            starts = committed
        self._consumer.assign(starts)
        last = time.monotonic()
        while time.monotonic() - last < idle_timeout:
            for message in self._consumer.consume(num_messages=500, timeout=0.25):
                if message.error():
                    continue
                last = time.monotonic()
                self._next[message.partition()] = message.offset() + 1
                try:
                    yield DeadLetter.from_json(message.value())
                except (ValueError, TypeError) as exc:
                    if on_error:
                        on_error(f"offset {message.offset()}: not a dead letter ({exc})")

    def commit(self) -> None:
        """Record everything read so far as done for this reader's group."""
        from confluent_kafka import TopicPartition

        if self.group is None:
            raise RuntimeError("a reader without a group commits nothing")
        if self._next:
            positions = [TopicPartition(self.topic_name, p, offset) for p, offset in sorted(self._next.items())]
            self._consumer.commit(offsets=positions, asynchronous=False)


def read_dead_letters(
    settings: KafkaSettings, idle_timeout: float = 3.0, on_error: Callable[[str], None] | None = None
) -> Iterator[DeadLetter]:
    """Every dead letter on the DLQ topic from the beginning, until none arrives for ``idle_timeout``.

    Nothing is committed: showing leaves no trace.
    """
    with DeadLetterReader(settings) as reader:
        yield from reader.read(idle_timeout, on_error)
