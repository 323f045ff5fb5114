"""Everything the benchmarks run against, started in one temp dir and always torn down.

``Stack`` owns an embedded redis-server on a free port, a migrated SQLite
template (each phase gets its own copy, so no phase sees another's rows), the
scratch PostgreSQL database and the RabbitMQ broker when they are there (see
``bench.postgres`` and ``bench.rabbitmq``) and every gunicorn / Celery process
started through it.
``close()`` stops them all, in reverse order, whatever happened before (error,
Ctrl-C, SIGTERM), and drops the scratch database.
"""

import contextlib
import logging
import os
import shutil
import signal
import tempfile

import requests
from flask_migrate import upgrade

from bench import postgres, rabbitmq
from bench.servers import hidden
from tests.processes import RedisServer, WebServer, celery_beat, celery_worker, wait_for
from webapp import create_app
from webapp.extensions import db

SECRET_KEY = "bench-secret-key"


class Server(WebServer):
    """``WebServer`` that counts any HTTP answer from ``/`` as up (a login redirect, a 404 ...)."""

    def answers(self):
        if not self.running:
            raise RuntimeError(f"gunicorn exited:\n{self.log_text()[-3000:]}")
        try:
            return requests.get(self.url + "/", timeout=1, allow_redirects=False).status_code < 500
        except requests.ConnectionError:
            return False


class Stack:
    def __init__(self, keep=False):
        # Found first, so a bad BENCH_DATABASE_URL fails before the long phases, not after them.
        self.postgres_url, self.postgres_missing = postgres.server_url()
        self.rabbitmq_url, self.rabbitmq_missing = rabbitmq.broker_url()
        self.scratch = postgres.ScratchDatabase(self.postgres_url) if self.postgres_url else None
        self.scratch_created = False
        self.keep = keep
        self.root = tempfile.mkdtemp(prefix="clickboard-bench-")
        self.instance = os.path.join(self.root, "instance")
        self.exit = contextlib.ExitStack()
        self.apps = []
        self.seeded = {}  # page views -> (URL, figures) of a database seeded with that many (bench.seed)
        os.makedirs(self.instance)
        # The in-process apps read the same variables the subprocesses get.
        self.saved_environ = dict(os.environ)
        os.environ.update(self.base_env())
        try:
            self.redis = RedisServer(os.path.join(self.root, "redis"))
            self.exit.callback(self.redis.stop)
            self.redis.start()
            self.template = os.path.join(self.root, "template.sqlite3")
            self.migrate(f"sqlite:///{self.template}")
        except BaseException:
            self.close()
            raise

    def base_env(self):
        return {
            "CLICKBOARD_INSTANCE_PATH": self.instance,
            "SECRET_KEY": SECRET_KEY,
            "CLICK_LOG_DIR": os.path.join(self.root, "clicks", "bench"),
        }

    def env(self, database_url, broker_url=None, **overrides):
        """The environment of a subprocess: ours, the stack's, then ``overrides``.

        The broker is the stack's Redis unless ``broker_url`` names another.
        """
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": self.redis.url}
        env["CELERY_BROKER_URL"] = broker_url or self.redis.url
        for name in ("GUNICORN_ACCESS_LOG", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_CONTROL_SOCKET"):
            env.pop(name, None)  # the bench decides these, not the caller's shell
        # No worker recycling while measuring: a replaced worker takes its CPU time with it.
        env["GUNICORN_MAX_REQUESTS"] = "0"
        env.update({name: str(value) for name, value in overrides.items()})
        return env

    def migrate(self, url):
        app = self.app(url)
        logging.disable(logging.INFO)  # alembic's "Running upgrade ..." lines
        try:
            with app.app_context():
                upgrade()
                db.engine.dispose()
        finally:
            logging.disable(logging.NOTSET)

    def fresh_database(self, name, backend="sqlite"):
        """The URL of an empty, migrated database: a SQLite file, or the PostgreSQL scratch one."""
        if backend == "postgresql":
            return self.fresh_postgres()
        path = os.path.join(self.root, f"{name}.sqlite3")
        shutil.copy(self.template, path)
        return f"sqlite:///{path}"

    def describe_services(self):
        """One line each: which database and broker servers the bench found beside its own Redis."""
        if self.postgres_url:
            yield f"PostgreSQL {self.scratch.version()} at {hidden(self.postgres_url)}"
        else:
            yield f"PostgreSQL: skipped, {self.postgres_missing}"
        if self.rabbitmq_url:
            yield f"RabbitMQ at {hidden(self.rabbitmq_url)}"
        else:
            yield f"RabbitMQ: skipped, {self.rabbitmq_missing}"

    def fresh_postgres(self):
        if not self.scratch_created:
            self.scratch_created = True
            self.exit.callback(self.scratch.drop)  # runs after the workers started later have stopped
        url = self.scratch.recreate()
        self.migrate(url)
        return url

    def app(self, database_url, broker_url=None, **config):
        """An in-process app on ``database_url`` and the stack's Redis (for setup and drains).

        Dispose of its engine (``release``) before the database is dropped or replaced.
        """
        urls = {"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": self.redis.url}
        app = create_app({**urls, "CELERY_BROKER_URL": broker_url or self.redis.url, **config})
        self.apps.append(app)
        return app

    def release(self, app):
        with app.app_context():
            db.engine.dispose()

    def flush_redis(self):
        self.redis.client().flushall()

    def log_dir(self, name):
        path = os.path.join(self.root, "logs", name)
        os.makedirs(path, exist_ok=True)
        return path

    def web(self, name, database_url, app="wsgi:app", workers=2, broker_url=None, **env):
        """A started gunicorn (``gunicorn.conf.py`` with ``--workers``), stopped by ``close()``."""
        env = self.env(database_url, broker_url, **env)
        server = Server(env, self.log_dir(name), workers=workers, app=app)
        self.exit.callback(server.stop)
        return server.start()

    def worker(self, name, database_url, queues, concurrency, broker_url=None, **env):
        """A started Celery worker, ready to consume; stopped by ``close()``."""
        env = self.env(database_url, broker_url, **env)
        worker = celery_worker(env, self.log_dir(name), queues, concurrency, name)
        self.exit.callback(worker.stop)
        worker.start()

        def ready():
            if not worker.running:
                raise RuntimeError(f"celery worker exited:\n{worker.log_text()[-3000:]}")
            return " ready." in worker.log_text()

        wait_for(ready, timeout=60, interval=0.1, message=f"celery worker ready (log: {worker.log_path})")
        return worker

    def beat(self, name, database_url, **env):
        """A started Celery beat (the app's schedule: drains every CLICK_DRAIN_INTERVAL); stopped by ``close()``."""
        beat = celery_beat(self.env(database_url, **env), self.log_dir(name))
        self.exit.callback(beat.stop)
        return beat.start()

    def close(self):
        """Stop every process (ignoring further Ctrl-C meanwhile) and remove the temp dir."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for app in self.apps:
                with app.app_context(), contextlib.suppress(Exception):
                    db.engine.dispose()
            self.exit.close()
        finally:
            os.environ.clear()
            os.environ.update(self.saved_environ)
            if self.keep:
                print(f"kept {self.root} (logs under logs/)")
            else:
                shutil.rmtree(self.root, ignore_errors=True)
            signal.signal(signal.SIGINT, previous)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
