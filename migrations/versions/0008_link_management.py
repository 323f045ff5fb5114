"""link management: titles, tags, access limits, aliases, change history, refusals

Revision ID: 0007_link_management
Revises: 0007_deleted_links
Create Date: 2026-11-28 20:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008_link_management'
down_revision = '0007_deleted_links'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('link', schema=None) as batch_op:
        batch_op.add_column(sa.Column('title', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('max_clicks', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('link_counter', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refused', sa.BigInteger(), server_default='0', nullable=False))
    op.create_table(
        'link_tag',
        sa.Column('link_id', sa.Integer(), nullable=False),
        sa.Column('tag', sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(['link_id'], ['link.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('link_id', 'tag'),
    )
    op.create_index(op.f('ix_link_tag_tag'), 'link_tag', ['tag'], unique=False)
    op.create_table(
        'link_alias',
        sa.Column('slug', sa.String(length=64), nullable=False),
        sa.Column('link_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['link_id'], ['link.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('slug'),
    )
    op.create_index(op.f('ix_link_alias_link_id'), 'link_alias', ['link_id'], unique=False)
    op.create_table(
        'link_change',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('link_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('changed_at', sa.DateTime(), nullable=False),
        sa.Column('changes', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['link_id'], ['link.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_link_change_link_changed', 'link_change', ['link_id', 'changed_at'], unique=False)


def downgrade():
    op.drop_index('ix_link_change_link_changed', table_name='link_change')
    op.drop_table('link_change')
    op.drop_index(op.f('ix_link_alias_link_id'), table_name='link_alias')
    op.drop_table('link_alias')
    op.drop_index(op.f('ix_link_tag_tag'), table_name='link_tag')
    op.drop_table('link_tag')
    with op.batch_alter_table('link_counter', schema=None) as batch_op:
        batch_op.drop_column('refused')
    with op.batch_alter_table('link', schema=None) as batch_op:
        batch_op.drop_column('max_clicks')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('title')
