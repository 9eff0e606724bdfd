"""Webhooks through a real stack: jobs with a callback URL to a receiver on 127.0.0.1, every
delivery verified with the `standardwebhooks` library (not the project's own signing code).

One stack for the module; the retry schedule is compressed by configuration (the same code
path production runs), and 127.0.0.0/8 is allowed so the local receiver can be reached.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from standardwebhooks import Webhook

from tests.support.speech import REFERENCE_SENTENCES, synthesize
from tests.support.stack import Stack, running_stack, wait_for_job
from tests.support.webhook_receiver import Received, Receiver, running_receiver
from tests.support.ws_clients import oddasr_session

pytestmark = pytest.mark.integration

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_b2xkLXNlY3JldC1zdGlsbC12YWxpZA=="
#: Three retries after the first attempt: four attempts in about two seconds.
SCHEDULE_S = [0.3, 0.5, 1.0]
#: A killed sender's claim lapses after this + the margin (7 s), then the sweep resends.
WEBHOOK_DEADLINE_S = 2.0


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("webhooks"), redis_server.url, file_concurrency=1,
                       webhook_secrets=[SECRET, OLD_SECRET], webhook_allowed_networks=["127.0.0.0/8"],
                       webhook_retry_schedule_s=SCHEDULE_S, webhook_attempt_deadline_s=WEBHOOK_DEADLINE_S,
                       webhook_sweep_after_s=0.5, reaper_interval_s=1.0, stream_idle_timeout_s=1.5) as running:
        running.start_stream_workers(1)
        running.wait_stream_slots(1)
        yield running


@pytest.fixture(scope="module")
def clip(speech_dir: Path) -> Path:
    return synthesize(REFERENCE_SENTENCES[0], speech_dir / "webhook-s0.wav")


def submit(stack: Stack, clip: Path, **fields: str) -> requests.Response:
    with clip.open("rb") as audio:
        return requests.post(stack.url("/v1/jobs"), files={"audio": (clip.name, audio)}, data=fields, timeout=60)


def wait_received(receiver: Receiver, path: str, count: int, timeout_s: float = 60.0) -> list[Received]:
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        got = receiver.received(path)
        if len(got) >= count:
            return got
        time.sleep(0.1)
    raise TimeoutError(f"{path}: {len(receiver.received(path))} of {count} deliveries arrived")


def deliveries(stack: Stack, job_id: str, state: str | None = None, timeout_s: float = 30.0) -> list[dict]:
    """The job's delivery log, once its last delivery reaches `state`."""
    deadline_s = time.monotonic() + timeout_s
    while True:
        log = requests.get(stack.url(f"/v1/jobs/{job_id}/webhooks"), timeout=10).json()["deliveries"]
        if state is None or (log and log[-1]["state"] == state) or time.monotonic() > deadline_s:
            return log
        time.sleep(0.1)


def verified(request: Received) -> dict:
    """The event, verified with every secret in rotation."""
    event = Webhook(SECRET).verify(request.body, request.headers)
    assert Webhook(OLD_SECRET).verify(request.body, request.headers) == event
    return event


