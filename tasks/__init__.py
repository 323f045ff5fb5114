"""Celery tasks. Each module is one pipeline; importing this package registers them all."""

from tasks import clicks, pageviews, reports  # noqa: F401
