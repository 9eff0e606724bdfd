"""api keys: who may call the API, with their limits; every job belongs to the key that made it

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 22:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'api_keys',
        sa.Column('id', sa.String(16), primary_key=True),
        sa.Column('name', sa.String(128), nullable=False),
        sa.Column('secret_hash', sa.String(64), nullable=False),
        sa.Column('is_admin', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('requests_per_minute', sa.Integer(), nullable=True),
        sa.Column('max_jobs_in_flight', sa.Integer(), nullable=True),
        sa.Column('audio_seconds_per_day', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column('jobs', sa.Column('api_key_id', sa.String(16), nullable=True))
    # A tenant's job list, newest first, and its jobs in flight.
    op.create_index('ix_jobs_api_key_id_created_at', 'jobs', ['api_key_id', 'created_at'])
    op.create_index('ix_jobs_api_key_id_status', 'jobs', ['api_key_id', 'status'])


def downgrade() -> None:
    op.drop_index('ix_jobs_api_key_id_status', table_name='jobs')
    op.drop_index('ix_jobs_api_key_id_created_at', table_name='jobs')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('api_key_id')
    op.drop_table('api_keys')
