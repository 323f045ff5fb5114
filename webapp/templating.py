"""Template filters and globals shared by every page."""

from datetime import UTC, datetime

from markupsafe import Markup

from webapp.charts import bar_chart


def format_age(seconds):
    """'just now', '42 s', '5 min', '3 h', '2 d' ago."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 5:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def percent(fraction, digits=1):
    return f"{fraction * 100:.{digits}f}%"


def daily_points(days, field):
    """``[{"day": "2026-11-20", field: n}, ...]`` as chart points labelled "11-20"."""
    return [(day["day"][5:], day[field]) for day in days]


def as_of(moment=None):
    """``<time>`` of a moment (a naive UTC datetime, Unix seconds, or now) as "12:03:07 UTC",
    for counts that do not refresh themselves: they say how old they are."""
    if moment is None:
        moment = datetime.now(UTC)
    elif isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    iso = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return Markup(f'<time datetime="{iso}">{moment.strftime("%H:%M:%S")} UTC</time>')


def init_app(app):
    app.add_template_filter(format_age, "age")
    app.add_template_filter(percent, "percent")
    app.add_template_global(bar_chart, "bar_chart_geometry")
    app.add_template_global(daily_points, "daily_points")
    app.add_template_global(as_of, "as_of")
