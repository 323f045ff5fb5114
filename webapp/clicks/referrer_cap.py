"""At most ``MAX_REFERRERS_PER_DAY`` referring hosts per link per UTC day; the rest count as
``OTHER``.

Anyone can click a link with any ``Referer``: without a cap, each forged
host would add a rollup row for good, and a link's referrer table would
grow without end. The cap keeps the first hosts of the day (in the order the
drain meets them, busiest first within a batch); their counts stay exact,
and every click is still counted once, under its host or under ``OTHER``.
Other dimensions need no cap: their values come from fixed rule sets.
"""

from collections import Counter, defaultdict
from datetime import timedelta

from sqlalchemy import func, select

from webapp.dedup import chunks
from webapp.models import LinkHourlyDimension

MAX_REFERRERS_PER_DAY = 100
OTHER = "(other)"  # no host name has parentheses: it cannot be a real referrer


def cap_referrers(conn, rows):
    """``dimension_rows`` output with each link's new referrer hosts beyond the day's cap
    folded into ``OTHER``."""
    referrers = [row for row in rows if row["dimension"] == "referrer"]
    if not referrers:
        return rows
    by_day = defaultdict(list)
    for row in referrers:
        by_day[row["hour"].replace(hour=0)].append(row)
    capped = Counter()
    for day, day_rows in by_day.items():
        for row in cap_day(conn, day, day_rows):
            capped[(row["link_id"], row["hour"], row["value"])] += row["clicks"]
    # Summed again: hosts folded into OTHER share its row, and an upsert takes each key once.
    others = [row for row in rows if row["dimension"] != "referrer"]
    return others + [
        {"link_id": link_id, "hour": hour, "dimension": "referrer", "value": host, "clicks": clicks}
        for (link_id, hour, host), clicks in capped.items()
    ]


def cap_day(conn, day, rows):
    link_ids = {row["link_id"] for row in rows}
    known_count, known = recorded_hosts(conn, day, link_ids, {row["value"] for row in rows})
    totals = Counter()
    for row in rows:
        totals[(row["link_id"], row["value"])] += row["clicks"]
    allowed = {}
    for (link_id, host), _ in totals.most_common():
        if (link_id, host) in known or host == OTHER:
            allowed[(link_id, host)] = host
        elif known_count[link_id] < MAX_REFERRERS_PER_DAY:
            known_count[link_id] += 1
            allowed[(link_id, host)] = host
        else:
            allowed[(link_id, host)] = OTHER
    return [{**row, "value": allowed[(row["link_id"], row["value"])]} for row in rows]


def recorded_hosts(conn, day, link_ids, hosts):
    """(distinct hosts each link has that day, {(link, host)} among ``hosts`` it already has)."""
    column = LinkHourlyDimension
    in_day = (column.dimension == "referrer", column.hour >= day, column.hour < day + timedelta(days=1))
    counts = Counter()
    known = set()
    for chunk in chunks(link_ids):
        query = select(column.link_id, func.count(func.distinct(column.value))).where(
            column.link_id.in_(chunk), column.value != OTHER, *in_day
        )
        counts.update(dict(conn.execute(query.group_by(column.link_id)).all()))
        for host_chunk in chunks(hosts):
            query = select(column.link_id, column.value).where(
                column.link_id.in_(chunk), column.value.in_(host_chunk), *in_day
            )
            known.update((link_id, host) for link_id, host in conn.execute(query.distinct()))
    return counts, known
