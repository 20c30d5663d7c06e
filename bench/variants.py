"""``--variant LABEL:NAME=VALUE,...``: the settings one column of a side-by-side benchmark runs with."""

from __future__ import annotations


def parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    """``'label:NAME=VALUE,NAME=VALUE'`` (or a bare label: the defaults) as (label, environment).

    Refuses what would otherwise measure the defaults under a wrong name: a blank label, a pair
    without ``=`` or a name, and (as values cannot hold commas) a value cut at a comma."""
    label, _, assignments = spec.partition(":")
    pairs = [[part.strip() for part in item.split("=", 1)] for item in assignments.split(",") if item.strip()]
    if not label.strip() or any(len(pair) != 2 or not pair[0] for pair in pairs):
        raise ValueError(f"--variant {spec!r}: expected LABEL or LABEL:NAME=VALUE[,NAME=VALUE] (no commas in values)")
    return label.strip(), dict(pairs)
