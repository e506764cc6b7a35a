"""Small SVG charts for the HTML report: grouped bars with whiskers, and scatters.

Plain text written in a few milliseconds, with no plotting library to import (matplotlib
cost the reporting step 0.6 s a run). Each mark carries a ``<title>`` with its numbers, so
a browser shows them on hover, and a ``data-*`` attribute naming what it draws, so tests
read the chart back as data.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# The ten colours models cycle through (the "tab10" palette).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
FONT = "font-family:sans-serif"
PANEL_HEIGHT = 220
TOP = 44  # the chart's title and the panels' titles
BOTTOM = 46  # category labels, two lines
LEFT = 58  # y ticks and the axis label
GAP = 24  # between panels
LEGEND_ROW = 18


def colour(index: int) -> str:
    """The colour of the ``index``-th model."""
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Bar:
    """One bar: its group on the x axis, its series (colour), value and whisker ends."""

    category: int
    series: int
    value: float
    low: float
    high: float
    label: str


@dataclass(frozen=True)
class Point:
    """One scatter point and the text shown beside it (empty: none)."""

    x: float
    y: float
    series: int
    label: str
    annotation: str = ""


@dataclass
class Panel:
    """One axis: a title, the y range, and either bars over categories or points."""

    title: str
    y_range: tuple[float, float]
    categories: list[str] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    x_label: str = ""


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[low, high]`` (steps of 1, 2 or 5 x 10^k)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _number(value: float) -> str:
    return f"{value:.6g}"


def _text(x: float, y: float, content: str, *, size: int = 10, anchor: str = "middle") -> str:
    lines = content.split("\n")
    spans = "".join(
        f'<tspan x="{x:.1f}" dy="{0 if i == 0 else size + 2}">{html.escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}">{spans}</text>'


@dataclass(frozen=True)
class _Frame:
    """Where a panel sits and how it maps values to pixels."""

    left: float
    width: float
    low: float
    high: float
    x_low: float = 0.0
    x_high: float = 1.0

    def y(self, value: float) -> float:
        span = self.high - self.low or 1.0
        clamped = min(max(value, self.low), self.high)
        return TOP + PANEL_HEIGHT * (1 - (clamped - self.low) / span)

    def x(self, value: float) -> float:
        span = self.x_high - self.x_low or 1.0
        return self.left + self.width * (value - self.x_low) / span


def _padded(low: float, high: float) -> tuple[float, float]:
    # A little room above the top (and below a floor other than zero) for whiskers.
    pad = 0.04 * (high - low)
    return low - (pad if low != 0 else 0), high + pad


def _axes(frame: _Frame, panel: Panel, y_label: str) -> list[str]:
    parts = [
        f'<rect x="{frame.left:.1f}" y="{TOP}" width="{frame.width:.1f}" '
        f'height="{PANEL_HEIGHT}" fill="none" stroke="#999"/>',
        _text(frame.left + frame.width / 2, TOP - 6, panel.title, size=11),
    ]
    for tick in nice_ticks(*panel.y_range):
        y = frame.y(tick)
        parts.append(
            f'<line x1="{frame.left - 4:.1f}" x2="{frame.left:.1f}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="#999"/>'
        )
        parts.append(_text(frame.left - 6, y + 3, _number(tick), size=9, anchor="end"))
    if y_label:
        x, y = frame.left - 44, TOP + PANEL_HEIGHT / 2
        parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="10" text-anchor="middle" '
            f'transform="rotate(-90 {x:.1f} {y:.1f})">{html.escape(y_label)}</text>'
        )
    return parts


def _bars(frame: _Frame, panel: Panel, series_count: int) -> list[str]:
    slot = frame.width / max(1, len(panel.categories))
    width = 0.8 * slot / max(1, series_count)
    parts = []
    for bar in panel.bars:
        centre = (
            frame.left + slot * (bar.category + 0.5) + (bar.series - (series_count - 1) / 2) * width
        )
        top, floor = frame.y(bar.value), frame.y(panel.y_range[0])
        parts.append(
            f'<rect data-bar="{html.escape(bar.label, quote=True)}" x="{centre - width / 2:.1f}" '
            f'y="{min(top, floor):.1f}" width="{width:.1f}" height="{abs(floor - top):.1f}" '
            f'fill="{colour(bar.series)}"><title>{html.escape(bar.label)}</title></rect>'
        )
        if bar.high > bar.low:
            y_low, y_high = frame.y(bar.low), frame.y(bar.high)
            cap = min(4.0, width / 3)
            parts.append(
                f'<path d="M{centre:.1f} {y_low:.1f}V{y_high:.1f}'
                f"M{centre - cap:.1f} {y_low:.1f}H{centre + cap:.1f}"
                f'M{centre - cap:.1f} {y_high:.1f}H{centre + cap:.1f}" stroke="#222"/>'
            )
    for i, category in enumerate(panel.categories):
        parts.append(
            _text(frame.left + slot * (i + 0.5), TOP + PANEL_HEIGHT + 14, category, size=9)
        )
    return parts


def _points(frame: _Frame, panel: Panel) -> list[str]:
    parts = []
    for point in panel.points:
        x, y = frame.x(point.x), frame.y(point.y)
        parts.append(
            f'<circle data-point="{html.escape(point.label, quote=True)}" cx="{x:.1f}" '
            f'cy="{y:.1f}" r="3.5" fill="{colour(point.series)}">'
            f"<title>{html.escape(point.label)}</title></circle>"
        )
        if point.annotation:
            parts.append(_text(x + 5, y - 5, point.annotation, size=8, anchor="start"))
    for tick in nice_ticks(frame.x_low, frame.x_high):
        x = frame.x(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + PANEL_HEIGHT}" '
            f'y2="{TOP + PANEL_HEIGHT + 4}" stroke="#999"/>'
        )
        parts.append(_text(x, TOP + PANEL_HEIGHT + 14, _number(tick), size=9))
    if panel.x_label:
        parts.append(
            _text(frame.left + frame.width / 2, TOP + PANEL_HEIGHT + 32, panel.x_label, size=10)
        )
    return parts


def chart(
    title: str,
    panels: Sequence[Panel],
    *,
    y_label: str,
    legend: Sequence[str] = (),
    panel_widths: Sequence[float] | None = None,
) -> str:
    """An SVG document: ``panels`` side by side under ``title``, a legend of series below.

    Args:
        title: The chart's title.
        panels: Each with bars (over its categories) or points; the first gets ``y_label``.
        y_label: The y axis label.
        legend: Series names, in series order (colour ``i`` is ``legend[i]``).
        panel_widths: Pixel width of each panel (default 260 each).
    """
    widths = list(panel_widths or [260.0] * len(panels))
    width = LEFT + sum(widths) + GAP * (len(panels) - 1) + 16
    places = _legend_places(legend, width)
    legend_rows = 1 + max((row for row, _ in places), default=-1)
    height = TOP + PANEL_HEIGHT + BOTTOM + LEGEND_ROW * legend_rows + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" style="{FONT}">',
        f"<title>{html.escape(title)}</title>",
        '<rect width="100%" height="100%" fill="white"/>',
        _text(width / 2, 16, title, size=13),
    ]
    left = float(LEFT)
    for i, (panel, panel_width) in enumerate(zip(panels, widths, strict=True)):
        low, high = _padded(*panel.y_range)
        xs = [p.x for p in panel.points] or [0.0, 1.0]
        x_low, x_high = min(0.0, min(xs)), max(xs)
        frame = _Frame(left, panel_width, low, high, x_low, x_high * 1.08 or 1.0)
        parts += _axes(frame, panel, y_label if i == 0 else "")
        series = max(1, len(legend))
        parts += _bars(frame, panel, series) if panel.categories else _points(frame, panel)
        left += panel_width + GAP
    for i, (name, (row, x)) in enumerate(zip(legend, places, strict=True)):
        y = TOP + PANEL_HEIGHT + BOTTOM + LEGEND_ROW * row + 4
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 9}" width="10" height="10" fill="{colour(i)}"/>'
            + _text(x + 14, y, name, size=10, anchor="start")
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _legend_places(names: Sequence[str], width: float) -> list[tuple[int, float]]:
    """``(row, x)`` of each legend entry: left to right, wrapping at the chart's width."""
    places, row, x = [], 0, float(LEFT)
    for name in names:
        advance = 24 + 6.5 * len(name)
        if x + advance > width and x > LEFT:
            row, x = row + 1, float(LEFT)
        places.append((row, x))
        x += advance
    return places


def message(text: str) -> str:
    """A small SVG that says ``text`` (a plot with nothing to draw yet)."""
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="60" '
        f'viewBox="0 0 320 60" style="{FONT}"><title>{html.escape(text)}</title>'
        '<rect width="100%" height="100%" fill="white"/>'
        f"{_text(160, 34, text, size=12)}</svg>\n"
    )
