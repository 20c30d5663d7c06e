"""Programmatic Alembic: ``reviewscore migrate`` and the test harness share these functions."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config

from core.db import libpq_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class MigrationLockError(RuntimeError):
    """A migration could not take a table lock in time: another session holds it."""


def alembic_config(url: str, readonly_role: str = "reviewscore_reader", lock_timeout_ms: int = 0) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", libpq_url(url).replace("%", "%%"))
    config.set_main_option("readonly_role", readonly_role)
    config.set_main_option("lock_timeout_ms", str(lock_timeout_ms))
    return config


def upgrade(
    url: str, revision: str = "head", readonly_role: str = "reviewscore_reader", lock_timeout_ms: int = 0
) -> None:
    _move(command.upgrade, url, revision, readonly_role, lock_timeout_ms)


def upgrade_unless_ahead(url: str, readonly_role: str = "reviewscore_reader") -> str | None:
    """Upgrade to head, or, on a database at a revision this code does not know (an older
    checkout on a kept state directory), leave it as it is and say why: alembic's own answer
    is a traceback."""
    mismatch = schema_mismatch(url)
    if mismatch and mismatch[0] == "ahead":
        return mismatch[1]
    upgrade(url, "head", readonly_role)
    return None


def downgrade(
    url: str, revision: str = "base", readonly_role: str = "reviewscore_reader", lock_timeout_ms: int = 0
) -> None:
    _move(command.downgrade, url, revision, readonly_role, lock_timeout_ms)


def _move(
    step: Callable[[Config, str], None], url: str, revision: str, readonly_role: str, lock_timeout_ms: int
) -> None:
    """Run ``step`` with a lock timeout, a few times: DDL waiting for a lock queues every reader and
    writer of the table behind it, so it gives up soon and tries again (a failed migration rolls
    back whole), then names the sessions that held it up."""
    from sqlalchemy.exc import OperationalError

    attempts = 3
    for attempt in range(1, attempts + 1):
        try:
            step(alembic_config(url, readonly_role, lock_timeout_ms), revision)
            return
        except OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != "55P03" or not lock_timeout_ms:  # lock_not_available
                raise
            if attempt == attempts:
                raise MigrationLockError(
                    f"waited {lock_timeout_ms / 1000:g} s for a table lock {attempts} times; sessions with an open "
                    f"transaction: {_open_transactions(url)}. Retry when they end (or raise "
                    "DATABASE_MIGRATION_LOCK_TIMEOUT_MS)"
                ) from exc
            time.sleep(attempt)


def _open_transactions(url: str) -> str:
    from sqlalchemy import create_engine, pool, text

    from core.db import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT pid, state, date_trunc('second', now() - xact_start) AS age, left(query, 60) AS query "
                    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND xact_start IS NOT NULL ORDER BY xact_start LIMIT 3"
                )
            ).all()
    finally:
        engine.dispose()
    return "; ".join(f"pid {r.pid} ({r.state} for {r.age}: {r.query!r})" for r in rows) or "none left"


def head_revision() -> str | None:
    """The newest revision shipped with this code (what ``upgrade(url)`` brings a database to)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def older_than(revision: str, current: str | None) -> bool:
    """Whether ``revision`` is one the database at ``current`` has already passed (an ancestor)."""
    from alembic.script import ScriptDirectory

    if current is None or revision == current:
        return False
    if revision == "base" or (revision.startswith("-") and revision[1:].isdigit()):
        return True  # before every revision, or N steps back: behind any database that has one
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    try:
        target = script.get_revision(revision)
    except Exception:  # noqa: BLE001 - "-1", "base+1" and unknown ids: alembic says what is wrong
        return False
    if target is None or target.revision == current:  # "head" on a database at head: nothing is behind
        return False
    return any(r.revision == target.revision for r in script.iterate_revisions(current, "base"))


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, pool

    from core.db import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def schema_mismatch(url: str) -> tuple[Literal["behind", "ahead"], str] | None:
    """How the database at ``url`` differs from this code's migrations, or None when at head.

    ``behind``: the worker writes tables of the newest migration (rollups, rejections); against
    an older schema its first such write would fail and be retried for ever, stalling the
    stream, so it must not start. ``ahead``: a revision this code does not know (the previous
    release during a rollout, or the code rolled back); migrations add, so the older code still
    writes what it knows, and a warning is enough.
    """
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    current, script = current_revision(url), ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    if current == head:
        return None
    try:
        known = current is None or script.get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        return "ahead", f"the database is at migration {current}, newer than this code ({head}): an older release?"
    return (
        "behind",
        f"the database is at migration {current or 'none'} and this code needs {head}: run `reviewscore migrate`",
    )
