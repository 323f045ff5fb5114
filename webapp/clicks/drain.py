"""The click drain: the click buffer into the database (see ``webapp.streams``)."""

from webapp.clicks.buffer import CLICK_BUFFER
from webapp.clicks.events import click_row
from webapp.clicks.store import record_clicks
from webapp.streams import StreamDrain


def click_message_row(fields):
    return click_row(fields.get("c"))


CLICK_DRAIN = StreamDrain(CLICK_BUFFER, click_message_row, record_clicks)
