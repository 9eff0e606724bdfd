"""A job's life, on both sides of the queue: the one place each of these is written.

- `keys`: where a job's audio and transcript live in storage;
- `rows`: the row a new job starts as (an upload, a live session, a reprocessing);
- `dispatch`: the tasks sent for a job, by name (transcribe, webhook deliveries);
- `events`: the final status announced on the job's Redis channel;
- `public`: the job's and its transcript's public JSON (the HTTP API and the webhooks).

The API, the Celery tasks, reprocessing, the reconciler and both halves of a live session
call these; a new path reuses them, never copies them. Finishing a job (store, transition,
publish, metrics, webhooks) is the worker's `worker.services.completion`.
"""
