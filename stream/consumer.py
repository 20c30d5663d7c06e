"""The batch engine: one librdkafka consumer that takes whole micro-batches, for high throughput.

Faust hands its agent one event at a time through several asyncio layers; measured here, that
path tops out near 3,100 messages/s with the model replaced by a no-op, so on a fast model it,
not the model, bounds the worker. librdkafka fetches and decodes in its own C threads and
``Consumer.consume(max_batch, timeout=max_wait)`` returns a whole micro-batch in one call
(≈235k messages/s off Tansu here), which leaves the worker bound by validation and the database.

The loop takes a batch, validates and scores it (``BatchProcessor.prepare``), has it written
(``complete``: durable in Postgres, dead letters confirmed) and then commits its offsets
synchronously, in order, on the consumer thread. With ``STREAM_OVERLAP_WRITES`` the write of
batch N runs on a writer thread while batch N+1 is prepared (measured: no gain on 2 cores). Rebalance callbacks run
inside ``consume()``, that is between batches, so a revoked partition never has a batch in
flight; records of a partition lost in between are simply redelivered to its new owner, and the
idempotent upsert makes that harmless. SIGTERM ends the loop after the in-flight batch landed
(bounded by ``STREAM_SHUTDOWN_GRACE``), commits it and leaves the group.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from types import FrameType
from typing import Any

from core.config import KafkaSettings, StreamSettings
from core.logs import client_logger
from stream.broker_probe import BrokerHealth
from stream.pipeline import AbandonedError, BatchOutcome, BatchProcessor
from stream.records import Record, time_of

log = logging.getLogger(__name__)
# librdkafka's own lines and its connection-error events: one of each every ~50 ms while the
# broker is down, so repeats are held back.
rdkafka_log = client_logger(f"{__name__}.librdkafka")


def consumer_config(kafka: KafkaSettings, stream: StreamSettings) -> dict[str, Any]:
    """librdkafka settings: manual commits, a deep prefetch queue, and Tansu's short sessions."""
    config: dict[str, Any] = {
        **kafka.consumer_config(group_id=stream.app_id),
        # A model batch can take seconds; the poll interval must outlast the slowest batch.
        "max.poll.interval.ms": max(300_000, int(stream.shutdown_grace * 2000)),
        "queued.max.messages.kbytes": 65_536,
        "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 8_388_608,
    }
    return config


STATS_INTERVAL_MS = 5_000
"""How often librdkafka reports its broker connections (``stats_cb``), which health reads."""


def broker_problem(stats_json: str) -> str | None:
    """Pure: why librdkafka's statistics show no usable broker connection, or None when one is UP.

    An unreachable cluster raises no error on an idle consumer (``consume`` just returns
    nothing), so without this the worker would report itself healthy through a broker outage.
    """
    stats = json.loads(stats_json)
    brokers: dict[str, Any] = stats.get("brokers") or {}
    if any(broker.get("state") == "UP" for broker in brokers.values()):
        return None
    states = ", ".join(f"{name} {broker.get('state', '?')}" for name, broker in sorted(brokers.items()))
    return f"no broker connection ({states or 'no broker known'})"


def consumer_problem(code: int, text: str) -> str | None:
    """What a consumer error event makes the worker report, or None.

    Partition EOF is no error. Lost connections are left to the broker-health rule on
    librdkafka's statistics (``broker_problem``), which also clears when the broker is back: as
    a "consumer" problem, a blip of a few seconds on a quiet topic kept the worker unhealthy
    until records or a rebalance came, which on a quiet topic could be hours.
    """
    from confluent_kafka import KafkaError

    if code == KafkaError._PARTITION_EOF:
        return None
    if code in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE):
        rdkafka_log.info("consumer: %s (connection errors are judged by the broker statistics)", text)
        return None
    return f"consumer: {text}"


def record_of(message: Any) -> Record:
    kind, timestamp = message.timestamp()
    replayed, moment = time_of(message.headers(), timestamp / 1000 if kind else None)
    return Record(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=message.value(),
        timestamp=moment,
        replayed=replayed,
    )


def next_offsets(records: Sequence[Record]) -> dict[tuple[str, int], int]:
    """The offset to commit per partition: one past the last record of the batch."""
    out: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        out[key] = max(out.get(key, -1), record.offset + 1)
    return out


