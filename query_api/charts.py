"""Server-side SVG charts for the dashboard, rendered from the stats query.

Why SVG strings built here rather than a JavaScript chart library: the dashboard must work
offline with no build step, the charts it needs (a timeline, a label distribution, labels per
star rating) are a few hundred lines of arithmetic, and rendering on the server makes them pure functions that the
tests check directly. Every piece of text from the data goes through ``escape``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

LABEL_COLORS = {"negative": "#c0392b", "neutral": "#d4a017", "positive": "#2e8b57"}
_FONT = 'font-family="system-ui, sans-serif" fill="#444" font-size="11"'
_TITLE_FONT = 'font-family="system-ui, sans-serif" fill="#222" font-size="13" font-weight="600"'


@dataclass(frozen=True, slots=True)
class Point:
    bucket: datetime
    count: int
    mean_score: float


def score_color(score: float) -> str:
    """Red at 0, amber at 0.5, green at 1."""
    score = min(1.0, max(0.0, score))
    if score < 0.5:
        red, green = 192, int(57 + (160 - 57) * score * 2)
    else:
        red, green = int(192 - (192 - 46) * (score - 0.5) * 2), int(160 - (160 - 139) * (score - 0.5) * 2)
    return f"#{red:02x}{green:02x}{60:02x}"


# Characters XML 1.0 cannot hold, even escaped: one in a brand name or a search made the whole
# chart unparseable. They become U+FFFD, as a decoder shows what it cannot read.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: str) -> str:
    """Text as SVG character data or an attribute value: escaped, and XML-legal."""
    return escape(_NOT_XML.sub("\ufffd", text))


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_xml(title)}">'
        f"<title>{_xml(title)}</title>"
    )
    return head + "".join(body) + "</svg>"


def _bucket_label(bucket: datetime, unit: str) -> str:
    """Buckets are UTC days and hours whatever zone the driver handed the instant back in."""
    if bucket.tzinfo is not None:
        bucket = bucket.astimezone(UTC)
    return bucket.strftime("%Y-%m-%d %H:00 UTC" if unit == "hour" else "%Y-%m-%d")


def timeline_svg(
    points: Sequence[Point], title: str, unit: str = "day", width: int = 720, height: int = 260, subtitle: str = ""
) -> str:
    """Mean sentiment per bucket (line, left axis 0-1) over review counts (bars, right axis).

    ``subtitle`` (what the chart counts: brand, filters, dates) gets a line of its own: after
    the title it was cut off beside the legend."""
    left, right, bottom = 40, 48, 34
    top = 38 if subtitle else 24
    plot_w, plot_h = width - left - right, height - top - bottom
    # Cut to leave the legend its room; the full title stays in <title> (tooltip, screen readers).
    body = [f'<text x="{left}" y="16" {_TITLE_FONT}>{_xml(_cut(title, 48))}</text>']
    if subtitle:
        body.append(_subtitle(left, subtitle, (width - left) // 6))
    title = _full(title, subtitle)
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - fraction)
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        body.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{fraction:.1f}</text>')
    if not points:
        body.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" {_FONT}>'
            "no reviews match these filters</text>"
        )
        return _svg(width, height, title, body)
    body.append(_timeline_legend(left + plot_w))
    points = sorted(points, key=lambda p: p.bucket)
    slots = _slots(points, unit)
    peak = max(p.count for p in points) or 1
    step = plot_w / (slots[-1] + 1)
    bar_w = max(1.0, step * 0.7)
    dots: list[tuple[float, float]] = []
    for slot, point in zip(slots, points, strict=True):
        x = left + step * (slot + 0.5)
        bar_h = plot_h * point.count / peak
        tip = f"{_bucket_label(point.bucket, unit)}: {point.count} reviews, mean {point.mean_score:.2f}"
        body.append(
            f'<rect class="count" x="{x - bar_w / 2:.1f}" y="{top + plot_h - bar_h:.1f}" width="{bar_w:.1f}" '
            f'height="{bar_h:.1f}" fill="#cfd8e3"><title>{_xml(tip)}</title></rect>'
        )
        dots.append((x, top + plot_h * (1 - point.mean_score)))
    # The mean line joins neighbouring buckets only: across empty ones there is no mean to draw.
    run: list[str] = []
    for i, (x, y) in enumerate(dots):
        run.append(f"{x:.1f},{y:.1f}")
        if i == len(dots) - 1 or slots[i + 1] != slots[i] + 1:
            if len(run) > 1:
                body.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="#2b6cb0" stroke-width="2"/>')
            run = []
    for (x, y), point in zip(dots, points, strict=True):
        body.append(f'<circle class="mean" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{score_color(point.mean_score)}"/>')
    body.append(
        f'<text x="{left + plot_w + 6}" y="{top + 4}" {_FONT}>{peak}</text>'
        f'<text x="{left + plot_w + 6}" y="{top + plot_h + 4}" {_FONT}>0</text>'
    )
    last = slots[-1]
    for slot in sorted({0, last // 2, last}):
        x = left + step * (slot + 0.5)
        anchor = "start" if slot == 0 and last else ("end" if slot == last and slot else "middle")
        label = _xml(_bucket_label(points[0].bucket + _BUCKET_SIZE.get(unit, _DAY) * slot, unit))
        body.append(f'<text x="{x:.1f}" y="{height - 12}" text-anchor="{anchor}" {_FONT}>{label}</text>')
    return _svg(width, height, title, body)


_DAY = timedelta(days=1)
_BUCKET_SIZE = {"hour": timedelta(hours=1), "day": _DAY, "week": timedelta(weeks=1)}


def _slots(points: Sequence[Point], unit: str) -> list[int]:
    """Each bucket's place on the axis, counted in buckets from the first.

    The stats hold only buckets with reviews; drawn one after another, a gap of seven months
    looked like a gap of one day. Buckets are whole UTC hours, days or weeks, so the
    differences are whole numbers of them.
    """
    size = _BUCKET_SIZE.get(unit, _DAY)
    first = points[0].bucket
    return [round((point.bucket - first) / size) for point in points]


def _subtitle(x: int, text: str, most: int) -> str:
    return f'<text class="subtitle" x="{x}" y="31" {_FONT}>{_xml(_cut(text, most))}</text>'


def _full(title: str, subtitle: str) -> str:
    return f"{title} — {subtitle}" if subtitle else title


def _cut(text: str, most: float) -> str:
    """What fits on a line ``most`` average characters wide; the full text stays in <title>
    (tooltip, screen readers). Characters are weighed by their width, so a line of capitals or
    of CJK ideographs is cut before it runs off the chart."""
    if sum(map(_width, text)) <= most:
        return text
    used, kept = 1.0, []  # 1.0: the ellipsis
    for char in text:
        used += _width(char)
        if used > most:
            break
        kept.append(char)
    return "".join(kept) + "…"


def _width(char: str) -> float:
    """A character's advance in average lowercase characters (system sans-serif fonts)."""
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return 2.0
    if char in "MWmw@%":
        return 1.9
    if char.isupper() or char.isdigit():
        return 1.3
    return 1.0


