"""deploy/k8s: valid by the Kubernetes JSON schemas, wired together, and in step with the code.

kubernetes-validate carries the schemas of each Kubernetes release offline; strict mode rejects
unknown fields, so a typo (``replica:``) fails here rather than being dropped by the API server.
KEDA's ScaledObject is a CRD, checked against a hand-written subset of its schema.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from tests.deploy.manifests import (
    COMMAND_LINE_ENV,
    K8S_DIR,
    LIBRARY_ENV,
    READER_ROLE_SQL,
    Manifest,
    config_map_data,
    containers,
    expand_references,
    find,
    image_is_pinned,
    is_our_image,
    k8s_files,
    load_compose,
    load_manifests,
    owning_prefix,
    pod_spec,
    project_version,
    settings_env_names,
    settings_prefixes,
)

CRD_KINDS = {"ScaledObject", "TriggerAuthentication"}
KEDA_SCHEMA = Path(__file__).with_name("keda_scaledobject.schema.json")
MANIFESTS = load_manifests()
CORE_MANIFESTS = [m for m in MANIFESTS if m.kind not in CRD_KINDS]
WORKLOADS = [m for m in MANIFESTS if pod_spec(m) is not None]


@pytest.fixture(scope="module")
def config() -> dict[str, str]:
    return config_map_data(MANIFESTS)


def keda_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(json.loads(KEDA_SCHEMA.read_text(encoding="utf-8")))
    return [e.message for e in validator.iter_errors(document)]


def container(manifest: Manifest, name: str) -> dict[str, Any]:
    return next(c for c in containers(manifest) if c["name"] == name)


def env_value_names(c: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in c.get("env", [])}


@pytest.mark.parametrize("manifest", CORE_MANIFESTS, ids=str)
def test_each_manifest_is_valid_for_kubernetes_strictly(manifest: Manifest) -> None:
    kubernetes_validate.validate(manifest.doc, latest_version(), strict=True)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["spec"].__setitem__("replica", 2),  # typo of replicas: unknown field
        lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].__setitem__("containerPort", "6066"),
    ],
    ids=["unknown-field", "container-without-name", "port-as-string"],
)
def test_the_kubernetes_check_rejects_a_broken_manifest(mutate: Any) -> None:
    broken = copy.deepcopy(find(MANIFESTS, "Deployment", "reviewscore-worker").doc)
    mutate(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, latest_version(), strict=True)


def test_the_keda_scaled_object_matches_its_schema_and_the_check_has_teeth() -> None:
    scaled = find(MANIFESTS, "ScaledObject", "reviewscore-worker").doc
    assert keda_errors(scaled) == []
    broken = copy.deepcopy(scaled)
    broken["spec"]["maxReplicas"] = 4  # the HPA spelling, not KEDA's
    assert keda_errors(broken)


def test_the_keda_sasl_wiring_uncommented_is_valid_and_reads_the_workers_credentials() -> None:
    """The scaler reads consumer lag from the same cluster as the workers: with SASL it needs their user."""
    scaled = find(MANIFESTS, "ScaledObject", "reviewscore-worker")
    text = scaled.path.read_text(encoding="utf-8")
    uncommented = re.sub(
        r"(?m)^(\s*)# ((?:sasl|tls): \S+|authenticationRef:|  name: reviewscore-kafka)$", r"\1\2", text
    )
    docs = [doc for doc in yaml.safe_load_all(uncommented) if doc]
    wired = next(doc for doc in docs if doc["kind"] == "ScaledObject")
    trigger = wired["spec"]["triggers"][0]

    assert keda_errors(wired) == []
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert trigger["metadata"]["tls"] == "enable"
    auth = find(MANIFESTS, "TriggerAuthentication", trigger["authenticationRef"]["name"]).doc
    assert auth["metadata"]["namespace"] == wired["metadata"]["namespace"]
    worker_secrets = {
        item["valueFrom"]["secretKeyRef"]["key"]: item["valueFrom"]["secretKeyRef"]["name"]
        for item in container(find(MANIFESTS, "Deployment", "reviewscore-worker"), "worker").get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    refs = {ref["parameter"]: (ref["name"], ref["key"]) for ref in auth["spec"]["secretTargetRef"]}
    assert refs == {
        "username": (worker_secrets["KAFKA_SASL_USERNAME"], "KAFKA_SASL_USERNAME"),
        "password": (worker_secrets["KAFKA_SASL_PASSWORD"], "KAFKA_SASL_PASSWORD"),
    }
    assert (
        find(MANIFESTS, "ScaledObject", "reviewscore-worker").doc["spec"]["triggers"][0].get("authenticationRef")
        is None
    )


def test_the_manifests_cover_the_issue() -> None:
    kinds = {(m.kind, m.name) for m in MANIFESTS}
    assert kinds >= {
        ("Namespace", "reviewscore"),
        ("ConfigMap", "reviewscore-config"),
        ("Secret", "reviewscore-secrets"),
        ("Job", "reviewscore-migrate"),
        ("Job", "reviewscore-kafka-topics"),
        ("Deployment", "reviewscore-worker"),
        ("Deployment", "reviewscore-api"),
        ("Service", "reviewscore-api"),
        ("HorizontalPodAutoscaler", "reviewscore-api"),
        ("CronJob", "reviewscore-scraper"),
        ("CronJob", "reviewscore-brand-alerts"),
        ("PodDisruptionBudget", "reviewscore-worker"),
        ("PodDisruptionBudget", "reviewscore-api"),
        ("ScaledObject", "reviewscore-worker"),
    }


def test_kustomization_applies_every_manifest_but_the_optional_ones_and_the_example_secret() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    top_level = {p.name for p in k8s_files() if p.parent == K8S_DIR and p.name != "kustomization.yaml"}
    # secret.yaml holds placeholders: applied with the rest, every upgrade would put them back
    # over the real Secret, and the migration, the API and the worker would stop connecting.
    assert set(kustomization["resources"]) == top_level - {"secret.yaml"}
    assert kustomization["namespace"] == "reviewscore"
    ours = {c["image"].rpartition(":")[0] for m in WORKLOADS for c in containers(m) if is_our_image(c["image"])}
    # Plus the CPU-only worker image, which deploy/README.md tells CPU clusters to swap in.
    assert {image["name"] for image in kustomization["images"]} == ours | {"reviewscore/worker"}
    assert {image["newTag"] for image in kustomization["images"]} == {project_version()}


def test_everything_lives_in_the_reviewscore_namespace() -> None:
    for manifest in MANIFESTS:
        if manifest.kind == "Namespace":
            continue
        assert manifest.doc["metadata"]["namespace"] == "reviewscore", str(manifest)


def test_selectors_find_the_pods_they_mean() -> None:
    pods = {m.name: m.doc["spec"]["template"]["metadata"]["labels"] for m in MANIFESTS if m.kind == "Deployment"}
    for manifest in MANIFESTS:
        if manifest.kind == "Deployment":
            selector = manifest.doc["spec"]["selector"]["matchLabels"]
        elif manifest.kind in ("Service", "PodDisruptionBudget"):
            spec = manifest.doc["spec"]
            selector = spec["selector"] if manifest.kind == "Service" else spec["selector"]["matchLabels"]
        else:
            continue
        matched = [name for name, labels in pods.items() if selector.items() <= labels.items()]
        assert len(matched) == 1, f"{manifest} selects {matched}"
    for manifest in MANIFESTS:
        if manifest.kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            assert manifest.doc["spec"]["scaleTargetRef"]["name"] in pods, str(manifest)


def test_services_and_probes_use_ports_the_containers_declare() -> None:
    for manifest in WORKLOADS:
        for c in containers(manifest):
            declared = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe in c:
                    assert c[probe]["httpGet"]["port"] in declared, f"{manifest} {probe}"
    api_ports = {p["name"] for p in container(find(MANIFESTS, "Deployment", "reviewscore-api"), "api")["ports"]}
    worker = container(find(MANIFESTS, "Deployment", "reviewscore-worker"), "worker")
    for service, ports in (("reviewscore-api", api_ports), ("reviewscore-worker-metrics", {"metrics"})):
        for port in find(MANIFESTS, "Service", service).doc["spec"]["ports"]:
            assert port["targetPort"] in ports, service
    assert {p["name"] for p in worker["ports"]} == {"metrics"}


def test_worker_replicas_never_exceed_the_partitions(config: dict[str, str]) -> None:
    partitions = int(config["KAFKA_PARTITIONS"])
    worker = find(MANIFESTS, "Deployment", "reviewscore-worker").doc
    scaled = find(MANIFESTS, "ScaledObject", "reviewscore-worker").doc["spec"]
    # Left to KEDA (or `kubectl scale`), a new Deployment starts at Kubernetes' default of 1.
    assert 1 <= worker["spec"].get("replicas", 1) <= partitions
    assert scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= partitions


def test_deployments_an_autoscaler_targets_leave_replicas_to_it() -> None:
    """A replicas field would reset the HPA's or KEDA's count on every `kubectl apply`."""
    autoscalers = [m for m in MANIFESTS if m.kind in ("HorizontalPodAutoscaler", "ScaledObject")]
    assert {m.kind for m in autoscalers} == {"HorizontalPodAutoscaler", "ScaledObject"}
    for autoscaler in autoscalers:
        ref = autoscaler.doc["spec"]["scaleTargetRef"]
        target = find(MANIFESTS, ref.get("kind", "Deployment"), ref["name"])  # KEDA's default kind
        assert "replicas" not in target.doc["spec"], f"{target} sets replicas, which {autoscaler} owns"


def test_keda_watches_the_topic_and_group_the_workers_use(config: dict[str, str]) -> None:
    (trigger,) = find(MANIFESTS, "ScaledObject", "reviewscore-worker").doc["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["topic"] == config["KAFKA_TOPIC"]
    assert trigger["metadata"]["consumerGroup"] == config["STREAM_APP_ID"]
    assert trigger["metadata"]["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
    # Tansu's lag figures are wrong, Apache Kafka's are not: KEDA is for the real broker only.
    assert config["KAFKA_FLAVOR"] == "kafka"


def test_the_worker_gets_one_gpu_and_runs_the_cuda_image() -> None:
    worker = container(find(MANIFESTS, "Deployment", "reviewscore-worker"), "worker")
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["image"].startswith("reviewscore/worker-gpu:")
    assert env_value_names(worker)["MODEL_DEVICE"]["value"] == "cuda"


def test_our_containers_set_only_environment_variables_the_settings_know(config: dict[str, str]) -> None:
    known = settings_env_names()
    for key in config:
        assert key in known or key in COMMAND_LINE_ENV, (
            f"ConfigMap key {key} is no settings field ({owning_prefix(key)})"
        )
    for manifest in WORKLOADS:
        for c in containers(manifest):
            if not is_our_image(c["image"]):
                continue
            for key in env_value_names(c):
                assert key in known or key in LIBRARY_ENV, f"{manifest}: {key}"


@pytest.mark.parametrize("manifest", [m for m in WORKLOADS if m.path.name != "kafka-topics-job.yaml"], ids=str)
def test_each_container_environment_is_accepted_by_the_settings(
    manifest: Manifest, config: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = find(MANIFESTS, "Secret", "reviewscore-secrets").doc["stringData"]
    for c in containers(manifest, init=False):
        for key, value in config.items():
            monkeypatch.setenv(key, value)
        for key, item in env_value_names(c).items():
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref.get("optional") and ref["key"] not in secret:
                continue  # unset, as in a pod whose Secret leaves the key out
            monkeypatch.setenv(key, secret[ref["key"]] if ref else str(item.get("value", "")))
        for cls in settings_prefixes().values():
            cls(_env_file=None)


SECRET_TEXT = (K8S_DIR / "secret.yaml").read_text(encoding="utf-8")


def test_referenced_secret_and_config_keys_exist(config: dict[str, str]) -> None:
    secret = find(MANIFESTS, "Secret", "reviewscore-secrets").doc["stringData"]
    for manifest in WORKLOADS:
        for c in containers(manifest):
            for ref in c.get("envFrom", []):
                assert ref["configMapRef"]["name"] == "reviewscore-config", str(manifest)
            for item in c.get("env", []):
                source = item.get("valueFrom", {})
                if "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    assert ref["name"] == "reviewscore-secrets"
                    if ref.get("optional"):  # SASL, submit keys, the alert webhook: shown (commented) in the example
                        assert ref["key"].startswith(("KAFKA_SASL_", "API_SUBMIT_", "API_ALERT_WEBHOOK")), (
                            f"{manifest}: {item['name']}"
                        )
                        assert f"# {ref['key']}: " in SECRET_TEXT, ref["key"]
                    else:
                        assert ref["key"] in secret, f"{manifest}: {item['name']}"
                if "configMapKeyRef" in source:
                    assert source["configMapKeyRef"]["key"] in config, f"{manifest}: {item['name']}"


def test_the_secrets_commented_examples_are_accepted_once_uncommented(
    config: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An operator uncomments them as shown: a placeholder the settings refuse (a submit key under
    # 16 characters) would stop the API at start-up instead of showing the shape to follow.
    uncommented = yaml.safe_load(re.sub(r"(?m)^  # ([A-Z][A-Z0-9_]*): ", r"  \1: ", SECRET_TEXT))["stringData"]
    known = settings_env_names()
    examples = {key: value for key, value in uncommented.items() if key in known}
    assert {"KAFKA_SASL_USERNAME", "API_SUBMIT_API_KEYS", "API_SUBMIT_NAMED_KEYS", "API_ALERT_WEBHOOK"} <= set(examples)
    for key, value in {**config, **examples}.items():
        monkeypatch.setenv(key, str(value))
    for cls in settings_prefixes().values():
        cls(_env_file=None)


def test_the_api_gets_only_the_read_only_database_url() -> None:
    api = env_value_names(container(find(MANIFESTS, "Deployment", "reviewscore-api"), "api"))
    secret_keys = {item["valueFrom"]["secretKeyRef"]["key"] for item in api.values() if "valueFrom" in item}
    # The writer's URL never reaches the API pod; broker credentials do, when the cluster uses SASL,
    # and the keys submissions must carry, when set.
    assert secret_keys == {
        "DATABASE_READONLY_URL",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "API_SUBMIT_API_KEYS",
        "API_SUBMIT_NAMED_KEYS",
    }
    secret = find(MANIFESTS, "Secret", "reviewscore-secrets").doc["stringData"]
    assert secret["DATABASE_READONLY_URL"].startswith("postgresql://reviewscore_reader:")
    for name in ("reviewscore-worker",):
        assert "DATABASE_URL" in env_value_names(container(find(MANIFESTS, "Deployment", name), "worker"))


def test_probes_hit_the_health_paths_on_the_configured_ports(config: dict[str, str]) -> None:
    worker_deployment = find(MANIFESTS, "Deployment", "reviewscore-worker")
    worker = container(worker_deployment, "worker")
    assert worker["ports"][0]["containerPort"] == int(config["STREAM_WEB_PORT"])
    assert config["STREAM_WEB_HOST"] == "0.0.0.0"
    for probe in ("startupProbe", "readinessProbe"):
        assert worker[probe]["httpGet"]["path"] == "/healthz"
    # A worker retrying through a database outage is unhealthy but alive: restarting it would not help.
    assert worker["livenessProbe"]["httpGet"]["path"] == "/livez"
    api_deployment = find(MANIFESTS, "Deployment", "reviewscore-api")
    api = container(api_deployment, "api")
    assert api["ports"][0]["containerPort"] == int(config["API_PORT"])
    assert config["API_HOST"] == "0.0.0.0"
    # Database only: a broker outage must not take every replica out of the Service (reads work).
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz?require=database"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for deployment, port in ((worker_deployment, config["STREAM_WEB_PORT"]), (api_deployment, config["API_PORT"])):
        annotations = deployment.doc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == port
        assert annotations["prometheus.io/path"] == "/metrics"


def test_every_pod_runs_restricted_non_root_and_read_only() -> None:
    for manifest in WORKLOADS:
        spec = pod_spec(manifest)
        assert spec is not None
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, str(manifest)
        assert pod_security["seccompProfile"]["type"] == "RuntimeDefault", str(manifest)
        mounts_of_volumes = {v["name"] for v in spec.get("volumes", [])}
        for c in containers(manifest):
            security = c["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, f"{manifest} {c['name']}"
            assert security["capabilities"]["drop"] == ["ALL"], f"{manifest} {c['name']}"
            assert "memory" in c["resources"]["limits"], f"{manifest} {c['name']}"
            if is_our_image(c["image"]):
                assert pod_security["runAsUser"] == 10001, str(manifest)
                assert security["readOnlyRootFilesystem"] is True, f"{manifest} {c['name']}"
                tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
                assert tmp, f"{manifest} {c['name']} needs a writable /tmp"
                assert tmp[0]["name"] in mounts_of_volumes


def test_images_are_pinned_and_agree_with_compose() -> None:
    compose_images = {s["image"] for s in load_compose()["services"].values()}
    for manifest in WORKLOADS:
        for c in containers(manifest):
            assert image_is_pinned(c["image"]), f"{manifest}: {c['image']}"
            # Same images (and tags) as the compose stack: one set of images to build and scan.
            assert c["image"] in compose_images, f"{manifest}: {c['image']} is not in docker-compose.yml"
            if is_our_image(c["image"]):
                assert c["image"].endswith(f":{project_version()}")


def test_workloads_run_the_same_commands_as_compose(config: dict[str, str]) -> None:
    services = load_compose()["services"]
    pairs = {
        ("Job", "reviewscore-migrate", "migrate"): "migrate",
        ("Deployment", "reviewscore-worker", "worker"): "worker-gpu",
        ("Deployment", "reviewscore-api", "api"): "api",
        ("CronJob", "reviewscore-scraper", "scraper"): "scraper",
    }
    for (kind, name, container_name), service in pairs.items():
        args = [
            expand_references(arg, config) for arg in container(find(MANIFESTS, kind, name), container_name)["args"]
        ]
        command = services[service]["command"]
        assert args[:2] == command[:2], f"{kind}/{name}: {args} vs compose {command}"


def test_the_reader_role_sql_in_the_config_map_is_the_one_in_deploy_postgres() -> None:
    data = config_map_data(MANIFESTS, "reviewscore-db-roles")
    assert data["reader-role.sql"] == READER_ROLE_SQL.read_text(encoding="utf-8")


def test_the_crawler_takes_its_start_urls_from_the_config_map(config: dict[str, str]) -> None:
    """Which site to crawl is configuration (SCRAPER_START_URL), not written into the CronJob."""
    pytest.importorskip("scrapy")
    from scraper.start_urls import not_http_urls, split_start_urls

    scraper = container(find(MANIFESTS, "CronJob", "reviewscore-scraper"), "scraper")
    assert not [arg for arg in scraper["args"] if "://" in arg], scraper["args"]
    assert {ref["configMapRef"]["name"] for ref in scraper["envFrom"]} == {"reviewscore-config"}
    env = config | {k: str(v["value"]) for k, v in env_value_names(scraper).items() if "value" in v}
    argv = [expand_references(arg, env) for arg in scraper["args"]]
    assert "$(" not in " ".join(argv), argv
    from scraper.spiders import schemaorg, trustpilot

    assert argv[1] in {trustpilot.TrustpilotSpider.name, schemaorg.SchemaOrgSpider.name}  # a spider there is
    values = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--start-url"]
    urls = [url for value in values for url in split_start_urls(value)]  # as `reviewscore crawl` reads them
    assert urls
    assert not_http_urls(urls) == []


def test_the_crawler_keeps_its_state_on_a_persistent_volume() -> None:
    cron = find(MANIFESTS, "CronJob", "reviewscore-scraper")
    scraper = container(cron, "scraper")
    state_dir = env_value_names(scraper)["SCRAPER_STATE_DIR"]["value"]
    (mount,) = [m for m in scraper["volumeMounts"] if m["mountPath"] == state_dir]
    spec = pod_spec(cron)
    assert spec is not None
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    claim = find(MANIFESTS, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim.doc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert cron.doc["spec"]["concurrencyPolicy"] == "Forbid"  # one writer at a time on a RWO volume


def test_the_brand_alert_fails_its_job_once_on_an_alert_and_reads_as_the_reader() -> None:
    from query_api.trends_cli import ALERT_EXIT

    cron = find(MANIFESTS, "CronJob", "reviewscore-brand-alerts")
    job = cron.doc["spec"]["jobTemplate"]["spec"]
    trends = container(cron, "trends")
    assert trends["args"][:1] == ["trends"]
    assert "--alert-drop" in trends["args"]
    # Exit 3 is an alert: the Job fails at once, so no retry posts it twice; errors are retried.
    [rule] = [r for r in job["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert rule["onExitCodes"] == {"containerName": "trends", "operator": "In", "values": [ALERT_EXIT]}
    assert job["backoffLimit"] >= 1
    env = env_value_names(trends)
    keys = {item["valueFrom"]["secretKeyRef"]["key"] for item in env.values() if "valueFrom" in item}
    assert keys == {"DATABASE_READONLY_URL", "API_ALERT_WEBHOOK"}  # never the writer's URL
