"""Configuration read from the environment.

Every setting has a default that works on a laptop (SQLite under ``instance/``,
an embedded Redis started by ``make run``); production overrides them with
environment variables, listed with their meaning in ``.env.example``.
"""

import os
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

import click
from celery.schedules import crontab
from kombu import Exchange, Queue

from webapp import PROJECT_ROOT, keys

TASK_QUEUES = ("clicks", "reports", "default")


class ConfigError(click.ClickException, RuntimeError):
    """A setting missing or wrong: one line naming it, never a traceback.

    The ``flask`` CLI prints a ClickException as ``Error: <message>``,
    gunicorn a RuntimeError the same way; ``celery_worker`` and ``wsgi``
    exit with the message for the rest.
    """


def default_database_url(instance_path):
    return "sqlite:///" + os.path.join(instance_path, "clickboard.sqlite3")


def instance_path(environ=os.environ):
    """Where this install keeps its local state: ``instance/`` of the checkout by default."""
    return environ.get("CLICKBOARD_INSTANCE_PATH") or os.path.join(PROJECT_ROOT, "instance")


def database_uri(url, instance):
    """The SQLAlchemy URI for ``DATABASE_URL`` (SQLite under ``instance`` when unset)."""
    url = url or default_database_url(instance)
    if url.startswith("postgres://"):
        url = "postgresql://" + url[11:]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[13:]
    return url


def valid_namespace(namespace):
    if not keys.is_valid_namespace(namespace):
        raise ConfigError("CLICKBOARD_NAMESPACE must be 1-32 letters, digits, '-' or '_'")
    return namespace


def environment_namespace(environ=os.environ):
    """The namespace ``create_app`` would choose, for code that runs without an app."""
    namespace = environ.get("CLICKBOARD_NAMESPACE")
    if namespace:
        return valid_namespace(namespace)
    return keys.namespace_for(database_uri(environ.get("DATABASE_URL"), instance_path(environ)))


STALE_SWEEP_MINUTES = 5


def task_time_limits(cfg):
    """(soft, hard) seconds per task: none may hold a worker for ever. Soft raises
    SoftTimeLimitExceeded in the task (a drain hands its batch back; a report run is
    recorded as failed); hard kills the pool process. All well under the Redis
    broker's visibility timeout (an hour), so a task is never delivered twice for
    running long."""
    check = cfg["LINK_CHECK_TIMEOUT"]
    quick = (30, 60)
    return {
        "tasks.clicks.drain_click_buffer": (300, 330),
        "tasks.pageviews.drain_pageview_buffer": (300, 330),
        "tasks.clicks.ship_orphaned_clicks": (120, 150),
        "tasks.clicks.record_link_click": quick,
        "tasks.links.check_link_target": (check + 5, check + 15),
        "tasks.links.record_link_check": quick,
        "tasks.links.record_link_check_failure": quick,
        "tasks.links.check_stale_links": quick,
        "tasks.reports.compute_slow_pageviews": (900, 960),
        "tasks.reports.record_run_success": quick,
        "tasks.reports.record_run_failure": quick,
        # A first run over years of rows may stop at the soft limit: each batch and
        # each dropped partition is already committed, the next run goes on.
        "tasks.maintenance.prune_raw_rows": (1800, 1860),
    }


def task_annotations(cfg):
    annotations = {
        name: {"soft_time_limit": soft, "time_limit": hard}
        for name, (soft, hard) in task_time_limits(cfg).items()
    }
    annotations["tasks.clicks.record_link_click"]["max_retries"] = cfg["CLICK_TASK_MAX_RETRIES"]
    # Per worker process: give each host's workers the quota that host has.
    annotations["tasks.links.check_link_target"]["rate_limit"] = cfg["LINK_CHECK_RATE_LIMIT"]
    return annotations