def test_events_are_signed_retried_and_logged(stack: Stack, receiver: Receiver, clip: Path) -> None:
    ok = submit(stack, clip, callback_url=f"{receiver.url}/ok")
    receiver.script["/flaky"] = [503, 503, 200]
    flaky = submit(stack, clip, callback_url=f"{receiver.url}/flaky")
    receiver.script["/gone"] = [410]
    gone = submit(stack, clip, callback_url=f"{receiver.url}/gone")
    receiver.script["/redirect"] = [302]
    receiver.redirects["/redirect"] = f"{receiver.url}/followed"
    redirect = submit(stack, clip, webhook_url=f"{receiver.url}/redirect")  # the alias
    for response in (ok, flaky, gone, redirect):
        assert response.status_code == 202, response.text
    ok_id, flaky_id, gone_id, redirect_id = (r.json()["id"] for r in (ok, flaky, gone, redirect))

    # Delivered once, signed, with the transcript inline.
    job = wait_for_job(stack, ok_id)
    assert job["status"] == "succeeded"
    assert job["callback_url"] == f"{receiver.url}/ok" and job["links"]["webhooks"] == f"/v1/jobs/{ok_id}/webhooks"
    [request] = wait_received(receiver, "/ok", 1)
    event = verified(request)
    assert event["type"] == "job.succeeded"
    assert event["data"]["job_id"] == ok_id and event["data"]["status"] == "succeeded"
    assert event["data"]["transcript"]["text"].strip() == job["result"]["text"].strip()
    assert event["data"]["transcript"]["segments"]
    assert event["data"]["finished_at"] and event["data"]["processing_s"] > 0
    [logged] = deliveries(stack, ok_id, "delivered")
    assert logged["id"] == request.headers["webhook-id"]
    assert [a["status_code"] for a in logged["attempts"]] == [200]
    assert logged["attempts"][0]["duration_ms"] >= 0 and logged["attempts"][0]["at"]

    # 503, 503, 200: retried with one webhook-id, the same body each time.
    flaky_requests = wait_received(receiver, "/flaky", 3)
    assert len({r.headers["webhook-id"] for r in flaky_requests}) == 1
    assert len({r.body for r in flaky_requests}) == 1
    assert all(verified(r)["data"]["job_id"] == flaky_id for r in flaky_requests)
    [logged] = deliveries(stack, flaky_id, "delivered")
    assert [a["status_code"] for a in logged["attempts"]] == [503, 503, 200]

    # 410 stops at once.
    wait_received(receiver, "/gone", 1)
    [logged] = deliveries(stack, gone_id, "gone")
    assert [a["status_code"] for a in logged["attempts"]] == [410]

    # A redirect is a failed attempt, never followed; the schedule ends it as failed.
    wait_received(receiver, "/redirect", 1 + len(SCHEDULE_S))
    [logged] = deliveries(stack, redirect_id, "failed")
    assert [a["status_code"] for a in logged["attempts"]] == [302] * (1 + len(SCHEDULE_S))
    assert logged["attempts"][0]["error"] == "redirect not followed"
    assert receiver.received("/followed") == []
    assert wait_for_job(stack, redirect_id)["status"] == "succeeded"  # webhooks never fail the job
    # Every delivery has ended (delivered, gone, failed: nothing more is scheduled), and the
    # receiver heard exactly the attempts each log records: none sent twice, none unlogged.
    for job_id, path, state in ((ok_id, "/ok", "delivered"), (flaky_id, "/flaky", "delivered"),
                                (gone_id, "/gone", "gone"), (redirect_id, "/redirect", "failed")):
        [logged] = deliveries(stack, job_id, state)
        assert logged["state"] == state, logged
        assert len(receiver.received(path)) == len(logged["attempts"]), (path, logged)

    # Redelivery: the same event again, same id and body.
    response = requests.post(stack.url(f"/v1/jobs/{ok_id}/webhooks/redeliver"), timeout=10)
    assert response.status_code == 202, response.text
    again = wait_received(receiver, "/ok", 2)[1]
    assert again.headers["webhook-id"] == request.headers["webhook-id"]
    assert verified(again) == event
    [logged] = deliveries(stack, ok_id, "delivered")
    assert [a["status_code"] for a in logged["attempts"]] == [200, 200]


def test_canceled_job_sends_its_event(stack: Stack, receiver: Receiver, clip: Path) -> None:
    created = submit(stack, clip, callback_url=f"{receiver.url}/cancel").json()
    requests.delete(stack.url(f"/v1/jobs/{created['id']}"), timeout=10)
    job = wait_for_job(stack, created["id"])
    [request] = wait_received(receiver, "/cancel", 1)
    assert verified(request)["type"] == f"job.{job['status']}"


def test_refused_callback_urls_are_400_before_anything_is_stored(stack: Stack, clip: Path) -> None:
    for url in ("http://169.254.169.254/latest/meta-data/", "ftp://example.com/", "http://u:p@example.com/",
                "http://10.0.0.1/hook", "http://[::ffff:192.168.0.1]/", "https://h.example/" + "a" * 3000):
        response = submit(stack, clip, callback_url=url)
        assert response.status_code == 400, (url, response.text)
        assert "callback_url" in json.dumps(response.json()), response.text
    with clip.open("rb") as audio:
        response = requests.post(stack.url("/v1/audio/transcriptions"), files={"file": (clip.name, audio)},
                                 data={"callback_url": "http://0xa9.0xfe.0xa9.0xfe/"}, timeout=60)
    assert response.status_code == 400, response.text
    assert requests.get(stack.url("/v1/jobs"), params={"limit": 100}, timeout=10).json()["total"] == 5


