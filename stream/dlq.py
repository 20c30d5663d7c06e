"""The dead-letter contract (DESIGN.md) and its producer/reader.

A dead letter is a JSON object carrying everything needed to understand and replay a message:
the original key and value (UTF-8 text when they decode, base64 otherwise), the reason code
and message of the error, the source topic/partition/offset and when it happened. The reason
is also a Kafka header so consumers can filter without parsing.

A letter must itself fit in one Kafka message, so it embeds at most ``MAX_EMBEDDED_BYTES`` of
the original value (and key); a cut letter says so (``value_truncated``) and still identifies
the original by size and SHA-256, but can no longer be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import MISSING, asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, get_args, get_type_hints

from core.config import KafkaSettings
from core.logs import client_logger
from stream.records import Rejected

log = logging.getLogger(__name__)
# librdkafka's own lines, served when the producer is polled (each send), repeats held back.
rdkafka_log = client_logger(f"{__name__}.librdkafka")

DLQ_VERSION = 2
"""2 added ``value_truncated``, ``value_bytes``, ``value_sha256``, ``key_truncated`` and ``replayed``;
a version-1 letter reads as a whole, never-replayed one."""

MAX_EMBEDDED_BYTES = 64 * 1024
"""Most bytes of the original value, and of the key, that a dead letter embeds.

librdkafka refuses messages over ``message.max.bytes`` (1,000,000 by default) and JSON escapes
a control byte as six (``\\u0001``), base64 a byte as 4/3: 64 KiB stays under 400 KB of JSON
whatever the bytes are, value and key together under 800 KB. A longer original (a ``too_large``
message is over 300,000 bytes) keeps its first 64 KiB for diagnosis, its size and its digest.
"""

MAX_ERROR_CHARS = 1000
"""Longest ``error`` kept when a letter must be sent without the original's bytes."""

MAX_STRIPPED_KEY_CHARS = 1024
"""Longest encoded key a letter sent without the original's bytes still carries."""

PERMANENT_REASONS = frozenset(
    {"empty", "too_large", "not_utf8", "bad_json", "not_object", "unsupported_version", "invalid", "blank_text"}
)
"""Reasons decided by the message's bytes and the message contract alone.

Replaying the same bytes to the same worker dead-letters them again, at a new offset, where the
next replay finds them: a plain ``dlq replay`` skips them. They succeed only once fixed (``dlq
show --json`` → edit → ``dlq replay --file``) or after a code change that accepts them (a newer
``schema_version``, a relaxed field rule), which the operator asks for with ``--reason``. The
other reasons depend on the model (``scoring_failed``), the table (``db_rejected``), a setting
(``too_long``, ``STREAM_MAX_TEXT_CHARS``) or the worker's own code (``internal_error``, a bug),
which may have changed since.
"""


REASONS = PERMANENT_REASONS | {"too_long", "scoring_failed", "db_rejected", "internal_error"}
"""Every reason the worker dead-letters with: ``--reason`` takes these only (a typo matched nothing,
and a replay then committed past every letter it had not selected)."""


