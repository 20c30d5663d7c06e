"""The engine factory against a real PostgreSQL: its session settings, and the URL's own kept."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.config import DatabaseSettings
from core.db import make_engine


def test_options_in_the_url_are_kept_beside_the_engines_own(database_url: str) -> None:
    """The URL's search_path was dropped: migrations built the schema in it, and the worker looked elsewhere."""
    separator = "&" if "?" in database_url else "?"
    url = f"{database_url}{separator}options={quote('-c search_path=elsewhere,public -c timezone=Asia/Tokyo')}"
    engine = make_engine(DatabaseSettings(url=url, statement_timeout_ms=1234), read_only=True)
    try:
        with engine.connect() as conn:
            settings = {
                name: conn.execute(text(f"SHOW {name}")).scalar_one()
                for name in ("search_path", "timezone", "statement_timeout", "default_transaction_read_only")
            }
    finally:
        engine.dispose()

    assert settings == {
        "search_path": "elsewhere,public",
        "timezone": "UTC",  # the engine's own wins where both set one
        "statement_timeout": "1234ms",
        "default_transaction_read_only": "on",
    }


def test_a_read_only_engine_holds_no_transaction_open_between_statements(database_url: str) -> None:
    """Each read is its own transaction: no BEGIN and ROLLBACK round trips around it, and a pooled
    connection is never left idle in a transaction."""
    engine = make_engine(DatabaseSettings(url=database_url), read_only=True)
    admin = make_engine(DatabaseSettings(url=database_url))
    try:
        with engine.connect() as reader, admin.connect() as watcher:
            pid = reader.execute(text("SELECT pg_backend_pid()")).scalar_one()
            state = watcher.execute(text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})
            assert state.scalar_one() == "idle"
            with pytest.raises(DBAPIError, match="read-only transaction"):
                reader.execute(text("CREATE TABLE written (id int)"))
    finally:
        engine.dispose()
        admin.dispose()


@pytest.mark.parametrize(("timeout", "expected"), [(60, ("1", "30", "10", "3", "60000")), (0, None)])
def test_a_connection_carries_the_dead_peer_timeout_as_keepalives_and_a_tcp_user_timeout(
    database_url: str, timeout: int, expected: tuple[str, ...] | None
) -> None:
    """Without keepalives a query to a partitioned server waited ~15 minutes while health said all was well.
    (A partition cannot be staged here: what the server received is checked instead.)"""
    engine = make_engine(DatabaseSettings(url=database_url, dead_peer_timeout=timeout))
    try:
        with engine.connect() as conn:
            dsn = conn.connection.dbapi_connection.get_dsn_parameters()  # type: ignore[union-attr]
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()

    names = ("keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout")
    if expected is None:
        assert not set(names) & set(dsn)
    else:
        assert tuple(dsn.get(name) for name in names) == expected
