"""Broker health: the rule both engines share, and the Faust engine's metadata probe against a real
broker and one that is not there."""

from __future__ import annotations

import time

import pytest

from core.config import KafkaSettings
from core.embedded import free_port
from core.kafka_metadata import topic_problem
from stream.broker_probe import BrokerHealth, BrokerProbe
from stream.metrics import Health


def _wait_for(condition: object, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_one_failed_probe_is_a_blip_two_in_a_row_an_outage_and_one_answer_the_end_of_it() -> None:
    health = Health()
    probe = BrokerHealth(health)

    probe.observe("no broker answers (timed out)")
    assert health.is_healthy
    probe.observe("no broker answers (timed out)")
    assert health.report()["problem"] == "no broker answers (timed out)"
    probe.observe(None)
    assert health.is_healthy
    probe.observe("no broker answers (timed out)")
    assert health.is_healthy  # the count starts again after an answer


def test_the_probe_clears_only_its_own_part() -> None:
    health = Health()
    health.failing("write", "database down")
    BrokerHealth(health).observe(None)
    assert health.report()["problem"] == "database down"


@pytest.mark.integration
def test_a_reachable_broker_keeps_the_worker_healthy_and_an_unreachable_one_does_not(
    kafka_settings: KafkaSettings,
) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(kafka_settings.admin_config())
    assert topic_problem(admin, kafka_settings.topic, 10) is None
    assert topic_problem(admin, "no-such-topic", 10) == "topic 'no-such-topic' missing"
    reachable, unreachable = Health(), Health()
    probes = [
        BrokerProbe(kafka_settings, reachable, interval=0.5).start(),
        BrokerProbe(kafka_settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"}), unreachable,
                    interval=0.5).start(),
    ]  # fmt: skip
    try:
        assert _wait_for(lambda: not unreachable.is_healthy)
        assert unreachable.report()["problem"].startswith("no broker answers")
        time.sleep(1.5)  # three more probes of each
        assert reachable.is_healthy
    finally:
        for probe in probes:
            probe.stop()
