"""docker-compose.yml: valid by the Compose Specification, complete, and in step with the code.

No Docker engine is needed: the file is checked against the specification's JSON schema and
read as data the way ``docker compose config`` would, with ``.env.example`` as the .env file.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from core.config import KafkaSettings, StreamSettings
from tests.deploy.manifests import (
    LIBRARY_ENV,
    ROOT,
    InterpolationError,
    compose_schema,
    image_is_pinned,
    is_our_image,
    load_compose,
    load_compose_raw,
    owning_prefix,
    project_version,
    read_env_file,
    referenced_variables,
    service_environment,
    settings_env_names,
    settings_prefixes,
)

ONE_SHOT = {"kafka-init", "db-roles", "migrate", "scraper"}


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert schema_errors(load_compose_raw()) == []
    assert schema_errors(compose) == []


@pytest.mark.parametrize(
    ("path", "bad_value"),
    [
        (("services", "api", "depends_on", "migrate", "condition"), "service_done"),
        (("services", "api", "restart_policy"), "always"),
        (("services", "worker-gpu", "deploy", "resources", "reservations", "devices"), "all"),
    ],
)
def test_the_schema_check_rejects_a_broken_file(path: tuple[str, ...], bad_value: str) -> None:
    """The validator has teeth: a wrong condition, an unknown key or a malformed GPU request fail."""
    broken = copy.deepcopy(load_compose_raw())
    target = broken
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = bad_value
    assert schema_errors(broken)


def test_the_stack_has_every_service_of_the_issue(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {
        "kafka",
        "kafka-init",
        "postgres",
        "db-roles",
        "pgadmin",
        "migrate",
        "worker-cpu",
        "worker-gpu",
        "api",
        "scraper",
    }
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert services["postgres"]["image"].startswith("postgres:")
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])


def test_every_variable_the_file_uses_is_in_env_example() -> None:
    used = referenced_variables(load_compose_raw())
    documented = set(read_env_file())
    assert used - documented == set()
    # COMPOSE_PROFILES is read by compose itself, not interpolated.
    assert documented - used - {"COMPOSE_PROFILES"} == set()


def test_without_an_env_file_compose_refuses_to_start_with_default_passwords() -> None:
    with pytest.raises(InterpolationError, match="POSTGRES_PASSWORD"):
        load_compose(env={})


def test_env_example_selects_exactly_one_worker_profile(services: dict[str, dict[str, Any]]) -> None:
    profiles = set(read_env_file()["COMPOSE_PROFILES"].split(","))
    worker_profiles = {name: set(services[name]["profiles"]) for name in ("worker-cpu", "worker-gpu")}
    assert worker_profiles == {"worker-cpu": {"cpu"}, "worker-gpu": {"gpu"}}
    assert len(profiles & {"cpu", "gpu"}) == 1


def test_only_the_gpu_worker_reserves_a_gpu(services: dict[str, dict[str, Any]]) -> None:
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "deploy" not in services["worker-cpu"]
    assert service_environment(services["worker-gpu"])["MODEL_DEVICE"] == "cuda"
    assert service_environment(services["worker-cpu"])["MODEL_DEVICE"] == "cpu"
    # Both flavours join one consumer group, so they share partitions rather than duplicate work.
    groups = {service_environment(services[n])["STREAM_APP_ID"] for n in ("worker-cpu", "worker-gpu")}
    assert len(groups) == 1


def test_dependencies_wait_on_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            condition = rule["condition"]
            assert condition in ("service_healthy", "service_completed_successfully"), (name, dependency)
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}, which has no healthcheck"
            else:
                assert dependency in ONE_SHOT, f"{name} waits for {dependency} to exit, but it is long-running"
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no"
    for name in ("kafka", "postgres", "api", "worker-cpu", "worker-gpu"):
        assert "healthcheck" in services[name], name


def test_the_workers_and_api_start_only_after_topics_and_schema_exist(services: dict[str, dict[str, Any]]) -> None:
    for name in ("worker-cpu", "worker-gpu", "api"):
        assert services[name]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    for name in ("worker-cpu", "worker-gpu"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["db-roles"]["condition"] == "service_completed_successfully"


def test_our_services_set_only_environment_variables_the_settings_know(services: dict[str, dict[str, Any]]) -> None:
    known = settings_env_names()
    for name, service in services.items():
        if not is_our_image(service.get("image", "")):
            continue
        for key in service_environment(service):
            if key in LIBRARY_ENV:
                continue
            assert owning_prefix(key) is not None, f"{name}: {key} belongs to no settings class"
            assert key in known, f"{name}: {key} is not a field of {settings_prefixes()[owning_prefix(key) or '']}"


@pytest.mark.parametrize("service", ["migrate", "worker-cpu", "worker-gpu", "api", "scraper"])
def test_each_service_environment_is_accepted_by_the_settings(
    service: str, services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values, not only names: a bad port, flavour or duration would fail here as it would in the container."""
    for key, value in service_environment(services[service]).items():
        monkeypatch.setenv(key, value)
    for cls in settings_prefixes().values():
        cls(_env_file=None)


