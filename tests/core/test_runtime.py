"""Finding a running `reviewscore infra up`: it fills in what is unset, never what is configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import clear_settings_cache, get_database_settings, get_kafka_settings
from core.embedded import write_infra_file
from core.runtime import InfraNotConfiguredError, adopt_running_infra, ensure_infra

INFRA_DB = "postgresql://postgres@/postgres?host=/tmp/infra"
INFRA_KAFKA = "127.0.0.1:39092"


@pytest.fixture
def running_infra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The state file of a live `infra up` (this process), seen from a working directory of the test's own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REVIEWSCORE_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    write_infra_file(tmp_path / "state", INFRA_DB, INFRA_KAFKA)
    # adopt_running_infra writes os.environ itself: register the keys so the test restores them.
    for key in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_FLAVOR"):
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    clear_settings_cache()
    return tmp_path


def test_running_infra_fills_in_both_addresses_and_the_tansu_flavor(running_infra: Path) -> None:
    assert adopt_running_infra() is True
    assert get_database_settings().url == INFRA_DB
    kafka = get_kafka_settings()
    assert (kafka.bootstrap_servers, kafka.flavor) == (INFRA_KAFKA, "tansu")


def test_addresses_in_dotenv_win_over_a_running_infra(running_infra: Path) -> None:
    (running_infra / ".env").write_text(
        "DATABASE_URL=postgresql://me@db.internal/reviews\nKAFKA_BOOTSTRAP_SERVERS=kafka.internal:9092\n",
        encoding="utf-8",
    )
    adopt_running_infra()
    assert get_database_settings().url == "postgresql://me@db.internal/reviews"
    kafka = get_kafka_settings()
    assert (kafka.bootstrap_servers, kafka.flavor) == ("kafka.internal:9092", "kafka")


def test_adopting_only_the_database_leaves_kafka_on_its_own_flavor(
    running_infra: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.internal:9092")
    adopt_running_infra()
    assert get_database_settings().url == INFRA_DB
    kafka = get_kafka_settings()
    assert (kafka.bootstrap_servers, kafka.flavor) == ("kafka.internal:9092", "kafka")
    assert "session.timeout.ms" not in kafka.consumer_config("readers")  # no Tansu-only session settings


def test_a_flavor_set_in_dotenv_is_kept_for_the_adopted_broker(running_infra: Path) -> None:
    (running_infra / ".env").write_text("KAFKA_FLAVOR=kafka\n", encoding="utf-8")
    adopt_running_infra()
    kafka = get_kafka_settings()
    assert (kafka.bootstrap_servers, kafka.flavor) == (INFRA_KAFKA, "kafka")


def test_without_a_running_infra_nothing_is_filled_in(running_infra: Path) -> None:
    (running_infra / "state" / "infra.json").unlink()
    assert adopt_running_infra() is False
    assert get_database_settings().url is None
    assert get_kafka_settings().bootstrap_servers is None


def test_a_command_that_finds_no_infra_names_the_directory_it_looked_in(running_infra: Path) -> None:
    """ "no `infra up` is running" misled the user who had started one in another directory."""
    (running_infra / "state" / "infra.json").unlink()

    with pytest.raises(InfraNotConfiguredError) as info, ensure_infra(database=False, start_embedded=False):
        pass

    assert f"no `reviewscore infra up` serves {running_infra / 'state'}" in str(info.value)
    assert "relative to the current directory" in str(info.value)
