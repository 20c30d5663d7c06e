"""The batch engine's parts: which offsets a batch commits, how the consumer is configured, broker health."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import Consumer, KafkaError

from core.config import KafkaSettings, StreamSettings
from core.embedded import free_port
from stream.consumer import broker_problem, consumer_config, consumer_problem, next_offsets
from stream.records import Record


def _record(partition: int, offset: int, topic: str = "reviews") -> Record:
    return Record(topic=topic, partition=partition, offset=offset, key=None, value=b"{}")


def test_a_batch_commits_one_past_its_last_offset_on_every_partition_it_touched() -> None:
    records = [_record(0, 5), _record(1, 9), _record(0, 7), _record(0, 6), _record(2, 0, topic="other")]

    assert next_offsets(records) == {("reviews", 0): 8, ("reviews", 1): 10, ("other", 2): 1}


def test_an_empty_batch_commits_nothing() -> None:
    assert next_offsets([]) == {}


def test_the_consumer_commits_by_hand_from_the_earliest_offset_in_the_worker_group() -> None:
    kafka = KafkaSettings(bootstrap_servers="broker:9092")
    config = consumer_config(kafka, StreamSettings(app_id="scorers"))

    assert config["group.id"] == "scorers"
    assert config["enable.auto.commit"] is False
    assert config["auto.offset.reset"] == "earliest"
    assert config["bootstrap.servers"] == "broker:9092"


def test_the_poll_interval_outlasts_a_slow_batch_and_its_shutdown_grace() -> None:
    kafka = KafkaSettings(bootstrap_servers="broker:9092")

    assert consumer_config(kafka, StreamSettings())["max.poll.interval.ms"] >= 300_000
    assert consumer_config(kafka, StreamSettings(shutdown_grace=600))["max.poll.interval.ms"] >= 600_000


def test_tansu_gets_short_sessions() -> None:
    tansu = KafkaSettings(bootstrap_servers="broker:9092", flavor="tansu")

    assert consumer_config(tansu, StreamSettings())["session.timeout.ms"] == 6000


def _first_stats(bootstrap: str, seconds: float = 8.0) -> str:
    """librdkafka's own statistics of a consumer on ``bootstrap``, the way the worker gets them."""
    reports: list[str] = []
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "stats-probe",
            "statistics.interval.ms": 1_000,
            "stats_cb": reports.append,
            "log_level": 0,
        }
    )
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and len(reports) < 2:
            consumer.poll(0.2)
    finally:
        consumer.close()
    assert reports, "librdkafka sent no statistics"
    return reports[-1]


@pytest.mark.integration
def test_the_broker_statistics_tell_a_reachable_cluster_from_an_unreachable_one(kafka_settings: KafkaSettings) -> None:
    assert broker_problem(_first_stats(kafka_settings.bootstrap_servers or "")) is None
    problem = broker_problem(_first_stats(f"127.0.0.1:{free_port()}"))
    assert problem is not None
    assert problem.startswith("no broker connection (")


def test_statistics_without_brokers_are_a_problem_too() -> None:
    assert broker_problem(json.dumps({"brokers": {}})) == "no broker connection (no broker known)"
    up = {"brokers": {"a:9092/1": {"state": "UP"}, "b:9092/2": {"state": "DOWN"}}}
    assert broker_problem(json.dumps(up)) is None


def test_a_lost_connection_is_judged_by_the_broker_statistics_not_held_against_the_consumer() -> None:
    """A blip on a quiet topic must not leave the worker unhealthy until the next record."""
    for code in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE, KafkaError._PARTITION_EOF):
        assert consumer_problem(code, "x") is None
    refused = consumer_problem(KafkaError.INCONSISTENT_GROUP_PROTOCOL, "JoinGroup failed: Inconsistent group protocol")
    assert refused == "consumer: JoinGroup failed: Inconsistent group protocol"
