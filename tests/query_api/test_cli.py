"""`reviewscore api` serves the app from environment settings, as a deployment would run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.fixtures.api import free_port, insert_rows, make_rows

pytestmark = pytest.mark.integration


def test_reviewscore_api_serves_the_database_named_by_the_environment(
    database_url: str, readonly_database_url: str
) -> None:
    insert_rows(database_url, make_rows(5))
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATABASE_READONLY_URL": readonly_database_url,
        "API_PORT": str(port),
    }
    server = subprocess.Popen(
        [sys.executable, "-c", "from core.cli import main; main()", "api", "--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/sentiments/", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode() if server.stdout else ""
                    raise AssertionError(f"the server did not come up:\n{output}") from None
                time.sleep(0.2)
        assert response.status_code == 200
        assert len(response.json()["items"]) == 5
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=15)
