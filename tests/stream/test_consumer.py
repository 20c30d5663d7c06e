"""The batch engine's pure parts: which offsets a batch commits, and how the consumer is configured."""

from __future__ import annotations

from core.config import KafkaSettings, StreamSettings
from stream.consumer import consumer_config, next_offsets
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
