"""The reconciler's reprocessing sweep with several worker nodes: each owed session is found
in SQL with a LIMIT, claimed by one node, copied once by one task, and taken over by another
node when the claiming one dies mid-copy. Real Redis, real databases, real local storage and
a real process that is killed."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import event, update

from shared.celery_factory import make_celery
from shared.config import Settings
from shared.db.migrate import upgrade_to_head
from shared.db.models import Job, JobStatus, utc_now
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.jobs.keys import audio_key
from shared.redis_keys import reprocess_claim_key
from shared.reprocess import reprocess_job_id
from shared.storage import Storage, make_storage
from tests.support.job_rows import job_row
from tests.support.waiting import wait_until
from worker.services.completion import FinishContext
from worker.services.reaper import ReconcileContext, queue_owed_reprocessing, store_parked_recordings
from worker.services.reprocess import queue_reprocess

pytestmark = pytest.mark.integration

#: A database of its own on the session's redis-server, so other modules' queues stay apart.
REDIS_DB = 13
REPROCESS_TASK = "oddasr.reprocess_session"


def _context(settings: Settings, storage: Storage | None = None) -> ReconcileContext:
    jobs = JobRepository(make_session_factory(make_engine(settings.database_url)))
    return ReconcileContext(settings=settings, jobs=jobs, app=make_celery(settings),
                            redis=redis.Redis.from_url(settings.effective_redis_url),
                            storage=storage or make_storage(settings))


@pytest.fixture
def context(tmp_path: Path, redis_server) -> Iterator[ReconcileContext]:  # type: ignore[no-untyped-def]
    url = redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    settings = Settings(data_dir=tmp_path / "node-a", redis_url=url, storage_local_dir=tmp_path / "storage",
                        database_url=f"sqlite:///{tmp_path / 'jobs.db'}", reprocess_claim_lease_s=60.0)
    upgrade_to_head(settings.database_url)
    ctx = _context(settings)
    ctx.redis.flushdb()
    yield ctx
    ctx.redis.flushdb()


def ended_session(ctx: ReconcileContext, ended_s_ago: float, reprocess: str = "offline",
                  recording: bytes = b"RIFF-the-recording") -> str:
    job_id = uuid.uuid4().hex
    ctx.jobs.create(job_row(job_id, status=JobStatus.SUCCEEDED, mode="stream",
                            options={"language": "en", "reprocess": reprocess}, audio_key=audio_key(job_id),
                            filename="standup", duration_s=3.0, progress=1.0, attempts=1))
    assert ctx.storage is not None
    ctx.storage.put_bytes(f"audio/{job_id}", recording)
    _ended_ago(ctx, job_id, ended_s_ago)
    return job_id


def _ended_ago(ctx: ReconcileContext, job_id: str, ended_s_ago: float) -> None:
    engine = make_engine(ctx.settings.database_url)
    with engine.begin() as connection:
        connection.execute(update(Job).where(Job.id == job_id).values(
            finished_at=utc_now() - timedelta(seconds=ended_s_ago)))
    engine.dispose()


def take_reprocess_tasks(ctx: ReconcileContext) -> list[list[str]]:
    """The copy tasks the sweeps sent, each taken off the file queue by one caller, as a
    worker takes a message (kombu's Redis list; the body is the task's [args, kwargs, embed])."""
    queue = ctx.settings.file_queue
    taken = []
    for raw in ctx.redis.lrange(queue, 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == REPROCESS_TASK and ctx.redis.lrem(queue, 1, raw) == 1:
            taken.append(json.loads(base64.b64decode(message["body"]))[0])
    return taken


def run_reprocess_task(ctx: ReconcileContext, args: list[str]) -> str | None:
    """What the worker's task does with a message (`worker.tasks.reprocess_session`)."""
    from worker.services.reprocess_sweep import reprocess_claimed

    assert ctx.storage is not None
    finish = FinishContext(settings=ctx.settings, jobs=ctx.jobs, storage=ctx.storage, redis=ctx.redis, celery=ctx.app)
    return reprocess_claimed(finish, *args)


