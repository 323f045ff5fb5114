"""Server-side SVG chart geometry: the template draws what this computes.

Charts are plain SVG in the page, readable without JavaScript, with axis
labels and an empty state; nothing here knows about clicks or reports.
"""

from dataclasses import dataclass

WIDTH, HEIGHT = 640, 180
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_BOTTOM, MARGIN_TOP = 44, 18, 22, 8


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


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


def bar_chart(points, width=WIDTH, height=HEIGHT):
    """Geometry for ``[(label, value), ...]``: bars, y ticks, and which labels to print."""
    plot_width = width - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = height - MARGIN_BOTTOM - MARGIN_TOP
    top = nice_ceiling(max((value for _, value in points), default=0))
    slot = plot_width / max(len(points), 1)
    bars = []
    for index, (label, value) in enumerate(points):
        bar_height = plot_height * value / top
        bars.append(
            Bar(
                x=MARGIN_LEFT + index * slot + slot * 0.1,
                y=MARGIN_TOP + plot_height - bar_height,
                width=max(slot * 0.8, 1),
                height=bar_height,
                label=label,
                value=value,
            )
        )
    ticks = [(MARGIN_TOP + plot_height * (1 - fraction), round(top * fraction)) for fraction in (0, 0.5, 1)]
    label_every = max(1, len(points) // 8)
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "ticks": ticks,
        "label_every": label_every,
        "baseline": MARGIN_TOP + plot_height,
        "left": MARGIN_LEFT,
        "right": width - MARGIN_RIGHT,
        "empty": not any(value for _, value in points),
    }
