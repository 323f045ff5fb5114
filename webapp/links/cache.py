"""The slug → target cache the redirect reads instead of the database.

Two levels. Each process keeps the entries it has used in memory for up to
``LINK_LOCAL_CACHE_SECONDS``, so a redirect usually costs no network call at
all; behind it, Redis keeps one key per slug for ``LINK_CACHE_SECONDS``
(``-`` for "no such enabled link", briefly, so a scan of random slugs does
not become a scan of the database). The database is read only when both miss.

Any change to a link goes through ``invalidate``: it deletes the Redis key
and appends the slug to the install's link-changes stream, which a thread in
every process follows a few times a second to drop its own copy. If that
thread loses Redis, it forgets every entry once Redis is back, since it may
have missed changes; the local TTL bounds the rest.
"""

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC

from flask import current_app
from redis import RedisError

from webapp.extensions import db
from webapp.keys import app_key, key
from webapp.models import Link, LinkAlias
from webapp.redis_client import worker_redis

log = logging.getLogger(__name__)

MISSING = "-"
MISSING_TTL_SECONDS = 30
CHANGES_KEPT = 10_000
FOLLOW_INTERVAL = 0.2


@dataclass(frozen=True)
class LinkEntry:
    link_id: int
    redirect_code: int | None
    target_url: str
    # Access limits, checked on every redirect without a database read: the
    # expiry as Unix seconds, and whether the click limit was reached when the
    # entry was loaded (the drain invalidates a link the moment it reaches it).
    expires_at: float | None = None
    exhausted: bool = False

    def encode(self):
        expires = "" if self.expires_at is None else f"{self.expires_at:.0f}"
        code = self.redirect_code or ""
        return f"{self.link_id}\t{code}\t{expires}\t{'1' if self.exhausted else ''}\t{self.target_url}"

    @classmethod
    def decode(cls, value):
        """The entry, or None for text in another format (a cache written by an older version)."""
        try:
            link_id, code, expires, exhausted, target = value.split("\t", 4)
            return cls(
                int(link_id),
                int(code) if code else None,
                target,
                float(expires) if expires else None,
                exhausted == "1",
            )
        except ValueError:
            return None

    def refuses(self, now):
        """Whether a visit at ``now`` (Unix seconds) is answered 410 instead of redirected."""
        return self.exhausted or (self.expires_at is not None and now >= self.expires_at)


def cache_key(slug):
    return app_key("link", slug)


def changes_stream(namespace):
    return key(namespace, "link-changes")


def entry_for(link):
    if link is None or not link.enabled:
        return None
    expires = link.expires_at.replace(tzinfo=UTC).timestamp() if link.expires_at else None
    clicks = link.counter.clicks if link.counter else 0
    exhausted = link.max_clicks is not None and clicks >= link.max_clicks
    return LinkEntry(link.id, link.redirect_code, link.target_url, expires, exhausted)


def load_entry(slug):
    """Look the slug up in the database (the slow path): a link's slug, or one of its aliases."""
    # populate_existing: a session that loaded the link before (a worker's, a CLI's) must
    # not answer with the click count it saw then, or a reached limit would go unseen.
    fresh = {"populate_existing": True}
    link = db.session.execute(
        db.select(Link).where(Link.slug == slug), execution_options=fresh
    ).scalar_one_or_none()
    if link is None:
        alias = db.session.get(LinkAlias, slug)
        link = db.session.get(Link, alias.link_id, populate_existing=True) if alias else None
    return entry_for(link)


