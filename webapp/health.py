"""GET /healthz (JSON, 200 or 503) and GET /metrics (Prometheus text).

Both are public, like the redirect: /healthz says ok or not per dependency
(its figures and errors only to admins), /metrics exposes counts, never
link targets or user data. Each check has its own short timeout, so a dead
dependency makes the check fail fast instead of hanging the probe.
"""

from flask import Blueprint, Response, current_app, jsonify, request
from flask_login import current_user
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from redis import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from webapp import ops, pipeline_counters, spool, spool_files
from webapp.auth.tokens import token_from_header
from webapp.celery_app import celery_of
from webapp.clicks import buffer, click_log
from webapp.clicks.buffer import CLICK_BUFFER
from webapp.durable_counters import HostCounters
from webapp.extensions import db
from webapp.pageviews.ingest import PAGEVIEW_BUFFER
from webapp.redis_client import click_redis, eviction_warning, request_redis

bp = Blueprint("health", __name__)


def check_database():
    db.session.execute(text("SELECT 1"))
    return {"ok": True}


def check_redis():
    client = request_redis().client
    client.ping()
    length, lag = CLICK_BUFFER.backlog(click_redis(purpose="request"))
    result = {"ok": True, "click_backlog": length, "click_lag_seconds": round(lag, 3)}
    try:
        warning = eviction_warning(client)
    except RedisError as exc:  # CONFIG may be disabled on a managed Redis
        warning = f"maxmemory-policy unknown: {exc}"[:200]
    if warning:
        result["warning"] = warning
    return result


def check_spools():
    """Whether this host's spools can take lines: the disk, and this process's last write."""
    found = spool.problems()
    return {"ok": not found, **found}


def check_broker():
    celery_app = celery_of()
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=1, interval_start=0)  # no 2 s pause first
    return {"ok": True}


def check_workers():
    """Workers are alive if the click and page-view drains ran recently (``ops.drain_state``)."""
    result = {"ok": True}
    for name, (stream_buffer, client) in drained_buffers().items():
        alive, age = ops.drain_state(client, stream_buffer, current_app.config["CLICK_DRAIN_INTERVAL"])
        result["ok"] = result["ok"] and alive
        result[f"last_{name}_drain_seconds_ago"] = None if age is None else round(age, 1)
    result["last_drain_seconds_ago"] = result["last_clicks_drain_seconds_ago"]  # the older field name
    return result


def drained_buffers():
    """Each drained buffer with the Redis it is in."""
    return {
        "clicks": (CLICK_BUFFER, click_redis(purpose="request")),
        "pageviews": (PAGEVIEW_BUFFER, request_redis().client),
    }


CHECKS = {
    "db": check_database,
    "redis": check_redis,
    "broker": check_broker,
    "workers": check_workers,
    "spool": check_spools,
}


def run_check(check):
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - any failure is a reportable state
        if check is check_database:
            db.session.rollback()
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


@bp.get("/healthz")
def healthz():
    """ok or not per dependency for anyone (a load balancer's probe); the figures and the
    errors, which name internal hosts and ports, only for an admin (session or API token)."""
    results = {name: run_check(check) for name, check in CHECKS.items()}
    results["click_log_files"] = click_log.pending_files(current_app.config["CLICK_LOG_DIR"])
    healthy = all(result["ok"] for name, result in results.items() if name in CHECKS)
    if not sees_details():
        results = {name: {"ok": result["ok"]} for name, result in results.items() if name in CHECKS}
    return jsonify(status="ok" if healthy else "degraded", **results), 200 if healthy else 503


def sees_details():
    if current_user.is_authenticated and current_user.is_admin:
        return True
    token = token_from_header(request.headers.get("Authorization"))
    return token is not None and token.user.is_admin


