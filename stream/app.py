"""The Faust app, built by a factory from settings: one agent on the reviews topic.

The agent takes micro-batches with ``take_events(max_batch, within=max_wait)`` and hands each
to ``BatchProcessor.process`` on an executor thread. ``take_events`` acknowledges a batch when
the loop body returns *or raises*, so the body never raises, and before processing it holds an
extra reference on every message: a batch's offsets become committable only after the agent
releases that reference, which it does once the rows are committed in Postgres and the dead
letters confirmed. A batch abandoned at shutdown keeps its reference and is redelivered.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from core.config import KafkaSettings, StreamSettings
from stream.pipeline import AbandonedError, BatchOutcome, BatchProcessor
from stream.records import Record, time_of

log = logging.getLogger(__name__)


def faust_options(kafka: KafkaSettings, stream: StreamSettings, datadir: Path) -> dict[str, Any]:
    """Faust settings for Apache Kafka, plus the short sessions Tansu needs (DESIGN.md)."""
    if not kafka.bootstrap_servers:
        raise ValueError("KAFKA_BOOTSTRAP_SERVERS is not set")
    options: dict[str, Any] = {
        "broker": [f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        "broker_client_id": kafka.client_id,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "topic_partitions": kafka.partitions,
        "topic_replication_factor": kafka.replication_factor,
        # Topics are created by `reviewscore worker` / infra, never implicitly by Faust.
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "stream_wait_empty": False,
        "web_enabled": False,
        # Tansu's high watermark is wrong, so "latest" would replay; "earliest" is right anyway
        # for a group that has never committed: every review gets scored.
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_interval": stream.commit_interval,
        "datadir": str(datadir),
        "store": "memory://",
    }
    if kafka.flavor == "tansu":
        options |= {"broker_session_timeout": 2, "broker_heartbeat_interval": 0.5, "broker_rebalance_timeout": 2}
    options |= _credentials(kafka)
    return options


def _credentials(kafka: KafkaSettings) -> dict[str, Any]:
    """The same KAFKA_SECURITY_PROTOCOL / SASL / CA settings librdkafka gets, in aiokafka's terms."""
    import faust

    tls = kafka.security_protocol in ("SSL", "SASL_SSL")
    context = ssl.create_default_context(cafile=kafka.ssl_ca_location) if tls else None
    if kafka.security_protocol.startswith("SASL"):
        if not (kafka.sasl_mechanism and kafka.sasl_username):
            needs = "KAFKA_SASL_MECHANISM and KAFKA_SASL_USERNAME"
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={kafka.security_protocol} needs {needs}")
        credentials: Any = faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password or "",
            mechanism=kafka.sasl_mechanism,
            ssl_context=context,
        )
        return {"broker_credentials": credentials}
    if context is not None:
        return {"broker_credentials": faust.SSLCredentials(context)}
    return {}


def record_of(event: Any) -> Record:
    message = event.message
    replayed, timestamp = time_of(message.headers, message.timestamp)
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp=timestamp,
        replayed=replayed,
    )


def create_app(
    kafka: KafkaSettings,
    stream: StreamSettings,
    processor: BatchProcessor,
    executor: Executor,
    datadir: Path,
) -> Any:
    """A ``faust.App`` whose only agent scores the reviews topic through ``processor``."""
    import faust

    app = faust.App(stream.app_id, **faust_options(kafka, stream, datadir))
    topic = app.topic(
        kafka.topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=kafka.partitions,
    )

    async def score_reviews(events_stream: Any) -> None:
        async for events in events_stream.take_events(stream.max_batch, within=stream.max_wait):
            await handle_batch(events_stream, events, processor, executor, stream.shutdown_grace)

    app.agent(topic, name="score_reviews")(score_reviews)

    async def on_assigned(_sender: Any, assigned: Any, **_kwargs: Any) -> None:
        """Expose the assignment: operators (and tests) can tell when the group has settled."""
        processor.metrics.rebalances.inc()
        processor.metrics.assigned_partitions.set(sum(1 for tp in assigned if tp.topic == kafka.topic))

    async def on_revoked(_sender: Any, _revoked: Any, **_kwargs: Any) -> None:
        processor.metrics.assigned_partitions.set(0)

    app.on_partitions_assigned.connect(on_assigned)
    app.on_partitions_revoked.connect(on_revoked)
    return app


