"""The job repository and its transition table, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import inspect

from shared.db.migrate import upgrade_to_head
from shared.db.models import Job, JobStatus
from shared.db.repository import ALLOWED_SOURCES, JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.errors import InvalidTransitionError, NotFoundError
from tests.support.job_rows import job_row


@pytest.fixture
def repo(database_url: str) -> Iterator[JobRepository]:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    yield JobRepository(make_session_factory(engine))
    engine.dispose()


def new_job(repo: JobRepository, **fields: object) -> Job:
    return repo.create(job_row(audio_key="audio/x", **fields))


def test_migrations_create_the_schema_and_are_idempotent(database_url: str) -> None:
    upgrade_to_head(database_url)
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    assert "jobs" in inspect(engine).get_table_names()
    engine.dispose()


def test_happy_path_transitions(repo: JobRepository) -> None:
    job = new_job(repo)
    assert repo.transition(job.id, JobStatus.RUNNING, worker="w:1")
    assert repo.get(job.id).attempts == 1
    assert repo.set_progress(job.id, 0.5)
    assert repo.transition(job.id, JobStatus.SUCCEEDED, transcript_key="t")
    done = repo.get(job.id)
    assert (done.status, done.transcript_key, done.progress) == ("succeeded", "t", 0.5)


def test_terminal_statuses_never_change(repo: JobRepository) -> None:
    job = new_job(repo)
    repo.transition(job.id, JobStatus.RUNNING)
    repo.transition(job.id, JobStatus.SUCCEEDED)
    for target in (JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.SUCCEEDED):
        assert not repo.transition(job.id, target)
    assert repo.get(job.id).status == "succeeded"
    assert not repo.set_progress(job.id, 0.9)


def test_redelivery_restarts_a_running_job_and_counts_attempts(repo: JobRepository) -> None:
    job = new_job(repo)
    repo.transition(job.id, JobStatus.RUNNING, worker="w:1")
    assert repo.transition(job.id, JobStatus.RUNNING, worker="w:2")
    assert repo.get(job.id).attempts == 2


def test_cancel_wins_over_a_late_success(repo: JobRepository) -> None:
    job = new_job(repo)
    repo.transition(job.id, JobStatus.RUNNING)
    assert repo.transition(job.id, JobStatus.CANCELED)
    assert not repo.transition(job.id, JobStatus.SUCCEEDED)
    assert not repo.set_progress(job.id, 0.3)


def test_only_one_of_many_racing_finishers_wins(repo: JobRepository) -> None:
    job = new_job(repo)
    repo.transition(job.id, JobStatus.RUNNING)
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def finish() -> None:
        barrier.wait()
        wins.append(repo.transition(job.id, JobStatus.SUCCEEDED))

    threads = [threading.Thread(target=finish) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 1


def test_nothing_leads_back_to_queued_and_unknown_fields_are_refused(repo: JobRepository) -> None:
    job = new_job(repo)
    assert ALLOWED_SOURCES[JobStatus.QUEUED] == frozenset()
    with pytest.raises(InvalidTransitionError):
        repo.transition(job.id, JobStatus.QUEUED)
    with pytest.raises(InvalidTransitionError):
        repo.transition(job.id, JobStatus.RUNNING, status="succeeded")


def test_list_is_newest_first_with_filter_and_pages(repo: JobRepository) -> None:
    ids = [new_job(repo).id for _ in range(5)]
    repo.transition(ids[0], JobStatus.CANCELED)
    jobs, total = repo.list(status=None, limit=2, offset=0)
    assert total == 5
    assert [j.id for j in jobs] == ids[::-1][:2]
    page2, _ = repo.list(status=None, limit=2, offset=2)
    assert [j.id for j in page2] == ids[::-1][2:4]
    canceled, n = repo.list(status="canceled", limit=10, offset=0)
    assert n == 1 and canceled[0].id == ids[0]


def test_missing_job_is_not_found(repo: JobRepository) -> None:
    with pytest.raises(NotFoundError):
        repo.get("nope")
    assert repo.find("nope") is None


def test_a_live_sentence_keeps_its_words_and_speaker(repo: JobRepository) -> None:
    from shared.transcript import Segment, Word

    job = new_job(repo)
    words = [Word(word="Hello,", start_s=1.2, end_s=1.5), Word(word="Alice.", start_s=1.6, end_s=2.0, probability=0.9)]
    repo.add_stream_segment(job.id, 0, 1200, 2000, "Hello, Alice.",
                            Segment(start_s=1.2, end_s=2.0, text="Hello, Alice.", words=words, speaker=16,
                                    speaker_name="alice", speaker_similarity=0.91))
    repo.add_stream_segment(job.id, 1, 2500, 3000, "Plain.")  # as before: no words, no speaker
    first, second = repo.stream_transcript_segments(job.id)
    assert first.words == words and (first.speaker, first.speaker_name, first.speaker_similarity) == (16, "alice", 0.91)
    assert second == Segment(start_s=2.5, end_s=3.0, text="Plain.")
