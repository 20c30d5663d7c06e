"""The API's only write path: one idempotent Kafka producer per process, owned by the lifespan.

A submission is acknowledged (202) only after the broker has confirmed the message (acks=all),
so a 202 never hides a lost review; librdkafka's own delivery timeout is set to the API's, so
a request that gave up with 503 is not delivered behind the client's back later.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from typing import Any

from core.config import KafkaSettings
from core.kafka_metadata import topic_problem
from core.logs import client_logger
from core.messages import ReviewMessage

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """The broker did not confirm the message in time (or refused it)."""


class Publisher:
    """confluent-kafka producer plus a thread that serves its delivery callbacks."""

    def __init__(self, settings: KafkaSettings, timeout: float) -> None:
        from confluent_kafka import Producer

        config: dict[str, Any] = settings.producer_config()
        config["message.timeout.ms"] = max(1, int(timeout * 1000))
        config["client.id"] = f"{settings.client_id}-api"
        self.topic = settings.topic
        self.timeout = timeout
        self._producer = Producer(config, logger=client_logger(f"{__name__}.librdkafka"))
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def _send(self, message: ReviewMessage) -> Future[None]:
        """Queue one review; the future settles on the broker's acknowledgement (or refusal)."""
        key, value = message.to_kafka()
        done: Future[None] = Future()

        def on_delivery(err: Any, _msg: Any) -> None:
            if not done.set_running_or_notify_cancel():
                return  # the caller gave up (timeout, client gone): nobody waits for this answer
            if err is not None:
                done.set_exception(PublishError(str(err)))
            else:
                done.set_result(None)

        try:
            self._producer.produce(self.topic, value=value, key=key, on_delivery=on_delivery)
        except BufferError as exc:  # the local queue is full: the broker is not keeping up
            raise PublishError("the producer queue is full") from exc
        return done

    async def publish(self, message: ReviewMessage) -> None:
        """Send one review and wait, on the event loop, until the broker has it; raise
        ``PublishError`` otherwise. No thread is held while the acknowledgement is pending."""
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._send(message)), self.timeout + 1.0)
        except TimeoutError as exc:
            raise PublishError(f"no acknowledgement within {self.timeout}s") from exc

    def ping(self, timeout: float = 2.0) -> str:
        """'ok' when the broker answers and knows the topic, else the reason."""
        return topic_problem(self._producer, self.topic, timeout) or "ok"

    def close(self) -> None:
        self._stop.set()
        self._poller.join(timeout=2.0)
        remaining = self._producer.flush(5.0)
        if remaining:
            log.warning("%d submissions were not confirmed at shutdown", remaining)
