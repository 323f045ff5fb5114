"""The local click log: the spool (``webapp.spool``) that clicks are written to first.

The redirect appends the click's line to a file of its own process and
answers; the shipper moves the lines to the click buffer, and keeps them on
disk until the drain has committed them, so a Redis that restarts empty
loses no click. Files live in ``CLICK_LOG_DIR``, which must be a local disk
(see ``webapp.spool`` for their names and life). The page cache survives a
killed process; a machine crash can lose the last fraction of a second, as
Redis's own ``appendfsync everysec`` can.
"""

from flask import current_app

from webapp import spool, spool_files
from webapp.clicks.buffer import click_buffer
from webapp.spool_files import SHIP_BLOCK_BYTES, kept_files, line_blocks, pending_files

__all__ = ["SHIP_BLOCK_BYTES", "ClickLog", "kept_files", "line_blocks", "pending_files"]

PREFIX = "clicks"


class ClickLog(spool.Spool):
    """One process's click log and its shipper thread.

    ``buffer`` is the install's click buffer (by default ``click_buffer()``):
    the shipper thread runs outside any app context, so it is handed the
    buffer itself rather than the ``CLICK_BUFFER`` proxy.
    """

    def __init__(self, directory, client, interval, buffer=None, **limits):
        super().__init__(directory, client, interval, buffer or click_buffer(), PREFIX, **limits)


def ship_file(path, client, buffer=None):
    """Push a click log's lines into the buffer, keeping the file until committed."""
    return spool_files.ship_file(path, client, buffer or click_buffer())


def ship_orphans(directory, client, buffer=None, keep_bytes=spool.DEFAULT_KEEP_BYTES):
    """Ship the click logs of processes that died; return the number of clicks shipped.

    Also settles this host's kept files (``webapp.spool_files.settle_kept``), so a
    host whose web processes are all gone still gets them confirmed or shipped
    again. Without ``buffer``, to the current app's click buffer.
    """
    buffer = buffer or click_buffer()
    shipped = spool_files.ship_orphans(directory, client, buffer, PREFIX)
    spool_files.settle_kept(directory, client, buffer, keep_bytes)
    return shipped


CLICK_LOG = spool.CLICK_LOG


def app_click_log(app=None):
    """This process's click log (``app`` where there is no app context: the WSGI fast path)."""
    return (app or current_app).extensions[CLICK_LOG]
