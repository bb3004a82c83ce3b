"""The website's pictures as inline SVG: the program's weekly health, each goal's activity and its
health per period.

Pure functions from numbers to markup.  Every chart is an ``img`` to assistive technology with a
title and a description that state its numbers, so it reads without the picture and without
JavaScript; colours come from classes styled in ``style.css``.  Only numbers and text this module
writes (escaped) go into the markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# The health chart's drawing area, in SVG user units (it scales with the page).
CHART_WIDTH = 720
CHART_HEIGHT = 200
# Room for the axis labels left of and below the bars.
AXIS_LEFT = 36
AXIS_BOTTOM = 22
TOP_MARGIN = 8
# Bars of one week: updated, due, overdue side by side, with a gap between weeks.
SERIES = (("updated", "updated"), ("due", "due"), ("overdue", "overdue"))
WEEK_GAP = 0.25  # share of a week's width left empty
# A week label every so many weeks, so that labels never overlap.
LABEL_EVERY = 4
# One activity strip cell per week: width, gap and height, in pixels.
STRIP_CELL = 9
STRIP_GAP = 2
STRIP_HEIGHT = 20
# A week without updates is a low bar, so the strip still shows its weeks.
STRIP_EMPTY = 3.0
# Beyond this many updates in a week the strip's bar is full height (a busy week is a busy week).
STRIP_FULL = 3


@dataclass(frozen=True, slots=True)
class WeekBar:
    """One week of the health chart."""

    label: str  # e.g. "Mar 6"
    updated: int
    due: int
    overdue: int


def _num(x: float) -> str:
    """Coordinates with at most one decimal, the same on every run."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _frame(css: str, ident: str, title: str, desc: str, top: int, base: float) -> list[str]:
    """A weekly chart's opening: the labelled SVG, its base line and its two axis ticks."""
    return [
        f'<svg class="{css}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}-title">{title}</title>',
        f'<desc id="{ident}-desc">{escape(desc)}</desc>',
        f'<line class="axis" x1="{AXIS_LEFT}" y1="{_num(base)}" x2="{CHART_WIDTH}" '
        f'y2="{_num(base)}"/>',
        f'<text class="tick" x="{AXIS_LEFT - 4}" y="{_num(TOP_MARGIN + 4)}" '
        f'text-anchor="end">{top}</text>',
        f'<text class="tick" x="{AXIS_LEFT - 4}" y="{_num(base)}" text-anchor="end">0</text>',
    ]


