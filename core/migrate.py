"""Programmatic Alembic: ``reviewscore migrate`` and the test harness share these functions."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from core.db import libpq_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str, readonly_role: str = "reviewscore_reader") -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", libpq_url(url).replace("%", "%%"))
    config.set_main_option("readonly_role", readonly_role)
    return config


def upgrade(url: str, revision: str = "head", readonly_role: str = "reviewscore_reader") -> None:
    command.upgrade(alembic_config(url, readonly_role), revision)


def downgrade(url: str, revision: str = "base", readonly_role: str = "reviewscore_reader") -> None:
    command.downgrade(alembic_config(url, readonly_role), revision)


def head_revision() -> str | None:
    """The newest revision shipped with this code (what ``upgrade(url)`` brings a database to)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


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


def schema_behind(url: str) -> str | None:
    """Why this code cannot write to the database at ``url`` yet, or None when it can.

    The worker writes tables of the newest migration (rollups, rejections); against an older
    schema its first such write would fail and be retried for ever, stalling the stream. A
    database *newer* than the code (a revision it does not know: the previous release during a
    rollout, or after a rollback of the code) is not refused: migrations add, so the older code
    still writes what it knows; ``schema_ahead`` says so for a warning.
    """
    current, head = current_revision(url), head_revision()
    if current == head or not _known(current):
        return None
    return f"the database is at migration {current or 'none'} and this code needs {head}: run `reviewscore migrate`"


def schema_ahead(url: str) -> str | None:
    """A warning when the database is at a migration newer than this code knows, else None."""
    current = current_revision(url)
    if _known(current):
        return None
    return f"the database is at migration {current}, newer than this code ({head_revision()}): an older release?"


def _known(revision: str | None) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    if revision is None:
        return True
    try:
        return ScriptDirectory(str(MIGRATIONS_DIR)).get_revision(revision) is not None
    except CommandError:
        return False
