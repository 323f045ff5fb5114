"""Celery tasks. Each module is one pipeline; importing this package registers them all."""

from tasks import clicks, links, maintenance, pageviews, reports  # noqa: F401