def test_sender_killed_mid_send_the_event_still_arrives_with_its_id(
        stack: Stack, receiver: Receiver, clip: Path) -> None:
    """The outbox: SIGKILL the webhooks node holding a delivery while the receiver is still
    answering; the event stays pending in the database and, once the dead sender's claim
    lapses, another worker's sweep sends it again with the same webhook-id."""
    receiver.delays_s["/slow"] = [3.0]
    created = submit(stack, clip, callback_url=f"{receiver.url}/slow").json()
    [first] = wait_received(receiver, "/slow", 1)  # the attempt is in flight now
    stack.stop("worker-webhooks", sig=signal.SIGKILL)
    stack.start_webhook_worker()
    stack.wait_webhook_worker()
    second = wait_received(receiver, "/slow", 2, timeout_s=90)[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert verified(second)["data"]["job_id"] == created["id"]
    [logged] = deliveries(stack, created["id"], "delivered")
    assert [a["status_code"] for a in logged["attempts"]] == [200]  # the killed attempt left no record
    assert wait_for_job(stack, created["id"])["status"] == "succeeded"


def test_a_live_session_ends_with_a_signed_stream_ended_event(stack: Stack, receiver: Receiver, clip: Path) -> None:
    log = oddasr_session(f"ws://127.0.0.1:{stack.settings.ws_port}/v1/asr", clip, chunk_bytes=32000, interval_s=0.1,
                         callback_url=f"{receiver.url}/live")
    assert log.close_code == 1000
    job_id = log.messages[0].data["header"]["task_id"]
    [request] = wait_received(receiver, "/live", 1, timeout_s=20)
    event = verified(request)
    assert event["type"] == "stream.ended" and event["data"]["job_id"] == job_id
    finals = [m["payload"]["result"] for m in log.named("SentenceEnd") if m["payload"]["result"] != "END"]
    assert event["data"]["transcript"]["text"].strip() == " ".join(finals).strip()


def test_a_live_session_with_a_forbidden_callback_is_refused_before_it_starts(stack: Stack, clip: Path) -> None:
    log = oddasr_session(f"ws://127.0.0.1:{stack.settings.ws_port}/v1/asr", clip,
                         callback_url="http://169.254.169.254/latest/meta-data/")
    assert log.messages[0].data["header"]["status"] == 10020001


def test_a_reprocessed_session_reports_each_stage(stack: Stack, receiver: Receiver, clip: Path) -> None:
    """`stream.ended` when the live session ends, then the file job's own `job.succeeded`."""
    import json

    import soundfile

    from tests.support.ws_clients import open_ws

    pcm = soundfile.read(clip, dtype="int16")[0].tobytes()
    with open_ws(f"ws://127.0.0.1:{stack.settings.port}/v1/stream") as ws:
        ws.send(json.dumps({"type": "Start", "language": "en", "reprocess": "offline",
                            "callback_url": f"{receiver.url}/stages"}))
        session_id = json.loads(ws.recv(timeout=30))["session_id"]
        for offset in range(0, len(pcm), 32000):
            ws.send(pcm[offset:offset + 32000])
        ws.send(json.dumps({"type": "Close"}))
        while json.loads(ws.recv(timeout=60))["type"] != "Summary":
            pass
    ended, succeeded = (verified(request) for request in wait_received(receiver, "/stages", 2, timeout_s=60))
    assert ended["type"] == "stream.ended" and ended["data"]["job_id"] == session_id
    assert succeeded["type"] == "job.succeeded" and succeeded["data"]["job_id"] != session_id
    assert succeeded["data"]["transcript"]["text"].strip()
    child = requests.get(stack.url(f"/v1/jobs/{succeeded['data']['job_id']}"), timeout=10).json()
    assert child["options"]["source_job_id"] == session_id and child["options"]["reprocess"] == "offline"
