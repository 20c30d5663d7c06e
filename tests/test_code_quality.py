"""The style rules hold on every commit: ruff, mypy and the import contracts run in the suite.

`make lint` runs the same tools, but CI runs only `make test`; without this a commit that breaks
typing or the layering (``core`` importing none of the other parts) would still land green.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

CHECKS = {
    "ruff check": ["ruff", "check", "--no-cache", "."],
    "ruff format": ["ruff", "format", "--check", "--no-cache", "."],
    "mypy": ["mypy"],
    "import contracts": ["lint-imports", "--no-cache"],
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_the_code_passes(name: str) -> None:
    tool, *args = CHECKS[name]
    executable = BIN / tool
    if not executable.exists():
        pytest.fail(f"{tool} is not installed beside {sys.executable}: install the dev extra (make setup)")
    result = subprocess.run(
        [str(executable), *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
