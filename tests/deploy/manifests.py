"""Loading the deployment files as data, so tests can check them without a Docker engine.

Pure functions only: the Compose file with its ``${VAR}`` interpolation, the Kubernetes
manifests, the Dockerfiles as instruction lists, and the environment variable names that the
settings classes in ``core/config`` accept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from core.config import (
    ApiSettings,
    DatabaseSettings,
    InfraSettings,
    KafkaSettings,
    ModelSettings,
    ScraperSettings,
    StreamSettings,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
K8S_DIR = DEPLOY / "k8s"
DOCKER_DIR = DEPLOY / "docker"
READER_ROLE_SQL = DEPLOY / "postgres" / "reader-role.sql"

SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (
    ApiSettings,
    DatabaseSettings,
    InfraSettings,
    KafkaSettings,
    ModelSettings,
    ScraperSettings,
    StreamSettings,
)
# Variables our images may set that belong to libraries, not to our settings.
LIBRARY_ENV = frozenset({"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "PYTHONUNBUFFERED"})
# Configuration that a command line receives (compose ``${VAR}``, Kubernetes ``$(VAR)``), not a setting.
COMMAND_LINE_ENV = frozenset({"SCRAPER_START_URL", "SCRAPER_SPIDER"})
OUR_IMAGE_PREFIX = "reviewscore/"


# --- settings ------------------------------------------------------------------------------


def settings_prefixes() -> dict[str, type[BaseSettings]]:
    return {str(cls.model_config.get("env_prefix", "")): cls for cls in SETTINGS_CLASSES}


def settings_env_names() -> dict[str, type[BaseSettings]]:
    """Every environment variable a settings class reads (prefix + field name, upper-cased)."""
    names: dict[str, type[BaseSettings]] = {}
    for prefix, cls in settings_prefixes().items():
        for field in cls.model_fields:
            names[(prefix + field).upper()] = cls
    return names


def owning_prefix(name: str) -> str | None:
    """The settings prefix an environment variable claims, if any (``KAFKA_TOPIC`` -> ``KAFKA_``)."""
    return next((prefix for prefix in settings_prefixes() if name.startswith(prefix)), None)


def project_version() -> str:
    return metadata.version("reviewscore")


# --- compose -------------------------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A required variable (``${NAME:?message}``) is unset, as ``docker compose`` would report."""


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose-style interpolation: ``$$``, ``$NAME``, ``${NAME}``, ``:-``, ``-``, ``:?``, ``?``, ``:+``, ``+``."""

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        present = name in env
        filled = present and env[name] != ""
        if op in (":-", "-"):
            use_default = not filled if op == ":-" else not present
            return arg if use_default else env[name]
        if op in (":?", "?"):
            if not (filled if op == ":?" else present):
                raise InterpolationError(f"{name}: {arg or 'required variable is missing'}")
            return env[name]
        if op in (":+", "+"):
            return arg if (filled if op == ":+" else present) else ""
        return env.get(name, "")

    return _INTERPOLATION.sub(substitute, value)


def referenced_variables(value: Any) -> set[str]:
    """Names of the variables a (parsed) compose document interpolates."""
    found: set[str] = set()
    for text in _strings(value):
        for match in _INTERPOLATION.finditer(text):
            name = match.group("braced") or match.group("bare")
            if name:
                found.add(name)
    return found


def interpolate_tree(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [interpolate_tree(item, env) for item in value]
    if isinstance(value, dict):
        return {key: interpolate_tree(item, env) for key, item in value.items()}
    return value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """``KEY=value`` lines of a dotenv file (comments and blank lines skipped)."""
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            raise ValueError(f"{path.name}: not KEY=value: {line!r}")
        env[key.strip()] = value.strip()
    return env


def load_compose_raw() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file as ``docker compose config`` would see it with ``.env.example`` as .env."""
    resolved = interpolate_tree(load_compose_raw(), read_env_file() if env is None else env)
    assert isinstance(resolved, dict)
    return resolved