def celery_config(cfg):
    """The nested ``CELERY`` dict, in the shape of Flask's Celery example."""
    broker_url = cfg.get("CELERY_BROKER_URL") or cfg["REDIS_URL"]
    drain_interval = cfg["CLICK_DRAIN_INTERVAL"]
    queues = install_queues(cfg["CLICKBOARD_NAMESPACE"], cfg["HOST_QUEUES"])
    return {
        **install_exchanges(cfg["CLICKBOARD_NAMESPACE"]),
        "broker_url": broker_url,
        "task_ignore_result": True,
        "task_queues": queues,
        "task_default_queue": "default",
        "task_create_missing_queues": False,
        "task_routes": {
            "tasks.clicks.record_link_click": {"queue": "clicks"},
            "tasks.clicks.drain_click_buffer": {"queue": "clicks"},
            "tasks.clicks.ship_orphaned_clicks": {"queue": "clicks"},
            "tasks.pageviews.*": {"queue": "clicks"},
            "tasks.reports.compute_*": {"queue": "reports"},
            "tasks.reports.record_*": {"queue": "default"},
            "tasks.links.*": {"queue": "default"},
            "tasks.maintenance.*": {"queue": "default"},
        },
        "task_annotations": task_annotations(cfg),
        # Our long-running tasks are idempotent and acknowledged late: a worker
        # must not hold a second one it has not started while it runs the first.
        "worker_prefetch_multiplier": 1,
        "beat_schedule": {
            "drain-click-buffer": {
                "task": "tasks.clicks.drain_click_buffer",
                "schedule": timedelta(seconds=drain_interval),
                # A drain that waited longer than one interval is superseded
                # by the next one; dropping it keeps a stopped worker from
                # coming back to a pile of identical tasks.
                "options": {"expires": max(drain_interval, 1.0)},
            },
            "drain-pageview-buffer": {
                "task": "tasks.pageviews.drain_pageview_buffer",
                "schedule": timedelta(seconds=drain_interval),
                "options": {"expires": max(drain_interval, 1.0)},
            },
            # Every few minutes a small batch, not the whole hour's checks at once:
            # a sweep must never fill the queue other work waits behind.
            "check-stale-links": {
                "task": "tasks.links.check_stale_links",
                "schedule": timedelta(minutes=STALE_SWEEP_MINUTES),
                "options": {"expires": STALE_SWEEP_MINUTES * 60},
            },
            # Daily, at a quiet hour; it also creates the coming months' partitions
            # on PostgreSQL, two months ahead, so a few missed runs cost nothing.
            "prune-raw-rows": {
                "task": "tasks.maintenance.prune_raw_rows",
                "schedule": crontab(hour=3, minute=30),
                "options": {"expires": 3600},
            },
            "ship-orphaned-clicks": {
                "task": "tasks.clicks.ship_orphaned_clicks",
                "schedule": timedelta(seconds=15),
                "options": {"expires": 15},
            },
            # Spools are on each host's own disk: a named host's worker ships its own host's,
            # so a host restarted without traffic is not left to whichever worker takes the
            # shared task.
            **{
                f"ship-orphaned-clicks-{name}": {
                    "task": "tasks.clicks.ship_orphaned_clicks",
                    "schedule": timedelta(seconds=15),
                    "options": {"expires": 15, "queue": f"host.{name}"},
                }
                for name in cfg["HOST_QUEUES"]
            },
        },
        "timezone": "UTC",
        "enable_utc": True,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        # A producer must never hang a web request when the broker is down:
        # bounded connect/socket timeouts and at most one quick publish retry.
        "broker_connection_timeout": 1.0,
        "broker_transport_options": {
            "socket_timeout": 1.0,
            "socket_connect_timeout": 1.0,
            # kombu otherwise retries a refused connection after sleeping
            # 2 s (interval_start) before publish(retry=False) even starts,
            # so each redirect that probes a dead broker would take 2 s.
            # Workers and beat are unaffected: their reconnects pass their
            # own retry settings (broker_connection_max_retries, the
            # publish retry policy).
            "max_retries": 0,
            # Longer than any task we run, or Redis redelivers it (see README).
            "visibility_timeout": 3600,
        },
        "task_publish_retry_policy": {
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.1,
            "interval_max": 0.1,
        },
    }


def install_queues(namespace, host_names):
    """The install's queues: named in its namespace, found by their short names.

    ``cb.<ns>.clicks`` carries the alias ``clicks``, and Celery resolves
    ``-Q clicks``, ``task_routes`` and ``queue="host.a"`` through aliases, so
    two installs on one broker each consume only their own tasks while
    commands and routes keep the short names.
    """

    def queue(name, exchange):
        return Queue(keys.queue_name(namespace, name), exchange, routing_key=name, alias=name)

    queues = [queue(name, Exchange(keys.queue_name(namespace, name))) for name in TASK_QUEUES]
    # One queue per named host: work that must run on that server (its address, its quota).
    host_exchange = Exchange(keys.queue_name(namespace, "host"), type="direct")
    return queues + [queue(f"host.{name}", host_exchange) for name in host_names]