class LocalLinkCache:
    """This process's copies: slug → (entry or None, expiry), plus the change follower.

    Bounded, least recently used first out: ``size`` links, and apart from them
    at most ``missing_size`` "no such link" answers, so a scan of random slugs
    neither grows the process nor pushes real links out.
    """

    def __init__(self, ttl, client, changes, size=10_000, missing_size=1_000):
        self.ttl = ttl
        self.client = client
        self.changes = changes  # the install's link-changes stream
        self.limits = {True: size, False: missing_size}
        self.found = OrderedDict()  # slug → (entry, expiry)
        self.missing = OrderedDict()  # slug → (None, expiry)
        self.lock = threading.Lock()  # the follower thread evicts while requests read
        self.follower_pid = None
        self.stopped = threading.Event()

    @property
    def entries(self):
        """Every slug held, with its (entry, expiry): for tests and the ops view."""
        with self.lock:
            return {**self.missing, **self.found}

    def get(self, slug):
        """(True, entry) on a live hit, (False, None) on a miss."""
        with self.lock:
            for table in (self.found, self.missing):
                found = table.get(slug)
                if found is not None:
                    # An expired entry stays (until pushed out) as the last known answer.
                    if found[1] < time.monotonic():
                        return False, None
                    table.move_to_end(slug)
                    return True, found[0]
        return False, None

    def last_known(self, slug):
        """The entry last loaded for ``slug``, however old (None if none): for when the
        database cannot be asked."""
        with self.lock:
            return self.found.get(slug, (None,))[0]

    def put(self, slug, entry):
        if self.follower_pid != os.getpid():
            self.start_following()
        ttl = self.ttl if entry is not None else min(self.ttl, MISSING_TTL_SECONDS)
        table = self.found if entry is not None else self.missing
        with self.lock:
            (self.missing if entry is not None else self.found).pop(slug, None)
            table[slug] = (entry, time.monotonic() + ttl)
            table.move_to_end(slug)
            while len(table) > self.limits[entry is not None]:
                table.popitem(last=False)

    def evict(self, slug):
        with self.lock:
            self.found.pop(slug, None)
            self.missing.pop(slug, None)

    def clear(self):
        with self.lock:
            self.found.clear()
            self.missing.clear()

    def start_following(self):
        self.follower_pid = os.getpid()
        self.clear()  # copies inherited over a fork were never followed here
        threading.Thread(target=self.follow_changes, name="link-changes", daemon=True).start()

    def stop(self):
        """End the follower thread (tests, shutdown); entries are no longer kept fresh."""
        self.stopped.set()

    def follow_changes(self):
        last_id, in_contact = None, False
        while not self.stopped.wait(FOLLOW_INTERVAL):
            try:
                if not in_contact:
                    last_id = latest_change_id(self.client, self.changes)
                    self.clear()  # changes may have been missed meanwhile
                    in_contact = True
                last_id = self.apply_changes(last_id)
            except RedisError:
                in_contact = False
            except Exception:  # noqa: BLE001 - the thread must live on
                log.exception("following link changes failed")
                in_contact = False

    def apply_changes(self, last_id):
        reply = self.client.xread({self.changes: last_id}, count=1000)
        for _, messages in reply:
            for message_id, fields in messages:
                self.evict(fields.get("slug"))
                last_id = message_id
        return last_id


def latest_change_id(client, changes):
    newest = client.xrevrange(changes, count=1)
    return newest[0][0] if newest else "0-0"


def store(client, slug, entry):
    """Cache an entry (or its absence) in Redis after a database lookup."""
    if entry is None:
        client.set(cache_key(slug), MISSING, ex=MISSING_TTL_SECONDS)
    else:
        client.set(cache_key(slug), entry.encode(), ex=current_app.config["LINK_CACHE_SECONDS"])


def invalidate_links(link_ids):
    """Forget every slug of these links (their own and their aliases'), after a commit."""
    for chunk in range(0, len(link_ids), 500):
        ids = link_ids[chunk : chunk + 500]
        slugs = db.session.scalars(db.select(Link.slug).where(Link.id.in_(ids))).all()
        slugs += db.session.scalars(db.select(LinkAlias.slug).where(LinkAlias.link_id.in_(ids))).all()
        for slug in slugs:
            invalidate(slug)


def invalidate(slug):
    """Forget a slug everywhere after its link changed; call after the commit."""
    invalidate_many([slug])


def invalidate_many(slugs):
    """Forget these slugs everywhere (one round trip per thousand); call after the commit."""
    cache = local_link_cache()
    for slug in slugs:
        cache.evict(slug)
    changes = changes_stream(current_app.config["CLICKBOARD_NAMESPACE"])
    try:
        for start in range(0, len(slugs), 1000):
            pipe = worker_redis().pipeline(transaction=False)
            for slug in slugs[start : start + 1000]:
                pipe.delete(cache_key(slug))
                pipe.xadd(changes, {"slug": slug}, maxlen=CHANGES_KEPT, approximate=True)
            pipe.execute()
    except RedisError:
        current_app.logger.warning(
            "could not announce the change of %d link(s) (%r...); other processes keep them for up to %ss",
            len(slugs),
            slugs[0],
            current_app.config["LINK_LOCAL_CACHE_SECONDS"],
        )


LINK_CACHE = "clickboard.link_cache"


def local_link_cache(app=None):
    """This process's link cache (``app`` where there is no app context: the WSGI fast path)."""
    return (app or current_app).extensions[LINK_CACHE]