def test_kafka_init_creates_the_topics_the_services_read(services: dict[str, dict[str, Any]]) -> None:
    init = service_environment(services["kafka-init"])
    defaults = KafkaSettings()
    assert (init["KAFKA_TOPIC"], init["KAFKA_DLQ_TOPIC"]) == (defaults.topic, defaults.dlq_topic)
    for name in ("worker-cpu", "worker-gpu", "api", "scraper"):
        env = service_environment(services[name])
        assert env["KAFKA_TOPIC"] == init["KAFKA_TOPIC"], name
        assert env["KAFKA_DLQ_TOPIC"] == init["KAFKA_DLQ_TOPIC"], name
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert env["KAFKA_FLAVOR"] == "kafka", name
    script = "\n".join(services["kafka-init"]["command"])
    assert '--topic "$KAFKA_TOPIC" --partitions "$KAFKA_PARTITIONS"' in script
    assert '--topic "$KAFKA_DLQ_TOPIC" --partitions 1' in script


def test_healthchecks_probe_the_ports_the_processes_bind(services: dict[str, dict[str, Any]]) -> None:
    worker = service_environment(services["worker-cpu"])
    assert worker["STREAM_WEB_HOST"] == "0.0.0.0"
    assert int(worker["STREAM_WEB_PORT"]) == StreamSettings().web_port
    for name in ("worker-cpu", "worker-gpu"):
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{worker['STREAM_WEB_PORT']}/healthz" in probe
    api = service_environment(services["api"])
    assert api["API_HOST"] == "0.0.0.0"
    assert f"http://127.0.0.1:{api['API_PORT']}/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert any(str(p).endswith(f":{api['API_PORT']}") for p in services["api"]["ports"])


def test_the_api_reads_through_the_select_only_role_and_cannot_write(services: dict[str, dict[str, Any]]) -> None:
    api = service_environment(services["api"])
    # No writer credentials: where DATABASE_URL is set at all, it is the reader's URL.
    assert api.get("DATABASE_URL", api["DATABASE_READONLY_URL"]) == api["DATABASE_READONLY_URL"]
    role = api["DATABASE_READONLY_ROLE"]
    assert api["DATABASE_READONLY_URL"].startswith(f"postgresql://{role}:")
    assert service_environment(services["db-roles"])["READER_ROLE"] == role
    assert service_environment(services["migrate"])["DATABASE_READONLY_ROLE"] == role
    for name in ("migrate", "worker-cpu", "worker-gpu"):
        assert service_environment(services[name])["DATABASE_URL"].startswith("postgresql://reviewscore:")


def test_images_are_pinned_and_ours_carry_the_project_version(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service["image"]
        assert image_is_pinned(image), f"{name}: {image}"
        _, _, tag = image.rpartition(":")
        if is_our_image(image):
            assert tag == project_version(), f"{name}: {image}"
            assert service["build"]["dockerfile"].startswith("deploy/docker/"), name


def test_the_crawler_keeps_its_state_on_a_volume_its_user_owns(services: dict[str, dict[str, Any]]) -> None:
    """Incremental crawls need the seen-review state of the last run; a root-owned mount would refuse writes."""
    state_dir = service_environment(services["scraper"])["SCRAPER_STATE_DIR"]
    assert any(volume.endswith(f":{state_dir}") for volume in services["scraper"]["volumes"])
    dockerfile = (ROOT / services["scraper"]["build"]["dockerfile"]).read_text(encoding="utf-8")
    assert f"install -d -o 10001 -g 10001 {state_dir}" in dockerfile
    assert f"SCRAPER_STATE_DIR={state_dir}" in dockerfile
