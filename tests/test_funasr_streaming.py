"""FunASR 2pass / online / offline through the whole stack with the funasr engine: API, relay,
a pinned stream worker running the tiny random ParaformerStreaming (streaming text), the tiny
SeacoParaformer + CT-Transformer (corrections) and the real fsmn-vad (sentence ends).

The text is noise (random weights): these tests check what FunASR's clients depend on, the
message structure, which modes arrive, how many corrected segments, their order against the
audio and the end acknowledgement; never the words. Accuracy is the Whisper tests' job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import soundfile

from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from tests.support.stack import Stack, running_stack
from tests.support.ws_clients import SessionLog, funasr_session, open_ws

pytestmark = pytest.mark.integration

#: The engine keeps up easily: the clients send at twice real time to keep the module short.
PACE = 2.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server,  # type: ignore[no-untyped-def]
          tiny_funasr_models: dict[str, Path]) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("funasr-stream-stack")
    with running_stack(tmp, redis_server.url, file_concurrency=1, sentence_concurrency=0, engine="funasr",
                       funasr_asr_model=str(tiny_funasr_models["asr"]),
                       funasr_punc_model=str(tiny_funasr_models["punc"]),
                       funasr_stream_asr_model=str(tiny_funasr_models["stream"]),
                       stream_idle_timeout_s=2.0, stream_slot_wait_s=5.0) as stack:
        stack.start_stream_workers(1)
        stack.wait_stream_slots(1)
        yield stack


@pytest.fixture(scope="module")
def pcm(speech_dir: Path) -> bytes:
    """Two spoken sentences with a 1.2 s pause: two VAD segments."""
    wav = make_long_recording([REFERENCE_SENTENCES[1], REFERENCE_SENTENCES[3]], speech_dir / "stream-two.wav",
                              gap_s=1.2)
    samples, rate = soundfile.read(wav, dtype="int16")
    assert rate == 16000
    return samples.tobytes()


def url(stack: Stack) -> str:
    return f"ws://127.0.0.1:{stack.settings.funasr_ws_port}/"


def check_messages(log: SessionLog, mode: str) -> None:
    """Every message has what every FunASR client reads; the end acknowledgement comes last."""
    assert log.messages, "nothing came back"
    for message in log.messages:
        assert {"mode", "text", "wav_name", "is_final"} <= message.data.keys()
        assert "error" not in message.data, message.data
    last = log.messages[-1].data
    assert last == {"mode": mode, "text": "", "wav_name": "demo", "is_final": True, "is_end": True}


def test_2pass_streams_increments_then_one_corrected_segment_per_sentence(stack: Stack, pcm: bytes) -> None:
    log = funasr_session(url(stack), pcm, mode="2pass", realtime_factor=PACE)
    check_messages(log, "2pass")
    kinds = [m.data["mode"] for m in log.messages[:-1]]
    assert set(kinds) == {"2pass-online", "2pass-offline"}
    assert kinds.count("2pass-offline") == 2, kinds  # one per spoken sentence (the text is noise)
    assert all(m.data["text"] for m in log.messages[:-1])  # increments and corrections say something
    # Each sentence streams first and is corrected after: online, ..., offline, online, ..., offline.
    first_offline = kinds.index("2pass-offline")
    assert kinds[0] == "2pass-online" and "2pass-online" in kinds[first_offline:]
    assert kinds[-1] == "2pass-offline"
    # The first sentence is corrected while the second is still being spoken, not at the end.
    corrected_s = [m.at_s for m in log.messages if m.data["mode"] == "2pass-offline"]
    assert corrected_s[0] < log.audio_end_s - 1.0
    stack.wait_stream_slots(1)


def test_online_sends_only_increments(stack: Stack, pcm: bytes) -> None:
    log = funasr_session(url(stack), pcm, mode="online", realtime_factor=PACE,
                         config={"chunk_size": [5, 5, 5], "encoder_chunk_look_back": 2, "decoder_chunk_look_back": 1})
    check_messages(log, "online")
    increments = [m.data for m in log.messages[:-1]]
    assert increments and all(m["mode"] == "online" and m["text"] for m in increments)
    assert len(increments) >= 4  # a 300 ms chunk at a time, over two sentences
    stack.wait_stream_slots(1)


def test_offline_gets_one_result_after_the_end_and_the_acknowledgement(stack: Stack, pcm: bytes) -> None:
    log = funasr_session(url(stack), pcm, mode="offline", realtime_factor=20.0)
    results = log.of_mode("offline")
    assert len(results) == 1 and results[0]["is_final"] is True and results[0]["text"]
    assert results[0] is log.messages[0].data  # nothing before it: offline clients close at the first
    assert not log.of_mode("online") and not log.of_mode("2pass-online")
    stack.wait_stream_slots(1)
    # a client that waits for the acknowledgement after the result gets it last
    with open_ws(url(stack), subprotocols=["binary"]) as ws:
        ws.send(json.dumps({"mode": "offline", "wav_name": "demo", "is_speaking": True}))
        for offset in range(0, len(pcm), 1920 * 10):
            ws.send(pcm[offset:offset + 1920 * 10])
        ws.send(json.dumps({"is_speaking": False, "is_end": True}))
        replies = [json.loads(ws.recv(timeout=60)) for _ in range(2)]
    assert [r["mode"] for r in replies] == ["offline", "offline"] and replies[1]["is_end"] is True
    stack.wait_stream_slots(1)


def test_a_native_session_on_the_funasr_engine_records_its_job(stack: Stack, pcm: bytes) -> None:
    """Finalize mid-sentence, go on, Close: the finals count on, and the job names the models."""
    with open_ws(f"ws://127.0.0.1:{stack.settings.port}/v1/stream") as ws:
        ws.send(json.dumps({"type": "Start", "sample_rate": 16000}))
        begin = json.loads(ws.recv(timeout=30))
        assert begin["type"] == "Begin"
        cut = len(pcm) // 5 // 2 * 2
        for offset in range(0, len(pcm), 1920):
            if offset == cut // 1920 * 1920:
                ws.send(json.dumps({"type": "Finalize"}))
            ws.send(pcm[offset:offset + 1920])
            time.sleep(0.06 / PACE)
        ws.send(json.dumps({"type": "Close"}))
        received = []
        while not received or received[-1]["type"] != "Summary":
            received.append(json.loads(ws.recv(timeout=30)))
    finals = [m for m in received if m["type"] == "Final"]
    assert received[-1]["finals"] == len(finals) >= 3  # the cut sentence's two halves, then the second
    assert [m["start"] for m in finals] == sorted(m["start"] for m in finals)
    deadline_s = time.monotonic() + 30
    while (job := requests.get(stack.url(f"/v1/jobs/{begin['job_id']}"), timeout=10).json())["status"] != \
            "succeeded" and time.monotonic() < deadline_s:
        time.sleep(0.2)
    assert job["status"] == "succeeded" and job["mode"] == "stream" and job["engine"] == "funasr"
    transcript = requests.get(stack.url(f"/v1/jobs/{begin['job_id']}/transcript?format=json"), timeout=10).json()
    assert transcript["model"] == "tiny-stream+tiny-asr" and len(transcript["segments"]) == len(finals)
    stack.wait_stream_slots(1)