class BatchConsumer:
    """Consume ``kafka.topic`` in micro-batches through ``processor`` until ``stop()``."""

    def __init__(
        self, kafka: KafkaSettings, stream: StreamSettings, processor: BatchProcessor, writer: Executor
    ) -> None:
        """``writer`` runs ``BatchProcessor.complete`` (one thread; the worker owns and closes it)."""
        self.kafka = kafka
        self.stream = stream
        self.processor = processor
        self._writer = writer
        self._stopping = threading.Event()
        self._grace_timer: threading.Timer | None = None
        self._in_flight: tuple[Future[BatchOutcome], list[Record]] | None = None
        self._consumer: Any = None
        self._broker = BrokerHealth(processor.health)

    # -- lifecycle -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the in-flight batch (at most ``shutdown_grace`` seconds more), then return."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._grace_timer = threading.Timer(self.stream.shutdown_grace, self.processor.abandon.set)
        self._grace_timer.daemon = True
        self._grace_timer.start()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("%s: stopping after the in-flight batch", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self) -> None:
        from confluent_kafka import Consumer

        config = {
            **consumer_config(self.kafka, self.stream),
            "statistics.interval.ms": STATS_INTERVAL_MS,
            "stats_cb": self._on_stats,
        }
        consumer = self._consumer = Consumer(config, logger=rdkafka_log)
        consumer.subscribe(
            [self.kafka.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        landed = True
        try:
            while landed and not self._stopping.is_set():
                messages = consumer.consume(self.stream.max_batch, timeout=self.stream.max_wait)
                records = [record_of(m) for m in messages if not self._is_event(m)]
                if records and len(records) == len(messages):
                    self.processor.health.ok("consumer")  # records and no errors: the broker is back
                landed = self._step(records)
            landed = landed and self._land()
        except AbandonedError as exc:
            landed = False
            log.warning("shutdown: a batch was left uncommitted (%s); it will be redelivered", exc)
        finally:
            if self._grace_timer:
                self._grace_timer.cancel()
            consumer.close()  # leaves the group: its partitions move on at once
            log.info("consumer closed")
        if landed and self._stopping.is_set():
            log.info("shutdown: in-flight batch committed")

    # -- one batch -----------------------------------------------------------------------------

    def _step(self, records: list[Record]) -> bool:
        """Prepare ``records`` while the previous batch is written, then hand them to the writer.

        Offsets are committed (in ``_land``) only for batches whose write returned, in order, on
        this thread. Sequential when ``overlap_writes`` is off. False: shutdown abandoned a batch.
        """
        if not records:
            return self._land()  # idle: finish the in-flight write now
        prepared = self.processor.prepare(records)
        if not self._land():
            return False
        self._in_flight = (self._writer.submit(self.processor.complete, prepared), records)
        return self.stream.overlap_writes or self._land()

    def _land(self) -> bool:
        """Wait for the in-flight write and commit its offsets; False when it was abandoned."""
        if self._in_flight is None:
            return True
        future, records = self._in_flight
        self._in_flight = None
        try:
            future.result()
        except AbandonedError as exc:
            log.warning("shutdown: batch of %d left uncommitted (%s); it will be redelivered", len(records), exc)
            return False
        self._commit(self._consumer, records)
        return True

    def _commit(self, consumer: Any, records: list[Record]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets(records).items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Rebalanced away or a broker hiccup: the rows are durable, so the worst case is a
            # harmless redelivery to whoever owns the partition next; a later commit covers it.
            log.warning("offset commit failed (%s); the batch may be redelivered", exc)

    def _is_event(self, message: Any) -> bool:
        """librdkafka reports partition EOF and errors as messages: skip them. An error makes the
        worker unhealthy until it is assigned partitions or gets records again (e.g. a JoinGroup
        refused because Faust members still hold the group: the engines' assignment protocols
        differ); see ``consumer_problem`` for the connection errors that do not."""
        error = message.error()
        if error is None:
            return False
        problem = consumer_problem(error.code(), error.str())
        if problem is not None:
            log.warning("%s", problem)
            self.processor.health.failing("consumer", problem)
        return True

    def _on_stats(self, stats_json: str) -> None:
        """Runs inside ``consume()``. Two reports in a row (≥ 5 s) before unhealthy: a reconnect
        caught in one snapshot is not an outage."""
        self._broker.observe(broker_problem(stats_json))

    # -- rebalance callbacks (run inside consume(), between batches) -------------------------

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self.processor.health.ok("consumer")
        self.processor.metrics.rebalances.inc()
        self.processor.metrics.assigned_partitions.set(len(partitions))
        log.info("assigned %s", sorted(p.partition for p in partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        """Before the partitions go: land the in-flight write and commit it while they are ours."""
        self._land()
        self.processor.metrics.assigned_partitions.set(0)
        log.info("revoked %s", sorted(p.partition for p in partitions))
