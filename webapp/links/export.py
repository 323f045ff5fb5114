"""Links and clicks as CSV or JSON, written a chunk at a time.

A link's clicks may number millions: they are read in keyset pages of
``CHUNK`` rows (by id, through the primary key), as plain rows rather than
ORM objects, and written as they come, so memory stays flat whatever the
count. Spreadsheet formula characters at
the start of a text cell are neutralised (CSV injection).
"""

import csv
import io
import json

from sqlalchemy import select

from webapp.extensions import db
from webapp.links.representation import link_json
from webapp.models import Click

CHUNK = 5000
CLICK_COLUMNS = ("at", "referrer", "user_agent", "ip", "bot")
LINK_COLUMNS = (
    "slug", "url", "short_url", "title", "tags", "redirect_code", "enabled", "expires_at", "max_clicks",
    "clicks", "bot_clicks", "refused", "created_at",
)  # fmt: skip
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value):
    if value is None:
        return ""
    if isinstance(value, list):
        value = ", ".join(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_line(values):
    out = io.StringIO()
    csv.writer(out).writerow([cell(value) for value in values])
    return out.getvalue()


def click_rows(link_id):
    """The link's clicks as tuples in ``CLICK_COLUMNS`` order, oldest first, a chunk at a time."""
    columns = (
        Click.id,
        Click.created_at,
        Click.referrer,
        Click.user_agent,
        Click.ip_anonymised,
        Click.is_bot,
    )
    after = 0
    while True:
        query = (
            select(*columns).where(Click.link_id == link_id, Click.id > after).order_by(Click.id).limit(CHUNK)
        )
        chunk = db.session.execute(query).all()  # plain rows: no ORM objects kept or built
        if not chunk:
            return
        yield chunk
        after = chunk[-1][0]


def clicks_csv(link_id):
    """CSV text of the link's clicks, yielded a chunk of lines at a time."""
    yield csv_line(CLICK_COLUMNS)
    for chunk in click_rows(link_id):
        out = io.StringIO()
        writer = csv.writer(out)
        for _, at, referrer, user_agent, ip, is_bot in chunk:
            writer.writerow((at.isoformat() + "Z", cell(referrer), cell(user_agent), cell(ip), int(is_bot)))
        yield out.getvalue()


def csv_rows(header, rows):
    """CSV text of any table, a line at a time, formula cells neutralised."""
    yield csv_line(header)
    for row in rows:
        yield csv_line(row)


def links_csv(links):
    yield csv_line(LINK_COLUMNS)
    for link in links:
        data = link_json(link)
        yield csv_line(data[column] for column in LINK_COLUMNS)


def links_json(links):
    yield "["
    for index, link in enumerate(links):
        yield ("," if index else "") + json.dumps(link_json(link))
    yield "]\n"


EXPORTS = {"csv": links_csv, "json": links_json}
