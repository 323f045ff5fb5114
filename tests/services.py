"""The PostgreSQL database and RabbitMQ vhost of a test run, one of each per xdist worker.

``TEST_DATABASE_URL`` and ``TEST_BROKER_URL`` name a server and a base name;
under pytest-xdist, worker ``gw0`` uses ``<name>_gw0`` on the same server,
created on first use, so the workers never share tables or queues.
"""

import shutil
import subprocess
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from sqlalchemy import create_engine, make_url, text


def worker_database_url(url, worker):
    """``postgresql://.../test`` → ``postgresql://.../test_gw0`` for worker gw0; unchanged without xdist."""
    if not url or not worker:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}_{worker}"))


def worker_broker_url(url, worker):
    """``amqp://.../tests`` → ``amqp://.../tests_gw0`` (the default vhost ``/`` → ``tests_gw0``)."""
    if not url or not worker:
        return url
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]).strip("/") or "tests"
    return urlunsplit(parts._replace(path="/" + quote(f"{vhost}_{worker}", safe="")))


def ensure_database(url):
    """CREATE DATABASE for ``url`` on its server if it does not exist yet."""
    target = make_url(url).set(drivername="postgresql+psycopg")
    server = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            )
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        server.dispose()


def ensure_vhost(url):
    """Create the URL's RabbitMQ vhost and give its user every permission there (rabbitmqctl)."""
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) or "/"
    if vhost == "/":
        return
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        raise RuntimeError(f"rabbitmqctl not found: cannot create the vhost {vhost!r} of {parts.hostname}")
    vhosts = run([rabbitmqctl, "-q", "list_vhosts", "name"]).split()
    if vhost not in vhosts:
        run([rabbitmqctl, "-q", "add_vhost", vhost])
    run([rabbitmqctl, "-q", "set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*"])


def run(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout
