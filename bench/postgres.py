"""The scratch PostgreSQL database of the benchmarks that run on PostgreSQL.

The server: ``BENCH_DATABASE_URL`` if set (``off`` skips PostgreSQL), else
the local one at ``postgresql://postgres@127.0.0.1:5432/postgres`` if it
answers. That URL names a database to connect to for ``CREATE DATABASE`` /
``DROP DATABASE``; it is never written to. The bench's own database,
``clickboard_bench``, is dropped (if a crashed run left it) and created empty
for each phase, migrated like the SQLite one, and dropped at the end. No
other database is touched.
"""

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from bench.servers import Unreachable, find_server

ENV_VAR = "BENCH_DATABASE_URL"
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCRATCH_NAME = "clickboard_bench"


def server_url():
    """(admin URL or None, why it is None); see ``bench.servers``."""
    return find_server(ENV_VAR, LOCAL_URL, "PostgreSQL", probe)


def probe(url):
    if make_url(url).get_backend_name() != "postgresql":
        raise ValueError(f"{ENV_VAR} must be a postgresql:// URL, not {make_url(url).drivername}://")
    try:
        with psycopg.connect(conninfo(make_url(url)), connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        raise Unreachable(exc) from exc


def conninfo(url):
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class ScratchDatabase:
    def __init__(self, admin_url, name=SCRATCH_NAME):
        url = make_url(admin_url)
        if url.database == name:
            raise ValueError(f"{ENV_VAR} must name a database to connect from (e.g. postgres), not {name}")
        self.name = name
        self.admin = url.set(drivername="postgresql")
        self.url = self.admin.set(database=name).render_as_string(hide_password=False)

    def execute(self, statement):
        with psycopg.connect(conninfo(self.admin), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    def recreate(self):
        """Drop and create the scratch database; return its URL."""
        self.drop()
        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        return self.url

    def drop(self):
        # FORCE: ends the connections our own in-process apps and workers still hold.
        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))

    def version(self):
        with psycopg.connect(conninfo(self.admin), connect_timeout=10) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]
