"""Each process's slug cache is bounded: a scan of random slugs neither grows it nor pushes
real links out, and an entry too old to use is still the answer when the database is down."""

import os
import time

import pytest

from webapp.links import service
from webapp.links.cache import LinkEntry, LocalLinkCache, local_link_cache


def entry(link_id):
    return LinkEntry(link_id, None, f"https://example.com/{link_id}")


def bounded(size=3, missing_size=2, ttl=30):
    cache = LocalLinkCache(ttl, None, "changes", size=size, missing_size=missing_size)
    cache.follower_pid = os.getpid()  # no change follower: pure bookkeeping here
    return cache


def test_links_beyond_the_size_push_out_the_least_recently_used():
    cache = bounded()
    for n in range(3):
        cache.put(f"s{n}", entry(n))
    assert cache.get("s0") == (True, entry(0))  # s0 now most recent: s1 is the oldest
    cache.put("s3", entry(3))
    assert set(cache.entries) == {"s0", "s2", "s3"}


def test_unknown_slugs_are_kept_apart_and_cannot_push_out_links():
    cache = bounded()
    cache.put("real", entry(1))
    for n in range(1000):
        cache.put(f"random{n}", None)
    assert cache.get("real") == (True, entry(1))
    assert len(cache.entries) == 1 + 2


def test_an_expired_entry_misses_but_stays_as_the_last_known_answer():
    cache = bounded(ttl=0.01)
    cache.put("old", entry(7))
    time.sleep(0.02)
    assert cache.get("old") == (False, None)
    assert cache.last_known("old") == entry(7)


@pytest.fixture
def link(user):
    return service.create_link("https://example.com/kept", user, slug="kept")[0]


def test_eight_thousand_random_slugs_do_not_grow_a_running_app(app, client, link):
    cache = local_link_cache(app)
    for n in range(8000):
        assert client.get(f"/r/no-such-slug-{n}").status_code == 404
    assert client.get(f"/r/{link.slug}").status_code == 302
    held = cache.entries
    assert len(held) <= app.config["LINK_LOCAL_CACHE_MISSING"] + 1
    assert link.slug in held
