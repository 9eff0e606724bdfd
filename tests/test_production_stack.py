"""The production shape on one machine: PostgreSQL for jobs and a real S3 server (SeaweedFS)
for audio and transcripts, with the same API and workers; and the `oddasr transcribe` client
against it, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
import srt
from sqlalchemy import create_engine, text

from tests.support.speech import REFERENCE_SENTENCES, synthesize
from tests.support.stack import Stack, running_stack, wait_for_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server, postgres_server,  # type: ignore[no-untyped-def]
          s3_server) -> Iterator[Stack]:
    engine = create_engine(postgres_server.url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    bucket = f"oddasr-{int(time.time())}"
    with running_stack(tmp_path_factory.mktemp("prod"), redis_server.url, file_concurrency=1, sentence_concurrency=1,
                       database_url=postgres_server.url, storage_backend="s3", s3_bucket=bucket,
                       s3_endpoint_url=s3_server.endpoint_url, s3_access_key_id=s3_server.access_key,
                       s3_secret_access_key=s3_server.secret_key) as running:
        yield running


def s3_keys(stack: Stack, s3_server) -> list[str]:  # type: ignore[no-untyped-def]
    client = boto3.client("s3", endpoint_url=s3_server.endpoint_url, aws_access_key_id=s3_server.access_key,
                          aws_secret_access_key=s3_server.secret_key, region_name="us-east-1")
    listing = client.list_objects_v2(Bucket=stack.settings.s3_bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_a_job_on_postgres_and_s3(stack: Stack, speech_dir: Path, s3_server, postgres_server) -> None:  # type: ignore[no-untyped-def]
    clip = synthesize(REFERENCE_SENTENCES[3], speech_dir / "prod.wav")
    with clip.open("rb") as audio:
        job_id = requests.post(stack.url("/v1/jobs"), files={"audio": audio}, timeout=60).json()["id"]
    job = wait_for_job(stack, job_id)
    assert job["status"] == "succeeded", job
    assert {f"audio/{job_id}", f"transcripts/{job_id}.json"} <= set(s3_keys(stack, s3_server))
    engine = create_engine(postgres_server.url)
    with engine.connect() as connection:
        status = connection.execute(text("SELECT status FROM jobs WHERE id = :id"), {"id": job_id}).scalar()
    engine.dispose()
    assert status == "succeeded"
    assert requests.delete(stack.url(f"/v1/jobs/{job_id}"), timeout=10).status_code == 200
    assert not {f"audio/{job_id}", f"transcripts/{job_id}.json"} & set(s3_keys(stack, s3_server))


def oddasr_transcribe(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "oddasr"), "transcribe", "--server", stack.base_url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_transcribe_client_prints_and_saves_subtitles(stack: Stack, speech_dir: Path, tmp_path: Path) -> None:
    clips = [synthesize(REFERENCE_SENTENCES[i], speech_dir / f"client{i}.wav") for i in (0, 1)]
    printed = oddasr_transcribe(stack, str(clips[0]), "--format", "srt")
    assert printed.returncode == 0, printed.stderr
    assert list(srt.parse(printed.stdout))
    saved = oddasr_transcribe(stack, *map(str, clips), "--format", "vtt", "--output-dir", str(tmp_path))
    assert saved.returncode == 0, saved.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client0.vtt", "client1.vtt"]
    assert (tmp_path / "client1.vtt").read_text().startswith("WEBVTT")


def test_transcribe_client_reports_bad_files_and_exits_non_zero(stack: Stack, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.wav"
    bogus.write_text("not audio at all\n" * 20)
    result = oddasr_transcribe(stack, str(bogus), str(tmp_path / "missing.wav"))
    assert result.returncode == 1
    assert "(415)" in result.stderr and "audio" in result.stderr
    assert "missing.wav" in result.stderr
