"""slug tombstones: a deleted link's slugs stay reserved for its owner

Revision ID: 0010_slug_tombstones
Revises: 0009_click_dimensions
Create Date: 2026-11-29 01:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010_slug_tombstones'
down_revision = '0009_click_dimensions'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'slug_tombstone',
        sa.Column('slug', sa.String(length=64), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('deleted_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['owner_id'], ['user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('slug'),
    )


def downgrade():
    op.drop_table('slug_tombstone')