def install_exchanges(namespace):
    """Remote control and events of the install's workers only."""
    return {
        "control_exchange": keys.queue_name(namespace, "celery"),
        "event_exchange": keys.queue_name(namespace, "celeryev"),
    }


# More shards than this is a mistake, not a scale: each costs every drain a round trip.
MAX_CLICK_STREAMS = 64


def load_config(environ=os.environ):
    """Settings from the environment, read when the app is created (so tests can set them)."""

    def text(name, default=None):
        return environ.get(name, default)

    def comma_list(name):
        return [item.strip() for item in environ.get(name, "").split(",") if item.strip()]

    def number(name, default, kind=float):
        try:
            return kind(environ.get(name, default))
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {environ.get(name)!r}") from None

    return {
        "SECRET_KEY": text("SECRET_KEY"),
        "SQLALCHEMY_DATABASE_URI": text("DATABASE_URL"),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # "" until finish_config: then as set, or on when PUBLIC_BASE_URL is https.
        "SESSION_COOKIE_SECURE": text("SESSION_COOKIE_SECURE", ""),
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        # CSRF tokens live as long as the session, so a dashboard left open keeps working.
        "WTF_CSRF_TIME_LIMIT": None,
        "REDIS_URL": text("REDIS_URL", "redis://127.0.0.1:6379/0"),
        # Prefix of every Redis key and Celery queue (see webapp.keys); derived when unset.
        "CLICKBOARD_NAMESPACE": text("CLICKBOARD_NAMESPACE"),
        "CELERY_BROKER_URL": text("CELERY_BROKER_URL"),
        # Seconds a request waits on Redis before treating it as down.
        "REDIS_SOCKET_TIMEOUT": number("REDIS_SOCKET_TIMEOUT", 0.1),
        # After a Redis or broker failure, requests skip it for this long.
        "REDIS_RETRY_AFTER": number("REDIS_RETRY_AFTER", 1.0),
        "CLICK_CAPTURE_MODE": text("CLICK_CAPTURE_MODE", "batch"),  # batch | task
        "CLICK_DRAIN_INTERVAL": number("CLICK_DRAIN_INTERVAL", 2.0),
        # After emptying the buffer a drain keeps waiting for clicks (XREADGROUP BLOCK) this
        # long, so counts follow clicks within a second; under the interval, so drains follow
        # one another rather than queue. Unset: 3/4 of the interval. 0: drain and stop.
        "CLICK_DRAIN_FOLLOW_SECONDS": text("CLICK_DRAIN_FOLLOW_SECONDS"),
        # Click streams (shards): each click line goes to one by a hash of its event id.
        "CLICK_STREAMS": number("CLICK_STREAMS", 1, int),
        # The Redis of the click buffer when it is not REDIS_URL's, and whether it is a
        # Redis Cluster (its shards then spread over the masters; see webapp.streams).
        "CLICK_REDIS_URL": text("CLICK_REDIS_URL", ""),
        "CLICK_REDIS_CLUSTER": text("CLICK_REDIS_CLUSTER", "") not in ("", "0"),
        "CLICK_DRAIN_BATCH_SIZE": number("CLICK_DRAIN_BATCH_SIZE", 5000, int),
        "CLICK_DRAIN_MAX_BATCHES": number("CLICK_DRAIN_MAX_BATCHES", 20, int),
        # A message unacknowledged this long belongs to a dead drain: reclaim it.
        "CLICK_RECLAIM_IDLE_SECONDS": number("CLICK_RECLAIM_IDLE_SECONDS", 60),
        "CLICK_TASK_MAX_RETRIES": number("CLICK_TASK_MAX_RETRIES", 5, int),
        # Where each process logs its clicks before shipping them to Redis.
        "CLICK_LOG_DIR": text("CLICK_LOG_DIR"),
        "CLICK_SHIP_INTERVAL": number("CLICK_SHIP_INTERVAL", 0.1),
        # Shipped lines are kept on disk until the drain commits them, so a Redis that
        # loses its data loses nothing; past this many MB per spool the oldest are released.
        "SPOOL_KEEP_MB": number("SPOOL_KEEP_MB", 256, int),
        # Clicks held in memory per process while the click log's disk refuses writes.
        "CLICK_MEMORY_LINES": number("CLICK_MEMORY_LINES", 10_000, int),
        "REDIRECT_STATUS_CODE": number("REDIRECT_STATUS_CODE", 302, int),
        "LINK_CACHE_SECONDS": number("LINK_CACHE_SECONDS", 300, int),
        # Each process's own copy; changes reach it within a second, this bounds an outage.
        "LINK_LOCAL_CACHE_SECONDS": number("LINK_LOCAL_CACHE_SECONDS", 30),
        # Links each process keeps, and "no such link" answers apart from them (least recent out).
        "LINK_LOCAL_CACHE_SIZE": number("LINK_LOCAL_CACHE_SIZE", 10_000, int),
        "LINK_LOCAL_CACHE_MISSING": number("LINK_LOCAL_CACHE_MISSING", 1_000, int),
        "TRUSTED_PROXIES": comma_list("TRUSTED_PROXIES"),
        "PUBLIC_BASE_URL": text("PUBLIC_BASE_URL", ""),
        # Host names requests may carry (a leading dot: any subdomain); derived when unset.
        "TRUSTED_HOSTS": comma_list("TRUSTED_HOSTS"),
        # Seconds between refreshes of every live dashboard region; 0: each its own (3 to 15 s).
        # The home and link pages' regions are shared for that long (webapp/dashboard/shared_fragments.py).
        "DASHBOARD_POLL_SECONDS": number("DASHBOARD_POLL_SECONDS", 0, int),
        # Tracked page views (POST /collect/<key>) a minute, per site and per client address.
        "COLLECT_SITE_PER_MINUTE": number("COLLECT_SITE_PER_MINUTE", 6000, int),
        "COLLECT_CLIENT_PER_MINUTE": number("COLLECT_CLIENT_PER_MINUTE", 60, int),
        # Report computations each user may start a minute (a GET starts none).
        "REPORT_STARTS_PER_MINUTE": number("REPORT_STARTS_PER_MINUTE", 10, int),
        # The report: fresh for this long, the last result kept this long,
        # sentinels of a silent worker gone after these.
        "REPORT_FRESH_SECONDS": number("REPORT_FRESH_SECONDS", 300, int),
        "REPORT_RETENTION_SECONDS": number("REPORT_RETENTION_SECONDS", 7 * 24 * 3600, int),
        "REPORT_HEARTBEAT_TTL_SECONDS": number("REPORT_HEARTBEAT_TTL_SECONDS", 10),
        "REPORT_SENT_TTL_SECONDS": number("REPORT_SENT_TTL_SECONDS", 120, int),
        # Raw click and page-view rows older than this many days are pruned daily (rollups,
        # hence counts and charts, are kept for ever); 0 keeps raw rows for ever.
        "RETENTION_DAYS": number("RETENTION_DAYS", 400, int),
        # Rows deleted per transaction while pruning: the longest a drain waits for it.
        "RETENTION_BATCH_SIZE": number("RETENTION_BATCH_SIZE", 5000, int),
        # Target checks: a rate per worker process ("30/m"), a time cap, and
        # hosts exempt from the public-address rule (tests, internal targets).
        "LINK_CHECK_RATE_LIMIT": text("LINK_CHECK_RATE_LIMIT", "30/m"),
        "LINK_CHECK_TIMEOUT": number("LINK_CHECK_TIMEOUT", 5.0),
        "LINK_CHECK_ALLOWED_HOSTS": comma_list("LINK_CHECK_ALLOWED_HOSTS"),
        # Names of hosts with their own queue host.<name> (every process must know them).
        "HOST_QUEUES": comma_list("HOST_QUEUES"),
        "ADMIN_EMAIL": text("ADMIN_EMAIL", "admin@example.com"),
        "ADMIN_PASSWORD": text("ADMIN_PASSWORD"),
        # werkzeug's generate_password_hash method. Stored hashes name their own
        # method, so changing it affects new passwords only.
        "PASSWORD_HASH_METHOD": text("PASSWORD_HASH_METHOD", "scrypt"),
        # Set by `make run`: a development secret kept under instance/ is fine.
        "CLICKBOARD_DEV": text("CLICKBOARD_DEV", "") not in ("", "0"),
    }


