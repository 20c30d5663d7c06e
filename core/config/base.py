"""Shared pieces of the settings classes: the common model config and the cache registry."""

from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

from pydantic_settings import SettingsConfigDict

_CACHED: list[Any] = []

F = TypeVar("F", bound=Callable[[], Any])


def settings_config(prefix: str) -> SettingsConfigDict:
    """One prefix per part; ``.env`` is read so a developer can keep local overrides out of git.

    Errors never echo the value: settings hold passwords, database URLs and API keys, and a
    refused one would otherwise be printed whole in the traceback of a service that will not start.
    """
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
        hide_input_in_errors=True,
    )


def cached(factory: F) -> F:
    """Cache a ``get_*()`` factory and remember it so ``clear_settings_cache`` can reset it."""
    wrapped = lru_cache(maxsize=1)(factory)
    _CACHED.append(wrapped)
    return wrapped  # type: ignore[return-value]


def clear_settings_cache() -> None:
    """Forget every built settings object; the next ``get_*()`` reads the environment again."""
    for factory in _CACHED:
        factory.cache_clear()
