"""hotword hits: where a job's hotwords turned up, computed once when the job ends

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 14:10:00

NULL for jobs that ended before this column: the API computes theirs on their first read and
stores them (a migration cannot read the transcripts, which live in storage).
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('hotword_hits', sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('hotword_hits')