class CopyCounter:
    """Counts the copies of recordings made into reprocessing jobs, and holds each copy until
    a second one starts or every other node is done: two nodes copying one session at once
    cannot miss each other however the threads are scheduled."""

    def __init__(self, storage: Storage, nodes: int) -> None:
        self.copies: dict[str, int] = {}
        self.active_nodes = nodes
        self._lock = threading.Lock()
        self._put_file = storage.put_file
        storage.put_file = self._counted  # type: ignore[method-assign]

    def _counted(self, key: str, fileobj: Any) -> int:
        with self._lock:
            self.copies[key] = self.copies.get(key, 0) + 1
        wait_until(lambda: self.copies[key] >= 2 or self.active_nodes <= 1, "a second copy or the other nodes' end",
                   timeout_s=30)
        return self._put_file(key, fileobj)

    def node_done(self) -> None:
        with self._lock:
            self.active_nodes -= 1


def run_nodes(count: int, work: Any, counter: CopyCounter) -> None:
    """`work()` on `count` threads started together, as that many worker nodes."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def node(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # shown by the test, not lost in a thread
            errors.append(exc)
        finally:
            counter.node_done()

    threads = [threading.Thread(target=node, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def test_two_nodes_sweeping_at_once_copy_an_owed_session_once(context: ReconcileContext) -> None:
    """Both nodes' reconcilers find the session; one claims it and sends one task; the copy is
    made once (it was made by each node, inline in its heartbeat thread)."""
    session = ended_session(context, 120)
    counter = CopyCounter(context.storage, nodes=2)  # type: ignore[arg-type]
    swept: list[list[str]] = []

    def node(_index: int) -> None:
        swept.append(queue_owed_reprocessing(context))
        for args in take_reprocess_tasks(context):
            run_reprocess_task(context, args)

    run_nodes(2, node, counter)
    child = reprocess_job_id(session)
    assert counter.copies == {f"audio/{child}": 1}, counter.copies
    assert context.jobs.get(child).status == JobStatus.QUEUED
    assert sorted(len(sent) for sent in swept) == [0, 1], "one sweep claimed it, the other passed it by"
    assert context.redis.exists(reprocess_claim_key(session)) == 0, "the claim goes once the job exists"
    assert queue_owed_reprocessing(context) == [], "nothing is owed any more"


def test_a_stale_message_and_a_fresh_one_copy_once(context: ReconcileContext) -> None:
    """The first task's message outwaited its claim in a long queue, so a later sweep sent
    another: both run at once on two nodes, and only the current claim's holder copies."""
    session = ended_session(context, 120)
    assert queue_owed_reprocessing(context) == [session]
    assert queue_owed_reprocessing(context) == [], "claimed: no second task while the claim holds"
    stale = take_reprocess_tasks(context)
    context.redis.delete(reprocess_claim_key(session))  # its lease ran out while it waited
    assert queue_owed_reprocessing(context) == [session]
    messages = stale + take_reprocess_tasks(context)
    assert len(messages) == 2 and messages[0][2] != messages[1][2]
    counter = CopyCounter(context.storage, nodes=2)  # type: ignore[arg-type]
    made: list[str | None] = []
    run_nodes(2, lambda index: made.append(run_reprocess_task(context, messages[index])), counter)
    child = reprocess_job_id(session)
    assert counter.copies == {f"audio/{child}": 1}, counter.copies
    assert context.jobs.get(child).source_job_id == session


#: A worker process that takes the session's claim with the task's token and starts copying,
#: then hangs inside the copy (it is SIGKILLed there).
_DYING_WORKER = """
import json, sys, time
from pathlib import Path
from shared.config import Settings
from shared.storage import make_storage
from tests.test_reprocess_sweep import _context, run_reprocess_task

settings = Settings(**json.loads(sys.argv[1]))
ctx = _context(settings)
marker = Path(sys.argv[3])

def hang(key, fileobj):
    marker.write_text(key)
    while True:
        time.sleep(1)

ctx.storage.put_file = hang
run_reprocess_task(ctx, json.loads(sys.argv[2]))
"""