def development_secret_key(app):
    """A per-checkout key kept in ``instance/`` so `make run` needs no setup.

    Outside development a missing SECRET_KEY is an error at start-up rather
    than a silently weak deployment.
    """
    if not (app.debug or app.testing or app.config.get("CLICKBOARD_DEV")):
        raise ConfigError("SECRET_KEY must be set (see .env.example), or run beside `make run`")
    path = os.path.join(app.instance_path, "secret_key")
    if not os.path.exists(path):
        os.makedirs(app.instance_path, exist_ok=True)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as key_file:
            key_file.write(secrets.token_hex(32))
    with open(path) as key_file:
        return key_file.read().strip()


LOCAL_HOSTS = ["localhost", "127.0.0.1", "[::1]"]


def trusted_hosts(configured, public_base_url):
    """The Host headers Flask accepts (others are a 400), so a forged Host never reaches a
    page, a short URL or a redirect: TRUSTED_HOSTS, else PUBLIC_BASE_URL's host, and always
    this machine's own names (probes, the CLI). ``*`` accepts any (not for the internet)."""
    if configured == ["*"]:
        return None
    named = list(configured or [])
    if not named and public_base_url:
        named.append(urlsplit(public_base_url).hostname or "")
    return [host for host in named if host] + LOCAL_HOSTS


