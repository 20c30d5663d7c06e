"""The CLI's mistakes of input and environment are one-line errors, never tracebacks (migrate, settings)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from core import migrate
from core.cli import app

pytestmark = pytest.mark.integration


@pytest.fixture
def configured(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


def test_downgrade_without_a_target_is_refused_and_changes_nothing(configured: str) -> None:
    result = CliRunner().invoke(app, ["migrate", "--downgrade"])
    assert result.exit_code == 2
    assert "error: --downgrade needs a target revision" in result.stderr
    assert migrate.current_revision(configured) == migrate.head_revision()


def test_downgrade_one_step_and_upgrade_back_to_head(configured: str) -> None:
    down = CliRunner().invoke(app, ["migrate", "--downgrade", "--", "-1"])
    assert down.exit_code == 0, down.output
    assert f"database at revision {int(migrate.head_revision()) - 1:04d}" in down.stdout
    up = CliRunner().invoke(app, ["migrate"])
    assert up.exit_code == 0, up.output
    assert f"database at revision {migrate.head_revision()}" in up.stdout


@pytest.mark.parametrize("args", [["migrate", "0099"], ["migrate", "--downgrade", "0099"]])
def test_an_unknown_revision_is_an_error_line_not_a_traceback(configured: str, args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "0099" in result.stderr
    assert "Traceback" not in result.output
    assert migrate.current_revision(configured) == migrate.head_revision()


@pytest.mark.parametrize("command", [["migrate"], ["rollup"]])
def test_a_database_that_does_not_answer_is_an_error_line_not_a_traceback(command: list[str]) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{port}/nothing"}
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", *command], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: the database did not answer: "), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("variable", "value"), [("REVIEWSCORE_BROKER_PORT", "abc"), ("REVIEWSCORE_LOG_LEVEL", "LOUD")])
def test_a_setting_that_does_not_parse_is_an_error_line_naming_the_variable(variable: str, value: str) -> None:
    env = {**os.environ, variable: value}
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "schema"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: invalid setting: {variable}: "), result.stderr
    assert "Traceback" not in result.stderr


def test_an_upgrade_to_a_revision_the_database_has_passed_is_refused_pointing_to_downgrade(configured: str) -> None:
    """It printed "database at revision <head>" and exited 0, having done nothing."""
    result = CliRunner().invoke(app, ["migrate", "0003"])

    assert result.exit_code == 2
    assert (
        f"the database is at {migrate.head_revision()}, past 0003; to go back, pass --downgrade 0003" in result.stderr
    )
    assert migrate.current_revision(configured) == migrate.head_revision()


@pytest.mark.parametrize("target", ["head", "heads"])
def test_migrating_to_head_on_a_database_at_head_is_fine(configured: str, target: str) -> None:
    result = CliRunner().invoke(app, ["migrate", target])
    assert result.exit_code == 0, result.output
    assert f"database at revision {migrate.head_revision()}" in result.stdout


def test_a_migration_held_up_by_an_open_transaction_gives_up_and_names_it(
    configured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a lock timeout it waited for ever, and every API read and worker write queued behind it."""
    from sqlalchemy import create_engine, pool, text

    from core.config import clear_settings_cache
    from core.db import sqlalchemy_url

    monkeypatch.setenv("DATABASE_MIGRATION_LOCK_TIMEOUT_MS", "200")
    clear_settings_cache()
    analyst = create_engine(sqlalchemy_url(configured), poolclass=pool.NullPool)
    with analyst.connect() as conn:
        conn.execute(text("SELECT count(*) FROM sentiments"))  # a transaction left open, as a psql session does
        held = CliRunner().invoke(app, ["migrate", "--downgrade", "0006"])  # drops a column: ACCESS EXCLUSIVE
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    analyst.dispose()
    free = CliRunner().invoke(app, ["migrate", "--downgrade", "0006"])

    assert held.exit_code == 2, (held.output, held.exception)
    assert "waited 0.2 s for a table lock 3 times" in held.stderr
    assert f"pid {pid} (idle in transaction" in held.stderr
    assert free.exit_code == 0, free.output
