"""The click drain: the click buffer into the database (see ``webapp.streams``).

Built per app with its buffer; ``CLICK_DRAIN`` is the current app's (see ``buffer``).
"""

from flask import current_app
from werkzeug.local import LocalProxy

from webapp.clicks.events import click_row
from webapp.clicks.store import record_clicks
from webapp.drains import StreamDrain

EXTENSION = "clickboard.click_drain"


def click_drain_for(buffer):
    return StreamDrain(buffer, click_row, record_clicks)


CLICK_DRAIN = LocalProxy(lambda: current_app.extensions[EXTENSION])
