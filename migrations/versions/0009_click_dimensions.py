"""click dimensions: hourly rollups of referrers, browsers, OS, devices, bots and countries; user time zones

Revision ID: 0009_click_dimensions
Revises: 0008_link_management
Create Date: 2026-11-29 00:40:00

The daily referrer and agent rollups become rows of the hourly dimension
rollup (at midnight UTC of their day: their hours are unknown), so tables
keep their history; clicks recorded before this have no OS, device or
country rollups.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009_click_dimensions'
down_revision = '0008_link_management'
branch_labels = None
depends_on = None


def midnight(column):
    """A DATE column as the DateTime SQLAlchemy writes (SQLite keeps both as text)."""
    if op.get_bind().dialect.name == 'sqlite':
        return f"{column} || ' 00:00:00.000000'"
    return f"CAST({column} AS timestamp)"


def upgrade():
    op.create_table(
        'link_hourly_dimension',
        sa.Column('link_id', sa.Integer(), nullable=False),
        sa.Column('hour', sa.DateTime(), nullable=False),
        sa.Column('dimension', sa.String(length=16), nullable=False),
        sa.Column('value', sa.String(length=255), nullable=False),
        sa.Column('clicks', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['link_id'], ['link.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('link_id', 'dimension', 'hour', 'value'),
    )
    op.execute(
        "INSERT INTO link_hourly_dimension (link_id, hour, dimension, value, clicks) "
        f"SELECT link_id, {midnight('day')}, 'referrer', referrer_host, clicks FROM link_daily_referrers"
    )
    op.execute(
        "INSERT INTO link_hourly_dimension (link_id, hour, dimension, value, clicks) "
        f"SELECT link_id, {midnight('day')}, CASE WHEN is_bot THEN 'bot' ELSE 'browser' END, agent, clicks "
        "FROM link_daily_agents"
    )
    op.drop_table('link_daily_referrers')
    op.drop_table('link_daily_agents')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('time_zone')
    op.create_table(
        'link_daily_agents',
        sa.Column('link_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('agent', sa.String(length=64), nullable=False),
        sa.Column('is_bot', sa.Boolean(), nullable=False),
        sa.Column('clicks', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['link_id'], ['link.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('link_id', 'day', 'agent', 'is_bot'),
    )
    op.create_table(
        'link_daily_referrers',
        sa.Column('link_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('referrer_host', sa.String(length=255), nullable=False),
        sa.Column('clicks', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['link_id'], ['link.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('link_id', 'day', 'referrer_host'),
    )
    day = "date(hour)" if op.get_bind().dialect.name == 'sqlite' else "CAST(hour AS date)"
    op.execute(
        "INSERT INTO link_daily_referrers (link_id, day, referrer_host, clicks) "
        f"SELECT link_id, {day}, value, SUM(clicks) FROM link_hourly_dimension "
        f"WHERE dimension = 'referrer' GROUP BY link_id, {day}, value"
    )
    op.execute(
        "INSERT INTO link_daily_agents (link_id, day, agent, is_bot, clicks) "
        f"SELECT link_id, {day}, substr(value, 1, 64), dimension = 'bot', SUM(clicks) FROM link_hourly_dimension "
        f"WHERE dimension IN ('browser', 'bot') GROUP BY link_id, {day}, substr(value, 1, 64), dimension"
    )
    op.drop_table('link_hourly_dimension')
