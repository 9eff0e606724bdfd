"""stream segments keep their words and speaker

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 17:40:00

A live session's final sentences are stored as they are produced, and the session's
`stream.ended` webhook and a failed session's transcript are built from those rows. Finals now
carry their words and, for sessions that asked for speakers, their speaker: the rows keep them
too, so what the client was sent is what the stored sentences say. Nullable: earlier rows
have none.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('stream_segments', sa.Column('words', sa.JSON(none_as_null=True), nullable=True))
    op.add_column('stream_segments', sa.Column('speaker', sa.Integer(), nullable=True))
    op.add_column('stream_segments', sa.Column('speaker_name', sa.String(255), nullable=True))
    op.add_column('stream_segments', sa.Column('speaker_similarity', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('stream_segments') as batch:
        batch.drop_column('speaker_similarity')
        batch.drop_column('speaker_name')
        batch.drop_column('speaker')
        batch.drop_column('words')