async def handle_batch(
    events_stream: Any, events: list[Any], processor: BatchProcessor, executor: Executor, grace: float
) -> BatchOutcome | None:
    """Process one batch off the loop; acknowledge it only when it is durable. Never raises
    except ``CancelledError`` (shutdown), and then only after the in-flight batch landed."""
    for event in events:
        # Hold the offsets first: take_events' own ack (when its generator is finalized, e.g. if
        # anything below raised) must not release a batch that was never stored.
        event.message.incref()
    records = [record_of(event) for event in events]
    failures = 0
    while True:
        landing = asyncio.wrap_future(executor.submit(processor.process, records))
        try:
            outcome = await asyncio.shield(landing)
            break
        except asyncio.CancelledError:
            await _finish_in_flight(events_stream, landing, events, processor, grace)
            raise
        except AbandonedError as exc:
            log.warning("batch of %d left unacknowledged: %s", len(events), exc)
            return None
        except Exception as exc:  # process() retries what it knows: this is a bug
            # The same batch again, never the next one: a later batch's acknowledgement could commit
            # past this one (Faust looks for a gap at a partition's head only once it has committed
            # there), and a review would be lost. The worker says it is unhealthy meanwhile.
            # Dead letters the failed attempt had confirmed go out again: duplicates on the DLQ, not a loss.
            failures += 1
            problem = f"batch of {len(events)} failed unexpectedly: {type(exc).__name__}: {exc}"[:500]
            processor.health.failing("batch", problem)
            log.exception("%s (attempt %d); retrying the same batch", problem, failures)
            await asyncio.sleep(min(processor.retry_max, processor.retry_initial * 2 ** min(failures, 30)))
            if processor.abandon.is_set():  # shutdown ran out of patience: redelivered after the restart
                log.warning("batch of %d left unacknowledged: shutdown while it was retried", len(events))
                return None
    if failures and processor.health.ok("batch"):
        log.info("batch of %d stored after %d failed attempts", len(events), failures)
    for event in events:
        await events_stream.ack(event)
    _log_outcome(outcome)
    return outcome


async def _finish_in_flight(
    events_stream: Any,
    landing: asyncio.Future[BatchOutcome],
    events: list[Any],
    processor: BatchProcessor,
    grace: float,
) -> None:
    """SIGTERM arrived mid-batch: let it land (bounded by ``grace``), then acknowledge it.

    Awaited, not waited on: the loop keeps heartbeating meanwhile, so the group does not evict
    this member (Tansu's sessions are 2 s) before it commits the batch's offsets.
    """
    log.info("shutdown: waiting up to %.0fs for the in-flight batch of %d", grace, len(events))
    timer = threading.Timer(grace, processor.abandon.set)
    timer.start()
    try:
        outcome = await asyncio.shield(landing)
    except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - AbandonedError, or cancelled again
        log.warning("shutdown: in-flight batch left unacknowledged (%r); it will be redelivered", exc)
        return
    finally:
        timer.cancel()
    for event in events:
        # Both references: ours, and take_events' own, which its generator would release only
        # when it is finalized (whenever that is, at shutdown). A second ack is a no-op.
        await events_stream.ack(event)
        await events_stream.ack(event)
    log.info("shutdown: in-flight batch committed (%d scored, %d dead-lettered)", outcome.scored, len(outcome.dead))


def _log_outcome(outcome: BatchOutcome) -> None:
    log.debug(
        "batch: %d consumed, %d scored (%d new, %d updated, %d unchanged), %d dead-lettered; model %.3fs db %.3fs",
        outcome.consumed,
        outcome.scored,
        outcome.inserted,
        outcome.updated,
        outcome.unchanged,
        len(outcome.dead),
        outcome.model_seconds,
        outcome.db_seconds,
        extra={"consumed": outcome.consumed, "scored": outcome.scored, "dead_lettered": len(outcome.dead)},
    )
