"""Word times in live finals: the alignment step on audio whose word times are known, the
three protocols' shapes, and the words coming through real processes in all three."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile

from api.streaming import vocabulary as v
from api.streaming.protocols.funasr import FunAsrProtocol
from api.streaming.protocols.native import NativeProtocol
from api.streaming.protocols.oddasr import OddAsrProtocol
from tests.support.live_sessions import native_session
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_until
from tests.support.ws_clients import funasr_session, oddasr_session, open_ws
from worker.engines.base import SAMPLE_RATE_HZ
from worker.engines.word_timing import align_words

WORDS = (v.TimedWord("Hello,", 1200, 1500), v.TimedWord("world.", 1600, 2100), v.TimedWord("Again", 2500, 2900))


# --- the alignment step ------------------------------------------------------------------
def _bursts(spec: list[tuple[float, float]], total_s: float) -> np.ndarray:
    """Voiced bursts (a 150 Hz buzz with harmonics, some noise under all of it) at known times."""
    rng = np.random.default_rng(7)
    t = np.arange(int(total_s * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    audio = rng.normal(0, 0.002, t.size)
    for start_s, end_s in spec:
        part = (t >= start_s) & (t < end_s)
        audio[part] += sum(0.2 / k * np.sin(2 * np.pi * 150 * k * t[part]) for k in range(1, 6))
    return audio.astype(np.float32)


def test_words_land_on_their_voiced_stretches_after_pauses_of_any_length() -> None:
    """One, three, one and three syllables; a long pause after the comma. Spreading words by
    syllables alone would put "elephant" across the pause: the pauses are where words meet."""
    truth = [(0.30, 0.50), (0.65, 1.25), (2.10, 2.30), (2.45, 3.05)]
    words = align_words("Go banana, to elephant.", _bursts(truth, 3.4), 0, 0, 3400)
    assert [w.word for w in words] == ["Go", "banana,", "to", "elephant."]
    for word, (start_s, end_s) in zip(words, truth, strict=True):
        assert abs(word.start_s - start_s) <= 0.03 and abs(word.end_s - end_s) <= 0.03, (word, start_s, end_s)


def test_times_are_on_the_session_clock_and_cjk_is_timed_per_character() -> None:
    truth = [(0.2, 0.4), (0.5, 0.7), (0.8, 1.0)]
    words = align_words("你好吗？", _bursts(truth, 1.2), 60_000, 60_000, 61_200)
    assert [w.word for w in words] == ["你", "好", "吗？"]
    assert all(60.0 <= w.start_s < w.end_s <= 61.2 for w in words)
    assert abs(words[1].start_s - 60.5) <= 0.03


def test_no_text_no_words_and_too_little_audio_shares_the_span_out() -> None:
    assert align_words(" , ", _bursts([], 1.0), 0, 0, 1000) == []
    words = align_words("one two three", np.zeros(40, dtype=np.float32), 500, 500, 520)
    assert [w.word for w in words] == ["one", "two", "three"]
    assert words[0].start_s == 0.5 and words[-1].end_s >= words[0].end_s
    silent = align_words("still here", np.zeros(16000, dtype=np.float32), 0, 0, 1000)
    assert [w.word for w in silent] == ["still", "here"] and silent[0].end_s <= silent[1].start_s


# --- the protocols' shapes ---------------------------------------------------------------
def test_native_final_carries_words_in_seconds() -> None:
    final = json.loads(NativeProtocol().on_final(3, "Hello, world. Again", 1200, 2900, words=WORDS)[0])
    assert final["words"] == [{"word": "Hello,", "start": 1.2, "end": 1.5},
                              {"word": "world.", "start": 1.6, "end": 2.1}, {"word": "Again", "start": 2.5, "end": 2.9}]
    assert "speaker" not in final
    assert json.loads(NativeProtocol().on_final(0, "x", 0, 1)[0])["words"] == []


def test_oddasr_sentence_end_carries_the_originals_words_in_milliseconds() -> None:
    adapter = OddAsrProtocol()
    adapter.parse_start(json.dumps({"name": "StartTranscription", "message_id": "m", "token": "", "task_id": ""}))
    frame = json.loads(adapter.on_final(0, "Hello, world. Again", 1200, 2900, words=WORDS)[0])
    assert frame["header"]["name"] == "SentenceEnd"
    assert frame["payload"]["words"] == [{"word": "Hello,", "begin_time": 1200, "end_time": 1500},
                                         {"word": "world.", "begin_time": 1600, "end_time": 2100},
                                         {"word": "Again", "begin_time": 2500, "end_time": 2900}]
    assert not set(frame["header"]) & set(frame["payload"])


def test_funasr_2pass_offline_carries_timestamp_as_a_string_and_stamp_sents() -> None:
    adapter = FunAsrProtocol()
    adapter.parse_start(json.dumps({"mode": "2pass", "wav_name": "w"}))
    message = json.loads(adapter.on_final(0, "Hello, world. Again", 1200, 2900, words=WORDS)[0])
    assert message["mode"] == "2pass-offline"
    assert json.loads(message["timestamp"]) == [[1200, 1500], [1600, 2100], [2500, 2900]]
    assert message["stamp_sents"] == [
        {"text_seg": "Hello", "punc": ",", "start": 1200, "end": 1500, "ts_list": [[1200, 1500]]},
        {"text_seg": "world", "punc": ".", "start": 1600, "end": 2100, "ts_list": [[1600, 2100]]},
        {"text_seg": "Again", "punc": "", "start": 2500, "end": 2900, "ts_list": [[2500, 2900]]}]
    chinese = json.loads(adapter.on_final(1, "正是因为，", 0, 900, words=(
        v.TimedWord("正", 0, 200), v.TimedWord("是", 200, 400), v.TimedWord("因", 400, 600),
        v.TimedWord("为，", 600, 900)))[0])
    assert chinese["stamp_sents"] == [{"text_seg": "正 是 因 为", "punc": "，", "start": 0, "end": 900,
                                       "ts_list": [[0, 200], [200, 400], [400, 600], [600, 900]]}]


def test_funasr_offline_result_carries_every_sentences_times() -> None:
    adapter = FunAsrProtocol()
    adapter.parse_start(json.dumps({"mode": "offline", "wav_name": "w"}))
    assert adapter.on_final(0, "Hello, world.", 0, 0, words=WORDS[:2]) == []
    assert adapter.on_final(1, "Again", 0, 0, words=WORDS[2:]) == []
    result = json.loads(adapter.on_end(False)[0])
    assert result["mode"] == "offline" and len(json.loads(result["timestamp"])) == 3


# --- through real processes --------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("livewords"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=0, stream_idle_timeout_s=2.0, stream_slot_wait_s=10.0) as stack:
        stack.start_stream_workers(1)
        stack.wait_stream_slots(1)
        yield stack


@pytest.fixture(scope="module")
def recording(speech_dir: Path) -> Path:
    return make_long_recording([REFERENCE_SENTENCES[1], REFERENCE_SENTENCES[3]], speech_dir / "live-words.wav",
                               gap_s=1.2)


def _check_words(text: str, words: list[tuple[str, float, float]], start_s: float, end_s: float) -> None:
    """The words make up the text, in order, within the sentence (a little slack at its edges)."""
    assert " ".join(word for word, _, _ in words) == text
    assert all(a <= b for _, a, b in words)
    assert all(earlier[2] <= later[1] + 1e-6 for earlier, later in zip(words, words[1:], strict=False))
    assert start_s - 0.25 <= words[0][1] and words[-1][2] <= end_s + 0.25


@pytest.mark.integration
def test_words_in_every_final_of_all_three_protocols(stack: Stack, recording: Path) -> None:
    pcm = soundfile.read(recording, dtype="int16")[0].tobytes()
    # native
    with open_ws(f"ws://127.0.0.1:{stack.settings.port}/v1/stream") as ws:
        ws.send(json.dumps({"type": "Start", "sample_rate": 16000, "language": "en", "partials": False}))
        begin = json.loads(ws.recv(timeout=60))
        assert begin["type"] == "Begin"
        for offset in range(0, len(pcm), 6400):
            ws.send(pcm[offset:offset + 6400])
            time.sleep(0.05)
        ws.send(json.dumps({"type": "Close"}))
        native = []
        while not native or native[-1]["type"] != "Summary":
            native.append(json.loads(ws.recv(timeout=60)))
    finals = [m for m in native if m["type"] == "Final"]
    assert len(finals) == 2
    for final in finals:
        _check_words(final["text"], [(w["word"], w["start"], w["end"]) for w in final["words"]], final["start"],
                     final["end"])
    stack.wait_stream_slots(1)
    # OddASR
    log = oddasr_session(f"ws://127.0.0.1:{stack.settings.ws_port}/v1/asr", recording, chunk_bytes=32000,
                         interval_s=0.25, stop_message={"name": "STOP_SESSION_REQ", "task_id": ""})
    ends = [m["payload"] for m in log.named("SentenceEnd") if m["payload"]["result"] != "END"]
    assert len(ends) == 2
    for end in ends:
        _check_words(end["result"], [(w["word"], w["begin_time"] / 1000, w["end_time"] / 1000) for w in end["words"]],
                     end["begin_time"] / 1000, end["end_time"] / 1000)
    stack.wait_stream_slots(1)
    # FunASR 2pass
    log = funasr_session(f"ws://127.0.0.1:{stack.settings.funasr_ws_port}/", pcm, mode="2pass", realtime_factor=4.0)
    offline = log.of_mode("2pass-offline")
    assert len(offline) == 2
    for message in offline:
        stamps = json.loads(message["timestamp"])
        units = re.findall(r"[^\W_]+(?:'[^\W_]+)*", message["text"])
        assert len(stamps) == len(units) and stamps == sorted(stamps)
        assert " ".join(s["text_seg"] for s in message["stamp_sents"]).split() == units
    stack.wait_stream_slots(1)
    # The stored job keeps the words too.
    job_url = stack.url(f"/v1/jobs/{begin['job_id']}")
    wait_until(lambda: requests.get(job_url, timeout=10).json()["status"] == "succeeded", timeout_s=60,
               what="the session's job")
    transcript = requests.get(f"{job_url}/transcript?format=json", timeout=10).json()
    assert [[w["word"] for w in s["words"]] for s in transcript["segments"]] == \
        [[w["word"] for w in f["words"]] for f in finals]


@pytest.mark.integration
def test_whisper_live_finals_carry_whispers_own_word_times(stack: Stack, recording: Path) -> None:
    """Hotwords send an English session to Whisper (Moonshine cannot be biased): its finals'
    words are Whisper's, timed on the session's clock."""
    pcm = soundfile.read(recording, dtype="int16")[0].tobytes()
    stack.wait_stream_slots(1)
    received = native_session(stack, pcm, {"hotwords": ["weather"]})
    finals = [m for m in received if m["type"] == "Final"]
    assert len(finals) == 2, received
    for final in finals:
        _check_words(final["text"], [(w["word"], w["start"], w["end"]) for w in final["words"]], final["start"],
                     final["end"])
    job = requests.get(stack.url(f"/v1/jobs/{received[0]['job_id']}"), timeout=10).json()
    assert job["engine"] == "whisper" or "whisper" in str(job.get("engine")), job
