"""Clicks through real processes: gunicorn, a Celery worker, beat and Redis."""

import pytest
import requests

from tests.processes import wait_for
from webapp.links import service

pytestmark = pytest.mark.integration


def link_clicks(app, slug):
    from webapp.extensions import db

    db.session.expire_all()
    link = service.get_link(slug)
    return link.counter.clicks if link.counter else 0


def test_every_redirect_is_counted_once_in_batch_mode(app, user, processes):
    service.create_link("https://example.com/landing", user, slug="launch")
    web = processes.web()
    processes.worker()
    processes.beat()
    session = requests.Session()
    for _ in range(300):
        response = session.get(f"{web.url}/r/launch", allow_redirects=False, timeout=5)
        assert response.status_code == 302
    wait_for(lambda: link_clicks(app, "launch") == 300, timeout=30, message="300 clicks counted")
