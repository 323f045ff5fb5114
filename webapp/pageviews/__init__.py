"""Page views: the ingest API's spool, seeding, and the rows the slow-page report reads."""

from webapp.pageviews.ingest import PageViewLog
from webapp.redis_client import BACKGROUND_CLIENT


def init_app(app):
    cfg = app.config
    app.extensions["clickboard.pageview_log"] = PageViewLog(
        cfg["CLICK_LOG_DIR"],
        app.extensions[BACKGROUND_CLIENT],
        cfg["CLICK_SHIP_INTERVAL"],
        keep_bytes=cfg["SPOOL_KEEP_MB"] << 20,
    )
