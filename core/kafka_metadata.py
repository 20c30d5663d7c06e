"""Does a Kafka-protocol broker answer, and does it know a topic: readiness and health ask this."""

from __future__ import annotations

from typing import Any


def topic_problem(client: Any, topic: str, timeout: float) -> str | None:
    """Why ``client`` (any confluent-kafka client) got no usable metadata for ``topic``, or None.

    Asks for all topics, not ``list_topics(topic)``: asking for one topic may auto-create it.
    """
    try:
        metadata = client.list_topics(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - KafkaException (timeout, transport): the broker is not answering
        return f"no broker answers ({exc})"
    found = metadata.topics.get(topic)
    if found is None:
        return f"topic {topic!r} missing"
    if found.error is not None:
        return f"topic {topic!r} unavailable ({found.error})"
    return None
