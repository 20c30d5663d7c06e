"""deploy/postgres/reader-role.sql gives the API's SELECT-only role a password, idempotently.

Compose's db-roles service and the Kubernetes migrate Job run this file with psql before
`reviewscore migrate`; here it runs the same way against the real test PostgreSQL.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, pool, text

from core.db import libpq_url, sqlalchemy_url
from tests.deploy.manifests import READER_ROLE_SQL

pytestmark = pytest.mark.integration


def run_sql(url: str, role: str, password: str) -> subprocess.CompletedProcess[str]:
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql (the PostgreSQL client) is not installed")
    variables = ["ON_ERROR_STOP=1", f"reader_role={role}", f"reader_password={password}"]
    return subprocess.run(
        [psql, libpq_url(url), "-X", "-q", *(f"--set={v}" for v in variables), "-f", str(READER_ROLE_SQL)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def role(database_url: str) -> Iterator[str]:
    name = f"rs_reader_{uuid.uuid4().hex[:10]}"
    yield name
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
    engine.dispose()


def role_row(url: str, name: str) -> tuple[bool, bool] | None:
    """(can log in, has a password) of a role, or None when it does not exist."""
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT rolcanlogin, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = :name"), {"name": name}
        ).one_or_none()
    engine.dispose()
    return None if row is None else (bool(row[0]), bool(row[1]))


def test_the_script_creates_the_role_with_a_password_and_can_run_again(database_url: str, role: str) -> None:
    first = run_sql(database_url, role, "s3cret")
    assert first.returncode == 0, first.stderr
    assert role_row(database_url, role) == (True, True)
    again = run_sql(database_url, role, "rotated")
    assert again.returncode == 0, again.stderr
    assert role_row(database_url, role) == (True, True)


def test_a_password_with_quotes_is_quoted_not_executed(database_url: str, role: str) -> None:
    result = run_sql(database_url, role, "it's'; DROP TABLE sentiments; --")
    assert result.returncode == 0, result.stderr
    assert role_row(database_url, role) == (True, True)
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('public.sentiments') IS NOT NULL")).scalar_one()
    engine.dispose()
