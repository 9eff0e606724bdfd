"""stream segments: the final sentences of live sessions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 20:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'stream_segments',
        sa.Column('job_id', sa.String(length=32), sa.ForeignKey('jobs.id', ondelete='CASCADE'), nullable=False),
        sa.Column('index', sa.Integer(), nullable=False),
        sa.Column('start_ms', sa.Integer(), nullable=False),
        sa.Column('end_ms', sa.Integer(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('job_id', 'index'),
    )


def downgrade() -> None:
    op.drop_table('stream_segments')
