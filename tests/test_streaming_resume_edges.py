"""The resume window's edges, with real processes: no window at all when the API is killed,
and an API that stalls (SIGSTOP, not dead) for longer than the window.

Each test has a stack of its own: the window is a worker setting."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from shared.cli import commands
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from tests.support.live_sessions import three_sentence_pcm
from tests.support.stack import Stack, running_stack
from tests.support.ws_clients import open_ws

pytestmark = pytest.mark.integration

API_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def pcm(speech_dir: Path) -> bytes:
    return three_sentence_pcm(speech_dir)


@contextlib.contextmanager
def stack_with_window(tmp_path: Path, redis_url: str, window_s: float) -> Iterator[Stack]:
    with running_stack(tmp_path, redis_url, file_concurrency=1, sentence_concurrency=0,
                       stream_resume_window_s=window_s, stream_api_timeout_s=API_TIMEOUT_S,
                       stream_idle_timeout_s=30.0) as stack:
        stack.start_stream_workers(1)
        stack.wait_stream_slots(1)
        yield stack


class NativeSession:
    """A native-protocol session that has sent audio until its first Final arrived."""

    def __init__(self, stack: Stack, pcm: bytes) -> None:
        self.ws = open_ws(f"ws://127.0.0.1:{stack.settings.port}/v1/stream")
        self.ws.send(json.dumps({"type": "Start", "language": "en"}))
        self.begin = json.loads(self.ws.recv(timeout=30))
        assert self.begin["type"] == "Begin", self.begin
        self.received: list[dict] = []
        self.ended = threading.Event()
        threading.Thread(target=self._collect, daemon=True).start()
        deadline_s = time.monotonic() + 60
        for offset in range(0, len(pcm), 6400):
            self.ws.send(pcm[offset:offset + 6400])
            time.sleep(0.05)  # paced audio, as a client sends it
            if any(m["type"] == "Final" for m in self.received):
                break
        while not any(m["type"] == "Final" for m in self.received):
            assert time.monotonic() < deadline_s, self.received
            time.sleep(0.05)

    def _collect(self) -> None:
        with contextlib.suppress(Exception):
            for raw in self.ws:
                self.received.append(json.loads(raw))
        self.ended.set()


def job_row(stack: Stack, job_id: str):  # type: ignore[no-untyped-def]
    """Straight from the database: the API may be the process under test."""
    return JobRepository(make_session_factory(make_engine(stack.settings.database_url))).get(job_id)


def wait_until(condition, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline_s = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline_s, what
        time.sleep(0.1)


def test_without_a_resume_window_a_killed_api_ends_the_session_keeping_its_sentences(
        tmp_path: Path, own_redis, pcm: bytes) -> None:  # type: ignore[no-untyped-def]
    with stack_with_window(tmp_path, own_redis.url, 0.0) as stack:
        session = NativeSession(stack, pcm)
        job_id = session.begin["job_id"]
        stack.stop("api", sig=signal.SIGKILL)
        wait_until(lambda: job_row(stack, job_id).status != "running", 60, "the worker kept the session")
        stack.wait_stream_slots(1)  # and its slot is free again
        ended = job_row(stack, job_id)
        assert ended.status in ("failed", "succeeded"), ended.status
        stack.spawn("api", commands.api_argv(stack.settings))
        stack.wait_ready((stack.settings.file_queue,))
        body = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
        assert body["result"]["segments"], body  # the sentences the client was sent are kept
        with open_ws(f"ws://127.0.0.1:{stack.settings.port}/v1/stream") as ws:
            ws.send(json.dumps({"type": "Start", "session": session.begin["session_id"]}))
            refused = json.loads(ws.recv(timeout=30))
        assert refused["type"] == "Error", refused  # nothing to resume: said, not hung


def test_an_api_stalled_past_the_window_finds_its_session_ended_and_changes_nothing(
        tmp_path: Path, own_redis, pcm: bytes) -> None:  # type: ignore[no-untyped-def]
    window_s = 3.0
    with stack_with_window(tmp_path, own_redis.url, window_s) as stack:
        session = NativeSession(stack, pcm)
        job_id = session.begin["job_id"]
        api_group = stack.processes["api"].pid
        os.killpg(api_group, signal.SIGSTOP)
        try:
            wait_until(lambda: job_row(stack, job_id).status != "running", 60,
                       "the worker held the session past the window")
            stack.wait_stream_slots(1)
            ended = job_row(stack, job_id)
        finally:
            os.killpg(api_group, signal.SIGCONT)
        assert ended.status == "succeeded", (ended.status, ended.error)
        # The API wakes into a session whose worker has moved on: its client is told, not left hanging,
        # and the finished job is not rewritten.
        assert session.ended.wait(60), session.received[-3:]
        assert requests.get(stack.url("/healthz"), timeout=10).status_code == 200
        body = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
        assert body["status"] == "succeeded" and body["result"]["segments"], body
        with open_ws(f"ws://127.0.0.1:{stack.settings.port}/v1/stream") as ws:  # and the next session works
            ws.send(json.dumps({"type": "Start"}))
            assert json.loads(ws.recv(timeout=30))["type"] == "Begin"
            ws.send(json.dumps({"type": "Close"}))
            while json.loads(ws.recv(timeout=30))["type"] != "Summary":
                pass
