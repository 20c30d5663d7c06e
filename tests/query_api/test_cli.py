"""`reviewscore api` serves the app from environment settings, as a deployment would run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from core.config import KafkaSettings
from tests.fixtures.api import free_port, insert_rows, make_rows

pytestmark = pytest.mark.integration


@contextmanager
def serving(**settings: str) -> Iterator[str]:
    """``reviewscore api`` in its own process with ``settings`` over the environment; yields its URL."""
    port = free_port()
    env = {**os.environ, **settings, "API_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-c", "from core.cli import main; main()", "api", "--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode() if server.stdout else ""
                    raise AssertionError(f"the server did not come up:\n{output}") from None
                time.sleep(0.2)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=15)


def test_reviewscore_api_serves_the_database_named_by_the_environment(
    database_url: str, readonly_database_url: str
) -> None:
    insert_rows(database_url, make_rows(5))
    with serving(DATABASE_URL=database_url, DATABASE_READONLY_URL=readonly_database_url) as base:
        response = httpx.get(f"{base}/sentiments/", timeout=5)
    assert response.status_code == 200
    assert len(response.json()["items"]) == 5


def _submit(base: str, client: str, text: str) -> int:
    response = httpx.post(f"{base}/sentiments/", json={"text": text}, headers={"X-Forwarded-For": client}, timeout=15)
    return response.status_code


@pytest.mark.parametrize(
    ("trusted", "second_client_answer"),
    [("127.0.0.1", 202), ("10.0.0.0/8", 429)],
    ids=["proxy-trusted", "proxy-not-trusted"],
)
def test_behind_a_trusted_proxy_the_rate_limit_counts_each_forwarded_client(
    database_url: str,
    readonly_database_url: str,
    kafka_settings: KafkaSettings,
    trusted: str,
    second_client_answer: int,
) -> None:
    """Behind an ingress every request comes from the ingress: trusted, its X-Forwarded-For names the
    client, and one client over its rate does not hold up the others; not trusted, all are one client."""
    with serving(
        DATABASE_URL=database_url,
        DATABASE_READONLY_URL=readonly_database_url,
        API_SUBMIT_RATE_PER_MINUTE="1",
        API_FORWARDED_ALLOW_IPS=trusted,
    ) as base:
        assert _submit(base, "203.0.113.7", "The first client's review.") == 202
        assert _submit(base, "203.0.113.7", "The first client's second review.") == 429
        assert _submit(base, "198.51.100.9", "Another client's review.") == second_client_answer


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_a_port_no_socket_can_have_is_a_usage_error(port: str) -> None:
    """99999 logged "running on :99999" and listened on another port; -1 failed inside uvicorn."""
    result = subprocess.run(
        [sys.executable, "-c", "from core.cli import main; main()", "api", "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Invalid value for '--port'" in result.stderr
