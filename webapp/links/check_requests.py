""" "Check now" presses: one check per link at a time, a few per user a minute.

Without this, thirty presses queue thirty outbound fetches behind the
per-worker rate limit, and other work on that queue waits behind them.
The first press claims the link (a key that lives until the check's result
is recorded, or for ``PENDING_SECONDS``); presses while it is claimed add
nothing. Each user may press ``PER_USER_PER_MINUTE`` times a minute.
"""

from flask import current_app

from webapp.keys import app_key
from webapp.redis_client import cached_script

PER_USER_PER_MINUTE = 10
# KEYS: the link's claim, the user's counter. ARGV: claim seconds, per-minute limit.
CLAIM = """
local presses = redis.call('INCR', KEYS[2])
if presses == 1 then redis.call('EXPIRE', KEYS[2], 60) end
if presses > tonumber(ARGV[2]) then return 'limited' end
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 'pending' end
return 'claimed'
"""


def claim_key(link_id):
    return app_key("link-check", "pending", str(link_id))


def pending_seconds():
    """How long a claim waits for its result: the check's deadline, plus time in the queue."""
    return int(current_app.config["LINK_CHECK_TIMEOUT"] * 2 + 120)


def claim(client, link_id, user_id):
    """'claimed' (send the check), 'pending' (one is queued or running) or 'limited'."""
    keys = [claim_key(link_id), app_key("link-check", "user", str(user_id))]
    return cached_script(client, CLAIM)(keys=keys, args=[pending_seconds(), PER_USER_PER_MINUTE])


def release(client, link_id):
    """The check's result is in (or it could not be sent): the next press may check again."""
    client.delete(claim_key(link_id))
