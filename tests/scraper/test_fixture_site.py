"""The fixture site behaves like a real one where the crawler cares: paths, pagination, caching."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from scraper.fixture_site import SITE_ROOT, resolve, serve


def test_urls_map_to_pages_with_page_query_for_pagination() -> None:
    assert (
        resolve(SITE_ROOT, "/review/acme-electronics.example")
        == (SITE_ROOT / "review/acme-electronics.example/index.html").resolve()
    )
    assert (
        resolve(SITE_ROOT, "/review/acme-electronics.example?page=2")
        == (SITE_ROOT / "review/acme-electronics.example/page-2.html").resolve()
    )
    assert resolve(SITE_ROOT, "/review/acme-electronics.example?page=9") is None
    assert resolve(SITE_ROOT, "/../../etc/passwd") is None


def test_unchanged_pages_answer_304_to_a_revalidation() -> None:
    server, base_url = serve(port=0)
    try:
        with urllib.request.urlopen(base_url + "/categories/") as first:
            etag = first.headers["ETag"]
            assert first.headers["Cache-Control"] == "max-age=0"
            assert first.headers["Last-Modified"]
        request = urllib.request.Request(base_url + "/categories/", headers={"If-None-Match": etag})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request)
        assert answer.value.code == 304
        assert [(s.path, s.status) for s in server.served()] == [("/categories/", 200), ("/categories/", 304)]
    finally:
        server.shutdown()
        server.server_close()


def test_robots_txt_disallows_a_company_and_the_private_area() -> None:
    robots = (SITE_ROOT / "robots.txt").read_text()

    assert "Disallow: /review/hidden-deals.example" in robots
    assert "Disallow: /private/" in robots


def test_fixture_site_command_serves_until_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "fixture-site", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("fixture site at http://127.0.0.1:")
        url = line.split(" at ", 1)[1].strip()
        with urllib.request.urlopen(url) as response:
            assert b"Browse companies by category" in response.read()
        process.send_signal(signal.SIGTERM)
        out, _err = process.communicate(timeout=10)
        assert process.returncode == 0
        assert "stopped" in out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
