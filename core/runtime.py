"""Finding (or starting) the broker and database a command should talk to.

Order: explicit settings (``DATABASE_URL``, ``KAFKA_BOOTSTRAP_SERVERS``) win; else a running
``reviewscore infra up`` found through its state file; else, where the caller allows it, the
embedded broker and database are started for the duration of the command.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from core.config import (
    DatabaseSettings,
    KafkaSettings,
    clear_settings_cache,
    get_database_settings,
    get_infra_settings,
    get_kafka_settings,
)
from core.embedded import EmbeddedBroker, EmbeddedDatabase, StateDirBusyError, holding_state_dir, read_infra_file


class InfraNotConfiguredError(RuntimeError):
    """A command needs a broker or database and none is configured or running."""


@dataclass(frozen=True)
class Connections:
    database_url: str | None
    bootstrap_servers: str | None
    started_database: bool = False
    started_broker: bool = False


def adopt_running_infra() -> bool:
    """Point unset settings at a running ``infra up``; True when one was found.

    "Unset" means what the settings classes would load, environment or ``.env``: a developer's
    ``.env`` must win over a broker that happens to be running. The Tansu flavor follows the
    broker address only: with the database adopted and Kafka configured elsewhere, the Kafka
    there is whatever the configuration says.
    """
    found = read_infra_file(get_infra_settings().state_dir)
    if not found:
        return False
    if not DatabaseSettings().url:
        os.environ["DATABASE_URL"] = found["DATABASE_URL"]
    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = found["KAFKA_BOOTSTRAP_SERVERS"]
        if "flavor" not in kafka.model_fields_set:
            os.environ["KAFKA_FLAVOR"] = "tansu"
    clear_settings_cache()
    return True


def _no_infra_here() -> str:
    """Where an `infra up` was looked for: the state directory is relative to the working one,
    so one started in another directory is not found, and "none is running" misled."""
    state = get_infra_settings().state_dir
    return (
        f"no `reviewscore infra up` serves {state.resolve()} (REVIEWSCORE_STATE_DIR, relative to the "
        "current directory: run from the directory it was started in, or set the variable)"
    )


@contextmanager
def ensure_infra(*, database: bool = True, kafka: bool = True, start_embedded: bool = True) -> Iterator[Connections]:
    """Yield connection strings, starting embedded servers only for what is not configured."""
    adopt_running_infra()
    db_url = get_database_settings().url
    servers = get_kafka_settings().bootstrap_servers
    with ExitStack() as stack:
        started_database = started_broker = False
        if start_embedded and ((database and not db_url) or (kafka and not servers)):
            state = get_infra_settings().state_dir
            try:
                stack.enter_context(holding_state_dir(state))
            except StateDirBusyError:
                raise InfraNotConfiguredError(
                    f"another reviewscore process is starting the embedded servers of {state}; "
                    "run again in a moment and this command will use them"
                ) from None
        if database and not db_url:
            if not start_embedded:
                raise InfraNotConfiguredError(f"DATABASE_URL is not set and {_no_infra_here()}")
            state = get_infra_settings().state_dir
            db = stack.enter_context(EmbeddedDatabase(state / "pgdata"))
            db_url = db.url
            os.environ["DATABASE_URL"] = db_url
            started_database = True
        if kafka and not servers:
            if not start_embedded:
                raise InfraNotConfiguredError(f"KAFKA_BOOTSTRAP_SERVERS is not set and {_no_infra_here()}")
            kafka_settings = get_kafka_settings()
            state = get_infra_settings().state_dir
            broker = stack.enter_context(
                EmbeddedBroker(
                    state,
                    topics={kafka_settings.topic: kafka_settings.partitions, kafka_settings.dlq_topic: 1},
                    port=get_infra_settings().broker_port,
                )
            )
            servers = broker.bootstrap_servers
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = servers
            os.environ["KAFKA_FLAVOR"] = "tansu"
            started_broker = True
        clear_settings_cache()
        yield Connections(db_url, servers, started_database, started_broker)
    clear_settings_cache()