def _renewed(client: redis.Redis, key: str, lease_s: float) -> Any:
    """A condition that holds once the key's time to live was seen to fall below 90 % of the
    lease and then to rise above it again: a renewal (renewals come every third of a lease)."""
    threshold_ms = 0.9 * lease_s * 1000
    seen_low = [False]

    def renewed() -> bool:
        ttl_ms = client.pttl(key)
        if 0 < ttl_ms < threshold_ms:
            seen_low[0] = True
        return seen_low[0] and ttl_ms > threshold_ms

    return renewed


def test_a_node_killed_mid_copy_loses_nothing(context: ReconcileContext, tmp_path: Path) -> None:
    """The claiming worker is SIGKILLed while it copies: while it lived, it kept its claim past
    the lease and no other node took the session; once dead, its claim expires and the next
    sweep on any node sends the session again, and the job is made from the recording."""
    lease_s = 5.0
    settings = context.settings.model_copy(update={"reprocess_claim_lease_s": lease_s})
    ctx = replace(context, settings=settings)
    session = ended_session(ctx, 120, recording=b"RIFF-only-this-copy")
    assert queue_owed_reprocessing(ctx) == [session]
    (task,) = take_reprocess_tasks(ctx)
    marker = tmp_path / "copying"
    fields = {"data_dir": str(settings.data_dir), "redis_url": settings.redis_url, "database_url":
              settings.database_url, "storage_local_dir": str(settings.storage_local_dir),
              "reprocess_claim_lease_s": lease_s}
    worker = subprocess.Popen([sys.executable, "-c", _DYING_WORKER, json.dumps(fields), json.dumps(task), str(marker)],
                              env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", os.getcwd())})
    try:
        wait_until(marker.exists, "the worker to start copying", timeout_s=60)
        claim = reprocess_claim_key(session)
        wait_until(_renewed(ctx.redis, claim, lease_s), "the live worker to renew its claim", timeout_s=60)
        assert queue_owed_reprocessing(ctx) == [], "a live worker's session is not taken from it"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    resent = wait_until(lambda: queue_owed_reprocessing(ctx), "the dead worker's claim to expire", timeout_s=30)
    assert resent == [session]
    (again,) = take_reprocess_tasks(ctx)
    child = run_reprocess_task(ctx, again)
    assert child == reprocess_job_id(session)
    job = ctx.jobs.get(child)
    assert job.status == JobStatus.QUEUED and ctx.storage.get_bytes(job.audio_key or "") == b"RIFF-only-this-copy"


def test_a_session_whose_recording_was_parked_on_another_node_is_still_found(context: ReconcileContext,
                                                                              tmp_path: Path) -> None:
    """Node A's stream worker parked the recording (storage away at the session's end); node A
    stored it later but could not queue the reprocessing (the file queue was full). Node B,
    which has no parked recordings of its own, finds the session owed and makes its job."""
    from worker.services.session_end import SessionEnding, park

    full = context.settings.model_copy(update={"queue_max_backlog_jobs": 1, "stream_recording_retry_interval_s": 0.01})
    node_a = replace(context, settings=full)
    session = uuid.uuid4().hex
    node_a.jobs.create(job_row(session, mode="stream", options={"language": "en", "reprocess": "offline"},
                               audio_key=audio_key(session), filename="standup", duration_s=0.0, attempts=1,
                               worker=None))
    blocker = uuid.uuid4().hex
    node_a.jobs.create(job_row(blocker, queue=full.file_queue))
    recording = tmp_path / "recording.wav"
    recording.write_bytes(b"RIFF-parked-on-node-a")
    transcript = json.dumps({"text": "hello", "language": "en", "segments": []})
    park(full, SessionEnding(job_id=session, session_id=session, status="succeeded", transcript_json=transcript,
                             duration_s=3.0, processing_s=1.0, reprocess="offline"), recording)
    wait_until(lambda: store_parked_recordings(node_a) == [session], "node A to store the parked recording",
               timeout_s=30)
    assert node_a.jobs.get(session).status == JobStatus.SUCCEEDED
    assert node_a.jobs.find(reprocess_job_id(session)) is None, "the full queue refused its reprocessing"
    node_a.jobs.transition(blocker, JobStatus.CANCELED, finished_at=utc_now())
    _ended_ago(node_a, session, 120)

    node_b = replace(context, settings=context.settings.model_copy(update={"data_dir": tmp_path / "node-b"}))
    assert store_parked_recordings(node_b) == []
    for args in [args for _ in queue_owed_reprocessing(node_b) for args in take_reprocess_tasks(node_b)]:
        run_reprocess_task(node_b, args)
    child = node_b.jobs.get(reprocess_job_id(session))
    assert node_b.storage is not None and node_b.storage.get_bytes(child.audio_key or "") == b"RIFF-parked-on-node-a"


def test_the_owed_sessions_are_chosen_in_sql_with_a_limit(database_url: str, redis_server,  # type: ignore[no-untyped-def]
                                                           tmp_path: Path) -> None:
    """The query carries the LIMIT and fetches no more rows than it; sessions already
    reprocessed (the usual case: their own worker queued it) never crowd out owed ones."""
    url = redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    settings = Settings(data_dir=tmp_path, redis_url=url, database_url=database_url)
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    ctx = replace(_context(settings), jobs=JobRepository(make_session_factory(engine)))
    ctx.redis.flushdb()
    assert ctx.storage is not None
    done = [ended_session(ctx, 3000 - index) for index in range(4)]
    for session in done:  # reprocessed by their own worker, the normal way
        assert queue_reprocess(ctx.jobs, ctx.storage, settings, None, ctx.redis, session, "offline")
    owed = [ended_session(ctx, 2000 - 100 * index, "diarize" if index % 2 else "offline") for index in range(3)]
    ended_session(ctx, 2500, "none")
    statements: list[str] = []

    def seen(_conn, _cursor, statement: str, *_args: object) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        found = ctx.jobs.streams_owed_reprocessing(utc_now() - timedelta(days=1), utc_now() - timedelta(seconds=60),
                                                   limit=2)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert found == [(owed[0], "offline"), (owed[1], "diarize")]
    selects = [statement for statement in statements if statement.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1 and "LIMIT" in selects[0].upper(), selects
    ctx.redis.flushdb()
    engine.dispose()


def test_the_migration_names_the_session_of_existing_reprocessing_jobs(database_url: str) -> None:
    """Reprocessing jobs made before migration 0010 get `source_job_id` from their options, so
    the sweep does not take their sessions for owed ones; other jobs keep NULL."""
    from alembic import command
    from sqlalchemy import text

    from shared.db.migrate import alembic_config

    command.upgrade(alembic_config(database_url), "0009")
    engine = make_engine(database_url)
    session, child, upload = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    insert = text("INSERT INTO jobs (id, status, mode, queue, options, audio_filename, audio_size_bytes, progress,"
                  " attempts, created_at, updated_at) VALUES (:id, 'queued', 'file', 'cpu', :options, '', 0, 0, 0,"
                  " :now, :now)")
    with engine.begin() as connection:
        child_options = json.dumps({"source_job_id": session, "reprocess": "offline"})
        connection.execute(insert, {"id": child, "options": child_options, "now": utc_now()})
        connection.execute(insert, {"id": upload, "options": json.dumps({"language": "en"}), "now": utc_now()})
    upgrade_to_head(database_url)
    jobs = JobRepository(make_session_factory(engine))
    assert jobs.get(child).source_job_id == session
    assert jobs.get(upload).source_job_id is None
    command.downgrade(alembic_config(database_url), "0009")
    upgrade_to_head(database_url)
    engine.dispose()
