"""Slow clients against gunicorn's sync workers, with and without deploy/nginx.conf in front.

A sync worker serves one connection from its first byte to its last, so two
clients that send their headers a byte at a time hold both workers of a
two-worker gunicorn, and every other request waits. nginx, as configured in
deploy/nginx.conf, reads whole requests before it passes them on. Both
halves run real processes: gunicorn (``WebServer``, two sync workers) and
nginx with the repository's config (``tests/nginx.py``). No timings are
asserted: the direct request is given a short timeout it must run out of,
and the one through nginx a long one it must not.
"""

import pytest
import requests

from tests.nginx import NginxServer, SlowClient
from tests.processes import wait_for
from webapp.links import service

pytestmark = [pytest.mark.integration, pytest.mark.nginx]

WORKERS = 2
TARGET = "https://example.com/launch"
# Short, so the direct request gives up while the slow clients still hold the
# workers (gunicorn would only free them when its worker timeout, 30 s, kills them).
BLOCKED_TIMEOUT = 3
# Long: through nginx the redirect must simply arrive.
PATIENT_TIMEOUT = 60


@pytest.fixture
def web(app, user, processes):
    service.create_link(TARGET, user, slug="launch")
    server = processes.web(workers=WORKERS)
    # It answers once one worker is up; the attack needs all of them there to hold.
    wait_for(lambda: len(server.worker_pids()) == WORKERS, message=f"{WORKERS} gunicorn workers")
    return server


@pytest.fixture
def nginx(web, tmp_path):
    proxy = NginxServer(f"127.0.0.1:{web.port}", tmp_path / "nginx").start()
    yield proxy
    proxy.stop()


@pytest.fixture
def slow_clients():
    """``slow_clients(port, n)`` opens n slowloris connections; all are closed at teardown."""
    opened = []

    def open_clients(port, count, path="/r/launch", body=False):
        clients = [SlowClient("127.0.0.1", port, path, body=body) for _ in range(count)]
        opened.extend(clients)
        return clients

    yield open_clients
    for client in opened:
        client.close()


def redirect(url, timeout):
    return requests.get(f"{url}/r/launch", allow_redirects=False, timeout=timeout)


def test_slow_clients_straight_at_gunicorn_hold_every_worker(web, slow_clients):
    # The attack, documented: why gunicorn must not face clients alone.
    assert redirect(web.url, PATIENT_TIMEOUT).status_code == 302
    clients = slow_clients(web.port, WORKERS)

    with pytest.raises(requests.Timeout):
        redirect(web.url, BLOCKED_TIMEOUT)
    assert all(client.connected for client in clients), "a slow client was cut off: the test proves nothing"


def test_slow_bodies_straight_at_gunicorn_hold_every_worker(web, slow_clients):
    # The same with whole headers and a form sent a byte at a time (a slow upload):
    # the login's CSRF check reads the form before anything answers.
    clients = slow_clients(web.port, WORKERS, path="/login", body=True)

    with pytest.raises(requests.Timeout):
        redirect(web.url, BLOCKED_TIMEOUT)
    assert all(client.connected for client in clients), "a slow client was cut off: the test proves nothing"


def test_slow_clients_at_nginx_do_not_hold_the_workers(web, nginx, slow_clients):
    clients = [
        *slow_clients(nginx.port, WORKERS * 2),
        *slow_clients(nginx.port, WORKERS * 2, path="/login", body=True),
    ]
    assert all(client.connected for client in clients)

    for _ in range(5):
        response = redirect(nginx.url, PATIENT_TIMEOUT)
        assert response.status_code == 302, f"{response.status_code} through nginx: the workers are held"
        assert response.headers["Location"] == TARGET


def test_nginx_serves_static_files_itself(web, nginx):
    response = requests.get(f"{nginx.url}/static/clickboard.css", timeout=PATIENT_TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
