"""Programmatic Alembic: ``reviewscore migrate`` and the test harness share these functions."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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


def upgrade_unless_ahead(url: str, readonly_role: str = "reviewscore_reader") -> str | None:
    """Upgrade to head, or, on a database at a revision this code does not know (an older
    checkout on a kept state directory), leave it as it is and say why: alembic's own answer
    is a traceback."""
    mismatch = schema_mismatch(url)
    if mismatch and mismatch[0] == "ahead":
        return mismatch[1]
    upgrade(url, "head", readonly_role)
    return None


def downgrade(url: str, revision: str = "base", readonly_role: str = "reviewscore_reader") -> None:
    command.downgrade(alembic_config(url, readonly_role), revision)


def head_revision() -> str | None:
    """The newest revision shipped with this code (what ``upgrade(url)`` brings a database to)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def older_than(revision: str, current: str | None) -> bool:
    """Whether ``revision`` is one the database at ``current`` has already passed (an ancestor)."""
    from alembic.script import ScriptDirectory

    if current is None or revision == current:
        return False
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
