"""Small self-contained SVG charts for the HTML report (no plotting library, no external files)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
STATUS_COLORS = ("#ffffff", "#fff7cc", "#ffe0a3", "#ffc27a", "#ff9a7a", "#ff6f6f", "#d94848")  # 0..6


@dataclass
class Series:
    label: str  # legend text
    points: list[tuple[float, float]]  # (x, y)
    color: str = PALETTE[0]  # stroke colour
    axis: str = "left"  # "left" or "right" y axis
    markers: bool = False  # draw a dot per point
    dashed: bool = False  # dashed line


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    y2_label: str = ""
    series: list[Series] = field(default_factory=list)
    bands: list[tuple[float, float, str]] = field(default_factory=list)  # (x0, x1, colour) backgrounds
    vlines: list[tuple[float, str]] = field(default_factory=list)  # (x, label)
    width: int = 760
    height: int = 300


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    return [start + k * step for k in range(int((hi - start) / step) + 1)]


def _range(values: list[float], pad: float = 0.05) -> tuple[float, float]:
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    if hi == lo:
        return lo - 1.0, hi + 1.0
    span = hi - lo
    return lo - span * pad, hi + span * pad


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.3g}"


def line_chart(chart: Chart) -> str:
    """An SVG line chart with optional right axis, shaded x bands and vertical markers."""
    left, right, top, bottom = 60, 60 if chart.y2_label else 20, 30, 45
    w, h = chart.width - left - right, chart.height - top - bottom
    xs = [x for s in chart.series for x, _ in s.points] + [b for band in chart.bands for b in band[:2]]
    x0, x1 = _range(xs, 0.0)
    ranges = {axis: _range([y for s in chart.series if s.axis == axis for _, y in s.points])
              for axis in ("left", "right")}

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def py(y: float, axis: str) -> float:
        lo, hi = ranges[axis]
        return top + h - (y - lo) / (hi - lo) * h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{chart.width}" height="{chart.height}" '
           f'role="img" aria-label="{escape(chart.title)}" font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="18" font-size="13" font-weight="bold">{escape(chart.title)}</text>']
    for bx0, bx1, color in chart.bands:
        out.append(f'<rect x="{px(bx0):.1f}" y="{top}" width="{max(0.5, px(bx1) - px(bx0)):.1f}" height="{h}" '
                   f'fill="{color}"/>')
    out.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#888"/>')
    for t in _ticks(x0, x1):
        out.append(f'<line x1="{px(t):.1f}" y1="{top + h}" x2="{px(t):.1f}" y2="{top + h + 4}" stroke="#888"/>'
                   f'<text x="{px(t):.1f}" y="{top + h + 16}" text-anchor="middle">{_fmt(t)}</text>')
    for axis, x_text, anchor in (("left", left - 6, "end"), ("right", left + w + 6, "start")):
        if axis == "right" and not chart.y2_label:
            continue
        for t in _ticks(*ranges[axis]):
            out.append(f'<text x="{x_text}" y="{py(t, axis) + 4:.1f}" text-anchor="{anchor}">{_fmt(t)}</text>')
            if axis == "left":
                out.append(f'<line x1="{left}" y1="{py(t, axis):.1f}" x2="{left + w}" y2="{py(t, axis):.1f}" '
                           'stroke="#eee"/>')
    out.append(f'<text x="{left + w / 2}" y="{chart.height - 8}" text-anchor="middle">{escape(chart.x_label)}</text>')
    out.append(f'<text transform="translate(14,{top + h / 2}) rotate(-90)" text-anchor="middle">'
               f'{escape(chart.y_label)}</text>')
    if chart.y2_label:
        out.append(f'<text transform="translate({chart.width - 10},{top + h / 2}) rotate(90)" text-anchor="middle">'
                   f'{escape(chart.y2_label)}</text>')
    for x, label in chart.vlines:
        out.append(f'<line x1="{px(x):.1f}" y1="{top}" x2="{px(x):.1f}" y2="{top + h}" stroke="#000" '
                   f'stroke-dasharray="4,3"/><text x="{px(x) + 3:.1f}" y="{top + 12}">{escape(label)}</text>')
    for k, s in enumerate(chart.series):
        if not s.points:
            continue
        path = " ".join(f"{px(x):.1f},{py(y, s.axis):.1f}" for x, y in s.points)
        dash = ' stroke-dasharray="5,3"' if s.dashed else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="1.5"{dash}/>')
        if s.markers or len(s.points) == 1:  # a lone sample is a dot, not an invisible line
            out.extend(f'<circle cx="{px(x):.1f}" cy="{py(y, s.axis):.1f}" r="2.2" fill="{s.color}"/>'
                       for x, y in s.points)
        lx = left + 8 + 170 * k
        out.append(f'<rect x="{lx}" y="{top + h + 24}" width="10" height="3" fill="{s.color}"/>'
                   f'<text x="{lx + 14}" y="{top + h + 29}">{escape(s.label)}</text>')
    out.append("</svg>")
    return "".join(out)


def stacked_bars(title: str, categories: list[str], segments: dict[str, list[float]], unit: str,
                 width: int = 760) -> str:
    """Horizontal stacked bars: one bar per category, one coloured segment per key of `segments`."""
    bar, gap, top = 22, 10, 30
    left = min(width // 2, 12 + 7 * max((len(c) for c in categories), default=10))  # room for the labels
    height = top + len(categories) * (bar + gap) + 40
    totals = [sum(vals[k] for vals in segments.values()) for k in range(len(categories))]
    scale = (width - left - 80) / (max(totals) if totals and max(totals) > 0 else 1.0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
           f'<text x="10" y="18" font-size="13" font-weight="bold">{escape(title)}</text>']
    for k, name in enumerate(categories):
        y = top + k * (bar + gap)
        out.append(f'<text x="{left - 6}" y="{y + bar / 2 + 4}" text-anchor="end">{escape(name)}</text>')
        x = left
        for j, (label, vals) in enumerate(segments.items()):
            seg = vals[k] * scale
            out.append(f'<rect x="{x:.1f}" y="{y}" width="{max(0.0, seg):.1f}" height="{bar}" '
                       f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(label)}: {vals[k]:.2f} {escape(unit)}'
                       '</title></rect>')
            x += seg
        out.append(f'<text x="{x + 4:.1f}" y="{y + bar / 2 + 4}">{totals[k]:.1f} {escape(unit)}</text>')
    ly = top + len(categories) * (bar + gap) + 14
    for j, label in enumerate(segments):
        out.append(f'<rect x="{left + 130 * j}" y="{ly}" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>'
                   f'<text x="{left + 14 + 130 * j}" y="{ly + 9}">{escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)
