"""Settings: one prefix per part, read at call time, documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.config import (
    DatabaseSettings,
    KafkaSettings,
    clear_settings_cache,
    get_api_settings,
    get_database_settings,
    get_kafka_settings,
    get_stream_settings,
)
from core.config.docs import SETTINGS_CLASSES, render_table, replace_block

README = Path(__file__).resolve().parents[2] / "README.md"


def test_each_part_reads_its_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/x")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("STREAM_MAX_BATCH", "77")
    clear_settings_cache()
    assert get_database_settings().url == "postgresql://u@db/x"
    assert get_kafka_settings().bootstrap_servers == "k1:9092,k2:9092"
    assert get_stream_settings().max_batch == 77


def test_settings_are_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_kafka_settings()
    monkeypatch.setenv("KAFKA_TOPIC", "other")
    assert get_kafka_settings() is first
    clear_settings_cache()
    assert get_kafka_settings().topic == "other"


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("KAFKA_TOPIC=from-dotenv\n", encoding="utf-8")
    assert KafkaSettings().topic == "from-dotenv"


def test_invalid_values_are_refused_with_the_field_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_POOL_SIZE", "0")
    with pytest.raises(ValidationError, match="pool_size"):
        DatabaseSettings()


@pytest.mark.parametrize("role", ["user", "select", "pg_reader", "public", "none"])
def test_a_reader_role_postgresql_cannot_create_unquoted_is_refused_at_start(role: str) -> None:
    """`migrate` splices the name into GRANT statements: these were SQL syntax errors mid-migration."""
    with pytest.raises(ValidationError, match="readonly_role"):
        DatabaseSettings(readonly_role=role)
    assert DatabaseSettings(readonly_role="users_reader").readonly_role == "users_reader"


@pytest.mark.parametrize(
    ("topics", "why"),
    [
        # The worker would dead-letter its own dead letters for ever, and create one partition.
        ({"KAFKA_TOPIC": "reviews", "KAFKA_DLQ_TOPIC": "reviews"}, "KAFKA_DLQ_TOPIC must differ from KAFKA_TOPIC"),
        ({"KAFKA_TOPIC": "brand reviews"}, "topic"),
        ({"KAFKA_DLQ_TOPIC": "reviews/dlq"}, "dlq_topic"),
        ({"KAFKA_TOPIC": ".."}, "'..' is not a Kafka topic name"),
    ],
)
def test_topics_kafka_would_refuse_or_that_loop_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, topics: dict[str, str], why: str
) -> None:
    for variable, value in topics.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=why):
        KafkaSettings()


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        # Above the contract's 20,000 characters the setting could never take effect.
        ("STREAM_MAX_TEXT_CHARS", "50000", "max_text_chars"),
        # Above the 500 the OpenAPI schema documents the query parameter would refuse it anyway.
        ("API_PAGE_LIMIT_MAX", "1000", "page_limit_max"),
        ("API_PAGE_LIMIT_DEFAULT", "600", "API_PAGE_LIMIT_DEFAULT"),
    ],
)
def test_limits_that_could_never_take_effect_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    clear_settings_cache()
    with pytest.raises(ValidationError, match=field):
        get_stream_settings() if variable.startswith("STREAM") else get_api_settings()


def test_producer_config_is_idempotent_and_requires_servers() -> None:
    with pytest.raises(ValueError, match="KAFKA_BOOTSTRAP_SERVERS"):
        KafkaSettings().producer_config()
    config = KafkaSettings(bootstrap_servers="b:9092").producer_config()
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"


def test_every_setting_has_a_description() -> None:
    missing = [
        f"{cls.__name__}.{name}"
        for cls in SETTINGS_CLASSES
        for name, f in cls.model_fields.items()
        if not f.description
    ]
    assert missing == []


def test_readme_configuration_table_is_current() -> None:
    document = README.read_text(encoding="utf-8")
    assert replace_block(document, render_table()) == document, (
        "README configuration table is stale: run `python -m core.config.docs --write README.md`"
    )


def test_the_table_lists_every_settings_class_in_core_config() -> None:
    import importlib
    import inspect
    import pkgutil

    from pydantic_settings import BaseSettings

    import core.config

    defined = set()
    for info in pkgutil.iter_modules(core.config.__path__):
        module = importlib.import_module(f"core.config.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseSettings) and cls.__module__ == module.__name__:
                defined.add(cls)
    assert defined == set(SETTINGS_CLASSES)  # a new settings class must reach the README's table


def test_trusted_proxies_are_addresses_or_networks_and_a_typo_is_refused_not_trusted_as_nobody() -> None:
    from core.config import ApiSettings

    assert ApiSettings(forwarded_allow_ips=" 10.0.0.0/8, 127.0.0.1 ").forwarded_allow_ips == "10.0.0.0/8,127.0.0.1"
    assert ApiSettings(forwarded_allow_ips="*").forwarded_allow_ips == "*"
    for value, said in [
        ("10.0.0.1/8", "has host bits set"),
        ("ingress.local", "'ingress.local' is not an address or a network"),
        ("*, 10.0.0.0/8", "'*' trusts every peer and stands alone"),
        (" , ", "name at least one address or network"),
    ]:
        with pytest.raises(ValidationError, match="forwarded_allow_ips") as caught:
            ApiSettings(forwarded_allow_ips=value)
        assert said in str(caught.value)


def test_a_state_dir_under_home_is_read_as_a_shell_reads_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Unexpanded, the embedded database went to ./~/.rs while the scraper's state went to $HOME/.rs."""
    from core.config import InfraSettings

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("REVIEWSCORE_STATE_DIR", "~/.rs")
    assert InfraSettings().state_dir == tmp_path / ".rs"


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_model_path_means_the_shipped_model(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """A compose variable left empty gave Path('.'), and loading failed on the working directory."""
    from core.config import ModelSettings

    monkeypatch.setenv("MODEL_PATH", value)
    assert ModelSettings().path is None
