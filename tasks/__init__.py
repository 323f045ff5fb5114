"""Celery tasks. Each module is one pipeline; importing this package registers them all."""

from tasks import clicks, links, pageviews, reports  # noqa: F401
