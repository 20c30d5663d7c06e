"""Broker reachability for the Faust engine: a metadata request every few seconds, in a thread.

The batch engine reads librdkafka's connection statistics (``stream.consumer``). The Faust
engine's aiokafka client keeps its connection state private and, through a broker outage, only
logs and reconnects, so without this the worker reported itself healthy while it could consume
nothing. A metadata request is the cheapest question every Kafka-protocol broker answers.
"""

from __future__ import annotations

import logging
import threading

from core.config import KafkaSettings
from core.kafka_metadata import topic_problem
from stream.metrics import Health

log = logging.getLogger(__name__)

PART = "broker"


class BrokerHealth:
    """Folds broker checks into the worker's health, for both engines (librdkafka's statistics,
    this module's probe): two failures in a row (a reconnect caught by one check is not an
    outage) mark the worker unhealthy, one good check clears it. Only the "broker" part: the
    pipeline's own problems are its to clear."""

    def __init__(self, health: Health) -> None:
        self._health = health
        self._failures = 0

    def observe(self, problem: str | None) -> None:
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


class BrokerProbe:
    """Asks the broker for the topic's metadata every ``interval`` seconds (the Faust engine's
    check; the batch engine reads librdkafka's statistics into the same ``BrokerHealth``)."""

    def __init__(self, settings: KafkaSettings, health: Health, interval: float = 5.0) -> None:
        self._settings = settings
        self._broker = BrokerHealth(health)
        self._interval = interval
        # Half the interval: an outage shows after about two intervals (two failed probes), and
        # a stop never waits long for a probe in flight.
        self._timeout = interval / 2
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
            self._broker.observe(topic_problem(admin, self._settings.topic, self._timeout))
            self._stop.wait(self._interval)
