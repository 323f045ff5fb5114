"""Server-side SVG chart geometry: the template draws what this computes.

Charts are plain SVG in the page, readable without JavaScript, with axis
labels and an empty state; nothing here knows about clicks or reports.

Text is never scaled: the plot is drawn without a viewBox, bars placed in
percent of its width and in pixels of its fixed height, so a label set at
12 px reads at 12 px on a phone and on a wide screen alike. The y axis is
its own narrow SVG beside the plot, as wide as its longest label.
"""

import math
from dataclasses import dataclass

HEIGHT = 200  # CSS pixels: the chart's height at every width
MARGIN_TOP, MARGIN_BOTTOM = 10, 24  # room for the top tick's label; the x labels
TICK_TARGET = 4  # about this many steps from 0 to the top of the axis
LABEL_TARGET = 8  # about this many x labels; every other one is hidden on narrow charts
DIGIT_WIDTH = 7.5  # a 12 px tabular digit, a little generous


@dataclass(frozen=True)
class Bar:
    x: float  # percent of the plot's width
    y: float  # pixels
    width: float  # percent
    height: float  # pixels
    label: str
    value: int


@dataclass(frozen=True)
class XLabel:
    x: float  # percent, the label's centre
    text: str
    minor: bool  # hidden where the chart is narrow


def nice_ceiling(value):
    """The smallest 1/2/5 × 10^n at or above value, so axis ticks are round."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def y_ticks(maximum, target=TICK_TARGET):
    """Round tick values from 0 to the first tick at or above ``maximum`` (whole numbers)."""
    if maximum <= 0:
        return [0, 1]
    step = nice_ceiling(max(maximum / target, 1))
    steps = math.ceil(maximum / step)
    return [step * index for index in range(steps + 1)]


def bar_chart(points, height=HEIGHT):
    """Geometry for ``[(label, value), ...]``: bars, y ticks, x labels, an accessible summary."""
    plot_height = height - MARGIN_TOP - MARGIN_BOTTOM
    baseline = MARGIN_TOP + plot_height
    values = [value for _, value in points]
    ticks = y_ticks(max(values, default=0))
    top = ticks[-1]
    slot = 100 / max(len(points), 1)
    bars = []
    for index, (label, value) in enumerate(points):
        bar_height = plot_height * value / top
        bars.append(
            Bar(
                x=index * slot + slot * 0.1,
                y=baseline - bar_height,
                width=max(slot * 0.8, 0.1),
                height=bar_height,
                label=label,
                value=value,
            )
        )
    label_every = max(1, math.ceil(len(points) / LABEL_TARGET))
    labels = [
        XLabel(x=index * slot + slot / 2, text=label, minor=(index // label_every) % 2 == 1)
        for index, (label, _) in enumerate(points)
        if index % label_every == 0
    ]
    tick_texts = [f"{value:,}" for value in ticks]
    peak = max(points, key=lambda point: point[1], default=None)
    return {
        "height": height,
        "bars": bars,
        "ticks": [(baseline - plot_height * value / top, f"{value:,}") for value in ticks],
        "labels": labels,
        "label_y": height - 7,
        "axis_width": round(10 + DIGIT_WIDTH * max(len(text) for text in tick_texts)),
        "baseline": baseline,
        "summary": (
            f"{len(points)} bars, {sum(values):,} in all, highest {peak[1]:,} at {peak[0]}" if peak else ""
        ),
        "empty": not any(values),
    }