def cookies_secure(setting, public_base_url):
    """Cookies only over https: as set, else once the public address is https."""
    if setting in ("", None):
        return public_base_url.startswith("https://")
    return setting in (True, "1")


def drain_follow_seconds(cfg):
    """CLICK_DRAIN_FOLLOW_SECONDS, checked: shorter than the interval, or drains would queue
    up behind a following one and expire unrun."""
    value, interval = cfg["CLICK_DRAIN_FOLLOW_SECONDS"], cfg["CLICK_DRAIN_INTERVAL"]
    if value in (None, ""):
        return interval * 0.75
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"CLICK_DRAIN_FOLLOW_SECONDS must be a number, not {value!r}") from None
    if not 0 <= seconds < interval:
        raise ConfigError("CLICK_DRAIN_FOLLOW_SECONDS must be at least 0 and less than CLICK_DRAIN_INTERVAL")
    return seconds


def finish_config(app):
    """Derive the settings that depend on other settings or on paths."""
    cfg = app.config
    cfg["SQLALCHEMY_DATABASE_URI"] = database_uri(cfg.get("SQLALCHEMY_DATABASE_URI"), app.instance_path)
    if cfg.get("CLICKBOARD_NAMESPACE"):
        valid_namespace(cfg["CLICKBOARD_NAMESPACE"])
    else:
        cfg["CLICKBOARD_NAMESPACE"] = keys.namespace_for(cfg["SQLALCHEMY_DATABASE_URI"])
    if not cfg.get("CLICK_LOG_DIR"):
        cfg["CLICK_LOG_DIR"] = os.path.join(app.instance_path, "clicks")
    if not cfg.get("SECRET_KEY"):
        cfg["SECRET_KEY"] = development_secret_key(app)
    if cfg["CLICK_CAPTURE_MODE"] not in ("batch", "task"):
        raise ConfigError("CLICK_CAPTURE_MODE must be 'batch' or 'task'")
    if cfg["RETENTION_DAYS"] < 0 or cfg["RETENTION_BATCH_SIZE"] < 1:
        raise ConfigError("RETENTION_DAYS must be 0 (keep for ever) or more, RETENTION_BATCH_SIZE 1 or more")
    if cfg["REDIRECT_STATUS_CODE"] not in (301, 302, 307, 308):
        raise ConfigError("REDIRECT_STATUS_CODE must be one of 301, 302, 307, 308")
    cfg["CLICK_DRAIN_FOLLOW_SECONDS"] = drain_follow_seconds(cfg)
    if not 1 <= cfg["CLICK_STREAMS"] <= MAX_CLICK_STREAMS:
        raise ConfigError(f"CLICK_STREAMS must be 1 to {MAX_CLICK_STREAMS}")
    if cfg["CLICK_REDIS_CLUSTER"] and not cfg["CLICK_REDIS_URL"]:
        raise ConfigError(
            "CLICK_REDIS_CLUSTER needs CLICK_REDIS_URL: the address of one of the cluster's nodes"
        )
    cfg["TRUSTED_HOSTS"] = trusted_hosts(cfg.get("TRUSTED_HOSTS"), cfg["PUBLIC_BASE_URL"])
    cfg["SESSION_COOKIE_SECURE"] = cookies_secure(cfg["SESSION_COOKIE_SECURE"], cfg["PUBLIC_BASE_URL"])
    cfg["REMEMBER_COOKIE_SECURE"] = cfg["SESSION_COOKIE_SECURE"]
    cfg.setdefault("CELERY", celery_config(cfg))
