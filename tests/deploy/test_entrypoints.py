"""The commands, options and health endpoints the deployment files call exist in the code.

Compose, the Kubernetes manifests and the Dockerfiles name ``reviewscore`` sub-commands,
options and HTTP paths; a rename in a part would break a deployment nobody can start here,
so these tests read them from the real CLI and the real servers.
"""

from __future__ import annotations

import json
import re
import shlex
import urllib.error
import urllib.request
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import pytest
import typer

from tests.deploy.manifests import DEPLOY, containers, load_compose, load_manifests

# The entry point (pyproject's reviewscore.cli group) that provides each top-level command.
PART_OF_COMMAND = {
    "worker": "stream",
    "rescore": "stream",
    "search-index": "stream",
    "dlq": "stream",
    "api": "api",
    "crawl": "scraper",
}
_MISSING: dict[str, str] = {}


@cache
def cli() -> Any:
    """The ``reviewscore`` command tree built afresh (the global app is left untouched)."""
    from core import cli as core_cli

    app = typer.Typer()
    app.registered_commands.extend(core_cli.app.registered_commands)  # migrate, publish, schema
    app.registered_groups.extend(core_cli.app.registered_groups)  # infra
    for entry in entry_points(group="reviewscore.cli"):
        try:
            register = entry.load()
        except ModuleNotFoundError as exc:  # the part has not landed or its extra is missing
            _MISSING[entry.name] = str(exc)
            continue
        register(app)
    # typer ships its own click; the command objects are used by duck typing only.
    return typer.main.get_command(app)


def resolve(group: Any, argv: list[str]) -> tuple[Any, list[str]]:
    """The command an argv reaches, and the arguments left for it."""
    command = group
    rest = list(argv)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        found = command.commands.get(rest[0])
        part = PART_OF_COMMAND.get(rest[0], "")
        if found is None and command is group and part in _MISSING:
            pytest.skip(f"`reviewscore {rest[0]}` comes from {part!r}, which is unavailable: {_MISSING[part]}")
        assert found is not None, f"`reviewscore {' '.join(argv)}`: no command {rest[0]!r}"
        command, rest = found, rest[1:]
    return command, rest


def options(command: Any) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        names.update(param.opts)
        names.update(getattr(param, "secondary_opts", []))
    return names


def deployment_command_lines() -> list[tuple[str, list[str]]]:
    """Every argv our images are started with, in compose and in Kubernetes."""
    lines: list[tuple[str, list[str]]] = []
    for name, service in load_compose()["services"].items():
        if service["image"].startswith("reviewscore/"):
            lines.append((f"compose:{name}", list(service["command"])))
    for manifest in load_manifests():
        for c in containers(manifest):
            if c["image"].startswith("reviewscore/"):
                lines.append((f"k8s:{manifest.name}", list(c["args"])))
    return lines


@pytest.mark.parametrize(("where", "argv"), deployment_command_lines(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_deployed_command_line_parses(where: str, argv: list[str]) -> None:
    command, rest = resolve(cli(), argv)
    known = options(command)
    for arg in rest:
        if arg.startswith("--"):
            assert arg in known, f"{where}: `{' '.join(argv)}` uses {arg}, unknown to {command.name}"
    # The whole line must be accepted by the command's parser (argument count, option values).
    context = command.make_context(command.name, list(rest), resilient_parsing=False)
    context.close()


def readme_command_lines() -> list[list[str]]:
    """Every ``reviewscore ...`` line in the shell blocks of deploy/README.md."""
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    lines: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL):
        for line in block.splitlines():
            line = line.split(" #")[0].strip().removeprefix("time ")
            if not line.startswith("reviewscore "):
                continue
            tokens = shlex.split(line)
            cut = next((i for i, t in enumerate(tokens) if t in ("&", ">", "|", ";", "&&")), len(tokens))
            lines.append(tokens[1:cut])
    return lines


@pytest.mark.parametrize("argv", readme_command_lines(), ids=" ".join)
def test_the_runbook_commands_in_the_readme_exist(argv: list[str]) -> None:
    """deploy/README.md tells operators to run these; a renamed command or option fails here."""
    command, rest = resolve(cli(), argv)
    for arg in rest:
        if arg.startswith("--"):
            assert arg in options(command), f"`reviewscore {' '.join(argv)}`: {arg} unknown"


def test_the_readme_covers_the_operations_of_the_issue() -> None:
    covered = {tuple(argv[:2]) for argv in readme_command_lines()}
    assert {("dlq", "show"), ("dlq", "replay"), ("rescore", "--model"), ("publish", "reviews.jsonl")} <= covered


def test_the_api_serves_the_probed_paths() -> None:
    pytest.importorskip("fastapi")
    try:
        from query_api.routes.health import router
    except ModuleNotFoundError as exc:
        pytest.skip(f"query_api has not landed: {exc}")
    paths = {getattr(route, "path", None) for route in router.routes}
    assert {"/healthz", "/readyz", "/metrics"} <= paths


def test_the_worker_serves_the_probed_paths() -> None:
    try:
        from stream.metrics import Health, Metrics, MetricsServer
    except ModuleNotFoundError as exc:
        pytest.skip(f"stream has not landed: {exc}")
    server = MetricsServer(Metrics(), Health(), "127.0.0.1", 0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:  # 503 while starting is still the health endpoint
            status, body = exc.code, exc.read()
        assert status in (200, 503)
        assert "status" in json.loads(body)
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            assert response.status == 200
    finally:
        server.stop()
