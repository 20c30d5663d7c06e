"""Alembic migrations of the reviewscore schema; helpers shared by the revisions."""

from __future__ import annotations


def reader_role() -> str:
    """The SELECT-only role the revisions grant to (``reviewscore migrate`` passes it in).

    It is spliced into GRANT statements, which take no bound parameters: only plain names pass.
    """
    from alembic import context

    role = context.config.get_main_option("readonly_role") or "reviewscore_reader"
    if not role.replace("_", "").isalnum():
        raise ValueError(f"unsafe role name {role!r}")
    return role
