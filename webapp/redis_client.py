"""Redis connections: one for request paths, guarded, and one for workers.

A request must never wait long on Redis: the request client has
sub-second socket timeouts and no retries, and sits behind a ``Breaker``
(``REDIS_RETRY_AFTER``).
"""

import redis
from flask import current_app
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from webapp.breaker import Breaker

REQUEST_CLIENT = "clickboard.redis.request"
WORKER_CLIENT = "clickboard.redis.worker"
# For threads that work beside the requests (click shipping, cache following).
BACKGROUND_CLIENT = "clickboard.redis.background"
# The click buffer's own Redis (CLICK_REDIS_URL), when it has one: {"worker": ..., "background": ...}.
CLICK_CLIENTS = "clickboard.redis.clicks"


class RedisGuard(Breaker):
    """The request client with its breaker."""

    def __init__(self, client, retry_after):
        super().__init__(retry_after)
        self.client = client


def make_client(url, timeout):
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
        health_check_interval=30,
        # The guard decides when to try again; redis-py's own retries would
        # multiply the time a request can spend on a dead server.
        retry=Retry(NoBackoff(), 0),
    )


def make_cluster_client(url, timeout):
    """A Redis Cluster client from one node's address: it learns the others and follows
    slot moves (MOVED / ASK) itself."""
    return RedisCluster.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
        # One try and one reinitialisation: a master that is away must cost a drain or a
        # shipper seconds, not minutes of retries; they come back to it on their next turn.
        retry=Retry(NoBackoff(), 1),
        require_full_coverage=False,
    )


def init_app(app):
    url = app.config["REDIS_URL"]
    app.extensions[REQUEST_CLIENT] = RedisGuard(
        make_client(url, app.config["REDIS_SOCKET_TIMEOUT"]), app.config["REDIS_RETRY_AFTER"]
    )
    app.extensions[WORKER_CLIENT] = make_client(url, 10.0)
    app.extensions[BACKGROUND_CLIENT] = make_client(url, 2.0)
    click_url = app.config["CLICK_REDIS_URL"]
    if click_url:
        make = make_cluster_client if app.config["CLICK_REDIS_CLUSTER"] else make_client
        # On a cluster the worker's client waits less: the drain goes on to the other shards.
        worker_timeout = 2.0 if app.config["CLICK_REDIS_CLUSTER"] else 10.0
        app.extensions[CLICK_CLIENTS] = {
            "worker": make(click_url, worker_timeout),
            "background": make(click_url, 2.0),
        }


def request_redis(app=None):
    """The guarded client for request handlers."""
    return (app or current_app).extensions[REQUEST_CLIENT]


def worker_redis(app=None):
    """A client with generous timeouts for tasks, CLI commands and health checks."""
    return (app or current_app).extensions[WORKER_CLIENT]


def background_redis(app=None):
    """The client of the spools' shipper threads: short timeouts, no guard."""
    return (app or current_app).extensions[BACKGROUND_CLIENT]


def click_redis(app=None, purpose="worker"):
    """The Redis holding the click buffer: CLICK_REDIS_URL's if set, else the app's own.
    ``purpose``: "worker" (tasks, commands), "background" (the shippers' short timeouts),
    "request" (a page reading figures: the app's guarded request client, or the click
    Redis's background client)."""
    app = app or current_app
    own = app.extensions.get(CLICK_CLIENTS)
    if own:
        return own["worker" if purpose == "worker" else "background"]
    if purpose == "request":
        return request_redis(app).client
    return background_redis(app) if purpose == "background" else worker_redis(app)


def eviction_warning(client):
    """Why this Redis may drop buffered clicks on its own, or None.

    Under ``maxmemory`` any policy but ``noeviction`` lets Redis delete keys,
    the click stream among them; the spool would ship them again, but only
    while it still keeps them. ``noeviction`` makes a full Redis refuse
    writes instead, which the spool rides out like an outage.
    """
    policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "noeviction")
    if policy == "noeviction":
        return None
    return f"Redis maxmemory-policy is {policy}: it may evict buffered clicks; set noeviction"


registered_scripts = {}


def cached_script(client, source):
    """A Lua script registered once per client (redis-py hashes the source on every register)."""
    key = (id(client), source)
    script = registered_scripts.get(key)
    if script is None:
        script = registered_scripts[key] = client.register_script(source)
    return script
