"""day histograms: the slow-page report's histograms without the page, and an index to rank the slowest pages from a day's slow rows

Revision ID: 0014_day_histograms
Revises: 0013_pageview_histograms
Create Date: 2026-11-29 07:45:00

At a hundred million views the page histograms hold about sixteen million
rows, a quarter million a day: reading them whole for a day's totals and
percentiles took seconds per day. page_view_day_histogram holds the same
counts without the page (a few thousand rows a day), backfilled here from
page_view_histogram in one INSERT ... SELECT ... GROUP BY; the index on
(day, response_time_ms) lets the slowest pages be ranked from the slow rows
alone. Both are built from what the histograms already hold, so views the
drain writes meanwhile wait for the table lock (the spool keeps them).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014_day_histograms'
down_revision = '0013_pageview_histograms'
branch_labels = None
depends_on = None

DAY_HISTOGRAMS = """
INSERT INTO page_view_day_histogram (day, site_id, response_time_ms, views)
SELECT day, site_id, response_time_ms, sum(views)
FROM page_view_histogram
GROUP BY day, site_id, response_time_ms
"""


def upgrade():
    op.create_table(
        'page_view_day_histogram',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('response_time_ms', sa.Integer(), nullable=False),
        sa.Column('views', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('day', 'site_id', 'response_time_ms'),
    )
    op.execute(DAY_HISTOGRAMS)
    op.create_index(
        'ix_page_view_histogram_day_ms', 'page_view_histogram', ['day', 'response_time_ms'], unique=False
    )


def downgrade():
    op.drop_index('ix_page_view_histogram_day_ms', table_name='page_view_histogram')
    op.drop_table('page_view_day_histogram')
