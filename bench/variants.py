"""``--variant LABEL:NAME=VALUE,...``: the settings one column of a side-by-side benchmark runs with."""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    """``'label:NAME=VALUE,NAME=VALUE'`` (or a bare label: the defaults) as (label, environment).

    Refuses what would otherwise measure the defaults under a wrong name: a blank label, a pair
    without ``=`` or a name, and (as values cannot hold commas) a value cut at a comma."""
    label, _, assignments = spec.partition(":")
    pairs = [[part.strip() for part in item.split("=", 1)] for item in assignments.split(",") if item.strip()]
    # Names are environment variables, upper case: a lower-case or spaced "name" is the rest of a
    # value that held a comma ("BENCH_SQL=… (fillfactor=70, autovacuum_enabled=off)").
    if not label.strip() or any(len(pair) != 2 or not _NAME.fullmatch(pair[0]) for pair in pairs):
        raise ValueError(f"--variant {spec!r}: expected LABEL or LABEL:NAME=VALUE[,NAME=VALUE] (no commas in values)")
    return label.strip(), dict(pairs)
