"""sites: the page-view tracker's sites (public key, allowed origins); page views carry their site, referrer and load time

Revision ID: 0011_sites
Revises: 0010_slug_tombstones
Create Date: 2026-11-29 01:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011_sites'
down_revision = '0010_slug_tombstones'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'site',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('public_key', sa.String(length=32), nullable=False),
        sa.Column('origins', sa.JSON(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['owner_id'], ['user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('public_key'),
    )
    with op.batch_alter_table('page_view', schema=None) as batch_op:
        batch_op.add_column(sa.Column('site_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('referrer', sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column('load_time_ms', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_page_view_site', 'site', ['site_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index('ix_page_view_site_created', ['site_id', 'created_at'])


def downgrade():
    with op.batch_alter_table('page_view', schema=None) as batch_op:
        batch_op.drop_index('ix_page_view_site_created')
        batch_op.drop_constraint('fk_page_view_site', type_='foreignkey')
        batch_op.drop_column('load_time_ms')
        batch_op.drop_column('referrer')
        batch_op.drop_column('site_id')
    op.drop_table('site')
