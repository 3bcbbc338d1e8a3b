"""Per-minute bar charts as inline SVG, drawn on the server: no script, no chart library,
nothing from another origin. The console's CSP (`web.HEADERS`) allows inline SVG
elements and their presentation attributes; colours come from classes in console.css,
since inline styles are not allowed. Each chart is an image with a title and a
description that gives the totals (`role="img"`), and the page shows its numbers as a
table too (overview.html)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 600, 150  # the drawing area, in SVG user units
LEFT, BOTTOM = 36, 20  # room for the axis labels
TONES = 6  # series classes s0..s5 in console.css


@dataclass(frozen=True)
class Series:
    name: str
    counts: tuple[int, ...]  # one per minute, oldest first
    tone: int | None = None  # its colour, s0..s5 in console.css; None: by its place

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    first_minute: int  # Unix time // 60 of the first bar
    series: tuple[Series, ...]

    @property
    def total(self) -> int:
        return sum(s.total for s in self.series)

    @property
    def summary(self) -> str:
        if not self.series:
            return "Nothing in the last hour."
        parts = ", ".join(f"{s.name} {s.total}" for s in self.series)
        return f"Last hour, {len(self.minutes)} minutes: {parts}."

    @property
    def minutes(self) -> range:
        return range(self.first_minute, self.first_minute + len(self.series[0].counts))

    def rows(self) -> list[tuple[str, list[int]]]:
        """The minutes with anything in them, "HH:MM" UTC and a count per series."""
        return [
            (clock(minute), [s.counts[i] for s in self.series])
            for i, minute in enumerate(self.minutes)
            if any(s.counts[i] for s in self.series)
        ]

    def tones(self) -> list[str]:
        return [tone(i if s.tone is None else s.tone) for i, s in enumerate(self.series)]

    def svg(self) -> Markup:
        return Markup(draw(self))  # noqa: S704 - every text in it is escaped by draw()


def clock(minute: int) -> str:
    return time.strftime("%H:%M", time.gmtime(minute * 60))


def tone(index: int) -> str:
    return f"s{index % TONES}"


def draw(chart: Chart) -> str:
    title, desc = f"{chart.id}-title", f"{chart.id}-desc"
    parts = [
        f'<svg class="chart" role="img" aria-labelledby="{title} {desc}" '
        f'viewBox="0 0 {LEFT + WIDTH} {HEIGHT + BOTTOM}" preserveAspectRatio="none">',
        f'<title id="{title}">{escape(chart.title)}</title>',
        f'<desc id="{desc}">{escape(chart.summary)}</desc>',
    ]
    if chart.series:
        parts += _bars(chart)
    parts.append("</svg>")
    return "".join(parts)


def _bars(chart: Chart) -> list[str]:
    minutes = len(chart.series[0].counts)
    peak = max((sum(s.counts[i] for s in chart.series) for i in range(minutes)), default=0)
    top = max(peak, 1)
    step = WIDTH / minutes
    parts = [
        f'<line class="axis" x1="{LEFT}" y1="{HEIGHT}" x2="{LEFT + WIDTH}" y2="{HEIGHT}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="10" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{LEFT - 4}" y="{HEIGHT}" text-anchor="end">0</text>',
        f'<text class="tick" x="{LEFT}" y="{HEIGHT + 15}">{clock(chart.first_minute)}</text>',
        f'<text class="tick" x="{LEFT + WIDTH}" y="{HEIGHT + 15}" text-anchor="end">'
        f"{clock(chart.first_minute + minutes - 1)} UTC</text>",
    ]
    tones = chart.tones()
    for i in range(minutes):
        base = float(HEIGHT)
        for index, series in enumerate(chart.series):
            count = series.counts[i]
            if not count:
                continue
            height = count / top * (HEIGHT - 10)
            base -= height
            parts.append(
                f'<rect class="{tones[index]}" x="{LEFT + i * step + 1:.1f}" y="{base:.1f}" '
                f'width="{max(step - 2, 1):.1f}" height="{height:.1f}"/>'
            )
    return parts
