"""Shared fixtures.

Every test gets a fresh database (SQLite by default, PostgreSQL when
``TEST_DATABASE_URL`` is set) and an empty real Redis (the embedded
redis-server, on a private port). Integration tests start real worker,
beat and gunicorn processes with ``processes.worker()`` / ``.beat()`` /
``.web()`` and the same environment the in-process ``app`` was built from.
A module whose tests only read may share one seeded database
(``shared_app_env``). Under pytest-xdist each worker has its own Redis,
PostgreSQL database and RabbitMQ vhost (``tests/services.py``).

In-process apps never ship their click logs on their own: a test ships with
``app_click_log(app).ship_own()`` when it wants the stream to hold what was
captured. A background shipper racing the test's
own shipment would make "the stream now holds N clicks" a race. Tests of
the shipper thread itself ask for a short ``CLICK_SHIP_INTERVAL``.
"""

import os
import shutil
import threading

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from tests import browser as chromium
from tests import nginx, services
from tests.broker import purge_queues
from tests.browser import artifacts, browser  # noqa: F401  (fixtures for the browser tests)
from tests.dashboard_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, logged_in
from tests.processes import RedisServer, WebServer, celery_beat, celery_worker, refusing_port
from webapp import create_app
from webapp.auth.tokens import issue_token
from webapp.auth.users import create_user
from webapp.celery_app import celery_of
from webapp.clicks.click_log import app_click_log
from webapp.config import TASK_QUEUES
from webapp.extensions import db
from webapp.links.cache import local_link_cache
from webapp.pageviews.ingest import app_pageview_log

# Under pytest-xdist each worker (gw0, gw1, ...) gets a database and a vhost of its own.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
TEST_DATABASE_URL = services.worker_database_url(os.environ.get("TEST_DATABASE_URL"), XDIST_WORKER)
TEST_BROKER_URL = services.worker_broker_url(os.environ.get("TEST_BROKER_URL"), XDIST_WORKER)
IN_PROCESS_CONFIG = {"TESTING": True, "CLICK_SHIP_INTERVAL": 3600}
# Under CI a test that needs Chromium, nginx or PostgreSQL fails instead of skipping:
# a green run must have run them (CI's SQLite pass deselects the PostgreSQL-only ones).
CI = os.environ.get("CI") == "true"
REQUIRED_IN_CI = ("browser", "nginx", "postgres")


def pytest_collection_modifyitems(items):
    """Skip, saying why, the tests whose service is missing here (``browser``, ``nginx``, ``postgres`` marks)."""
    missing = {
        "browser": chromium.missing_reason(),
        "nginx": nginx.missing_reason(),
        "postgres": None if TEST_DATABASE_URL else "needs PostgreSQL: set TEST_DATABASE_URL",
    }
    for item in items:
        for mark, reason in missing.items():
            if reason and item.get_closest_marker(mark):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true, a skipped browser, nginx or PostgreSQL test is a failure: its service must be there."""
    report = yield
    if CI and report.skipped and any(item.get_closest_marker(mark) for mark in REQUIRED_IN_CI):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI=true: this test must run, not skip ({reason})"
    return report


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(str(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server):
    if redis_server.process is None:  # a test stopped it and failed before restarting
        redis_server.start()
    client = redis_server.client()
    client.flushall()
    return client


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory):
    """Migrate once per session: a SQLite template file, or the PostgreSQL test database."""
    if TEST_DATABASE_URL:
        services.ensure_database(TEST_DATABASE_URL)
        reset_postgres_schema(TEST_DATABASE_URL)
        migrate(TEST_DATABASE_URL, str(tmp_path_factory.mktemp("instance")))
        return TEST_DATABASE_URL
    template = tmp_path_factory.mktemp("template") / "template.sqlite3"
    migrate(f"sqlite:///{template}", str(tmp_path_factory.mktemp("instance")))
    return str(template)


def migrate(url, instance_path):
    os.environ["CLICKBOARD_INSTANCE_PATH"] = instance_path
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        db.engine.dispose()


def reset_postgres_schema(url):
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def database_url(migrated_database, tmp_path):
    return fresh_database(migrated_database, tmp_path)


def fresh_database(migrated_database, directory):
    """An empty migrated database: a copy of the SQLite template in ``directory``, or PostgreSQL truncated."""
    if TEST_DATABASE_URL:
        tables = ", ".join(f'"{table.name}"' for table in db.metadata.sorted_tables)
        engine = create_engine(TEST_DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return TEST_DATABASE_URL
    path = directory / "clickboard.sqlite3"
    shutil.copy(migrated_database, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def broker_url(redis_server):
    """The Celery broker: this worker's RabbitMQ vhost with TEST_BROKER_URL, else the test Redis."""
    if TEST_BROKER_URL:
        services.ensure_vhost(TEST_BROKER_URL)
        return TEST_BROKER_URL
    return redis_server.url


@pytest.fixture
def app_env(database_url, broker_url, redis_client, redis_server, tmp_path):
    """The environment of the app under test, shared by in-process app and subprocesses."""
    return process_env(database_url, broker_url, redis_server, tmp_path)


