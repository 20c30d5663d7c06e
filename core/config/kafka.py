"""Kafka connection and topic settings (prefix ``KAFKA_``)."""

from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from core.config.base import cached, settings_config

TOPIC_NAME = r"^[A-Za-z0-9._-]{1,249}$"
"""What Kafka accepts as a topic name: caught at start-up, not at the first produce."""


class KafkaSettings(BaseSettings):
    model_config = settings_config("KAFKA_")

    bootstrap_servers: str | None = Field(
        default=None,
        description=(
            "Comma-separated host:port list. Unset: the broker of a running `reviewscore infra up`; "
            "`demo` and `worker --embedded` start the embedded Tansu broker; other commands exit 2."
        ),
    )
    flavor: Literal["kafka", "tansu"] = Field(
        default="kafka",
        description="Broker implementation; 'tansu' switches on the short-session settings it needs.",
    )
    topic: str = Field(default="reviews", pattern=TOPIC_NAME, description="Topic that carries review messages.")
    dlq_topic: str = Field(
        default="reviews.dlq",
        pattern=TOPIC_NAME,
        description="Dead-letter topic for unscorable messages; must differ from the reviews topic.",
    )
    partitions: int = Field(default=4, ge=1, description="Partitions of the reviews topic when created.")
    replication_factor: int = Field(default=1, ge=1, description="Replication factor when topics are created.")
    client_id: str = Field(default="reviewscore", description="Client id sent to the broker.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: str | None = Field(default=None, description="SASL mechanism (e.g. PLAIN, SCRAM-SHA-512).")
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: str | None = Field(default=None, description="SASL password.")
    ssl_ca_location: str | None = Field(
        default=None,
        description="CA bundle (PEM file) that signed the brokers' certificates, for SSL/SASL_SSL; unset: system CAs.",
    )
    producer_linger_ms: int = Field(default=5, ge=0, description="Producer batching delay in milliseconds.")
    producer_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="lz4", description="Producer compression codec."
    )

    @model_validator(mode="after")
    def _dead_letters_go_elsewhere(self) -> Self:
        """One topic for both would feed every dead letter back to the worker, which dead-letters it
        again, wrapped once more, for ever; and the topic would be created with the DLQ's one partition."""
        for name in (self.topic, self.dlq_topic):
            if name in {".", ".."}:
                raise ValueError(f"{name!r} is not a Kafka topic name")
        if self.topic == self.dlq_topic:
            raise ValueError(f"KAFKA_DLQ_TOPIC must differ from KAFKA_TOPIC (both are {self.topic!r})")
        return self

    def producer_config(self) -> dict[str, str | int | bool]:
        """confluent-kafka producer settings: idempotent, acks=all, so a retry never duplicates."""
        return self.admin_config() | {
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": self.producer_linger_ms,
            "compression.type": self.producer_compression,
        }

    def consumer_config(self, group_id: str) -> dict[str, str | int | bool]:
        """confluent-kafka consumer settings; ``earliest`` because Tansu's high watermark is wrong."""
        config = self.admin_config() | {
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
        if self.flavor == "tansu":
            config["session.timeout.ms"] = 6000
            config["heartbeat.interval.ms"] = 500
        return config

    def admin_config(self) -> dict[str, str | int | bool]:
        """What every confluent-kafka client here shares: where the cluster is and how to log in.

        On its own: the settings of a client that only asks for metadata (health probes).
        """
        if not self.bootstrap_servers:
            raise ValueError("KAFKA_BOOTSTRAP_SERVERS is not set (start the embedded broker or set it)")
        config: dict[str, str | int | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol,
        }
        config.update(self._security())
        return config

    def _security(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.ssl_ca_location and self.security_protocol in ("SSL", "SASL_SSL"):
            out["ssl.ca.location"] = self.ssl_ca_location
        if self.sasl_mechanism:
            out["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            out["sasl.username"] = self.sasl_username
        if self.sasl_password:
            out["sasl.password"] = self.sasl_password
        return out


@cached
def get_kafka_settings() -> KafkaSettings:
    return KafkaSettings()
