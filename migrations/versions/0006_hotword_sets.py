"""hotword sets: named, versioned hotword lists with weights, per key

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 23:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'hotword_sets',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        # '' when auth is off (one shared namespace): NULLs would not be unique with the name.
        sa.Column('owner_key_id', sa.String(16), nullable=False, server_default=''),
        sa.Column('name', sa.String(64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False, server_default='1'),
        sa.Column('entries', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('owner_key_id', 'name', name='uq_hotword_sets_owner_name'),
    )


def downgrade() -> None:
    op.drop_table('hotword_sets')