class TruncatedLetterError(ValueError):
    """The letter holds only the start of the original, which must never be re-published as the message."""


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
    value_truncated: bool = False  # ``value`` holds only the first MAX_EMBEDDED_BYTES (or nothing)
    value_bytes: int | None = None  # size of the original value (``None``: no value)
    value_sha256: str | None = None  # hex digest of the original value, to find it at its source
    key_truncated: bool = False
    replayed: bool = False  # the dead-lettered message was itself re-published by ``dlq replay``

    def original_value(self) -> bytes | None:
        if self.value_truncated:
            raise TruncatedLetterError(f"{self.where()}: {self.replay_refusal()}")
        return _decode(self.value, self.value_encoding)

    def original_key(self) -> bytes | None:
        if self.key_truncated:
            raise TruncatedLetterError(f"{self.where()}: {self.replay_refusal()}")
        return _decode(self.key, self.key_encoding)

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def replay_refusal(self) -> str | None:
        """Why this letter cannot be re-published as the original message (``None``: it can)."""
        if self.value_truncated:
            kept = len(_decode(self.value, self.value_encoding) or b"")
            held = f"the first {kept:,}" if kept else "none"
            return (
                f"the dead letter holds {held} of the message's {self.value_bytes or 0:,} bytes "
                f"(sha256 {self.value_sha256}); re-publish the message from its source"
            )
        if self.key_truncated:
            return "the dead letter holds only part of the message's key; re-publish the message from its source"
        return None

    def stripped(self) -> DeadLetter:
        """The letter without the original's bytes: what is sent when the whole one is too large.

        Size and digest of the value stay (``dead_letter`` always records them), so the message
        can still be found at its source. A short key (up to ``MAX_STRIPPED_KEY_CHARS`` encoded)
        stays too: it is what the letter is keyed and found by. A longer one goes, so the stripped
        letter stays a few kilobytes whatever the broker's limit.
        """
        keep_key = self.key is None or (not self.key_truncated and len(self.key) <= MAX_STRIPPED_KEY_CHARS)
        return replace(
            self,
            error=self.error[:MAX_ERROR_CHARS],
            value=None,
            value_encoding="none",
            value_truncated=self.value_truncated or self.value is not None,
            key=self.key if keep_key else None,
            key_encoding=self.key_encoding if keep_key else "none",
            key_truncated=self.key_truncated or not keep_key,
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode("utf-8")

    def to_message(self) -> Outgoing:
        """(key, value, headers) of this letter on the DLQ topic: keyed like the original when it can be."""
        key = None if self.key_truncated else _decode(self.key, self.key_encoding)
        return key, self.to_json(), {"reason": self.reason.encode()}

    @classmethod
    def from_json(cls, raw: bytes | str) -> DeadLetter:
        """The letter in ``raw``; ``ValueError`` for anything else found on the topic.

        Fields are type-checked because the topic is writable by anyone: JSON that is not a letter
        (an array, a letter with a list for its reason) must be skipped with a warning, not crash
        ``dlq show`` and stall every later ``dlq replay`` on the same offset.
        """
        try:
            data = json.loads(raw)
        except RecursionError as exc:  # "[[[[…": a RuntimeError, which stopped `dlq show` at that offset
            raise ValueError("JSON nested too deeply") from exc
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        letter = {k: v for k, v in data.items() if k in _FIELD_TYPES}
        missing = sorted(k for k, f in cls.__dataclass_fields__.items() if k not in letter and f.default is MISSING)
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        for name, value in letter.items():
            types, optional = _FIELD_TYPES[name]
            if value is None and optional:
                continue
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                raise ValueError(f"{name} is {json.dumps(value)[:40]}, not {' or '.join(t.__name__ for t in types)}")
        for name in ("value_encoding", "key_encoding"):
            if letter[name] not in ENCODINGS:
                raise ValueError(f"{name} {letter[name]!r} is not one of {', '.join(sorted(ENCODINGS))}")
        return cls(**letter)


ENCODINGS = frozenset({"utf-8", "base64", "none"})


def _json_kinds(cls: type) -> dict[str, tuple[tuple[type, ...], bool]]:
    """Each field's accepted JSON types and whether null is one, read off its annotation."""
    kinds = {}
    for name, hint in get_type_hints(cls).items():
        members = get_args(hint) or (hint,)
        types = tuple(t for t in members if t is not type(None))
        kinds[name] = ((*types, int) if float in types else types, type(None) in members)
    return kinds


_FIELD_TYPES = _json_kinds(DeadLetter)


def _embed(raw: bytes | None, limit: int) -> tuple[str | None, str, bool]:
    """(text, encoding, cut) of at most ``limit`` bytes of ``raw``; the whole decides the encoding."""
    if raw is None:
        return None, "none", False
    cut = len(raw) > limit
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw[:limit]).decode("ascii"), "base64", cut
    # A prefix of valid UTF-8 can end inside a character: only that tail is dropped.
    return raw[:limit].decode("utf-8", errors="ignore"), "utf-8", cut


def _decode(text: str | None, encoding: str) -> bytes | None:
    if text is None or encoding == "none":
        return None
    if encoding == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8")


def dead_letter(
    rejected: Rejected, now: datetime | None = None, max_embedded_bytes: int = MAX_EMBEDDED_BYTES
) -> DeadLetter:
    """Pure: the dead letter of one rejected record, at most ``max_embedded_bytes`` of value and key."""
    record = rejected.record
    value, value_encoding, value_truncated = _embed(record.value, max_embedded_bytes)
    key, key_encoding, key_truncated = _embed(record.key, max_embedded_bytes)
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
        value_truncated=value_truncated,
        value_bytes=None if record.value is None else len(record.value),
        value_sha256=None if record.value is None else hashlib.sha256(record.value).hexdigest(),
        key_truncated=key_truncated,
        replayed=record.replayed,
    )


