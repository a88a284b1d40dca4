"""Server-rendered SVG bar charts: no JavaScript, no CDN, readable offline.

Hand-written because it is ~60 lines: a chart library would be a JavaScript bundle to
vendor (the page must work without it) or a Python plotting stack far larger than the bot.
Every bar carries a ``<title>`` (its exact value, shown on hover and read by screen
readers) and ``data-`` attributes; the page puts the same numbers in a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, BOTTOM, TOP = 56, 40, 16
COLOURS = ("#1f5fa8", "#c2571a", "#2d7d46", "#7a3fa0")  # WCAG AA on white


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    name: str
    values: Sequence[float]


def bar_chart(
    *, title: str, labels: Sequence[str], series: Sequence[Series], unit: str = ""
) -> str:
    """Grouped bars: one group per label, one bar per series."""
    top = max([v for s in series for v in s.values] + [0.0])
    scale = top if top > 0 else 1.0
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    group_w = plot_w / max(len(labels), 1)
    bar_w = max(group_w * 0.8 / max(len(series), 1), 1.0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}" '
        'stroke="#555"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" font-size="11">'
        f"{_num(top)}{escape(unit)}</text>",
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i, label in enumerate(labels):
        x0 = LEFT + i * group_w + group_w * 0.1
        for j, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else 0.0
            h = plot_h * value / scale
            x = x0 + j * bar_w
            out.append(
                f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{COLOURS[j % len(COLOURS)]}" '
                f'data-series="{escape(s.name)}" data-label="{escape(label)}" '
                f'data-value="{value:g}"><title>{escape(label)} · {escape(s.name)}: '
                f"{_num(value)}{escape(unit)}</title></rect>"
            )
        out.append(
            f'<text x="{x0 + group_w * 0.4:.1f}" y="{HEIGHT - BOTTOM + 14}" '
            f'text-anchor="middle" font-size="10">{escape(_short(label, int(group_w / 6)))}</text>'
        )
    for j, s in enumerate(series):  # the legend
        x = LEFT + j * 150
        out.append(
            f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" '
            f'fill="{COLOURS[j % len(COLOURS)]}"/><text x="{x + 14}" y="{HEIGHT - 5}" '
            f'font-size="11">{escape(s.name)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:,.1f}"


def _short(label: str, room: int) -> str:
    """``label`` cut to the characters its group has room for."""
    room = max(room, 4)
    return label if len(label) <= room else label[: room - 1] + "…"
