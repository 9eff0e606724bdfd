"""Live streaming through real processes: gunicorn (gevent) API, stream worker processes with
the real Whisper tiny.en and fsmn-vad weights, a real redis-server, clients that behave like
OddASR's and FunASR's own (tests/support/ws_clients.py)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jiwer
import numpy as np
import pytest
import requests
import soundfile
import srt

from shared.auth.api_key_tokens import resolve_hash_key
from shared.db.api_keys import ApiKeyRepository, KeyLimits
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from tests.support.speech import REFERENCE_SENTENCES, make_dialogue, make_long_recording, speaker_accuracy
from tests.support.stack import Stack, running_stack
from tests.support.ws_clients import ODDASR_CHUNK_BYTES, funasr_session, oddasr_session, open_ws

pytestmark = pytest.mark.integration

SENTENCES = [REFERENCE_SENTENCES[1], REFERENCE_SENTENCES[3]]
STREAM_WORKERS = 2
#: Small, so that unpaced clients (offline mode) run into the flow control.
BACKLOG_S = 2.0
#: Long enough for the 5 s reconnect of the resume test, short for the tests of vanishing clients.
RESUME_WINDOW_S = 8.0


def _clean(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(_clean(reference), _clean(hypothesis))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("streamstack"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=1, stream_idle_timeout_s=2.0, stream_slot_wait_s=2.0,
                       stream_max_frame_bytes=256 * 1024, stream_max_backlog_s=BACKLOG_S,
                       stream_resume_window_s=RESUME_WINDOW_S) as stack:
        stack.start_stream_workers(STREAM_WORKERS)
        stack.wait_stream_slots(STREAM_WORKERS)
        yield stack


@pytest.fixture(scope="module")
def two_sentences(speech_dir: Path) -> Path:
    return make_long_recording(SENTENCES, speech_dir / "stream-two.wav", gap_s=1.2)


@pytest.fixture(scope="module")
def pcm(two_sentences: Path) -> bytes:
    samples, rate = soundfile.read(two_sentences, dtype="int16")
    assert rate == 16000
    return samples.tobytes()


def oddasr_url(stack: Stack, path: str = "/v1/asr") -> str:
    return f"ws://127.0.0.1:{stack.settings.ws_port}{path}"


def funasr_url(stack: Stack) -> str:
    return f"ws://127.0.0.1:{stack.settings.funasr_ws_port}/"


def wait_for_idle_slots(stack: Stack, count: int = STREAM_WORKERS, timeout_s: float = 120.0) -> None:
    stack.wait_stream_slots(count, timeout_s=timeout_s)


def final_job(stack: Stack, job_id: str, timeout_s: float = 120.0) -> dict:
    deadline_s = time.monotonic() + timeout_s
    while True:
        job = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
        if job["status"] in {"succeeded", "failed", "canceled"} or time.monotonic() > deadline_s:
            return job
        time.sleep(0.2)


def test_readyz_counts_live_and_idle_stream_workers(stack: Stack) -> None:
    wait_for_idle_slots(stack)
    body = requests.get(stack.url("/readyz"), timeout=10).json()
    assert body["stream_workers"] == {"live": STREAM_WORKERS, "idle": STREAM_WORKERS}


# --- OddASR ------------------------------------------------------------------------------
def test_oddasr_test_client_gets_partials_finals_end_and_a_job(stack: Stack, two_sentences: Path) -> None:
    # In real time, not the test client's twice: the worker decodes partials only while no
    # audio waits, and a busy machine at 2x kept it behind for the whole clip (no partial).
    log = oddasr_session(oddasr_url(stack), two_sentences, interval_s=ODDASR_CHUNK_BYTES / 32000)
    begin = log.messages[0].data
    assert begin["header"]["name"] == "SentenceBegin" and begin["header"]["status"] == 0
    assert isinstance(begin["header"]["status"], int) and "time" in begin["payload"]
    for message in log.messages:  # the client flattens header and payload: no shared key
        assert not set(message.data["header"]) & set(message.data["payload"])
        assert "time" in message.data["payload"]
    partials = log.named("TranscriptionResultChanged")
    finals = [m for m in log.named("SentenceEnd") if m["payload"]["result"] != "END"]
    assert partials, "no partial result while speaking"
    assert len(finals) == 2
    assert all(f["payload"]["result"].rstrip()[-1] in ".?!" for f in finals), "finals are punctuated"
    end = log.named("SentenceEnd")[-1]["payload"]
    assert end["result"] == "END" and end["fin"] == 1
    assert log.close_code == 1000, "the test client exits only on a close 1000"
    hypothesis = " ".join(f["payload"]["result"] for f in finals)
    assert wer(" ".join(SENTENCES), hypothesis) < 0.3
    # Partials of one sentence only grow (stabilised): each is a prefix of the next.
    by_index: dict[int, list[str]] = {}
    for message in partials:
        by_index.setdefault(message["payload"]["index"], []).append(message["payload"]["result"])
    for texts in by_index.values():
        assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:], strict=False))

    job_id = begin["header"]["task_id"]
    job = final_job(stack, job_id)
    assert job["status"] == "succeeded" and job["mode"] == "stream"
    assert [s["text"] for s in job["result"]["segments"]] == [f["payload"]["result"] for f in finals]
    assert job["audio_duration_s"] == pytest.approx(soundfile.info(str(two_sentences)).duration, abs=0.1)
    cues = list(srt.parse(requests.get(stack.url(f"/v1/jobs/{job_id}/transcript?format=srt"), timeout=10).text))
    assert len(cues) == 2 and cues[0].start < cues[1].start
    wait_for_idle_slots(stack)


def test_oddasr_web_page_stop_message_ends_the_session_at_once(stack: Stack, two_sentences: Path) -> None:
    """The web page's stop message ends the session, not the idle timeout after it (which logs
    why it ended a session: counted here, not timed, so a busy machine cannot fail it)."""
    api_log = stack.log_dir / "api.log"
    idle_ends_before = api_log.read_text(errors="replace").count("no audio for")
    log = oddasr_session(oddasr_url(stack, "/any/path"), two_sentences, chunk_bytes=32000, interval_s=0.1,
                         stop_message={"service_type": "ASR", "msg_type": "STOP_SESSION_REQ"})
    assert log.close_code == 1000
    assert log.named("SentenceEnd")[-1]["payload"]["result"] == "END"
    assert api_log.read_text(errors="replace").count("no audio for") == idle_ends_before, \
        "the session waited for the idle timeout: the stop message was not taken"
    wait_for_idle_slots(stack)


def test_stream_path_on_the_main_port_speaks_the_same_protocol(stack: Stack, two_sentences: Path) -> None:
    url = f"ws://127.0.0.1:{stack.settings.port}/v1/stream"
    log = oddasr_session(url, two_sentences, chunk_bytes=64000, interval_s=0.1,
                         stop_message={"name": "STOP_SESSION_REQ", "task_id": ""})
    assert len([m for m in log.named("SentenceEnd") if m["payload"]["result"] != "END"]) == 2
    wait_for_idle_slots(stack)


# --- FunASR ------------------------------------------------------------------------------
def test_funasr_2pass_client_flow(stack: Stack, pcm: bytes) -> None:
    with open_ws(funasr_url(stack), subprotocols=["binary"]) as ws:
        assert ws.subprotocol == "binary"
    log = funasr_session(funasr_url(stack), pcm, mode="2pass")  # paced in real time, as the client does
    for message in log.messages:
        assert {"mode", "text", "wav_name", "is_final"} <= message.data.keys()
    online = log.of_mode("2pass-online")
    offline = log.of_mode("2pass-offline")
    assert online, "no streaming increments"
    assert len(offline) == 2
    assert wer(" ".join(SENTENCES), " ".join(m["text"] for m in offline)) < 0.3
    assert "".join(m["text"] for m in online).strip()
    last = log.messages[-1].data
    assert last["is_end"] is True and last["is_final"] is True and last["text"] == ""
    wait_for_idle_slots(stack)


def test_funasr_online_mode_sends_only_increments_that_add_up_to_the_sentences(stack: Stack, pcm: bytes) -> None:
    log = funasr_session(funasr_url(stack), pcm, mode="online")  # paced in real time
    online = log.of_mode("online")
    assert online and not log.of_mode("2pass-offline") and not log.of_mode("offline")
    assert all({"mode", "text", "wav_name", "is_final"} <= m.data.keys() for m in log.messages)
    assert wer(" ".join(SENTENCES), "".join(m["text"] for m in online)) < 0.35
    assert log.messages[-1].data.get("is_end") is True
    wait_for_idle_slots(stack)


def test_funasr_offline_mode_gets_one_result_after_the_end(stack: Stack, pcm: bytes) -> None:
    """Sent at 20x real time, far past the backlog the worker may hold: the API stops reading
    the socket until the worker catches up, and no audio is lost on the way."""
    assert len(pcm) / 32000 > 3 * BACKLOG_S
    log = funasr_session(funasr_url(stack), pcm, mode="offline", realtime_factor=20.0)
    results = log.of_mode("offline")
    assert len(results) == 1 and results[0]["is_final"] is True
    assert not log.of_mode("2pass-online") and not log.of_mode("online")
    assert wer(" ".join(SENTENCES), results[0]["text"]) < 0.3
    assert "reading the client paused" in stack.log_tail("api", 400), "the flow control never engaged"
    wait_for_idle_slots(stack)


@pytest.mark.parametrize("sample_rate_hz", [48000, 8000])
def test_the_backlog_allowed_is_seconds_of_the_sessions_own_audio(stack: Stack, pcm: bytes,
                                                                   sample_rate_hz: int) -> None:
    """stream_max_backlog_s counts the session's own audio: at 48 kHz a second is 96,000 bytes,
    at 8 kHz 16,000 (it was 32,000 bytes whatever the rate: a 48 kHz session's backlog was a
    third of the setting, an 8 kHz one's double)."""
    import soxr

    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    resampled = soxr.resample(samples, 16000, sample_rate_hz)
    audio = (resampled * 32767).clip(-32768, 32767).astype("<i2").tobytes()
    bytes_per_s = 2 * sample_rate_hz
    before = stack.log_tail("api", 2000).count("reading the client paused")
    log = funasr_session(funasr_url(stack), audio, mode="offline", realtime_factor=20.0,
                         frame_bytes=bytes_per_s // 10, config={"audio_fs": sample_rate_hz})
    assert len(log.of_mode("offline")) == 1
    paused = re.findall(r"holds [\d.]+ s \((\d+) bytes\) of unprocessed audio", stack.log_tail("api", 2000))
    assert len(paused) > before, "the flow control never engaged"
    held_bytes = int(paused[-1])
    assert BACKLOG_S * bytes_per_s <= held_bytes <= (BACKLOG_S + 0.5) * bytes_per_s, (held_bytes, bytes_per_s)
    wait_for_idle_slots(stack)


def test_funasr_older_client_gets_its_finals_without_is_end(stack: Stack, pcm: bytes) -> None:
    """Clients up to early 2026 send `is_speaking: false` without `is_end` and close ~2 s later:
    the server must finish the sentences on `is_speaking: false` alone. That they come within
    those 2 s is a latency goal (`bench/streaming.py`, "final after stop"), which a busy
    machine cannot keep; here the client waits for them, never sending `is_end`."""
    log = funasr_session(funasr_url(stack), pcm, mode="2pass", is_end=False, realtime_factor=3.0,
                         close_after_s=120, close_after_offline=2)
    offline = log.of_mode("2pass-offline")
    assert len(offline) == 2, f"only {len(offline)} corrected sentences arrived without is_end"
    wait_for_idle_slots(stack)


def test_funasr_audio_fs_8000_is_resampled_not_misread(stack: Stack, speech_dir: Path) -> None:
    """8 kHz audio through the live path hears what the model hears in one clip of the same
    audio: the live finals are within 0.05 WER of the finals model's one-clip decode (the
    resampling is exact and flushed at the end, tests/test_live_resampling.py; the VAD's cuts
    cost the rest). Eight sentences, so one word is 0.013, not 0.05."""
    import soxr

    from worker.engines.moonshine_base import load_moonshine_base

    texts = REFERENCE_SENTENCES
    samples, _ = soundfile.read(make_long_recording(texts, speech_dir / "stream-eight.wav", gap_s=1.2),
                                dtype="float32")
    low = soxr.resample(samples, 16000, 8000)
    pcm8k = (low * 32767).clip(-32768, 32767).astype("<i2").tobytes()
    log = funasr_session(funasr_url(stack), pcm8k, mode="2pass", realtime_factor=4.0, frame_bytes=960,
                         config={"audio_fs": 8000})
    live_wer = wer(" ".join(texts), " ".join(m["text"] for m in log.of_mode("2pass-offline")))
    heard = np.frombuffer(pcm8k, dtype="<i2").astype(np.float32) / 32768.0
    finals_model = load_moonshine_base(Path(os.environ["ODDASR_TEST_MODEL_CACHE"]))  # the live finals' model
    clip_wer = wer(" ".join(texts), finals_model.decode(soxr.resample(heard, 8000, 16000)))
    assert live_wer <= clip_wer + 0.05, (live_wer, clip_wer)
    wait_for_idle_slots(stack)


def test_funasr_audio_before_the_config_is_kept(stack: Stack, pcm: bytes) -> None:
    log = funasr_session(funasr_url(stack), pcm[1920:], mode="offline", realtime_factor=20.0,
                         early_audio=pcm[:1920])
    assert len(log.of_mode("offline")) == 1
    wait_for_idle_slots(stack)


def test_audio_before_the_config_is_bounded_in_bytes(stack: Stack) -> None:
    """Frames under the frame limit, several of them, before any config: the API does not hold
    them without end (stream_max_early_audio_bytes, 64 KiB), and says why in the protocol the
    port speaks."""
    with open_ws(funasr_url(stack)) as ws:
        for _ in range(2):  # 64 KiB and one frame more; no more, or the refusal could be reset away
            ws.send(b"\0" * 65536)
        reply = json.loads(ws.recv(timeout=30))
    assert reply["error_kind"] == "frame_too_large" and "before the start message" in reply["error"], reply
    wait_for_idle_slots(stack)


# --- native protocol ---------------------------------------------------------------------
def native_url(stack: Stack) -> str:
    return f"ws://127.0.0.1:{stack.settings.port}/v1/stream"


def _send_paced(ws, pcm: bytes, speed: float = 4.0, frame_bytes: int = 3200) -> None:  # type: ignore[no-untyped-def]
    for offset in range(0, len(pcm), frame_bytes):
        ws.send(pcm[offset:offset + frame_bytes])
        time.sleep(frame_bytes / 32000 / speed)


def _messages_until(ws, kinds: set[str], timeout_s: float = 60.0) -> list[dict]:  # type: ignore[no-untyped-def]
    received: list[dict] = []
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        message = json.loads(ws.recv(timeout=max(0.1, deadline_s - time.monotonic())))
        received.append(message)
        if message["type"] in kinds:
            return received
    raise TimeoutError(f"none of {kinds} within {timeout_s} s: {received}")


def test_native_protocol_keepalive_finalize_and_close_with_a_summary(stack: Stack, pcm: bytes) -> None:
    from websockets.exceptions import ConnectionClosed

    with open_ws(native_url(stack)) as ws:
        ws.send(json.dumps({"type": "Start", "sample_rate": 16000, "language": "en", "name": "native test"}))
        begin = json.loads(ws.recv(timeout=30))
        assert begin["type"] == "Begin" and begin["job_id"] == begin["session_id"]
        assert begin["audio"] == {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1}
        # Half of the first sentence, then Finalize: what was heard comes back as final now.
        first_cut = int(len(pcm) * 0.2) // 2 * 2
        _send_paced(ws, pcm[:first_cut])
        ws.send(json.dumps({"type": "Finalize"}))
        received = _messages_until(ws, {"Final"})
        assert received[-1]["text"].strip()
        # Silence longer than the idle timeout (2 s) with KeepAlive: the session stays open.
        for _ in range(6):
            ws.send(json.dumps({"type": "KeepAlive"}))
            time.sleep(0.5)
        _send_paced(ws, pcm[first_cut:])
        ws.send(json.dumps({"type": "Close"}))
        received += _messages_until(ws, {"Summary"}, timeout_s=60)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    finals = [m for m in received if m["type"] == "Final"]
    summary = received[-1]
    assert summary["job_id"] == begin["job_id"] and summary["finals"] == len(finals) >= 3
    assert abs(summary["duration_s"] - len(pcm) / 32000) < 0.05
    starts = [m["start"] for m in finals]
    assert starts == sorted(starts) and all(m["start"] <= m["end"] <= len(pcm) / 32000 + 0.5 for m in finals)
    # The sentences after the Finalize are placed on the session's clock (the VAD's own
    # starts over at 0 there): they begin where the cut was, or later.
    after_cut = finals[1:]
    assert after_cut and all(m["start"] >= first_cut / 32000 - 0.1 for m in after_cut)
    assert wer(" ".join(SENTENCES), " ".join(m["text"] for m in finals)) < 0.35
    job = final_job(stack, begin["job_id"])
    assert job["status"] == "succeeded" and job["mode"] == "stream"
    recording = requests.get(stack.url(f"/v1/jobs/{begin['job_id']}/audio"), timeout=10)
    assert recording.status_code == 200 and recording.headers["Content-Type"] == "audio/wav"
    info = soundfile.info(io.BytesIO(recording.content))
    assert info.samplerate == 16000 and abs(info.duration - len(pcm) / 32000) < 0.05
    wait_for_idle_slots(stack)


def test_deleting_a_live_sessions_job_ends_it_and_keeps_nothing(stack: Stack, pcm: bytes) -> None:
    """DELETE on a running session's job: the client is told in its protocol, the worker is
    freed, and neither the recording, the transcript nor the sentences stay stored."""
    with open_ws(native_url(stack)) as ws:
        ws.send(json.dumps({"type": "Start", "sample_rate": 16000, "language": "en"}))
        begin = json.loads(ws.recv(timeout=30))
        job_id = begin["job_id"]
        _send_paced(ws, pcm[:len(pcm) // 2 // 2 * 2])
        received = _messages_until(ws, {"Final"})
        running = requests.get(stack.url(f"/v1/jobs/{job_id}/audio"), timeout=10)
        assert running.status_code == 409 and "stored when it ends" in running.json()["error"]
        deleted = requests.delete(stack.url(f"/v1/jobs/{job_id}"), timeout=10)
        assert deleted.status_code == 200 and deleted.json()["status"] == "canceled"
        received += _messages_until(ws, {"Error", "Summary"})
    assert received[-1]["type"] == "Error" and received[-1]["kind"] == "canceled", received[-1]
    wait_for_idle_slots(stack)
    job = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
    assert job["status"] == "canceled" and job.get("result") is None
    storage = Path(stack.settings.storage_local_dir or "")
    assert not list(storage.rglob(f"*{job_id}*")), "the canceled session left data in storage"
    factory = make_session_factory(make_engine(stack.settings.database_url))
    assert JobRepository(factory).stream_segments(job_id) == []
    assert requests.get(stack.url(f"/v1/jobs/{job_id}/audio"), timeout=10).status_code == 410


def test_a_two_voice_session_reprocessed_with_diarize_labels_both_speakers(stack: Stack, speech_dir: Path) -> None:
    """Live, a stream has no speakers; asked to (`reprocess: diarize`), its recording becomes a
    file job whose transcript labels both voices, and the session's job shows both."""
    path, turns = make_dialogue(REFERENCE_SENTENCES[:4], speech_dir / "stream-dialogue.wav")
    samples, _rate = soundfile.read(path, dtype="int16")
    with open_ws(native_url(stack)) as ws:
        ws.send(json.dumps({"type": "Start", "language": "en", "reprocess": "diarize"}))
        begin = json.loads(ws.recv(timeout=30))
        assert begin["type"] == "Begin"
        _send_paced(ws, samples.tobytes(), speed=6.0)
        ws.send(json.dumps({"type": "Close"}))
        summary = _messages_until(ws, {"Summary"}, timeout_s=60)[-1]
    assert summary["reprocess"]["mode"] == "diarize"
    child_id = summary["reprocess"]["job_id"]
    deadline_s = time.monotonic() + 120
    while True:
        job = requests.get(stack.url(f"/v1/jobs/{begin['job_id']}"), timeout=10).json()
        if job.get("stage") in {"reprocessed", "reprocess_failed"} or time.monotonic() > deadline_s:
            break
        time.sleep(0.3)
    assert job["stage"] == "reprocessed", job
    assert job["reprocessed"]["job_id"] == child_id and job["reprocessed"]["status"] == "succeeded"
    live = job["result"]["segments"]
    assert live and all(segment["speaker"] is None for segment in live)
    better = job["reprocessed"]["result"]["segments"]
    assert {segment["speaker"] for segment in better} == {0, 1}
    assert speaker_accuracy(turns, [(s["start"], s["end"], s["speaker"]) for s in better]) > 0.8
    child = requests.get(stack.url(f"/v1/jobs/{child_id}"), timeout=10).json()
    assert child["mode"] == "file" and child["options"]["source_job_id"] == begin["job_id"]
    spk_text = requests.get(stack.url(f"/v1/jobs/{child_id}/transcript"), params={"format": "spk"}, timeout=10).text
    assert "Speaker 1:" in spk_text and "Speaker 2:" in spk_text  # rendered counting from 1
    wait_for_idle_slots(stack)


def test_reprocess_option_is_checked_before_a_worker_is_held(stack: Stack) -> None:
    reply, code = _first_reply(native_url(stack), json.dumps({"type": "Start", "reprocess": "twice"}))
    assert reply["type"] == "Error" and "reprocess must be one of none, offline, diarize" in reply["message"]
    reply, _ = _first_reply(oddasr_url(stack), json.dumps({"name": "StartTranscription", "reprocess": "x"}))
    assert reply["header"]["status"] == 10020001


def _native_run(stack: Stack, pcm: bytes, *, drop_at_bytes: int | None = None, gap_s: float = 5.0
                ) -> tuple[str, list[dict], dict | None]:
    """Stream `pcm` over the native protocol; with `drop_at_bytes`, cut the TCP connection
    there (no close frame), wait `gap_s`, reconnect with the session id and the last final
    received, and resend the audio from where the server says it has it."""
    received: list[dict] = []
    cut = len(pcm) if drop_at_bytes is None else drop_at_bytes
    ws = open_ws(native_url(stack))
    ws.send(json.dumps({"type": "Start", "language": "en"}))
    begin = json.loads(ws.recv(timeout=30))
    session_id = begin["session_id"]
    reader = threading.Thread(target=lambda: _collect_native(ws, received), daemon=True)
    reader.start()
    _send_paced(ws, pcm[:cut], speed=4.0)
    resumed_begin = None
    if drop_at_bytes is not None:
        ws.socket.shutdown(socket.SHUT_RDWR)  # the network goes: no close frame
        ws.socket.close()
        dropped_s = time.monotonic()
        reader.join(timeout=2)
        time.sleep(max(0.0, gap_s - (time.monotonic() - dropped_s)))
        finals_so_far = [m["index"] for m in received if m["type"] == "Final"]
        ws = open_ws(native_url(stack))
        ws.send(json.dumps({"type": "Start", "session": session_id,
                            "last_final": max(finals_so_far) if finals_so_far else -1}))
        resumed_begin = json.loads(ws.recv(timeout=30))
        assert resumed_begin["type"] == "Begin" and resumed_begin["resumed"] is True, resumed_begin
        reader = threading.Thread(target=lambda: _collect_native(ws, received), daemon=True)
        reader.start()
        _send_paced(ws, pcm[resumed_begin["audio_received_bytes"]:], speed=4.0)
    ws.send(json.dumps({"type": "Close"}))
    reader.join(timeout=60)
    ws.close()
    assert received and received[-1]["type"] == "Summary", received[-3:]
    return session_id, received, resumed_begin


def _collect_native(ws, received: list[dict]) -> None:  # type: ignore[no-untyped-def]
    from websockets.exceptions import ConnectionClosed

    with contextlib.suppress(ConnectionClosed, OSError):
        for raw in ws:
            received.append(json.loads(raw))


def test_a_dropped_session_resumed_after_five_seconds_loses_and_repeats_nothing(stack: Stack, pcm: bytes) -> None:
    whole_id, whole, _ = _native_run(stack, pcm)
    wait_for_idle_slots(stack)
    drop_at = int(len(pcm) * 0.3) // 2 * 2  # mid-sentence: the first sentence is still being spoken
    resumed_id, resumed, begin = _native_run(stack, pcm, drop_at_bytes=drop_at)
    assert begin is not None and 0 < begin["audio_received_bytes"] <= drop_at
    indexes = [m["index"] for m in resumed if m["type"] == "Final"]
    assert indexes == list(range(len(indexes))), f"each final once, in order: {indexes}"
    whole_text = [m["text"] for m in whole if m["type"] == "Final"]
    assert [m["text"] for m in resumed if m["type"] == "Final"] == whole_text
    assert resumed[-1]["finals"] == len(whole_text)
    jobs = [final_job(stack, job_id) for job_id in (whole_id, resumed_id)]
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"]
    assert jobs[1]["result"]["text"] == jobs[0]["result"]["text"]
    assert abs(jobs[1]["audio_duration_s"] - jobs[0]["audio_duration_s"]) < 0.01
    wait_for_idle_slots(stack)


def test_a_session_cannot_be_resumed_after_its_window_or_by_a_stranger(stack: Stack, pcm: bytes) -> None:
    reply, _ = _first_reply(native_url(stack), json.dumps({"type": "Start", "session": "f" * 32}))
    assert reply["type"] == "Error" and reply["kind"] == "unknown_task"
    with open_ws(native_url(stack)) as ws:
        ws.send(json.dumps({"type": "Start"}))
        session_id = json.loads(ws.recv(timeout=30))["session_id"]
        _send_paced(ws, pcm[:32000], speed=8.0)
        ws.send(json.dumps({"type": "Close"}))
        _messages_until(ws, {"Summary"})
    reply, _ = _first_reply(native_url(stack), json.dumps({"type": "Start", "session": session_id}))
    assert reply["type"] == "Error" and "has ended" in reply["message"]
    wait_for_idle_slots(stack)


@pytest.fixture(scope="module")
def keyed_api(stack: Stack) -> tuple[str, ApiKeyRepository]:
    """A second API process on the stack that requires keys; the workers are the same."""
    url, settings = stack.start_api("api-keyed", auth_mode="required")
    keys = ApiKeyRepository(make_session_factory(make_engine(settings.database_url)),
                            resolve_hash_key(settings.api_key_hash_secret, settings.data_dir))
    return url.replace("http://", "ws://") + "/v1/stream", keys


def test_a_live_session_ends_when_its_key_has_used_up_the_days_audio(
        stack: Stack, pcm: bytes, keyed_api: tuple[str, ApiKeyRepository]) -> None:
    """Charged as it goes, every 10 s of audio: a session does not run on past the allowance."""
    url, keys = keyed_api
    key = keys.create("short-day", limits=KeyLimits(audio_seconds_per_day=15))[1]
    long_pcm = pcm * (1 + int(32 * 32000 // len(pcm)))  # over 30 s of speech
    with open_ws(f"{url}?api_key={key}") as ws:
        ws.send(json.dumps({"type": "Start", "language": "en"}))
        begin = json.loads(ws.recv(timeout=30))
        assert begin["type"] == "Begin", begin
        received: list[dict] = []
        reader = threading.Thread(target=_collect_native, args=(ws, received), daemon=True)
        reader.start()
        with contextlib.suppress(Exception):  # the server ends the session while audio still comes
            _send_paced(ws, long_pcm, speed=8.0)
        reader.join(timeout=60)
    error = received[-1]
    assert error["type"] == "Error" and error["kind"] == "limited", received[-3:]
    assert "audio seconds for today" in error["message"] and begin["job_id"] in error["message"]
    job = final_job(stack, begin["job_id"])
    assert job["status"] == "succeeded" and job["result"]["segments"], job
    assert 15 <= job["audio_duration_s"] < 26, job["audio_duration_s"]  # ended at the 20 s charge
    with open_ws(f"{url}?api_key={key}") as ws:  # and no new session today
        ws.send(json.dumps({"type": "Start"}))
        refused = json.loads(ws.recv(timeout=30))
    assert refused["type"] == "Error" and refused["kind"] == "limited", refused
    wait_for_idle_slots(stack)


def test_a_client_that_reconnects_cannot_outrun_the_days_audio(
        stack: Stack, pcm: bytes, keyed_api: tuple[str, ApiKeyRepository]) -> None:
    """Each connection is charged when it ends, but checks the allowance only every 10 s of its
    own audio: a client reconnecting every few seconds never reached a check. A resume checks."""
    import redis as redis_client

    from api.key_limits import KeyLimiter
    from api.principal import Principal

    url, keys = keyed_api
    key, token = keys.create("reconnecter", limits=KeyLimits(audio_seconds_per_day=3))
    ws = open_ws(f"{url}?api_key={token}")
    ws.send(json.dumps({"type": "Start", "language": "en"}))
    begin = json.loads(ws.recv(timeout=30))
    assert begin["type"] == "Begin", begin
    _send_paced(ws, pcm[:5 * 32000], speed=8.0)  # 5 s: past the day's 3, short of a 10 s charge
    ws.socket.shutdown(socket.SHUT_RDWR)  # dropped: charged as it ends, then held for a resume
    ws.socket.close()
    limiter = KeyLimiter(stack.settings.effective_redis_url,
                         redis_client.Redis.from_url(stack.settings.effective_redis_url), lambda _key: 0)
    spender = Principal(key_id=key.id, name="reconnecter", is_admin=False, audio_seconds_per_day=3)
    deadline_s = time.monotonic() + 30
    while limiter.has_audio_left(spender):  # the dropped connection's charge has landed
        assert time.monotonic() < deadline_s, "the dropped connection was never charged"
        time.sleep(0.1)
    with open_ws(f"{url}?api_key={token}") as again:
        again.send(json.dumps({"type": "Start", "session": begin["session_id"]}))
        messages = _messages_until(again, {"Error", "Summary"})
    error = next((m for m in messages if m["type"] == "Error"), None)
    assert error is not None and error["kind"] == "limited", messages
    assert "audio seconds for today" in error["message"] and begin["job_id"] in error["message"]
    assert final_job(stack, begin["job_id"])["status"] == "succeeded"
    wait_for_idle_slots(stack)


def test_another_keys_client_cannot_resume_a_session(
        stack: Stack, pcm: bytes, keyed_api: tuple[str, ApiKeyRepository]) -> None:
    url, keys = keyed_api
    owner, stranger = (keys.create(name)[1] for name in ("owner", "stranger"))
    ws = open_ws(f"{url}?api_key={owner}")
    ws.send(json.dumps({"type": "Start", "language": "en"}))
    session_id = json.loads(ws.recv(timeout=30))["session_id"]
    _send_paced(ws, pcm[:64000], speed=8.0)
    ws.socket.shutdown(socket.SHUT_RDWR)  # dropped: the worker holds the session for a resume
    ws.socket.close()
    with open_ws(f"{url}?api_key={stranger}") as other:
        other.send(json.dumps({"type": "Start", "session": session_id}))
        reply = json.loads(other.recv(timeout=30))
    assert reply["type"] == "Error" and reply["kind"] == "unknown_task", reply
    with open_ws(f"{url}?api_key={owner}") as again:
        again.send(json.dumps({"type": "Start", "session": session_id}))
        resumed = json.loads(again.recv(timeout=30))
        assert resumed["type"] == "Begin" and resumed["resumed"] is True, resumed
        again.send(json.dumps({"type": "Close"}))
        _messages_until(again, {"Summary"})
    wait_for_idle_slots(stack)


def test_live_sessions_take_a_named_hotword_set_in_all_three_protocols(stack: Stack, pcm: bytes) -> None:
    """Like a file job: `hotword_set` names the key's set, whose words (heaviest first) join the
    start message's own; the job records the set and its version. An unknown set is refused in
    each protocol's words before a worker is held."""
    words = {"words": [{"word": "Brannigan", "weight": 30}, {"word": "Aoife", "weight": 20}]}
    assert requests.put(stack.url("/v1/hotwords/live-names"), json=words, timeout=10).status_code in (200, 201)
    with open_ws(native_url(stack)) as ws:
        ws.send(json.dumps({"type": "Start", "language": "en", "hotword_set": "live-names", "hotwords": ["OddASR"]}))
        begin = json.loads(ws.recv(timeout=30))
        assert begin["type"] == "Begin", begin
        _send_paced(ws, pcm[:32000], speed=8.0)
        ws.send(json.dumps({"type": "Close"}))
        _messages_until(ws, {"Summary"})
    options = final_job(stack, begin["job_id"])["options"]
    assert options["hotwords"] == ["Brannigan", "Aoife", "OddASR"], options
    assert options["hotword_set"] == "live-names" and options["hotword_set_version"] == "1", options
    unknown = {"hotword_set": "no-such-set"}
    reply, _ = _first_reply(native_url(stack), json.dumps({"type": "Start", **unknown}))
    assert reply["kind"] == "bad_request" and "unknown hotword set 'no-such-set'" in reply["message"], reply
    reply, _ = _first_reply(oddasr_url(stack), json.dumps({"name": "StartTranscription", **unknown}))
    assert reply["header"]["status"] == 10020001 and "no-such-set" in reply["header"]["status_text"], reply
    reply, _ = _first_reply(funasr_url(stack), json.dumps({"mode": "offline", **unknown}))
    assert reply.get("error_kind") == "bad_request" and "no-such-set" in reply["error"], reply
    wait_for_idle_slots(stack)


def test_native_protocol_refuses_bad_messages_in_its_own_words(stack: Stack) -> None:
    reply, code = _first_reply(native_url(stack), json.dumps({"type": "Start", "sample_rate": 1}))
    assert reply == {"type": "Error", "kind": "bad_request", "message": reply["message"]} and code == 1000
    assert "sample_rate" in reply["message"]
    reply, _ = _first_reply(native_url(stack), "garbage")
    assert reply["type"] == "Error" and reply["kind"] == "bad_request"
    with open_ws(native_url(stack)) as ws:
        ws.send(json.dumps({"type": "Start"}))
        assert json.loads(ws.recv(timeout=30))["type"] == "Begin"
        ws.send(json.dumps({"type": "Rewind"}))
        error = _messages_until(ws, {"Error"})[-1]
        assert error["kind"] == "bad_request" and "KeepAlive, Finalize or Close" in error["message"]
    wait_for_idle_slots(stack)


def test_oddasr_stream_command_prints_finals_line_by_line_and_a_summary(stack: Stack, two_sentences: Path) -> None:
    import subprocess
    import sys

    started_s = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "shared.cli.main", "stream", str(two_sentences), "--server",
                           stack.base_url, "--speed", "3", "--language", "en"],
                          capture_output=True, text=True, timeout=120, check=False, env=stack.env)
    elapsed_s = time.monotonic() - started_s
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) >= 2 and all(re.match(r"\[\s*\d+\.\d\d - \s*\d+\.\d\d\] \S", line) for line in lines)
    assert wer(" ".join(SENTENCES), " ".join(line.split("] ", 1)[1] for line in lines)) < 0.2
    assert "sentences; the transcript:" in done.stderr
    # Paced: 9.3 s of audio at 3x takes at least ~3 s to send.
    assert elapsed_s >= soundfile.info(str(two_sentences)).duration / 3
    wait_for_idle_slots(stack)


# --- bad input ---------------------------------------------------------------------------
def _first_reply(url: str, first: str | bytes, subprotocols: list[str] | None = None) -> tuple[dict, int | None]:
    from websockets.exceptions import ConnectionClosed

    with open_ws(url, subprotocols) as ws:
        ws.send(first)
        reply = json.loads(ws.recv(timeout=20))
        try:
            ws.recv(timeout=5)
            code = None
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
    return reply, code


def test_non_json_first_frame_is_refused_in_the_clients_protocol(stack: Stack) -> None:
    reply, code = _first_reply(oddasr_url(stack), "hello")
    assert reply["header"]["status"] == 10020001 and reply["header"]["status_text"]
    assert code == 1000
    reply, code = _first_reply(funasr_url(stack), "{not json", ["binary"])
    assert reply["error"] and reply["is_final"] is True and "text" in reply
    assert code == 1000


def test_wrong_start_name_and_unknown_task_id_are_refused(stack: Stack) -> None:
    reply, _ = _first_reply(oddasr_url(stack), json.dumps({"name": "Hello"}))
    assert reply["header"]["status"] == 10020001
    reply, _ = _first_reply(oddasr_url(stack), json.dumps({"name": "StartTranscription", "task_id": "f" * 32}))
    assert reply["header"]["status"] == 10020003
    reply, _ = _first_reply(funasr_url(stack), json.dumps({"mode": "3pass"}), ["binary"])
    assert "3pass" in reply["error"]
    reply, _ = _first_reply(oddasr_url(stack), json.dumps({"name": "StartTranscription", "language": "xx"}))
    assert reply["header"]["status"] == 10020001 and "en" in reply["header"]["status_text"]


def test_an_oversized_frame_ends_the_session_with_a_reason(stack: Stack, pcm: bytes) -> None:
    from websockets.exceptions import ConnectionClosed

    with open_ws(oddasr_url(stack)) as ws:
        ws.send(json.dumps({"name": "StartTranscription", "message_id": "", "token": "", "task_id": ""}))
        begin = json.loads(ws.recv(timeout=20))
        ws.send(pcm[:32000])
        ws.send(b"\0" * (stack.settings.stream_max_frame_bytes + 2))
        messages = []
        with pytest.raises(ConnectionClosed):
            while True:
                messages.append(json.loads(ws.recv(timeout=20)))
    assert messages[-1]["header"]["status"] == 10020004
    assert final_job(stack, begin["header"]["task_id"])["status"] in {"succeeded", "failed"}
    wait_for_idle_slots(stack)


def test_a_text_frame_where_audio_is_expected_is_an_error_not_a_crash(stack: Stack, pcm: bytes) -> None:
    from websockets.exceptions import ConnectionClosed

    with open_ws(oddasr_url(stack)) as ws:
        ws.send(json.dumps({"name": "StartTranscription", "message_id": "", "token": "", "task_id": ""}))
        json.loads(ws.recv(timeout=20))
        ws.send(pcm[:32000])
        ws.send("this is not audio")
        messages = []
        with pytest.raises(ConnectionClosed):
            while True:
                messages.append(json.loads(ws.recv(timeout=20)))
    assert messages[-1]["header"]["status"] == 10020001
    wait_for_idle_slots(stack)


def test_busy_is_an_explicit_answer_after_the_configured_wait(stack: Stack, pcm: bytes) -> None:
    stop = threading.Event()

    def hold(ws) -> None:  # type: ignore[no-untyped-def]
        while not stop.wait(0.2):  # silence keeps the session alive past the idle timeout
            ws.send(b"\0" * 6400)

    with contextlib.ExitStack() as holders:
        threads = []
        for _ in range(STREAM_WORKERS):
            ws = holders.enter_context(open_ws(oddasr_url(stack)))
            ws.send(json.dumps({"name": "StartTranscription", "message_id": "", "token": "", "task_id": ""}))
            assert json.loads(ws.recv(timeout=20))["header"]["status"] == 0
            threads.append(threading.Thread(target=hold, args=(ws,), daemon=True))
            threads[-1].start()
        started_s = time.monotonic()
        reply, code = _first_reply(oddasr_url(stack), json.dumps({"name": "StartTranscription", "task_id": ""}))
        waited_s = time.monotonic() - started_s
        stop.set()
        for thread in threads:
            thread.join()
    assert reply["header"]["status"] == 20020001 and "busy" in reply["header"]["status_text"]
    assert code == 1000
    assert waited_s >= stack.settings.stream_slot_wait_s - 0.2
    wait_for_idle_slots(stack)


def test_a_client_that_vanishes_without_a_close_frees_its_worker_after_the_resume_window(
        stack: Stack, pcm: bytes) -> None:
    with contextlib.suppress(Exception), open_ws(oddasr_url(stack)) as ws:
        ws.send(json.dumps({"name": "StartTranscription", "message_id": "", "token": "", "task_id": ""}))
        job_id = json.loads(ws.recv(timeout=20))["header"]["task_id"]
        for offset in range(0, 5 * 32000, 3200):
            ws.send(pcm[offset:offset + 3200])
            time.sleep(0.05)
        ws.socket.shutdown(socket.SHUT_RDWR)  # gone: no close frame
        ws.socket.close()
    wait_for_idle_slots(stack, timeout_s=RESUME_WINDOW_S + 120)
    job = final_job(stack, job_id)
    assert job["status"] == "succeeded"
    assert job["result"]["segments"], "the sentence heard before the client vanished is kept"


def test_healthz_answers_while_a_hundred_websockets_are_open(stack: Stack) -> None:
    with contextlib.ExitStack() as sockets:
        for index in range(100):  # from 4 addresses: one address may hold 32 (max_sockets_per_client)
            sockets.enter_context(open_ws(oddasr_url(stack), source_ip=f"127.0.3.{1 + index // 25}"))
        # Each answers (a server with no greenlet left would time out); how fast is the machine's.
        for _ in range(20):
            assert requests.get(stack.url("/healthz"), timeout=30).status_code == 200