@dataclass
class ReplaySelection:
    """Which dead letters a replay re-publishes, and which it leaves and why."""

    send: list[DeadLetter] = field(default_factory=list)
    permanent: dict[str, int] = field(default_factory=dict)  # reason -> letters skipped as bound to fail again
    truncated: list[DeadLetter] = field(default_factory=list)  # no longer hold their message
    unselected: int = 0  # another reason than the one asked for


def select_for_replay(
    letters: Iterable[DeadLetter], reason: str | None = None, include_permanent: bool = False
) -> ReplaySelection:
    """Pure: the letters a replay re-publishes.

    A letter cut to fit the DLQ is never re-published (its start is not the message). Without a
    ``reason``, a letter whose reason is in ``PERMANENT_REASONS`` is left unless
    ``include_permanent``: the same bytes would be dead-lettered again, and again by each replay.
    Naming its reason is asking for it.
    """
    selection = ReplaySelection()
    for letter in letters:
        if reason is not None and letter.reason != reason:
            selection.unselected += 1
        elif letter.replay_refusal() is not None:
            selection.truncated.append(letter)
        elif reason is None and not include_permanent and letter.reason in PERMANENT_REASONS:
            selection.permanent[letter.reason] = selection.permanent.get(letter.reason, 0) + 1
        else:
            selection.send.append(letter)
    return selection


# (key, value, headers) of one message for ``KafkaSender.send``.
Outgoing = tuple[bytes | None, bytes | None, dict[str, bytes]]


class DeliveryError(RuntimeError):
    """The broker did not confirm some messages; the caller retries the whole send."""


@dataclass
class _Attempt:
    """Where each message of one ``send`` request stands, across the caller's retries of it.

    Delivery reports land here whenever librdkafka serves them, also during a later call: a
    message still in flight when a call gave up is waited for, not produced a second time.
    """

    fingerprint: bytes
    confirmed: set[int] = field(default_factory=set)
    waiting: set[int] = field(default_factory=set)  # in the producer, no delivery report yet
    errors: dict[int, Any] = field(default_factory=dict)  # index -> KafkaError of its last refusal
    smaller: set[int] = field(default_factory=set)  # refused as too large alone: sent as the smaller form
    solo: set[int] = field(default_factory=set)  # refused as too large with others: to send again whole, alone
    sent_alone: set[int] = field(default_factory=set)  # produced by itself, or refused by the producer before batching
    copies: dict[int, int] = field(default_factory=dict)  # index -> number of its latest produce

    def produced(self, index: int) -> int:
        self.copies[index] = self.copies.get(index, 0) + 1
        self.errors.pop(index, None)
        self.waiting.add(index)
        return self.copies[index]

    def refused_too_large(self) -> set[int]:
        """Messages refused as too large and not yet planned as their smaller form."""
        return {i for i, error in self.errors.items() if _too_large(error) and i not in self.smaller}

    def report(self, index: int, copy: int, error: Any) -> None:
        if copy != self.copies.get(index):
            return  # a copy given up on (a replaced producer's): the latest one decides
        self.waiting.discard(index)
        if error is None:
            self.confirmed.add(index)
            self.errors.pop(index, None)
        else:
            self.errors[index] = error


def _fingerprint(topic: str, messages: Sequence[Outgoing]) -> bytes:
    digest = hashlib.sha256(topic.encode())
    for key, value, headers in messages:
        for part in (key, value, *(f"{k}={v!r}".encode() for k, v in sorted(headers.items()))):
            digest.update(b"-" if part is None else len(part).to_bytes(8, "big") + part)
        digest.update(b"|")
    return digest.digest()


def sort_too_large(refused: set[int], tried_alone: set[int], count: int) -> tuple[set[int], set[int]]:
    """Pure: of the messages refused as too large, those to send smaller and those to send again alone.

    The broker refuses a whole record batch as too large, so a letter that fits by itself may
    have been refused for its neighbours: it is sent whole once more, alone. Only a message
    refused by itself (or the only one of its request) is sent as its smaller form.
    """
    alone = {i for i in refused if i in tried_alone or count == 1}
    return alone, refused - alone