def health_chart(bars: Sequence[WeekBar], *, ident: str = "health") -> str:
    """Grouped bars per week: goals updated, due and overdue at the week's end."""
    if not bars:
        return ""
    top = max(max(b.updated, b.due, b.overdue) for b in bars) or 1
    plot_w = CHART_WIDTH - AXIS_LEFT
    plot_h = CHART_HEIGHT - AXIS_BOTTOM - TOP_MARGIN
    week_w = plot_w / len(bars)
    bar_w = week_w * (1 - WEEK_GAP) / len(SERIES)
    base = TOP_MARGIN + plot_h
    latest = bars[-1]
    desc = (
        f"{len(bars)} weeks from {bars[0].label} to {latest.label}. Latest week: "
        f"{latest.updated} goals updated, {latest.due} due, {latest.overdue} overdue. "
        "Each week: " + "; ".join(f"{b.label}: {b.updated}/{b.due}/{b.overdue}" for b in bars) + "."
    )
    parts = _frame("chart", ident, "Goals updated, due and overdue per week", desc, top, base)
    for i, bar in enumerate(bars):
        x0 = AXIS_LEFT + i * week_w + week_w * WEEK_GAP / 2
        values = (bar.updated, bar.due, bar.overdue)
        for k, ((css, name), value) in enumerate(zip(SERIES, values, strict=True)):
            h = plot_h * value / top
            parts.append(
                f'<rect class="bar {css}" x="{_num(x0 + k * bar_w)}" y="{_num(base - h)}" '
                f'width="{_num(bar_w)}" height="{_num(h)}">'
                f"<title>{escape(bar.label)}: {value} {name}</title></rect>"
            )
        if i % LABEL_EVERY == 0 or i == len(bars) - 1:
            parts.append(
                f'<text class="tick" x="{_num(x0 + bar_w * len(SERIES) / 2)}" '
                f'y="{CHART_HEIGHT - 6}" text-anchor="middle">{escape(bar.label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def activity_strip(counts: Sequence[int], labels: Sequence[str], *, name: str) -> str:
    """A goal's updates per week as a row of small bars (an empty week is a thin line)."""
    if not counts:
        return ""
    total = sum(counts)
    weeks_with = sum(1 for c in counts if c)
    summary = (
        f"{name}: {total} update{'s' if total != 1 else ''} in the last {len(counts)} weeks, "
        f"in {weeks_with} of them"
    )
    width = len(counts) * (STRIP_CELL + STRIP_GAP) - STRIP_GAP
    parts = [
        f'<svg class="strip" width="{width}" height="{STRIP_HEIGHT}" '
        f'viewBox="0 0 {width} {STRIP_HEIGHT}" role="img" aria-label="{escape(summary)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(summary)}</title>",
    ]
    for i, (count, label) in enumerate(zip(counts, labels, strict=True)):
        h = STRIP_HEIGHT * min(count, STRIP_FULL) / STRIP_FULL if count else STRIP_EMPTY
        css = "cell on" if count else "cell"
        parts.append(
            f'<rect class="{css}" x="{i * (STRIP_CELL + STRIP_GAP)}" y="{_num(STRIP_HEIGHT - h)}" '
            f'width="{STRIP_CELL}" height="{_num(h)}">'
            f"<title>{escape(label)}: {count}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


# The owners' health calls per week: one stacked bar per week, a segment per health (bottom up).
CALLS_TITLE = "Goals on track, at risk, blocked and done per week"
# One health strip cell per reporting period: its side and the gap between cells, in pixels.
HEALTH_CELL = 14
HEALTH_GAP = 3


@dataclass(frozen=True, slots=True)
class Series:
    """One kind of segment of the calls chart: its class (its colour) and its name in text."""

    css: str
    name: str


@dataclass(frozen=True, slots=True)
class WeekStack:
    """One week of the calls chart: a value per series, in the chart's series order."""

    label: str
    values: tuple[int, ...]


def calls_chart(
    weeks: Sequence[WeekStack], series: Sequence[Series], *, ident: str = "calls"
) -> str:
    """Stacked bars per week: how many goals stood at each health at the week's end."""
    if not weeks:
        return ""
    top = max(sum(w.values) for w in weeks) or 1
    plot_w = CHART_WIDTH - AXIS_LEFT
    plot_h = CHART_HEIGHT - AXIS_BOTTOM - TOP_MARGIN
    week_w = plot_w / len(weeks)
    bar_w = week_w * (1 - WEEK_GAP)
    base = TOP_MARGIN + plot_h

    def said(w: WeekStack) -> str:
        return ", ".join(f"{v} {s.name}" for s, v in zip(series, w.values, strict=True))

    latest = weeks[-1]
    desc = (
        f"{len(weeks)} weeks from {weeks[0].label} to {latest.label}. Latest week: {said(latest)}. "
        "Each week: " + "; ".join(f"{w.label}: {said(w)}" for w in weeks) + "."
    )
    parts = _frame("chart calls", ident, CALLS_TITLE, desc, top, base)
    for i, week in enumerate(weeks):
        x0 = AXIS_LEFT + i * week_w + week_w * WEEK_GAP / 2
        y: float = base
        for kind, value in zip(series, week.values, strict=True):
            if not value:
                continue
            h = plot_h * value / top
            parts.append(
                f'<rect class="bar {kind.css}" x="{_num(x0)}" y="{_num(y - h)}" '
                f'width="{_num(bar_w)}" height="{_num(h)}">'
                f"<title>{escape(week.label)}: {value} {escape(kind.name)}</title></rect>"
            )
            y -= h
        if i % LABEL_EVERY == 0 or i == len(weeks) - 1:
            parts.append(
                f'<text class="tick" x="{_num(x0 + bar_w / 2)}" y="{CHART_HEIGHT - 6}" '
                f'text-anchor="middle">{escape(week.label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class StripCell:
    """One period of a goal's health strip: its class (its colour) and what it says."""

    css: str
    title: str


def health_strip(cells: Sequence[StripCell], *, summary: str) -> str:
    """A goal's health per reporting period as a row of squares, oldest first (a period before
    the first call is an empty square)."""
    if not cells:
        return ""
    step = HEALTH_CELL + HEALTH_GAP
    width = len(cells) * step - HEALTH_GAP
    parts = [
        f'<svg class="health-strip" width="{width}" height="{HEALTH_CELL}" '
        f'viewBox="0 0 {width} {HEALTH_CELL}" role="img" aria-label="{escape(summary)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(summary)}</title>",
    ]
    for i, cell in enumerate(cells):
        # Inset by half a pixel, so that an empty cell's outline is drawn whole.
        parts.append(
            f'<rect class="cell {cell.css}" x="{_num(i * step + 0.5)}" y="0.5" '
            f'width="{HEALTH_CELL - 1}" height="{HEALTH_CELL - 1}" rx="2">'
            f"<title>{escape(cell.title)}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)
