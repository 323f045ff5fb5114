"""Login throttling, so that guessing passwords gets nowhere and nobody can lock others out.

Three counters in Redis, checked and reserved in one Lua call (``GATE``), so
that concurrent tries cannot slip past a limit between the check and the
count:

- per client address: ``CLIENT_LIMIT`` tries that did not succeed in
  ``WINDOW_SECONDS``, over any accounts, then refused (guessing many accounts);
- per account and client: ``PAIR_LIMIT``, then that client is refused for that
  account (guessing one account from one place);
- per account, from anywhere: past ``FREE_FAILURES`` failures, a client that has
  already failed on the account waits ``BASE_DELAY`` seconds, doubling with each
  further failure up to ``MAX_DELAY``, between its tries (guessing one account
  from many places is slowed, not refused).

A client that has not failed on an account is never refused for it because
of others' failures: the right password from a new place always gets in. A
success refunds the client's try and forgets its failures on that account.
If Redis is down the checks are skipped: logging in matters more than
throttling during an outage, and passwords are hashed slowly anyway.
"""

import hashlib
import time
from typing import NamedTuple

from redis import RedisError

from webapp.keys import app_key
from webapp.redis_client import cached_script, request_redis

WINDOW_SECONDS = 15 * 60
CLIENT_LIMIT = 20
PAIR_LIMIT = 5
FREE_FAILURES = 10
BASE_DELAY = 1
MAX_DELAY = 300
ACCOUNT_WINDOW_SECONDS = 60 * 60

# KEYS: client tries, pair tries, account failures, pair's last try time.
# ARGV: now, window, client limit, pair limit, base delay, max delay, free failures.
GATE = """
local client = tonumber(redis.call('GET', KEYS[1]) or '0')
if client >= tonumber(ARGV[3]) then return {'client', redis.call('TTL', KEYS[1])} end
local pair = tonumber(redis.call('GET', KEYS[2]) or '0')
if pair >= tonumber(ARGV[4]) then return {'pair', redis.call('TTL', KEYS[2])} end
if pair > 0 then
  local over = tonumber(redis.call('GET', KEYS[3]) or '0') - tonumber(ARGV[7])
  if over > 0 then
    local delay = math.min(tonumber(ARGV[6]), tonumber(ARGV[5]) * 2 ^ (over - 1))
    local wait = tonumber(redis.call('GET', KEYS[4]) or '0') + delay - tonumber(ARGV[1])
    if wait > 0 then return {'slow', math.ceil(wait)} end
  end
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[2])
return {'ok', 0}
"""


class Keys(NamedTuple):
    client: str
    pair: str
    account: str
    pair_last: str


class Verdict(NamedTuple):
    allowed: bool
    retry_after: int = 0


def keys_for(email, address):
    account = hashlib.sha256((email or "").strip().lower().encode()).hexdigest()[:24]
    return Keys(
        app_key("login", "client", address),
        app_key("login", "pair", account, address),
        app_key("login", "account", account),
        app_key("login", "pair-last", account, address),
    )


def try_login(keys):
    """Reserve a try, or say how long to wait. Call before checking the password."""
    args = [
        f"{time.time():.3f}",
        WINDOW_SECONDS,
        CLIENT_LIMIT,
        PAIR_LIMIT,
        BASE_DELAY,
        MAX_DELAY,
        FREE_FAILURES,
    ]
    try:
        verdict, wait = cached_script(request_redis().client, GATE)(keys=list(keys), args=args)
    except RedisError:
        return Verdict(True)
    return Verdict(verdict == "ok", max(int(wait), 1) if verdict != "ok" else 0)


def record_failure(keys):
    try:
        pipe = request_redis().client.pipeline()
        pipe.incr(keys.account)
        pipe.expire(keys.account, ACCOUNT_WINDOW_SECONDS)
        pipe.execute()
    except RedisError:
        pass


def record_success(keys):
    """The client's try is refunded and its failures on this account forgotten; the account's
    count stays, so that one success among many guesses does not lift the slow-down."""
    try:
        pipe = request_redis().client.pipeline()
        pipe.decr(keys.client)
        pipe.delete(keys.pair, keys.pair_last)
        pipe.execute()
    except RedisError:
        pass