def _too_large(error: Any) -> bool:
    from confluent_kafka import KafkaError

    return bool(error.code() in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE))


class KafkaSender:
    """A confluent-kafka producer that sends a list and waits until every message is confirmed.

    Used for dead letters from the worker thread and by ``dlq replay``; blocking on purpose:
    the batch is acknowledged only after its dead letters are durable. The caller's retry of the
    same list sends only what is neither confirmed nor still queued or in flight: a broker that
    comes back gets each message once. Messages still queued when a call gives up stay queued
    (a queued message may be a retry of one the broker already holds, so dropping and re-sending
    it could duplicate it): the retry waits for their reports. Only a different request, which
    abandons this one, purges the queue.
    """

    def __init__(self, settings: KafkaSettings, flush_timeout: float = 30.0) -> None:
        from confluent_kafka import Producer

        self._config = settings.producer_config()
        self._producer = Producer(self._config, logger=rdkafka_log)
        self._flush_timeout = flush_timeout
        self._attempt: _Attempt | None = None

    def close(self) -> None:
        """Deliver what is queued and let go of the broker: an idle producer kept reconnecting to a
        broker stopped after its worker (an embedded one), logging a refused connection each time."""
        self._producer.close()

    def send(self, topic: str, messages: Sequence[Outgoing], smaller: Sequence[Outgoing] | None = None) -> None:
        """Send every message and wait for the broker's confirmation of each; else ``DeliveryError``.

        A message the producer or the broker refuses as too large is sent as its counterpart in
        ``smaller`` when there is one: that refusal is permanent, retrying the same bytes would
        fail for ever.
        """
        fingerprint = _fingerprint(topic, messages)
        if self._attempt is None or self._attempt.fingerprint != fingerprint:
            if self._attempt is not None and self._attempt.waiting:
                self._purge(in_flight=False)  # the abandoned request's queued messages: given up on
            self._attempt = _Attempt(fingerprint)  # a new request: an abandoned one's reports no longer matter
        attempt = self._attempt
        while True:
            if smaller is not None:  # first, so a retried call acts on refusals reported since the last one
                self._plan_too_large(topic, attempt, len(messages))
            flushed = self._send_pending(topic, messages, smaller, attempt)
            self._recreate_after_fatal(attempt)
            if smaller is None or not attempt.refused_too_large() or not flushed:
                break  # done, or the broker is slow or away: the caller's retry goes on from here
        unconfirmed = len(messages) - len(attempt.confirmed)
        if unconfirmed:
            failed = [f"{error.name()}: {error.str()}" for error in attempt.errors.values()]
            if not attempt.waiting and len(failed) == unconfirmed:  # all reported: refusals, no waiting involved
                raise DeliveryError(f"{len(failed)} of {len(messages)} refused by the broker: {failed[:3]}")
            raise DeliveryError(
                f"{unconfirmed} of {len(messages)} not confirmed within {self._flush_timeout:g} s "
                f"({len(attempt.waiting)} still in flight), "
                f"{len(failed)} failed: {failed[:3]}"
            )
        self._attempt = None

    def send_dead_letters(self, topic: str, letters: Sequence[DeadLetter]) -> None:
        """Each letter whole, or without the original's bytes when the broker cannot take it whole."""
        self.send(
            topic, [letter.to_message() for letter in letters], [letter.stripped().to_message() for letter in letters]
        )

    def _plan_too_large(self, topic: str, attempt: _Attempt, count: int) -> None:
        """Letters refused as too large: again whole and alone, or (refused alone) the smaller form."""
        too_large = attempt.refused_too_large()
        alone, again = sort_too_large(too_large, attempt.sent_alone, count)
        for index in sorted(alone | (again - attempt.solo)):  # each change of plan logged once
            log.warning(
                "message %d to %s refused as too large (%s): %s",
                index,
                topic,
                attempt.errors[index],
                "sending its smaller form" if index in alone else "sending it again by itself",
            )
        attempt.smaller |= alone
        attempt.solo |= again

    def _send_pending(
        self, topic: str, messages: Sequence[Outgoing], smaller: Sequence[Outgoing] | None, attempt: _Attempt
    ) -> bool:
        """Produce what is neither confirmed nor in flight and wait; letters marked solo one by one.

        False when a flush timed out: solo letters not produced yet stay pending, never tried alone.
        """
        pending = [i for i in range(len(messages)) if i not in attempt.confirmed and i not in attempt.waiting]
        solo = [i for i in pending if i in attempt.solo and i not in attempt.smaller]
        for index in pending:
            if index not in solo:
                chosen = smaller[index] if smaller is not None and index in attempt.smaller else messages[index]
                self._produce(topic, index, chosen, attempt)
        if self._producer.flush(self._flush_timeout):
            return False
        for index in solo:
            self._produce(topic, index, messages[index], attempt)
            attempt.sent_alone.add(index)
            if self._producer.flush(self._flush_timeout):
                return False
        return True

    def _produce(self, topic: str, index: int, message: Outgoing, attempt: _Attempt) -> None:
        from confluent_kafka import KafkaException

        key, value, headers = message
        copy = attempt.produced(index)
        while True:
            try:
                self._producer.produce(
                    topic,
                    key=key,
                    value=value,
                    headers=headers,
                    on_delivery=lambda error, _msg: attempt.report(index, copy, error),
                )
                return
            except BufferError:
                self._producer.poll(0.1)
            except KafkaException as exc:  # refused before it was queued, e.g. over message.max.bytes
                attempt.sent_alone.add(index)
                attempt.report(index, copy, exc.args[0])
                return

    def _purge(self, in_flight: bool) -> None:
        """Drop what the producer still holds; the delivery reports of the dropped messages are served."""
        self._producer.purge(in_queue=True, in_flight=in_flight, blocking=True)
        self._producer.poll(0)

    def _recreate_after_fatal(self, attempt: _Attempt) -> None:
        """A fatal error (the idempotent producer lost its guarantees) makes the producer unusable for good."""
        from confluent_kafka import KafkaError, Producer

        if not any(error.fatal() or error.code() == KafkaError._FATAL for error in attempt.errors.values()):
            return
        log.warning("dead-letter producer hit a fatal error, starting a new one: %s", list(attempt.errors.values())[:1])
        self._purge(in_flight=True)  # everything it held fails, so the next call sends it again
        attempt.waiting.clear()  # the old producer is never polled again: nothing of it is still pending
        self._producer = Producer(self._config, logger=rdkafka_log)


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
        self.deferred = 0  # letters the last read left for the next one (stamped after it began)
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
        """Dead letters in partition order from the start position until none dead-lettered before
        the read began has arrived for ``idle_timeout``.

        Letters stamped after the read began (by their Kafka timestamp) are held back and neither
        keep the read going nor are committed: with a worker still dead-lettering a broken
        producer's messages every few seconds, "until quiet" never came, and a replay read for
        ever without sending anything. A held-back letter that older ones follow on its partition
        was stamped by a clock ahead of this host's: it and they are yielded then. What is held
        back at the end is counted in ``deferred`` for the caller to say. (Not the end offsets:
        Tansu's watermarks count batches, not records.)
        """
        import time
        from collections import defaultdict

        from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_NOT_AVAILABLE, TopicPartition

        began_ms = time.time() * 1000
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
        held: dict[int, list[Any]] = defaultdict(list)  # per partition, letters stamped after the start
        last = time.monotonic()
        while time.monotonic() - last < idle_timeout:
            for message in self._consumer.consume(num_messages=500, timeout=0.25):
                if message.error():
                    continue
                partition = message.partition()
                kind, timestamp = message.timestamp()
                if kind != TIMESTAMP_NOT_AVAILABLE and timestamp > began_ms:
                    held[partition].append(message)
                    continue
                last = time.monotonic()
                ahead, held[partition] = held[partition], []  # an older letter after them: clock skew
                for one in (*ahead, message):
                    self._next[partition] = one.offset() + 1
                    try:
                        yield DeadLetter.from_json(one.value())
                    except (ValueError, TypeError) as exc:
                        if on_error:
                            on_error(f"offset {one.offset()}: not a dead letter ({exc})")
        self.deferred = sum(len(letters) for letters in held.values())

    def commit(self) -> None:
        """Record everything read so far as done for this reader's group."""
        from confluent_kafka import TopicPartition

        if self.group is None:
            raise RuntimeError("a reader without a group commits nothing")
        if self._next:
            positions = [TopicPartition(self.topic_name, p, offset) for p, offset in sorted(self._next.items())]
            self._consumer.commit(offsets=positions, asynchronous=False)
