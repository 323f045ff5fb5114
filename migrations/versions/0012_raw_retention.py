"""raw retention: on PostgreSQL, click and page_view partitioned by month on created_at

Revision ID: 0012_raw_retention
Revises: 0011_sites
Create Date: 2026-11-29 04:10:00

Only PostgreSQL changes: SQLite has no partitions, and its pruning deletes in
batches by id (webapp/retention.py). Each table is rebuilt: the old one is
locked against writes (drains wait, nothing written meanwhile is lost), a
partitioned one is created with a partition per month of its rows up to two
months ahead plus a DEFAULT one, the rows are copied, the old table dropped.

A unique key of a partitioned table must include its partition key, so the
primary keys become (id, created_at) and the event-id uniqueness
(event_id, created_at). A replayed click or page view carries the time it was
taken in its line, so a replay still collides and the drains' duplicate
handling is unchanged; ids still come from the same sequence.

Self-contained on purpose (no import of webapp.retention): a migration must
do tomorrow what it did today.
"""
from datetime import datetime, timedelta, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_raw_retention'
down_revision = '0011_sites'
branch_labels = None
depends_on = None

MONTHS_AHEAD = 2

TABLES = {
    'click': {
        'columns': """
            id BIGINT NOT NULL DEFAULT nextval('click_id_seq'::regclass),
            event_id VARCHAR(32) NOT NULL,
            link_id INTEGER NOT NULL,
            created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
            referrer VARCHAR(512),
            user_agent VARCHAR(512),
            ip_anonymised VARCHAR(64),
            is_bot BOOLEAN NOT NULL,
            CONSTRAINT click_link_id_fkey FOREIGN KEY (link_id) REFERENCES link (id) ON DELETE CASCADE""",
        'names': 'id, event_id, link_id, created_at, referrer, user_agent, ip_anonymised, is_bot',
        'plain_keys': 'CONSTRAINT click_pkey PRIMARY KEY (id), CONSTRAINT click_event_id_key UNIQUE (event_id)',
        'partitioned_keys': 'CONSTRAINT click_pkey PRIMARY KEY (id, created_at),'
        ' CONSTRAINT click_event_id_key UNIQUE (event_id, created_at)',
        'plain_indexes': ['CREATE INDEX ix_click_link_created ON click (link_id, created_at)'],
        'partitioned_indexes': ['CREATE INDEX ix_click_link_created ON click (link_id, created_at)'],
        'old_indexes': ['click_pkey', 'click_event_id_key', 'ix_click_link_created'],
    },
    'page_view': {
        'columns': """
            id BIGINT NOT NULL DEFAULT nextval('page_view_id_seq'::regclass),
            url VARCHAR(2048) NOT NULL,
            created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
            response_time_ms INTEGER NOT NULL,
            event_id VARCHAR(32),
            site_id INTEGER,
            referrer VARCHAR(512),
            load_time_ms INTEGER,
            CONSTRAINT fk_page_view_site FOREIGN KEY (site_id) REFERENCES site (id) ON DELETE SET NULL""",
        'names': 'id, url, created_at, response_time_ms, event_id, site_id, referrer, load_time_ms',
        'plain_keys': 'CONSTRAINT page_view_pkey PRIMARY KEY (id)',
        'partitioned_keys': 'CONSTRAINT page_view_pkey PRIMARY KEY (id, created_at)',
        'plain_indexes': [
            'CREATE INDEX ix_page_view_created_at ON page_view (created_at)',
            'CREATE INDEX ix_page_view_site_created ON page_view (site_id, created_at)',
            'CREATE UNIQUE INDEX ux_page_view_event_id ON page_view (event_id) WHERE event_id IS NOT NULL',
        ],
        'partitioned_indexes': [
            'CREATE INDEX ix_page_view_created_at ON page_view (created_at)',
            'CREATE INDEX ix_page_view_site_created ON page_view (site_id, created_at)',
            'CREATE UNIQUE INDEX ux_page_view_event_id ON page_view (event_id, created_at)'
            ' WHERE event_id IS NOT NULL',
        ],
        'old_indexes': ['page_view_pkey', 'ix_page_view_created_at', 'ix_page_view_site_created', 'ux_page_view_event_id'],
    },
}


def month_start(moment):
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start):
    return (start + timedelta(days=32)).replace(day=1)


def months_to_create(oldest):
    """Month starts from the oldest row's month to this month plus MONTHS_AHEAD."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    month, last = month_start(min(oldest or now, now)), month_start(now)
    for _ in range(MONTHS_AHEAD):
        last = next_month(last)
    while month <= last:
        yield month
        month = next_month(month)


def set_aside(table, spec):
    """Lock the table against writes until commit and free its name and index names."""
    op.execute(f'LOCK TABLE {table} IN EXCLUSIVE MODE')
    op.execute(f'ALTER TABLE {table} RENAME TO {table}_old')
    for index in spec['old_indexes']:
        op.execute(f'ALTER INDEX {index} RENAME TO {index}_old')


def move_rows_and_finish(table, spec, indexes):
    op.execute(f'ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id')
    op.execute(f"INSERT INTO {table} ({spec['names']}) SELECT {spec['names']} FROM {table}_old")
    op.execute(f'DROP TABLE {table}_old')
    for statement in indexes:
        op.execute(statement)  # after the copy: one index build instead of one insert per row


def partition(table, spec):
    set_aside(table, spec)
    oldest = op.get_bind().scalar(sa.text(f'SELECT min(created_at) FROM {table}_old'))
    op.execute(f"CREATE TABLE {table} ({spec['columns']}, {spec['partitioned_keys']}) PARTITION BY RANGE (created_at)")
    for month in months_to_create(oldest):
        op.execute(
            f"CREATE TABLE {table}_p{month:%Y_%m} PARTITION OF {table}"
            f" FOR VALUES FROM ('{month:%Y-%m-%d}') TO ('{next_month(month):%Y-%m-%d}')"
        )
    op.execute(f'CREATE TABLE {table}_default PARTITION OF {table} DEFAULT')
    move_rows_and_finish(table, spec, spec['partitioned_indexes'])


def unpartition(table, spec):
    set_aside(table, spec)
    op.execute(f"CREATE TABLE {table} ({spec['columns']}, {spec['plain_keys']})")
    move_rows_and_finish(table, spec, spec['plain_indexes'])  # the partitions go with the parent


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, spec in TABLES.items():
        partition(table, spec)


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, spec in TABLES.items():
        unpartition(table, spec)
