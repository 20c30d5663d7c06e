"""``--variant LABEL:NAME=VALUE,...``: the settings one column of a side-by-side benchmark runs with."""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    """``'label:NAME=VALUE,NAME=VALUE'`` (or a bare label: the defaults) as (label, environment).

    Values cannot hold commas, except ``BENCH_SQL``'s, which takes the rest of the spec (put it
    last: SQL has commas). Refuses what would otherwise measure the defaults under a wrong name:
    a blank label, a pair without ``=``, and a name that is no environment variable's (a value
    cut at a comma leaves one: "…(fillfactor=70, autovacuum_enabled=off)")."""
    label, _, assignments = spec.partition(":")
    assignments, sql_marker, sql = assignments.partition("BENCH_SQL=")
    pairs = [[part.strip() for part in item.split("=", 1)] for item in assignments.split(",") if item.strip()]
    if not label.strip() or any(len(pair) != 2 or not _NAME.fullmatch(pair[0]) for pair in pairs):
        raise ValueError(
            f"--variant {spec!r}: expected LABEL or LABEL:NAME=VALUE[,NAME=VALUE] (no commas in values; BENCH_SQL last)"
        )
    settings = dict(pairs)
    if sql_marker:
        settings["BENCH_SQL"] = sql.strip()
    return label.strip(), settings
