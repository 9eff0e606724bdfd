"""queue indexes: queue position, backlog and filtered listing answered from indexes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 23:50:00

A queued job's position is the count (and the audio total) of the queued jobs of its queue
created before it; the (queue, status, created_at, id) prefix finds them in order and the
trailing audio_duration_s lets the sum come from the index alone (no table reads, SQLite
and PostgreSQL alike). `GET /v1/jobs?status=...` pages newest first: (status, created_at, id)
gives it in index order instead of sorting every job of that status.
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_jobs_queue_status_created_at', 'jobs',
                    ['queue', 'status', 'created_at', 'id', 'audio_duration_s'])
    op.create_index('ix_jobs_status_created_at', 'jobs', ['status', 'created_at', 'id'])


def downgrade() -> None:
    op.drop_index('ix_jobs_status_created_at', table_name='jobs')
    op.drop_index('ix_jobs_queue_status_created_at', table_name='jobs')
