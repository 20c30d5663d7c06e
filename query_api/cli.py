"""``reviewscore api``: serve the query API and dashboard with uvicorn (and register ``trends``)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from query_api.trends_cli import trends


def register(app: typer.Typer) -> None:
    app.command("api")(serve)
    app.command("trends")(trends)


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default: API_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="uvicorn worker processes (default: API_WORKERS).")] = None,
) -> None:
    """Serve the read-only query API, the submit endpoint and the dashboard."""
    import uvicorn

    from core.config import get_api_settings, get_database_settings, get_infra_settings
    from core.logs import logging_config
    from core.runtime import ensure_infra

    settings = get_api_settings()
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())  # as the CLI's callback set it
    # Settings from the environment, else a running `reviewscore infra up`; the API starts nothing
    # itself. The broker is optional: without one reads work and submissions answer 503.
    needs_writer_url = get_database_settings().readonly_url is None
    with ensure_infra(database=needs_writer_url, kafka=False, start_embedded=False):
        uvicorn.run(
            "query_api.app:create_app",
            factory=True,
            host=host or settings.host,
            port=port if port is not None else settings.port,
            workers=workers or settings.workers,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            # The level the root --log-level or REVIEWSCORE_LOG_LEVEL set, in the project's format
            # (JSON lines with REVIEWSCORE_LOG_JSON), access lines included; uvicorn's own config
            # would replace both in every worker process.
            log_config=logging_config(level, get_infra_settings().log_json),
            log_level=logging.getLevelName(level),
        )
