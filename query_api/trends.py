"""Brand trends as values: the rows of ``queries.trends_statement`` as ``BrandTrend``s, and the
alert a watch raises when brands fall.

Shared by ``GET /brands/trends`` and ``reviewscore trends``, so the endpoint and a cron job that
pages someone read the same figures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Row

from query_api.queries import TimeField, TrendOrder, Windows
from query_api.schemas import BrandTrend, Trends, Window, WindowFigures


def _figures(count: int, mean: Any, negatives: int) -> WindowFigures:
    return WindowFigures(count=count, mean_score=float(mean), negative_share=negatives / count)


def brand_trends(rows: Iterable[Row[Any]]) -> list[BrandTrend]:
    """One ``BrandTrend`` per row, in the statement's order."""
    out = []
    for row in rows:
        now = _figures(row.n_now, row.mean_now, row.negative_now)
        before = _figures(row.n_before, row.mean_before, row.negative_before)
        out.append(
            BrandTrend(
                brand=row.brand,
                change=float(row.change),
                negative_share_change=now.negative_share - before.negative_share,
                current=now,
                previous=before,
            )
        )
    return out


def answer(
    windows: Windows, days: int, time_field: TimeField, min_count: int, order: TrendOrder, brands: list[BrandTrend]
) -> Trends:
    """The body of ``GET /brands/trends`` (and of ``reviewscore trends --json``)."""
    return Trends(
        time_field=time_field,
        days=days,
        min_count=min_count,
        order=order,
        current=Window(since=windows.middle, until=windows.end),
        previous=Window(since=windows.start, until=windows.middle),
        brands=brands,
    )


def alert_key(alerts: Sequence[BrandTrend], drop: float, windows: Windows, time_field: TimeField, scope: str) -> str:
    """The alert's identity: the windows, what was watched (``scope``: the filters' fingerprint),
    the threshold and which brands fell, not by how much.

    Sent as ``alert_id`` and ``Idempotency-Key`` so a receiver can drop a repeat: a post retried
    after a webhook took it but answered too late, or a cron run again within the same windows
    while late reviews nudge the means, is the same alert; a brand newly fallen is a new one."""
    identity = (
        windows.start.isoformat(),
        windows.middle.isoformat(),
        windows.end.isoformat(),
        time_field,
        scope,
        round(drop, 6),
        sorted(b.brand for b in alerts),
    )
    return hashlib.sha256(repr(identity).encode()).hexdigest()[:32]


def days_text(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


def alert_text(alerts: Sequence[BrandTrend], drop: float, windows: Windows, days: int) -> str:
    """One message a person reads in a chat or a mail: who fell, by how much, on how many reviews."""
    first_day = windows.middle.strftime("%Y-%m-%d %H:%M UTC").replace(" 00:00 UTC", "")
    noun = "brand" if len(alerts) == 1 else "brands"
    lines = [
        f"{len(alerts)} {noun} fell by {drop:.2f} or more in mean sentiment over {days_text(days)} from {first_day}:"
    ]
    for b in alerts:
        lines.append(
            f"- {b.brand}: {b.change:+.2f} ({b.previous.mean_score:.2f} -> {b.current.mean_score:.2f}), "
            f"{b.current.count} reviews (before: {b.previous.count}), "
            f"negative {b.current.negative_share:.0%} (before: {b.previous.negative_share:.0%})"
        )
    return "\n".join(lines)
