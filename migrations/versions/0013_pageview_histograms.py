"""pageview histograms: daily response-time histograms of page views (the slow-page report's rollup), built from the page_view rows already there

Revision ID: 0013_pageview_histograms
Revises: 0011_sites
Create Date: 2026-11-29 04:30:00

The backfill is one INSERT ... SELECT ... GROUP BY per table, on the
server: minutes at a hundred million rows on PostgreSQL, where the
upgrade holds page_view's rows still (the drain waits; the spool keeps
views meanwhile). Self-contained on purpose: a migration must keep
meaning what it meant when it ran, so the statements are spelled out here
rather than taken from webapp.pageviews.histograms, which holds the same
rule for seeded rows.
"""
import hashlib

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013_pageview_histograms'
down_revision = '0012_raw_retention'
branch_labels = None
depends_on = None

URLS = """
INSERT INTO page_view_url (url_key, url)
SELECT md5(url), url FROM (SELECT DISTINCT url FROM page_view) AS urls
"""
HISTOGRAMS = """
INSERT INTO page_view_histogram (day, url_key, site_id, response_time_ms, views)
SELECT day, md5(url), site_id, response_time_ms, views FROM (
    SELECT date(created_at) AS day, coalesce(site_id, 0) AS site_id, url, response_time_ms,
           count(*) AS views
    FROM page_view
    GROUP BY date(created_at), coalesce(site_id, 0), url, response_time_ms
) AS grouped
"""


def md5_hex(value):
    return hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()


def upgrade():
    op.create_table(
        'page_view_histogram',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('url_key', sa.String(length=32), nullable=False),
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('response_time_ms', sa.Integer(), nullable=False),
        sa.Column('views', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('day', 'url_key', 'site_id', 'response_time_ms'),
    )
    op.create_table(
        'page_view_url',
        sa.Column('url_key', sa.String(length=32), nullable=False),
        sa.Column('url', sa.String(length=2048), nullable=False),
        sa.PrimaryKeyConstraint('url_key'),
    )
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        bind.connection.driver_connection.create_function('md5', 1, md5_hex, deterministic=True)
    op.execute(URLS)
    op.execute(HISTOGRAMS)


def downgrade():
    op.drop_table('page_view_url')
    op.drop_table('page_view_histogram')
