"""A job's life, on both sides of the queue: the one place each of these is written.

- `keys`: where a job's audio and transcript live in storage;
- `rows`: the row a new job starts as (an upload, a live session, a reprocessing);
- `dispatch`: the tasks sent for a job, by name (transcribe, webhook deliveries);
- `events`: the final status announced on the job's Redis channel;
- `final`: a job's final status written (transition, publish, webhooks), whoever ends it;
- `public`: the job's and its transcript's public JSON (the HTTP API and the webhooks), built
  through the models of `public_models`, which the OpenAPI document's schemas come from.

The API, the Celery tasks, reprocessing, the reconciler and both halves of a live session
call these; a new path reuses them, never copies them. Finishing a worker's job (store, end,
metrics, clean-up on cancel) is the worker's `worker.services.completion`, which ends it here.
"""
