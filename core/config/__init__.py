"""Settings for every part of reviewscore, one pydantic-settings class per part.

Each class reads its own environment prefix (and a ``.env`` file). Instances are built by
the cached ``get_*()`` functions, never at import time, so tests and tools can set the
environment first and call ``clear_settings_cache()`` to rebuild.
"""

from core.config.api import ApiSettings, get_api_settings
from core.config.base import clear_settings_cache
from core.config.database import DatabaseSettings, get_database_settings
from core.config.infra import InfraSettings, get_infra_settings
from core.config.kafka import KafkaSettings, get_kafka_settings
from core.config.model import ModelSettings, get_model_settings
from core.config.scraper import ScraperSettings, get_scraper_settings
from core.config.stream import StreamSettings, get_stream_settings

__all__ = [
    "ApiSettings",
    "DatabaseSettings",
    "InfraSettings",
    "KafkaSettings",
    "ModelSettings",
    "ScraperSettings",
    "StreamSettings",
    "clear_settings_cache",
    "get_api_settings",
    "get_database_settings",
    "get_infra_settings",
    "get_kafka_settings",
    "get_model_settings",
    "get_scraper_settings",
    "get_stream_settings",
]