@pytest.fixture(scope="module")
def shared_app_env(migrated_database, broker_url, redis_server, tmp_path_factory):
    """``app_env`` for a whole module of tests that only read what its first fixture seeds.

    One database and instance folder for the module; its tests must not ask
    for ``app`` (or anything built on it), which would empty the database.
    """
    directory = tmp_path_factory.mktemp("shared")
    with redis_server.client() as client:
        client.flushall()  # what earlier modules' tests left (cached links, heartbeats)
    return process_env(fresh_database(migrated_database, directory), broker_url, redis_server, directory)


def process_env(database_url, broker_url, redis_server, directory):
    instance = directory / "instance"
    instance.mkdir(exist_ok=True)
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url,
        "CELERY_BROKER_URL": broker_url,
        "CLICKBOARD_INSTANCE_PATH": str(instance),
        "SECRET_KEY": "test-secret-key",
        "CLICK_DRAIN_INTERVAL": "0.5",
        "CLICK_RECLAIM_IDLE_SECONDS": "3",
        "REDIS_RETRY_AFTER": "0.5",
        # One round of PBKDF2 instead of scrypt: hundreds of users a run, none a real secret.
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",
    }


@pytest.fixture
def app(app_env, monkeypatch):
    for name, value in app_env.items():
        monkeypatch.setenv(name, value)
    if TEST_BROKER_URL:
        # RabbitMQ keeps its queues between tests (Redis, the default broker, is flushed).
        purge_queues(
            celery_of(create_app({"TESTING": True, "HOST_QUEUES": ["a", "b"]})),
            [*TASK_QUEUES, "host.a", "host.b"],
        )
    app = create_app(IN_PROCESS_CONFIG)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()
    stop_click_logs([app])


def stop_click_logs(apps):
    for stopped in apps:
        stop_click_log(app_click_log(stopped))
        stop_click_log(app_pageview_log(stopped))
        local_link_cache(stopped).stop()


def stop_click_log(click_log):
    """Stop a click log's shipper thread and wait for it, so it ships nothing into the next test."""
    click_log.stop()
    for thread in threading.enumerate():
        # A running Thread keeps its target; the shipper's is the log's bound method.
        if getattr(getattr(thread, "_target", None), "__self__", None) is click_log:
            thread.join(5)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def user(app):
    return create_user("owner@example.com", "correct horse battery", is_admin=False)


@pytest.fixture
def api_headers(user):
    _, plaintext = issue_token(user, "tests")
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def admin_user(app):
    return create_user(ADMIN_EMAIL, ADMIN_PASSWORD, is_admin=True)


@pytest.fixture
def operator(admin_user, app):
    """An admin, logged in: the ops panel is theirs only."""
    return logged_in(app, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
def admin_headers(app):
    """An admin's API token: what a monitoring system uses to see /healthz in detail."""
    admin = create_user("monitor@example.com", "a monitoring password", is_admin=True)
    _, plaintext = issue_token(admin, "monitoring")
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def processes(app_env, tmp_path):
    """Start real processes with the test's environment; all are stopped at teardown.

    ``processes.worker(**env)``, ``processes.beat(**env)`` and
    ``processes.web(**env)`` each return a started process; keyword arguments
    override environment variables for that process only.
    """
    started = []

    class Starter:
        @staticmethod
        def environment(overrides):
            return {**os.environ, **app_env, **{key: str(value) for key, value in overrides.items()}}

        def worker(self, name="worker", queues="clicks,reports,default", concurrency=1, **env):
            proc = celery_worker(self.environment(env), str(tmp_path), queues, concurrency, name)
            started.append(proc)
            return proc.start()

        def beat(self, **env):
            proc = celery_beat(self.environment(env), str(tmp_path))
            started.append(proc)
            return proc.start()

        def web(self, workers=2, **env):
            proc = WebServer(self.environment(env), str(tmp_path), workers=workers)
            started.append(proc)
            return proc.start()

    yield Starter()
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def make_app(app):
    """Build another app on the test's database, Redis and instance folder, with config overrides.

    ``make_app(CLICK_CAPTURE_MODE="task")`` returns the new app with its app
    context pushed (so ``db``, ``service`` and ``current_app`` use it); the
    ``app`` fixture's own app is unchanged underneath. Popped at teardown.
    Objects loaded before belong to the ``app`` fixture's session, which a
    commit under the new app does not flush: load them again to change them.
    """
    made = []

    def make(**overrides):
        other = create_app({**IN_PROCESS_CONFIG, **overrides})
        context = other.app_context()
        context.push()
        made.append((other, context))
        return other

    yield make
    for _, context in reversed(made):
        db.session.remove()
        context.pop()
    # The outer session may hold connections of the apps made here (it binds
    # to whichever app is current): end it before disposing their engines.
    db.session.remove()
    for other, _ in made:
        with other.app_context():
            db.engine.dispose()
    stop_click_logs([other for other, _ in made])


@pytest.fixture
def dead_redis_url():
    """A Redis URL nothing listens on: connections are refused at once.

    The port stays bound (never listening) for the test, so no other
    process can start listening there meanwhile.
    """
    with refusing_port() as sock:
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
