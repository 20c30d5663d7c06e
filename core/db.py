"""Engine factory and URL helpers. Nothing connects at import time: callers build what they need."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url

from core.config import DatabaseSettings


def sqlalchemy_url(url: str | URL) -> URL:
    """Accept libpq-style ``postgresql://`` / ``postgres://`` URLs and pin the psycopg2 driver."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def libpq_url(url: str | URL) -> str:
    """The same URL without the SQLAlchemy driver suffix, for psql, confluent tools and psycopg2."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(
    settings: DatabaseSettings,
    url: str | URL | None = None,
    *,
    read_only: bool = False,
    application_name: str = "reviewscore",
    pre_ping: bool = True,
) -> Engine:
    """A pooled engine; ``read_only`` makes every transaction READ ONLY at the server.

    A ``read_only`` engine also runs in autocommit: a read is one statement, and the BEGIN and the
    ROLLBACK around it were two more round trips (a quarter of PostgreSQL's CPU for a row by id).
    A caller that needs a transaction asks for one with ``connection.execution_options(isolation_level=...)``:
    READ COMMITTED for a server-side cursor, REPEATABLE READ for one snapshot over several statements.

    ``pre_ping`` tests each connection with a round trip at checkout, so a database restart costs
    no failed call; a latency-bound reader may turn it off, and then the calls that hold a
    connection when the database goes away fail once while the pool reconnects.
    """
    target = url or (settings.readonly_url if read_only and settings.readonly_url else settings.url)
    if target is None:
        raise ValueError("no database URL: set DATABASE_URL or start the embedded database")
    parsed = sqlalchemy_url(target)
    # UTC sessions: buckets, rollup days and the instants read back do not depend on the
    # server's TimeZone setting (and psycopg2 can read every stored year in UTC).
    options = f"-c statement_timeout={settings.statement_timeout_ms} -c timezone=UTC"
    if read_only:
        options += " -c default_transaction_read_only=on"
    # The URL's own (a search_path, a pooler's endpoint id), which migrations honour too, go first:
    # connect_args would replace them, and where both set one the later, ours, wins.
    given = parsed.query.get("options")
    if given:
        options = " ".join([*((given,) if isinstance(given, str) else given), options])
    engine = create_engine(
        parsed,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        pool_recycle=settings.pool_recycle,
        pool_pre_ping=pre_ping,
        echo=settings.echo,
        **({"isolation_level": "AUTOCOMMIT"} if read_only else {}),
        connect_args={
            "connect_timeout": settings.connect_timeout,
            "application_name": application_name,
            "options": options,
            **dead_peer_args(settings.dead_peer_timeout),
        },
    )
    return engine


def dead_peer_args(timeout: int) -> dict[str, int]:
    """libpq parameters that end a TCP connection to a server gone silent after about ``timeout`` s.

    ``statement_timeout`` is the server's: with the server unreachable (a partition, a host gone) a
    query waited on the kernel's retransmissions, ~15 minutes, while the worker's health said all
    was well. Keepalives probe an idle connection (half the time, then three probes); a write
    unacknowledged for ``timeout`` fails at once (``tcp_user_timeout``). Unix sockets ignore both.
    """
    if timeout <= 0:
        return {}
    return {
        "keepalives": 1,
        "keepalives_idle": max(1, timeout // 2),
        "keepalives_interval": max(1, timeout // 6),
        "keepalives_count": 3,
        "tcp_user_timeout": timeout * 1000,
    }


def is_undefined_table(exc: BaseException) -> bool:
    """A query on a table that is not there (SQLSTATE 42P01): a database never migrated."""
    return getattr(getattr(exc, "orig", None), "pgcode", None) == "42P01"


__all__ = ["dead_peer_args", "is_undefined_table", "libpq_url", "make_engine", "sqlalchemy_url"]
