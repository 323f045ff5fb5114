"""Page views: the ingest API and its spool, seeding, and the rows the slow-page report reads."""

from webapp.pageviews import ingest


def init_app(app):
    ingest.init_app(app)
