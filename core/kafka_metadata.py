"""Does a Kafka-protocol broker answer, and does it know a topic: readiness and health ask this."""

from __future__ import annotations

from typing import Any


def topic_problem(client: Any, topic: str, timeout: float, *more: str) -> str | None:
    """Why ``client`` (any confluent-kafka client) got no usable metadata for ``topic`` (and each
    of ``more``), or None; one metadata request for them all.

    Asks for all topics, not ``list_topics(topic)``: asking for one topic may auto-create it.
    """
    try:
        metadata = client.list_topics(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - KafkaException (timeout, transport): the broker is not answering
        return f"no broker answers ({exc})"
    for name in (topic, *more):
        found = metadata.topics.get(name)
        if found is None:
            return f"topic {name!r} missing"
        if found.error is not None:
            return f"topic {name!r} unavailable ({found.error})"
    return None
