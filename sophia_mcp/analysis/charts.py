"""Charts as inline SVG, drawn on the server: a dashboard needs no script and fetches nothing.

Pure functions from numbers to SVG text; labels escaped. Bars and lines carry `data-value` so a test (or a
person with the inspector) can read what was drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from sophia_mcp.analysis.health import format_score

WIDTH = 640
ROW = 22
RED, GREEN, BLUE, GREY = "#c0392b", "#2e8b57", "#2c6fbb", "#8a8f98"


def bar_chart(title: str, items: Sequence[tuple[str, float]], *, maximum: float | None = None,
              threshold: float | None = None) -> str:  # fmt: skip
    """Horizontal bars, one per (label, value); with a threshold, bars under it are red, the line is drawn and each
    value reads as a score (on the same side of the threshold as its bar)."""
    top = maximum if maximum is not None else max([v for _, v in items] + [1.0])
    label_w, bar_w = 230, WIDTH - 230 - 90
    height = ROW * len(items) + 30
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">']  # fmt: skip
    for i, (label, value) in enumerate(items):
        y = 10 + i * ROW
        width = max(1.0, bar_w * max(0.0, value) / top) if top else 1.0
        color = RED if threshold is not None and value < threshold else (GREEN if threshold is not None else BLUE)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end" font-size="12">{escape(label[:34])}</text>'
        )
        parts.append(f'<rect class="bar" data-value="{value:.2f}" x="{label_w}" y="{y + 3}" width="{width:.1f}" '
                     f'height="{ROW - 6}" fill="{color}"/>')  # fmt: skip
        shown = f"{value:,.0f}" if threshold is None else format_score(value, threshold)
        parts.append(f'<text x="{label_w + width + 6:.1f}" y="{y + 14}" font-size="12">{shown}</text>')
    if threshold is not None and top:
        x = label_w + bar_w * threshold / top
        parts.append(
            f'<line x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{height - 16}" stroke="{GREY}" stroke-dasharray="4 3"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(title: str, points: Sequence[tuple[str, float]], *, low: float = 0, high: float = 100) -> str:
    """A line over (label, value) points, left to right, with the first and last labels under it."""
    height, pad = 220, 36
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">']  # fmt: skip
    if points:
        span = (high - low) or 1.0
        step = (WIDTH - 2 * pad) / max(1, len(points) - 1)
        xy = [(pad + i * step, height - pad - (height - 2 * pad) * (v - low) / span) for i, (_, v) in enumerate(points)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        parts.append(f'<polyline class="line" data-points="{len(points)}" points="{path}" fill="none" '
                     f'stroke="{BLUE}" stroke-width="2"/>')  # fmt: skip
        for (x, y), (_, v) in zip(xy, points, strict=True):
            parts.append(f'<circle class="point" data-value="{v:.2f}" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{BLUE}"/>')
        parts.append(f'<text x="{pad}" y="{height - 8}" font-size="11">{escape(points[0][0])}</text>')
        parts.append(f'<text x="{WIDTH - pad}" y="{height - 8}" font-size="11" text-anchor="end">'
                     f"{escape(points[-1][0])}</text>")  # fmt: skip
    parts.append(f'<text x="4" y="{pad}" font-size="11">{high:.0f}</text>')
    parts.append(f'<text x="4" y="{height - pad}" font-size="11">{low:.0f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)