def _timeline_legend(right_edge: float) -> str:
    """Which mark reads on which axis: the two scales share one plot."""
    x = right_edge - 250
    return (
        f'<line x1="{x:.1f}" x2="{x + 16:.1f}" y1="12" y2="12" stroke="#2b6cb0" stroke-width="2"/>'
        f'<text x="{x + 20:.1f}" y="16" {_FONT}>mean score (left)</text>'
        f'<line x1="{x + 130:.1f}" x2="{x + 146:.1f}" y1="12" y2="12" stroke="#cfd8e3" stroke-width="8"/>'
        f'<text x="{x + 150:.1f}" y="16" {_FONT}>reviews (right)</text>'
    )


def labels_svg(counts: Mapping[str, int], title: str, width: int = 360, height: int = 144, subtitle: str = "") -> str:
    """One horizontal bar per label with its count and share."""
    total = sum(counts.values())
    body = [f'<text x="8" y="16" {_TITLE_FONT}>{_xml(_cut(title, 44))}</text>']
    if subtitle:
        body.append(_subtitle(8, subtitle, (width - 8) // 6))
    title = _full(title, subtitle)
    bar_left, bar_max = 80, width - 80 - 90
    for row, (label, color) in enumerate(LABEL_COLORS.items()):
        count = counts.get(label, 0)
        share = count / total if total else 0.0
        y = (44 if subtitle else 30) + row * 32
        body.append(f'<text x="8" y="{y + 15}" {_FONT}>{label}</text>')
        body.append(
            f'<rect class="label-bar" data-label="{label}" x="{bar_left}" y="{y}" '
            f'width="{max(1.0, bar_max * share):.1f}" height="20" fill="{color}"/>'
        )
        body.append(f'<text x="{bar_left + bar_max + 8}" y="{y + 15}" {_FONT}>{count} ({share:.0%})</text>')
    return _svg(width, height, title, body)


@dataclass(frozen=True, slots=True)
class StarRow:
    """The reviews the reviewers gave one star rating (None: no rating), by predicted label."""

    stars: int | None
    labels: Mapping[str, int]
    mean_score: float


STARS_WIDTH, STARS_HEIGHT = 360, 214


def _compact(count: int) -> str:
    """A count in at most four digits: 9999, 12.3k, 1.23M (the exact one is in the tooltips)."""
    if count < 10_000:
        return str(count)
    for unit, size in (("k", 1e3), ("M", 1e6), ("B", 1e9)):
        text = f"{count / size:.3g}"
        if "e" not in text and float(text) < 1000:
            return text + unit
    return f"{count / 1e9:.0f}B"


def stars_svg(rows: Sequence[StarRow], title: str, subtitle: str = "") -> str:
    """One bar per star rating, 5 at the top, split by the label the model read in the text.

    Where text and stars agree, 5★ is green and 1★ red; red in 5★ is praise in stars that reads
    as a complaint (or a mislabelled review): the view for checking a model against the stars.
    Each segment's tooltip gives its count and share, each row's the row's mean score.
    """
    width, height = STARS_WIDTH, STARS_HEIGHT
    body = [f'<text x="8" y="16" {_TITLE_FONT}>{_xml(_cut(title, 44))}</text>']
    if subtitle:
        body.append(_subtitle(8, subtitle, (width - 8) // 6))
    title = _full(title, subtitle)
    by_stars = {row.stars: row for row in rows}
    top = 44 if subtitle else 30
    # The right column holds "9999 · mean 0.50" (98 px in DejaVu Sans at 11 px, a common system-ui).
    bar_left, bar_max = 52, width - 52 - 116
    if not any(sum(row.labels.values()) for row in rows):
        body.append(f'<text x="8" y="{top + 20}" {_FONT}>No reviews match these filters.</text>')
        return _svg(width, height, title, body)
    for index, stars in enumerate((5, 4, 3, 2, 1, None)):
        y = top + index * 26
        name = f"{stars}★" if stars is not None else "none"
        row = by_stars.get(stars)
        total = sum(row.labels.values()) if row else 0
        body.append(f'<text x="8" y="{y + 14}" {_FONT}>{name}</text>')
        x = float(bar_left)
        for label, color in LABEL_COLORS.items():
            count = row.labels.get(label, 0) if row else 0
            if not count:
                continue
            share = count / total
            tip = f"{name}: {count} {label} ({share:.0%} of {total})"
            body.append(
                f'<rect class="star-bar" data-label="{label}" x="{x:.1f}" y="{y}" '
                f'width="{bar_max * share:.1f}" height="18" fill="{color}"><title>{_xml(tip)}</title></rect>'
            )
            x += bar_max * share
        summary = f"{_compact(total)} · mean {row.mean_score:.2f}" if row and total else "0"
        body.append(f'<text x="{bar_left + bar_max + 8}" y="{y + 14}" {_FONT}>{summary}</text>')
    return _svg(width, height, title, body)
