"""reprocess sweep: owed sessions found in SQL, with a limit

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 17:00:00

The reconciler's reprocessing sweep looks for live sessions that ended in the last day, asked
for reprocessing and have no file job yet. It read every session of the day and filtered in
Python (the file job's id is a hash of the session's, which SQL cannot compute); now the file
job names its session in `source_job_id`, so the sweep is one anti-join with a LIMIT: the
(mode, status, finished_at) index finds the day's ended sessions, the `source_job_id` index
answers "has it a file job". Existing reprocessing jobs get the column from their options.
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

#: Existing reprocessing jobs are read and updated this many at a time.
BACKFILL_BATCH_ROWS = 500


def upgrade() -> None:
    op.add_column('jobs', sa.Column('source_job_id', sa.String(32), nullable=True))
    op.create_index('ix_jobs_source_job_id', 'jobs', ['source_job_id'])
    op.create_index('ix_jobs_mode_status_finished_at', 'jobs', ['mode', 'status', 'finished_at'])
    _backfill_source_job_ids()


def _backfill_source_job_ids() -> None:
    """Only reprocessing jobs carry `source_job_id` in their options (a cheap text match finds
    the candidates on SQLite and PostgreSQL alike; the JSON is then read in Python)."""
    jobs = sa.table('jobs', sa.column('id', sa.String), sa.column('mode', sa.String),
                    sa.column('options', sa.JSON), sa.column('source_job_id', sa.String))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(jobs.c.id, jobs.c.options)
        .where(jobs.c.mode == 'file', sa.cast(jobs.c.options, sa.Text).like('%source_job_id%'))
    ).all()
    updates = [{'row_id': job_id, 'source': str(options['source_job_id'])[:32]} for job_id, options in rows
               if isinstance(options, dict) and options.get('source_job_id')]
    statement = (sa.update(jobs).where(jobs.c.id == sa.bindparam('row_id'))
                 .values(source_job_id=sa.bindparam('source')))
    for start in range(0, len(updates), BACKFILL_BATCH_ROWS):
        connection.execute(statement, updates[start:start + BACKFILL_BATCH_ROWS])


def downgrade() -> None:
    op.drop_index('ix_jobs_mode_status_finished_at', table_name='jobs')
    op.drop_index('ix_jobs_source_job_id', table_name='jobs')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('source_job_id')
