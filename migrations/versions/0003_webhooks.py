"""webhooks: the jobs' callback_url and the webhook delivery outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 21:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('callback_url', sa.Text(), nullable=True))
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('job_id', sa.String(length=32), sa.ForeignKey('jobs.id', ondelete='CASCADE'), nullable=False),
        sa.Column('event_type', sa.String(length=32), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('payload', sa.Text(), nullable=True),
        sa.Column('attempts', sa.JSON(), nullable=False),
        sa.Column('schedule_step', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('lock_token', sa.String(length=32), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_webhook_deliveries_job_id', 'webhook_deliveries', ['job_id'])
    op.create_index('ix_webhook_deliveries_state', 'webhook_deliveries', ['state'])
    op.create_index('ix_webhook_deliveries_next_attempt_at', 'webhook_deliveries', ['next_attempt_at'])


def downgrade() -> None:
    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('callback_url')
