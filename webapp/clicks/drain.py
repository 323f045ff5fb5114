"""The click drain: the click buffer into the database (see ``webapp.streams``)."""

from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.events import click_row
from webapp.clicks.store import record_clicks
from webapp.streams import StreamDrain

CLICK_DRAIN = StreamDrain(CLICK_BUFFER, click_row, record_clicks)
