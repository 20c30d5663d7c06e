"""Render the README's configuration table from the settings classes, so the two cannot drift.

``python -m core.config.docs`` prints the table; ``--write README.md`` replaces the block
between the config-table markers. A test fails when the README's block is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic_settings import BaseSettings

from core.config.api import ApiSettings
from core.config.database import DatabaseSettings
from core.config.infra import InfraSettings
from core.config.kafka import KafkaSettings
from core.config.model import ModelSettings
from core.config.scraper import ScraperSettings
from core.config.stream import StreamSettings

SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (
    InfraSettings,
    DatabaseSettings,
    KafkaSettings,
    StreamSettings,
    ModelSettings,
    ApiSettings,
    ScraperSettings,
)
START = "<!-- config-table:start -->"
END = "<!-- config-table:end -->"


def env_name(cls: type[BaseSettings], field: str) -> str:
    return f"{cls.model_config.get('env_prefix', '')}{field}".upper()


def render_table() -> str:
    lines = ["| variable | default | description |", "| --- | --- | --- |"]
    for cls in SETTINGS_CLASSES:
        for name, info in cls.model_fields.items():
            default = info.get_default(call_default_factory=True)
            shown = "(unset)" if default is None else f"`{default}`"
            description = (info.description or "").replace("|", "\\|")
            lines.append(f"| `{env_name(cls, name)}` | {shown} | {description} |")
    return "\n".join(lines) + "\n"


def replace_block(document: str, table: str) -> str:
    head, _, rest = document.partition(START)
    _, _, tail = rest.partition(END)
    if not rest:
        raise ValueError(f"no {START} marker in the document")
    return f"{head}{START}\n{table}{END}{tail}"


def main(argv: list[str]) -> int:
    table = render_table()
    if len(argv) == 2 and argv[0] == "--write":
        path = Path(argv[1])
        path.write_text(replace_block(path.read_text(encoding="utf-8"), table), encoding="utf-8")
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