class ClickPipelineCollector:
    """The pipeline's counters: drained and dropped from the database (exact, and kept when
    Redis loses its data), the rest from Redis and from this host's spool counters."""

    def collect(self):
        client, clicks_client = request_redis().client, click_redis(purpose="request")
        totals = {**buffer.counters(clicks_client), **drained_and_dropped()}
        length, lag = CLICK_BUFFER.backlog(clicks_client)
        for name, value in totals.items():
            yield CounterMetricFamily(f"clickboard_{name}", f"Total {name.replace('_', ' ')}", value=value)
        yield GaugeMetricFamily("clickboard_click_backlog", "Clicks buffered, not yet drained", value=length)
        yield GaugeMetricFamily(
            "clickboard_click_lag_seconds", "Age of the oldest undrained click", value=lag
        )
        yield from drain_metrics(client)
        yield GaugeMetricFamily(
            "clickboard_click_log_files",
            "Click log files on this host (one per live process, more while Redis is away)",
            value=click_log.pending_files(current_app.config["CLICK_LOG_DIR"]),
        )
        yield from spool_metrics()


def drain_metrics(client):
    """Whether the drains run (``ops.drain_state``, as /healthz and the ops panel decide it)."""
    expired = int(client.get(ops.drains_expired_key(current_app.config["CLICKBOARD_NAMESPACE"])) or 0)
    yield CounterMetricFamily(
        "clickboard_drains_expired",
        "Drain runs that expired before a worker took them (workers too busy)",
        value=expired,
    )
    interval = current_app.config["CLICK_DRAIN_INTERVAL"]
    states = {
        name: ops.drain_state(redis, buffer, interval) for name, (buffer, redis) in drained_buffers().items()
    }
    yield GaugeMetricFamily(
        "clickboard_workers_alive",
        "1 while every drain ran within three intervals (a worker is doing the work)",
        value=int(all(alive for alive, _ in states.values())),
    )
    ages = GaugeMetricFamily(
        "clickboard_drain_last_run_age_seconds",
        "Seconds since each buffer's drain last ran",
        labels=["buffer"],
    )
    for name, (_, age) in states.items():
        if age is not None:
            ages.add_metric([name], age)
    yield ages


DRAIN_COUNTERS = ("clicks_drained", "clicks_dropped", "pageviews_drained", "pageviews_dropped")


def drained_and_dropped():
    """The drain's totals from the database; none (Redis's copies stand) if it does not answer."""
    try:
        recorded = pipeline_counters.totals(db.session)
    except SQLAlchemyError:
        db.session.rollback()
        return {}
    return {name: recorded.get(name, 0) for name in DRAIN_COUNTERS}


SPOOL_COUNTERS = {
    "lost": "lines the disk refused beyond what memory could hold",
    "reshipped": "lines shipped again because Redis lost them",
    "shipped_late": "lines shipped by another process than the one that took them",
    "released_unconfirmed": "kept files deleted before the drain confirmed them (disk bound)",
}


def spool_metrics():
    """This host's spool counters: kept on its disk, so a Redis that restarts empty keeps them."""
    for spool_log in spool.app_spools().values():
        totals = HostCounters(spool_log.directory).totals()
        metric = spool_log.metric
        for name, help_text in SPOOL_COUNTERS.items():
            yield CounterMetricFamily(
                f"clickboard_{metric}_spool_{name}",
                f"{metric.capitalize()}: {help_text} (this host)",
                value=totals.get(f"{metric}_{name}", 0),
            )
        yield GaugeMetricFamily(
            f"clickboard_{metric}_spool_kept_files",
            f"{metric.capitalize()}: shipped files kept until the drain confirms them (this host)",
            value=spool_files.kept_files(spool_log.directory),
        )
        yield GaugeMetricFamily(
            f"clickboard_{metric}_spool_failing",
            f"{metric.capitalize()}: 1 if this host's spool cannot take lines now",
            value=int(bool(spool_log.failing() or spool.disk_problem(spool_log.directory))),
        )


@bp.get("/metrics")
def metrics():
    registry = CollectorRegistry()
    registry.register(ClickPipelineCollector())
    try:
        body = generate_latest(registry)
    except Exception as exc:  # noqa: BLE001
        return Response(f"# metrics unavailable: {type(exc).__name__}\n", status=503, mimetype="text/plain")
    return Response(body, mimetype="text/plain; version=0.0.4")
