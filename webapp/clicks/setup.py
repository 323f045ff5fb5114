"""Each app process's part of the click pipeline: its click log, link cache and trusted proxies."""

from webapp.clicks.click_log import ClickLog
from webapp.clicks.events import parse_trusted_proxies
from webapp.links.cache import LocalLinkCache
from webapp.redis_client import BACKGROUND_CLIENT


def init_app(app):
    cfg = app.config
    background = app.extensions[BACKGROUND_CLIENT]
    app.extensions["clickboard.trusted_proxies"] = parse_trusted_proxies(cfg["TRUSTED_PROXIES"])
    app.extensions["clickboard.click_log"] = ClickLog(
        cfg["CLICK_LOG_DIR"],
        background,
        cfg["CLICK_SHIP_INTERVAL"],
        keep_bytes=cfg["SPOOL_KEEP_MB"] << 20,
        memory_lines=cfg["CLICK_MEMORY_LINES"],
    )
    app.extensions["clickboard.link_cache"] = LocalLinkCache(cfg["LINK_LOCAL_CACHE_SECONDS"], background)
