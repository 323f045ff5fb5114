"""pipeline counters: drained and dropped totals that outlive Redis

Revision ID: 0006_pipeline_counters
Revises: 0005_session_epoch
Create Date: 2026-11-28 20:05:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_pipeline_counters'
down_revision = '0005_session_epoch'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'pipeline_counter',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('shard', sa.Integer(), nullable=False),
        sa.Column('value', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name', 'shard'),
    )


def downgrade():
    op.drop_table('pipeline_counter')
