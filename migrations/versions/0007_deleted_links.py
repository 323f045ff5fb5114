"""deleted links: tell a deleted link's late clicks from another install's

Revision ID: 0006_deleted_links
Revises: 0006_pipeline_counters
Create Date: 2026-11-22 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_deleted_links'
down_revision = '0006_pipeline_counters'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'deleted_link',
        sa.Column('link_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('deleted_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('link_id'),
    )


def downgrade():
    op.drop_table('deleted_link')
