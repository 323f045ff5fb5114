"""The ops panel: queues, click backlog and lag, workers, beat, recent failures.

Everything comes from Redis keys the workers write themselves and from the
broker's queue sizes, each read with a short timeout: the panel renders,
and says what it could not read, even with no worker alive.
"""

import time

from flask import abort, current_app, render_template, request
from flask_login import current_user

from webapp import ops, spool
from webapp.celery_app import celery_of
from webapp.clicks import click_log, dead_letters
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.dashboard import bp
from webapp.pageviews.ingest import PAGEVIEW_BUFFER
from webapp.redis_client import click_redis, eviction_warning, request_redis


@bp.before_request
def ops_for_admins_only():
    """The panel shows the whole install (every user's queues, failures, dead letters):
    admins only. Others get a 404, as for anything they may not see."""
    if request.endpoint in ("dashboard.ops_page", "dashboard.ops_fragment") and not current_user.is_admin:
        abort(404)


@bp.get("/ops")
def ops_page():
    return render_template("dashboard/ops.html", **ops_context())


@bp.get("/fragments/ops")
def ops_fragment():
    return render_template("dashboard/_ops.html", **ops_context())


QUEUE_DEPTHS_MAX_AGE = 2.0


def recent_queue_depths():
    """Queue depths at most two seconds old: asking the broker costs a connection per
    call, and every open ops panel polls; the panel refreshes every three seconds anyway."""
    cache = current_app.extensions.setdefault("clickboard.queue_depths", {})
    if cache.get("until", 0) < time.monotonic():
        cache["depths"] = ops.queue_depths(celery_of())
        cache["until"] = time.monotonic() + QUEUE_DEPTHS_MAX_AGE
    return cache["depths"]


def ops_context():
    context = {"now": time.time(), "problems": []}
    client, clicks_client = request_redis().client, click_redis(purpose="request")
    namespace = current_app.config["CLICKBOARD_NAMESPACE"]
    readers = {
        "clicks": lambda: CLICK_BUFFER.backlog(clicks_client),
        "pageviews": lambda: PAGEVIEW_BUFFER.backlog(client),
        "workers": lambda: ops.live_workers(client, namespace),
        "failures": lambda: ops.recent_failures(client, namespace),
        "drain": lambda: ops.drain_state(
            clicks_client, CLICK_BUFFER, current_app.config["CLICK_DRAIN_INTERVAL"]
        ),
        "drains_expired": lambda: int(client.get(ops.drains_expired_key(namespace)) or 0),
        "queues": recent_queue_depths,
        "log_files": lambda: click_log.pending_files(current_app.config["CLICK_LOG_DIR"]),
        "dead_letters": lambda: dead_letters.waiting(clicks_client),
        "kept_files": lambda: click_log.kept_files(current_app.config["CLICK_LOG_DIR"]),
        "warnings": lambda: pipeline_warnings(client),
    }
    for name, read in readers.items():
        try:
            context[name] = read()
        except Exception as exc:  # noqa: BLE001 - the panel shows what failed instead of failing
            context[name] = None
            context["problems"].append(f"{name}: {type(exc).__name__}: {exc}"[:200])
    return context


def pipeline_warnings(client):
    """What puts clicks at risk although everything answers: an evicting Redis, a failing spool."""
    warnings = [f"{name.replace('_', ' ')}: {problem}" for name, problem in spool.problems().items()]
    eviction = eviction_warning(client)
    return [eviction, *warnings] if eviction else warnings
