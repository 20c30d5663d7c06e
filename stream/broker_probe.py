"""Broker reachability for the Faust engine: a metadata request every few seconds, in a thread.

The batch engine reads librdkafka's connection statistics (``stream.consumer``). The Faust
engine's aiokafka client keeps its connection state private and, through a broker outage, only
logs and reconnects, so without this the worker reported itself healthy while it could consume
nothing. A metadata request is the cheapest question every Kafka-protocol broker answers.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from core.config import KafkaSettings
from stream.metrics import Health

log = logging.getLogger(__name__)

PART = "broker"


class BrokerProbe:
    """Asks the broker for the topic's metadata every ``interval`` seconds; two failures in a row
    (a reconnect caught by one request is not an outage) mark the worker unhealthy, one answer
    clears it. Only the "broker" part: the pipeline's own problems are its to clear."""

    def __init__(self, settings: KafkaSettings, health: Health, interval: float = 5.0) -> None:
        self._settings = settings
        self._health = health
        self._interval = interval
        # Half the interval: an outage shows after about two intervals (two failed probes), and
        # a stop never waits long for a probe in flight.
        self._timeout = interval / 2
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0

    def start(self) -> BrokerProbe:
        self._thread = threading.Thread(target=self._run, name="reviewscore-broker-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self, wait: bool = True) -> None:
        """Stop probing; ``wait=False`` only asks (a probe in flight ends within its timeout)."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join(self._timeout + 1)

    def _run(self) -> None:
        from confluent_kafka.admin import AdminClient

        # librdkafka logs every failed connection attempt; the health report says it once.
        admin = AdminClient(self._settings.admin_config() | {"log_level": 0})
        while not self._stop.is_set():
            self.observe(problem_of(admin, self._settings.topic, self._timeout))
            self._stop.wait(self._interval)

    def observe(self, problem: str | None) -> None:
        """Fold one probe's result into the health report (two failures in a row: unhealthy)."""
        if problem is None:
            self._failures = 0
            if self._health.ok(PART):
                log.info("broker reachable again")
            return
        self._failures += 1
        if self._failures == 2:
            log.warning("broker: %s", problem)
        if self._failures >= 2:
            self._health.failing(PART, problem)


def problem_of(admin: Any, topic: str, timeout: float) -> str | None:
    """Why the broker gave no usable metadata for ``topic`` within ``timeout``, or None."""
    try:
        # All topics, not list_topics(topic): asking for one topic may auto-create it.
        metadata = admin.list_topics(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - KafkaException (timeout, transport): the broker is not answering
        return f"no broker answers ({exc})"
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return f"topic {topic!r} unavailable ({found.error if found is not None else 'missing'})"
    return None