@cache
def compose_schema() -> dict[str, Any]:
    """The Compose Specification JSON schema, as vendored (with its licence) in check-jsonschema."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a dict (compose accepts a mapping or a ``KEY=value`` list)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def is_our_image(image: str) -> bool:
    return image.startswith(OUR_IMAGE_PREFIX)


# --- kubernetes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    path: Path
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc["kind"])

    @property
    def name(self) -> str:
        return str(self.doc["metadata"]["name"])

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.kind}/{self.name}"


def k8s_files() -> list[Path]:
    return sorted(K8S_DIR.rglob("*.yaml"))


def load_manifests(include_tooling: bool = False) -> list[Manifest]:
    """Every Kubernetes object under deploy/k8s; the Kustomization file only when asked."""
    out: list[Manifest] = []
    for path in k8s_files():
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc:
                continue
            if doc.get("kind") == "Kustomization" and not include_tooling:
                continue
            out.append(Manifest(path, doc))
    return out


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [m for m in manifests if m.kind == kind and m.name == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def pod_spec(manifest: Manifest) -> dict[str, Any] | None:
    """The pod template spec of a workload (Deployment, Job, CronJob), else None."""
    spec = manifest.doc.get("spec", {})
    if manifest.kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template = spec.get("template")
    if not isinstance(template, dict):
        return None
    result = template["spec"]
    assert isinstance(result, dict)
    return result


def containers(manifest: Manifest, init: bool = True) -> list[dict[str, Any]]:
    spec = pod_spec(manifest)
    if spec is None:
        return []
    found = list(spec.get("containers", []))
    if init:
        found += list(spec.get("initContainers", []))
    return found


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """The kubelet's expansion of ``$(VAR)`` in command and args (``$$`` escapes; unknown names stay)."""
    return re.sub(
        r"\$(\$|\(([A-Za-z_][A-Za-z0-9_]*)\))",
        lambda m: "$" if m[1] == "$" else env.get(m[2], m[0]),
        text,
    )


def config_map_data(manifests: list[Manifest], name: str = "reviewscore-config") -> dict[str, str]:
    data = find(manifests, "ConfigMap", name).doc["data"]
    assert isinstance(data, dict)
    return {str(k): str(v) for k, v in data.items()}


# --- dockerfiles ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfiles() -> list[Path]:
    return sorted(DOCKER_DIR.glob("*.Dockerfile"))


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    return instructions


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """``ARG NAME=default`` lines before the first FROM (the ones FROM lines may use)."""
    out: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            out[name.strip()] = default.strip()
    return out


def base_images(path: Path) -> list[str]:
    """The resolved image of every FROM that is not an earlier stage."""
    instructions = parse_dockerfile(path)
    args = global_args(instructions)
    stages: set[str] = set()
    images: list[str] = []
    for instruction in instructions:
        if instruction.keyword != "FROM":
            continue
        parts = instruction.args.split()
        image = interpolate(parts[0], args)
        if len(parts) >= 3 and parts[1].upper() == "AS":
            stages.add(parts[2])
        if parts[0] not in stages:
            images.append(image)
    return images


def image_is_pinned(image: str) -> bool:
    """A digest, or a tag that names at least a major.minor release (never ``latest``)."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag or tag in ("", "latest"):
        return False
    return re.match(r"^v?\d+\.\d+", tag) is not None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}


def duration_seconds(text: str) -> float:
    """A Docker or compose duration (``90s``, ``1m30s``, ``500ms``) in seconds."""
    parts = _DURATION_PART.findall(text.strip())
    if not parts or "".join(number + unit for number, unit in parts) != text.strip():
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def healthcheck_options(args: str) -> dict[str, str]:
    """The ``--name=value`` flags of a HEALTHCHECK instruction (those before its CMD)."""
    flags, _, _ = args.partition("CMD")
    return dict(re.findall(r"--([a-z-]+)=(\S+)", flags))
