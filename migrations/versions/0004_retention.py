"""retention: when a finished job's audio and transcript were deleted

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 21:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('data_expired_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_jobs_finished_at', 'jobs', ['finished_at'])


def downgrade() -> None:
    op.drop_index('ix_jobs_finished_at', table_name='jobs')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('data_expired_at')
