"""Alembic environment: runs against the URL the caller put in the config (see core.migrate)."""

from alembic import context
from sqlalchemy import create_engine, pool, text

from core.db import sqlalchemy_url
from core.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by core.migrate"
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        # DDL waiting for a lock makes every later reader and writer of the table wait behind it:
        # give up soon (core.migrate tries again and then names who holds it).
        lock_ms = int(config.get_main_option("lock_timeout_ms") or 0)
        if lock_ms:
            conn.execute(text(f"SET lock_timeout = {lock_ms}"))
            conn.commit()
        context.configure(connection=conn, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
