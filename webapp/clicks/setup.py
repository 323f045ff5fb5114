"""Each app's part of the click pipeline: its buffer and drain (in its install's namespace),
its process's click log, link cache and trusted proxies."""

from webapp.clicks import buffer, drain
from webapp.clicks.click_log import CLICK_LOG, ClickLog
from webapp.client_address import TRUSTED_PROXIES, parse_trusted_proxies
from webapp.links.cache import LINK_CACHE, LocalLinkCache, changes_stream
from webapp.redis_client import background_redis, click_redis


def init_app(app):
    cfg = app.config
    background = background_redis(app)
    click_buffer = buffer.click_buffer_for(cfg["CLICKBOARD_NAMESPACE"], cfg)
    app.extensions[buffer.EXTENSION] = click_buffer
    app.extensions[drain.EXTENSION] = drain.click_drain_for(click_buffer)
    app.extensions[TRUSTED_PROXIES] = parse_trusted_proxies(cfg["TRUSTED_PROXIES"])
    app.extensions[CLICK_LOG] = ClickLog(
        cfg["CLICK_LOG_DIR"],
        click_redis(app, purpose="background"),
        cfg["CLICK_SHIP_INTERVAL"],
        click_buffer,
        keep_bytes=cfg["SPOOL_KEEP_MB"] << 20,
        memory_lines=cfg["CLICK_MEMORY_LINES"],
    )
    app.extensions[LINK_CACHE] = LocalLinkCache(
        cfg["LINK_LOCAL_CACHE_SECONDS"],
        background,
        changes_stream(cfg["CLICKBOARD_NAMESPACE"]),
        size=cfg["LINK_LOCAL_CACHE_SIZE"],
        missing_size=cfg["LINK_LOCAL_CACHE_MISSING"],
    )
