"""`make demo` keeps working: the whole pipeline on embedded parts scores every demo review."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_scores_every_review_and_leaves_no_process_behind(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "KAFKA_", "STREAM_", "API_", "MODEL_", "SCRAPER_", "REVIEWSCORE_"))
    }
    env["REVIEWSCORE_STATE_DIR"] = str(tmp_path / "state")
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "demo", "--once", "--timeout", "180"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    scored = re.search(r"(\d+)/(\d+) reviews scored", result.stdout)
    assert scored is not None, result.stdout
    assert scored.group(1) == scored.group(2)
    assert int(scored.group(2)) >= 24 + 3  # sample file + API submissions (+ the crawl when installed)
    assert "time from start to the first scored row" in result.stdout
    assert re.search(r"POST /sentiments/ -> 202 pending: user:sha256:[0-9a-f]{32}\n", result.stdout), result.stdout
    assert "dashboard:" not in result.stdout  # --once: the servers are gone by the time it is read
    leftovers = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and str(tmp_path) in " ".join(p.info["cmdline"])
    ]
    assert leftovers == []


def test_a_second_demo_in_one_state_directory_is_refused_before_it_touches_the_first(tmp_path: Path) -> None:
    """Before, it dropped and re-created the running demo's database under its worker."""
    from core.embedded import holding_state_dir

    env = {key: value for key, value in os.environ.items() if not key.startswith("REVIEWSCORE_")}
    env["REVIEWSCORE_STATE_DIR"] = str(tmp_path / "state")
    with holding_state_dir(tmp_path / "state" / "demo"):  # what a running demo holds
        result = subprocess.run(
            [sys.executable, "-m", "core.cli", "demo", "--once"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert f"error: a demo already runs in {(tmp_path / 'state' / 'demo').resolve()}" in result.stdout
    assert not (tmp_path / "state" / "pgdata").exists()
