"""The scratch PostgreSQL database of the drain benchmark (only with ``BENCH_DATABASE_URL``).

``BENCH_DATABASE_URL`` names a server and a database to connect to for
``CREATE DATABASE`` / ``DROP DATABASE`` (e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``);
it is never written to. The bench's own database, ``clickboard_bench``, is
dropped (if a crashed run left it) and created empty for each phase, migrated
like the SQLite one, and dropped at the end. No other database is touched.
"""

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

ENV_VAR = "BENCH_DATABASE_URL"
SCRATCH_NAME = "clickboard_bench"


class ScratchDatabase:
    def __init__(self, admin_url, name=SCRATCH_NAME):
        url = make_url(admin_url)
        if url.get_backend_name() != "postgresql":
            raise ValueError(f"{ENV_VAR} must be a postgresql:// URL, not {url.drivername}://")
        if url.database == name:
            raise ValueError(f"{ENV_VAR} must name a database to connect from (e.g. postgres), not {name}")
        self.name = name
        self.admin = url.set(drivername="postgresql")
        self.url = self.admin.set(database=name).render_as_string(hide_password=False)

    def execute(self, statement):
        conninfo = self.admin.render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
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
        conninfo = self.admin.render_as_string(hide_password=False)
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]
