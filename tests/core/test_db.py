"""The engine factory against a real PostgreSQL: its session settings, and the URL's own kept."""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import text

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
