"""deploy/docker: pinned bases, multi-stage builds, non-root users, and the right extra per image.

Nothing is built here (no Docker engine): the Dockerfiles are read as instruction lists and
checked against the compose file, the settings and the packages in the repository.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import (
    DOCKER_DIR,
    ROOT,
    base_images,
    dockerfiles,
    duration_seconds,
    healthcheck_options,
    image_is_pinned,
    load_compose,
    parse_dockerfile,
    service_environment,
)

# Which extra (and packages) each image installs: the part it runs, nothing more.
EXPECTED = {
    "api.Dockerfile": ({"api"}, {"core", "query_api"}),
    "worker.Dockerfile": ({"model", "stream"}, {"core", "model", "stream"}),
    # torchao (the gpu extra) for the cuda-int8 and cuda-fp8 variants, which exist only here.
    "worker-gpu.Dockerfile": ({"model", "stream", "gpu"}, {"core", "model", "stream"}),
    "scraper.Dockerfile": ({"scraper"}, {"core", "scraper"}),
}
NON_ROOT_UID = "10001"


def instructions_of(path: Path, keyword: str) -> list[str]:
    return [i.args for i in parse_dockerfile(path) if i.keyword == keyword]


def compose_services_built_from(name: str) -> list[dict[str, Any]]:
    services = load_compose()["services"].values()
    return [s for s in services if s.get("build", {}).get("dockerfile") == f"deploy/docker/{name}"]


def test_there_is_one_dockerfile_per_image() -> None:
    assert {p.name for p in dockerfiles()} == set(EXPECTED)


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_base_images_are_pinned_to_a_release(path: Path) -> None:
    images = base_images(path)
    assert images
    for image in images:
        assert image_is_pinned(image), f"{path.name}: {image}"
        assert re.search(r":\d+\.\d+\.\d+", image), f"{path.name}: {image} names no patch release"


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_builds_are_multi_stage_and_ship_only_the_virtualenv(path: Path) -> None:
    stages = instructions_of(path, "FROM")
    assert len(stages) >= 2, "build tools stay in the build stage"
    assert [s.split()[-1] for s in stages] == ["build", "runtime"]
    assert instructions_of(path, "COPY")[-1] == "--from=build /opt/venv /opt/venv"


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_the_runtime_stage_runs_as_a_non_root_user(path: Path) -> None:
    instructions = parse_dockerfile(path)
    runtime_start = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    users = [ins.args for ins in instructions[runtime_start:] if ins.keyword == "USER"]
    assert users == [f"{NON_ROOT_UID}:{NON_ROOT_UID}"]
    runs = " ".join(ins.args for ins in instructions[runtime_start:] if ins.keyword == "RUN")
    assert f"--uid {NON_ROOT_UID}" in runs
    assert instructions_of(path, "ENTRYPOINT") == ['["reviewscore"]']


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_each_image_installs_only_its_part(path: Path) -> None:
    extras, packages = EXPECTED[path.name]
    installs = [a for a in instructions_of(path, "RUN") if 'pip install ".[' in a]
    assert len(installs) == 1
    installed = set(re.search(r'"\.\[([^\]]+)\]"', installs[0]).group(1).split(","))  # type: ignore[union-attr]
    assert installed == extras
    copied = {args.split()[0] for args in instructions_of(path, "COPY") if not args.startswith("--from")}
    assert copied == {"pyproject.toml"} | packages
    for package in packages:
        assert (ROOT / package / "__init__.py").is_file(), f"{package} is not a package of this repository"


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_the_build_context_is_trimmed_to_what_the_image_copies(path: Path) -> None:
    """BuildKit reads <name>.dockerignore beside the Dockerfile: no .venv or data in the context."""
    ignore = (DOCKER_DIR / f"{path.name}.dockerignore").read_text(encoding="utf-8").split()
    _, packages = EXPECTED[path.name]
    assert ignore[ignore.index("*") :][:1] == ["*"]
    assert {f"!{p}/" for p in packages} | {"!pyproject.toml", "!README.md"} <= set(ignore)


def test_torch_comes_from_the_cpu_index_in_the_cpu_image_and_a_cuda_index_on_a_cuda_base() -> None:
    cpu = DOCKER_DIR / "worker.Dockerfile"
    gpu = DOCKER_DIR / "worker-gpu.Dockerfile"
    cpu_text, gpu_text = cpu.read_text(encoding="utf-8"), gpu.read_text(encoding="utf-8")
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in cpu_text
    cuda_tag = re.search(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-runtime", base_images(gpu)[0])
    assert cuda_tag, base_images(gpu)
    # The wheel index names the CUDA release of the base: cu128 <-> 12.8.
    assert f"ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu{cuda_tag[1]}{cuda_tag[2]}" in gpu_text
    for text in (cpu_text, gpu_text):
        torch_line = next(line for line in text.splitlines() if '"torch==${TORCH_VERSION}"' in line)
        assert '--index-url "${TORCH_INDEX_URL}"' in torch_line
        # torch before the project, so the project's torch==X pin is already satisfied by the chosen build.
        assert text.index('"torch==${TORCH_VERSION}"') < text.index('pip install ".[model,stream')


def test_torch_version_matches_the_project_pin() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pinned = re.search(r'"torch==([^"]+)"', pyproject)
    assert pinned
    for name in ("worker.Dockerfile", "worker-gpu.Dockerfile"):
        assert f"ARG TORCH_VERSION={pinned[1]}" in (DOCKER_DIR / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("dockerfile", "port_var"),
    [
        ("api.Dockerfile", "API_PORT"),
        ("worker.Dockerfile", "STREAM_WEB_PORT"),
        ("worker-gpu.Dockerfile", "STREAM_WEB_PORT"),
    ],
)
def test_exposed_ports_and_healthchecks_match_the_services(dockerfile: str, port_var: str) -> None:
    path = DOCKER_DIR / dockerfile
    env = " ".join(instructions_of(path, "ENV"))
    port = re.search(rf"{port_var}=(\d+)", env)
    assert port
    assert instructions_of(path, "EXPOSE") == [port[1]]
    (healthcheck,) = instructions_of(path, "HEALTHCHECK")
    path_expected = "/healthz"
    assert f"http://127.0.0.1:{port[1]}{path_expected}" in healthcheck
    image_start = duration_seconds(healthcheck_options(healthcheck).get("start-period", "0s"))
    for service in compose_services_built_from(dockerfile):
        if port_var in service_environment(service):
            assert service_environment(service)[port_var] == port[1]
        # A compose healthcheck replaces the image's whole: a shorter start period would report a
        # container still loading (a model onto a GPU) as failing its probes.
        if "healthcheck" in service:
            start = duration_seconds(service["healthcheck"].get("start_period", "0s"))
            assert start >= image_start, f"{service['image']}: start_period {start:g}s < the image's {image_start:g}s"


def test_worker_images_never_download_at_run_time() -> None:
    for name in ("worker.Dockerfile", "worker-gpu.Dockerfile"):
        env = " ".join(instructions_of(DOCKER_DIR / name, "ENV"))
        assert "HF_HUB_OFFLINE=1" in env
        assert "TRANSFORMERS_OFFLINE=1" in env
    devices = {
        name: re.search(r"MODEL_DEVICE=(\w+)", " ".join(instructions_of(DOCKER_DIR / name, "ENV")))
        for name in ("worker.Dockerfile", "worker-gpu.Dockerfile")
    }
    assert {k: m[1] if m else None for k, m in devices.items()} == {
        "worker.Dockerfile": "cpu",
        "worker-gpu.Dockerfile": "cuda",
    }


def test_compose_builds_each_image_from_its_dockerfile() -> None:
    expected_images = {
        "api.Dockerfile": "reviewscore/api",
        "worker.Dockerfile": "reviewscore/worker",
        "worker-gpu.Dockerfile": "reviewscore/worker-gpu",
        "scraper.Dockerfile": "reviewscore/scraper",
    }
    for dockerfile, image in expected_images.items():
        services = compose_services_built_from(dockerfile)
        assert services, dockerfile
        for service in services:
            assert service["image"].rpartition(":")[0] == image
            assert service["build"]["context"] == "."
