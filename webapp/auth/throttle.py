"""Login throttling: after too many failures, refuse for a while (counters in Redis).

Counted per email and per client address, so neither guessing one account's
password from many addresses nor many accounts from one address gets far.
If Redis is down the check is skipped: logging in matters more than
throttling during an outage, and passwords are hashed slowly anyway.
"""

import contextlib
import hashlib

from redis import RedisError

from webapp.keys import app_key
from webapp.redis_client import request_redis

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


def keys_for(email, address):
    email_hash = hashlib.sha256((email or "").strip().lower().encode()).hexdigest()[:24]
    return [app_key("login-failures", "email", email_hash), app_key("login-failures", "ip", address)]


def blocked(keys):
    try:
        counts = request_redis().client.mget(keys)
    except RedisError:
        return False
    return any(int(count or 0) >= MAX_FAILURES for count in counts)


def record_failure(keys):
    try:
        pipe = request_redis().client.pipeline()
        for key in keys:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS)
        pipe.execute()
    except RedisError:
        pass


def clear(keys):
    """Forget the email's failures after a success; the address keeps its count."""
    with contextlib.suppress(RedisError):
        request_redis().client.delete(keys[0])
