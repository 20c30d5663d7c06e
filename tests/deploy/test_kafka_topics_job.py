"""deploy/k8s/kafka-topics-job.yaml: the Job's shell script, run here against a recording kafka-topics.sh.

The Job runs the stock ``apache/kafka`` image; its script decides what kafka-topics.sh is given:
nothing extra over PLAINTEXT, a client config (``--command-config``) for TLS and SASL, built
from the ConfigMap and the optional SASL keys of the Secret. A fake kafka-topics.sh first on
PATH records each call and the client config it got, so both cases run without a broker.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import config_map_data, containers, expand_references, find, load_manifests

MANIFESTS = load_manifests()
(JOB_CONTAINER,) = containers(find(MANIFESTS, "Job", "reviewscore-kafka-topics"))
CONFIG = config_map_data(MANIFESTS)
# Characters that both the JAAS value quoting and the properties file escape.
PASSWORD = 'pa"ss\\word = #1'

FAKE_TOOL = """#!{python}
import json, pathlib, sys
args = sys.argv[1:]
config = None
if "--command-config" in args:
    config = pathlib.Path(args[args.index("--command-config") + 1]).read_text(encoding="utf-8")
with open({log!r}, "a", encoding="utf-8") as log:
    log.write(json.dumps({{"args": args, "config": config}}) + "\\n")
"""


def run_job(tmp_path: Path, **env_overrides: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """The container's command as the kubelet starts it: ConfigMap environment, ``$(VAR)`` expanded."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.jsonl"
    tool = bin_dir / "kafka-topics.sh"
    tool.write_text(FAKE_TOOL.format(python=sys.executable, log=str(log)), encoding="utf-8")
    tool.chmod(0o755)
    env = CONFIG | env_overrides | {"PATH": f"{bin_dir}:/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    argv = [expand_references(arg, env) for arg in [*JOB_CONTAINER["command"], *JOB_CONTAINER["args"]]]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
    return result, calls


def read_properties(text: str) -> dict[str, str]:
    """``key=value`` lines as java.util.Properties reads them (a backslash escapes the next character)."""
    escapes = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
    props: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith(("#", "!")):
            key, _, value = line.partition("=")
            props[key.strip()] = re.sub(r"\\(.)", lambda m: escapes.get(m[1], m[1]), value.lstrip())
    return props


def jaas_options(jaas: str) -> dict[str, str]:
    """The quoted ``name="value"`` options of a JAAS entry, unescaped as Kafka's JaasConfig reads them."""
    return {name: re.sub(r"\\(.)", r"\1", value) for name, value in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', jaas)}


def test_over_plaintext_the_job_creates_both_topics_without_a_client_config(tmp_path: Path) -> None:
    assert CONFIG["KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    result, calls = run_job(tmp_path)
    assert result.returncode == 0, result.stderr
    assert [call["config"] for call in calls] == [None, None, None]
    create, create_dlq, describe = (call["args"] for call in calls)
    assert create == [
        *("--bootstrap-server", CONFIG["KAFKA_BOOTSTRAP_SERVERS"], "--create", "--if-not-exists"),
        *("--topic", CONFIG["KAFKA_TOPIC"], "--partitions", CONFIG["KAFKA_PARTITIONS"]),
        *("--replication-factor", CONFIG["KAFKA_REPLICATION_FACTOR"]),
    ]
    assert create_dlq[create_dlq.index("--topic") :] == [
        *("--topic", CONFIG["KAFKA_DLQ_TOPIC"], "--partitions", "1"),
        *("--replication-factor", CONFIG["KAFKA_REPLICATION_FACTOR"], "--config", "retention.ms=-1"),
    ]
    assert describe[-3:] == ["--describe", "--topic", CONFIG["KAFKA_TOPIC"]]


@pytest.mark.parametrize(
    ("mechanism", "login_module"),
    [("SCRAM-SHA-512", "scram.ScramLoginModule"), ("PLAIN", "plain.PlainLoginModule")],
)
def test_with_sasl_every_call_logs_in_with_the_optional_secret_keys(
    tmp_path: Path, mechanism: str, login_module: str
) -> None:
    env = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in JOB_CONTAINER["env"]}
    for key in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):  # as the other pods get them
        assert env[key] == {"name": "reviewscore-secrets", "key": key, "optional": True}
    result, calls = run_job(
        tmp_path,
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM=mechanism,
        KAFKA_SASL_USERNAME="reviewscore",
        KAFKA_SASL_PASSWORD=PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    assert len(calls) == 3
    assert all("--command-config" in call["args"] and call["config"] for call in calls), calls
    props = read_properties(calls[0]["config"])
    assert props.keys() == {"security.protocol", "sasl.mechanism", "sasl.jaas.config"}
    assert (props["security.protocol"], props["sasl.mechanism"]) == ("SASL_SSL", mechanism)
    assert props["sasl.jaas.config"].startswith(f"org.apache.kafka.common.security.{login_module} required ")
    assert props["sasl.jaas.config"].endswith(";")
    assert jaas_options(props["sasl.jaas.config"]) == {"username": "reviewscore", "password": PASSWORD}
    args = calls[0]["args"]
    assert not Path(args[args.index("--command-config") + 1]).exists(), "the credentials outlive the script"


def test_tls_without_sasl_gets_a_client_config_with_the_protocol_and_ca(tmp_path: Path) -> None:
    result, calls = run_job(tmp_path, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CA_LOCATION="/etc/kafka-ca/ca.pem")
    assert result.returncode == 0, result.stderr
    assert len(calls) == 3
    assert read_properties(calls[0]["config"]) == {
        "security.protocol": "SSL",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": "/etc/kafka-ca/ca.pem",
    }


def test_sasl_without_the_secret_keys_stops_before_any_call(tmp_path: Path) -> None:
    result, calls = run_job(tmp_path, KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="SCRAM-SHA-512")
    assert (result.returncode, calls) == (2, [])
    assert "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in result.stderr
