"""Server-rendered inline SVG line charts (no JavaScript, no CDN: the admin works offline)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip


def line_chart(
    *,
    title: str,
    times: Sequence[datetime],
    series: Mapping[str, Sequence[float | None]],
    unit: str = "",
    width: int = 760,
    height: int = 220,
) -> SafeString:
    """One polyline per series over shared timestamps; gaps (None) break the line."""
    left, right, top, bottom = 48, 150, 24, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for points in series.values() for v in points if v is not None]
    peak = max(values, default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="queue-chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="{escape(title)}">',
        f'<text x="{left}" y="15" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#ccc"/>',
        f'<text x="{left - 4}" y="{top + 10}" font-size="11" text-anchor="end">'
        f"{peak:g}{escape(unit)}</text>",
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="11" text-anchor="end">0</text>',
    ]
    if len(times) < 2:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" font-size="12" '
            'text-anchor="middle" fill="#666">not enough samples yet</text>'
        )
    else:
        start, end = times[0].timestamp(), times[-1].timestamp()
        span = (end - start) or 1

        def x(moment: datetime) -> float:
            return left + plot_w * (moment.timestamp() - start) / span

        def y(value: float) -> float:
            return top + plot_h - plot_h * value / peak

        parts.append(
            f'<text x="{left}" y="{height - 8}" font-size="11">{times[0]:%H:%M}</text>'
            f'<text x="{left + plot_w}" y="{height - 8}" font-size="11" text-anchor="end">'
            f"{times[-1]:%H:%M} UTC</text>"
        )
        for index, (name, points) in enumerate(series.items()):
            color = PALETTE[index % len(PALETTE)]
            runs: list[list[str]] = [[]]
            for moment, value in zip(times, points, strict=False):
                if value is None:
                    runs.append([])
                else:
                    runs[-1].append(f"{x(moment):.1f},{y(value):.1f}")
            for run in runs:
                if len(run) > 1:
                    parts.append(
                        f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                        f'points="{" ".join(run)}"><title>{escape(name)}</title></polyline>'
                    )
    for index, name in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        legend_y = top + 12 + 15 * index
        parts.append(
            f'<rect x="{left + plot_w + 10}" y="{legend_y - 9}" width="10" height="10" '
            f'fill="{color}"/><text x="{left + plot_w + 24}" y="{legend_y}" font-size="11">'
            f"{escape(name)}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
