"""Charts as inline SVG, drawn on the server by pure functions: no script, no library,
nothing fetched, and they print. Missing values (a day without impressions) leave gaps."""

from __future__ import annotations

import html
from collections.abc import Sequence

WIDTH, HEIGHT = 420, 170
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 48, 12, 26, 26
CURRENT, PREVIOUS = "#2563eb", "#9ca3af"


def _fmt(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.1f}%"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}"


def _path(values: Sequence[float | None], x: float, step: float, y0: float, scale: float) -> str:
    """An SVG path through the values, lifted at each gap."""
    parts, pen_down = [], False
    for i, value in enumerate(values):
        if value is None:
            pen_down = False
            continue
        px, py = x + i * step, y0 - value * scale
        parts.append(f"{'L' if pen_down else 'M'}{px:.1f},{py:.1f}")
        pen_down = True
    return " ".join(parts)


def line_chart(
    title: str,
    labels: Sequence[str],
    current: Sequence[float | None],
    previous: Sequence[float | None] = (),
    percent: bool = False,
) -> str:
    """An SVG line chart of ``current`` (this period, by day) over ``previous`` (the
    period before it, aligned day by day), with the axis range and the first and last
    labels. The caller marks the string safe: every text in it is escaped here."""
    values = [v for v in (*current, *previous) if v is not None]
    top = max(values) if values else 0.0
    top = top if top > 0 else 1.0
    n = max(len(current), len(previous), 2)
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    step = plot_w / (n - 1)
    y0 = PAD_TOP + plot_h
    scale = plot_h / top
    name = html.escape(title)
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{name}">',
        f'<text x="{PAD_LEFT}" y="16" font-size="13" font-weight="600" '
        f'fill="#111827">{name}</text>',
        f'<line x1="{PAD_LEFT}" y1="{y0}" x2="{WIDTH - PAD_RIGHT}" y2="{y0}" stroke="#d1d5db"/>',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{WIDTH - PAD_RIGHT}" y2="{PAD_TOP}" '
        'stroke="#f3f4f6"/>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + 4}" font-size="10" text-anchor="end" '
        f'fill="#6b7280">{html.escape(_fmt(top, percent))}</text>',
        f'<text x="{PAD_LEFT - 4}" y="{y0}" font-size="10" text-anchor="end" '
        f'fill="#6b7280">{html.escape(_fmt(0.0, percent))}</text>',
    ]
    if labels:
        out.append(
            f'<text x="{PAD_LEFT}" y="{HEIGHT - 8}" font-size="10" fill="#6b7280">'
            f"{html.escape(labels[0])}</text>"
        )
        out.append(
            f'<text x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 8}" font-size="10" '
            f'text-anchor="end" fill="#6b7280">{html.escape(labels[-1])}</text>'
        )
    if previous:
        out.append(
            f'<path class="previous" d="{_path(previous, PAD_LEFT, step, y0, scale)}" '
            f'fill="none" stroke="{PREVIOUS}" stroke-width="1.5" '
            'stroke-dasharray="4 3"/>'
        )
    out.append(
        f'<path class="current" d="{_path(current, PAD_LEFT, step, y0, scale)}" '
        f'fill="none" stroke="{CURRENT}" stroke-width="2"/>'
    )
    if not values:
        out.append(
            f'<text x="{WIDTH / 2}" y="{PAD_TOP + plot_h / 2}" font-size="12" '
            'text-anchor="middle" fill="#9ca3af">no data in this period</text>'
        )
    out.append("</svg>")
    return "".join(out)
