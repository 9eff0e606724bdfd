"""speakers: enrolled voiceprints per key, with the model that made each embedding

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 00:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'speakers',
        sa.Column('id', sa.String(32), primary_key=True),
        # '' when auth is off (one shared namespace), as hotword sets do.
        sa.Column('owner_key_id', sa.String(16), nullable=False, server_default=''),
        sa.Column('name', sa.String(64), nullable=False),
        sa.Column('status', sa.String(16), nullable=False, server_default='enrolling'),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('embedding_model', sa.String(32), nullable=True),
        sa.Column('embedding', sa.JSON(), nullable=True),
        sa.Column('audio_keys', sa.JSON(), nullable=False),
        sa.Column('audio_duration_s', sa.Float(), nullable=False, server_default='0'),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_speakers_owner_key_id_model', 'speakers', ['owner_key_id', 'embedding_model'])


def downgrade() -> None:
    op.drop_index('ix_speakers_owner_key_id_model', table_name='speakers')
    op.drop_table('speakers')
