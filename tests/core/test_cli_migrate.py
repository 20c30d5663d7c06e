"""The CLI's mistakes of input and environment are one-line errors, never tracebacks (migrate, settings, .env,
the state directory, Kafka client settings)."""

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


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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
    result = run_cli(*command, env={"DATABASE_URL": f"postgresql://nobody@127.0.0.1:{port}/nothing"})
    assert result.returncode == 2
    assert result.stderr.startswith("error: the database did not answer: "), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("variable", "value"), [("REVIEWSCORE_BROKER_PORT", "abc"), ("REVIEWSCORE_LOG_LEVEL", "LOUD")])
def test_a_setting_that_does_not_parse_is_an_error_line_naming_the_variable(variable: str, value: str) -> None:
    result = run_cli("schema", env={variable: value})
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: invalid setting: {variable}: "), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("target", ["0003", "base", "-1"])
def test_an_upgrade_to_a_revision_the_database_has_passed_is_refused_pointing_to_downgrade(
    configured: str, target: str
) -> None:
    """It printed "database at revision <head>" and exited 0, having done nothing."""
    result = CliRunner().invoke(app, ["migrate", "--", target])

    assert result.exit_code == 2
    assert (
        f"the database is at {migrate.head_revision()}, past {target}; to go back, pass --downgrade {target}"
        in result.stderr
    )
    assert migrate.current_revision(configured) == migrate.head_revision()


@pytest.mark.parametrize("value", ["nonsense", "mysql://user@127.0.0.1:1/x", "http://example.com/db"])
@pytest.mark.parametrize("variable", ["DATABASE_URL", "DATABASE_READONLY_URL"])
def test_a_database_url_that_is_no_postgresql_url_is_refused_by_name(variable: str, value: str) -> None:
    result = run_cli("migrate", env={variable: value})
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: invalid setting: {variable}: "), result.stderr
    assert "postgresql://USER:PASSWORD@HOST:PORT/DATABASE" in result.stderr
    assert value not in result.stderr  # it may hold a password
    assert "Traceback" not in result.stderr


def test_an_unknown_log_level_on_the_command_line_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["--log-level", "LOUD", "schema"])
    assert result.exit_code == 2
    assert "Invalid value for --log-level" in result.output
    assert "must be one of DEBUG, INFO, WARNING, ERROR," in result.output
    assert CliRunner().invoke(app, ["--log-level", "debug", "schema"]).exit_code == 0


def test_a_dotenv_that_is_not_utf8_is_named(tmp_path: pytest.TempPathFactory) -> None:
    folder = str(tmp_path)
    with open(os.path.join(folder, ".env"), "wb") as handle:
        handle.write(b"DATABASE_URL=\xff\xfe\n")
    result = run_cli("schema", cwd=folder, env={"PYTHONPATH": os.getcwd()})
    assert result.returncode == 2
    assert result.stderr.startswith("error: ./.env is not UTF-8 text"), result.stderr
    assert "Traceback" not in result.stderr


def test_a_state_dir_that_is_a_file_is_named(tmp_path: pytest.TempPathFactory) -> None:
    state = os.path.join(str(tmp_path), "state")
    open(state, "w").close()
    result = run_cli("infra", "up", env={"REVIEWSCORE_STATE_DIR": state})
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: REVIEWSCORE_STATE_DIR={state} is a file, not a directory"


@pytest.mark.parametrize(
    "settings",
    [
        {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "BOGUS", "KAFKA_SASL_USERNAME": "u"},
        {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"},
    ],
)
def test_kafka_client_settings_librdkafka_refuses_are_an_error_line(
    tmp_path: pytest.TempPathFactory, settings: dict[str, str]
) -> None:
    reviews = os.path.join(str(tmp_path), "reviews.csv")
    with open(reviews, "w", encoding="utf-8") as handle:
        handle.write("text\nGreat product\n")
    result = run_cli("publish", reviews, env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", **settings})
    assert result.returncode == 2
    # After whatever librdkafka logged itself: the last line says what to fix.
    assert result.stderr.strip().splitlines()[-1].startswith("error: the Kafka client settings were refused: ")
    assert "Traceback" not in result.stderr


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


def test_a_command_on_a_database_never_migrated_says_to_migrate(database_url: str) -> None:
    """`trends` on a new database was an UndefinedTable traceback."""
    migrate.downgrade(database_url, "base")
    result = run_cli("trends", env={"DATABASE_URL": database_url, "DATABASE_READONLY_URL": database_url})
    assert result.returncode == 2
    assert result.stderr.strip().endswith("run `reviewscore migrate` first"), result.stderr
    assert "Traceback" not in result.stderr


def test_a_demo_timeout_under_a_second_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["demo", "--timeout", "0.5"])
    assert result.exit_code == 2
    assert "--timeout" in result.output
