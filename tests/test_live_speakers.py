"""Live speakers: the labelling rules on vectors whose voices are known, the real GE2E
embedder on generated voices (enrolled, anonymous, unknown), the protocols' shapes, the
refusals of a worker that cannot name speakers, and a session through real processes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import requests
import soundfile

from api.streaming import vocabulary as v
from api.streaming.protocols.funasr import FunAsrProtocol
from api.streaming.protocols.native import NativeProtocol
from api.streaming.protocols.oddasr import OddAsrProtocol
from shared.config.speakers import SpeakerSettings
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from tests.support.live_sessions import native_session, wait_for_speaker_model
from tests.support.stack import Stack, running_stack
from tests.support.voices import conversation, enrollment_clip, true_voice
from tests.support.waiting import wait_until
from worker.engines import live_speakers
from worker.engines.base import SAMPLE_RATE_HZ
from worker.engines.live_speakers import LiveSpeakerLabeler
from worker.streaming.session_speakers import RecentAudio, SessionSpeakers, SpeakersUnavailable

DIMENSIONS = 64


def _direction(voice: int, wobble: float = 0.0, seed: int = 0) -> np.ndarray:
    vector = np.zeros(DIMENSIONS)
    vector[voice] = 1.0
    vector += wobble * np.random.default_rng(seed).normal(size=DIMENSIONS)
    return vector / np.linalg.norm(vector)


def _clip(voice: int, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A clip that the fake embedder below reads its voice (and a wobble seed) from."""
    clip = np.zeros(int(seconds * SAMPLE_RATE_HZ), dtype=np.float32)
    clip[-2:] = [voice, seed]
    return clip


def _embed(clip: np.ndarray) -> np.ndarray:
    return _direction(int(clip[-2]), wobble=0.02, seed=int(clip[-1]))


# --- the rules ---------------------------------------------------------------------------
def test_anonymous_voices_keep_their_number_in_order_of_appearance() -> None:
    labeler = LiveSpeakerLabeler(_embed, [], 0.85)
    labels = [labeler.label(_clip(voice, seed=i)).label for i, voice in enumerate([3, 5, 3, 7, 5, 3])]
    assert labels == ["Speaker 1", "Speaker 2", "Speaker 1", "Speaker 3", "Speaker 2", "Speaker 1"]


def test_an_enrolled_voice_is_named_and_others_stay_anonymous() -> None:
    labeler = LiveSpeakerLabeler(_embed, [("Alice", list(_direction(5)))], 0.85)
    first, second, third = (labeler.label(_clip(voice, seed=i)) for i, voice in enumerate([5, 3, 5]))
    assert (first.label, first.name) == ("Alice", "Alice") and 0.85 <= first.similarity <= 1.0
    assert (second.label, second.name, second.similarity) == ("Speaker 1", None, None), "named voices take no number"
    assert third.label == "Alice"


def test_a_voice_close_to_an_enrolled_one_but_under_the_threshold_is_not_named() -> None:
    alice = _direction(5)
    near = (alice + 1.2 * _direction(6)) / np.linalg.norm(alice + 1.2 * _direction(6))  # cosine 0.64
    labeler = LiveSpeakerLabeler(lambda clip: near, [("Alice", list(alice))], 0.85)
    assert all(labeler.label(_clip(0, seed=i)).name is None for i in range(5))


def test_a_voice_named_later_keeps_the_labels_it_was_sent() -> None:
    """A first sentence under the threshold stays `Speaker 1`; the voice's mean over more
    sentences reaches it, and later sentences carry the name."""
    alice = _direction(5)
    readings = iter([0.92, 0.93, 0.93, 0.93])

    def embed(clip: np.ndarray) -> np.ndarray:
        similarity = next(readings)
        other = _direction(6 + int(clip[-1]))
        return similarity * alice + np.sqrt(1 - similarity ** 2) * other

    labeler = LiveSpeakerLabeler(embed, [("Alice", list(alice))], 0.95)
    labels = [labeler.label(_clip(0, seed=i)).label for i in range(4)]
    assert labels == ["Speaker 1", "Alice", "Alice", "Alice"]


def test_memory_is_bounded_in_a_long_session() -> None:
    labeler = LiveSpeakerLabeler(_embed, [], 0.85)
    for i in range(300):
        labeler.label(_clip(i % 40, seed=i))
    voices = labeler._voices
    assert len(voices) <= live_speakers.MAX_ANONYMOUS_SPEAKERS
    assert all(len(voice.embeddings) <= live_speakers.MAX_EMBEDDINGS_PER_SPEAKER for voice in voices)


def test_a_short_sentence_joins_the_closest_voice_instead_of_starting_one() -> None:
    labeler = LiveSpeakerLabeler(_embed, [], 0.85)
    assert labeler.label(_clip(3)).label == "Speaker 1"
    assert labeler.label(_clip(9, seconds=0.5)).label == "Speaker 1"
    assert labeler.label(_clip(9, seconds=2.0)).label == "Speaker 2"


def test_recent_audio_is_on_the_session_clock_and_bounded() -> None:
    audio = RecentAudio(keep_s=2.0)
    for second in range(5):
        audio.append(np.full(SAMPLE_RATE_HZ, second, dtype=np.float32))
    clip = audio.clip(3500, 4500)
    assert clip.size == SAMPLE_RATE_HZ and clip[0] == 3 and clip[-1] == 4
    assert audio.clip(0, 1000).size == 0 and audio._buffer.size == 2 * SAMPLE_RATE_HZ


# --- the real embedder on generated voices -----------------------------------------------
@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    from worker.engines.speaker_embeddings import ResemblyzerEmbedder

    return ResemblyzerEmbedder()


def _read(path: Path) -> np.ndarray:
    samples, rate = soundfile.read(str(path), dtype="float32")
    assert rate == SAMPLE_RATE_HZ
    return samples


def test_enrolled_anonymous_and_unknown_voices_at_the_default_threshold(embedder, speech_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """Alice and Bob enrolled, Carol not: every sentence of Alice and Bob carries their name,
    Carol's never carries one (she is `Speaker 1` throughout)."""
    from worker.engines.voiceprints import normalised_mean

    clips = {name: _read(enrollment_clip(name, speech_dir / f"e-{name}.wav")) for name in ("alice", "bob")}
    prints = [(name.title(), list(normalised_mean([embedder(clip)]))) for name, clip in clips.items()]
    path, truth = conversation(["alice", "bob", "carol"], speech_dir / "live-three.wav", turns=6)
    samples = _read(path)
    labeler = LiveSpeakerLabeler(embedder, prints, SpeakerSettings().live_speaker_match_threshold)
    for start_s, end_s, voice in truth:
        speaker = labeler.label(samples[int(start_s * SAMPLE_RATE_HZ):int(end_s * SAMPLE_RATE_HZ)])
        expected = "Speaker 1" if voice == "carol" else voice.title()
        assert speaker.label == expected, (voice, speaker)
        assert (speaker.name is None) == (voice == "carol")
    assert true_voice(truth, 0.0, 0.1) == "alice"


def test_one_human_readers_short_sentences_stay_one_speaker(embedder) -> None:  # type: ignore[no-untyped-def]
    """Beckett's five short sentences (1.1 to 3 s each), one real reader: his "No matter."
    (1.1 s) scored under the same-voice threshold against "Ever tried, ever failed." and
    became `Speaker 2` while a session ran on `make run`."""
    from shared.audio import decode_16k_mono
    from tests.support.human_speech import human_speech_dir
    from worker.engines.fsmn_vad_lite import FsmnVadLite
    from worker.engines.model_files import resolve_vad_model_dir

    assets = human_speech_dir()
    if assets is None:
        pytest.skip("the moonshine_voice wheel (requirements/models.txt) is not installed")
    samples = decode_16k_mono(assets / "beckett.wav")
    sentences = FsmnVadLite(resolve_vad_model_dir(""), max_end_silence_ms=800).segments_ms(samples)
    assert len(sentences) >= 4, sentences
    labeler = LiveSpeakerLabeler(embedder, [], SpeakerSettings().live_speaker_match_threshold)
    pad = SAMPLE_RATE_HZ // 5  # what a live final's clip holds around the VAD's sentence
    labels = [labeler.label(samples[max(0, start * 16 - pad):end * 16 + pad]).label for start, end in sentences]
    assert set(labels) == {"Speaker 1"}, list(zip(sentences, labels, strict=True))


# --- the protocols -----------------------------------------------------------------------
ALICE = v.SpeakerLabel("Alice", "Alice", 0.93)
ANONYMOUS = v.SpeakerLabel("Speaker 2")


def test_every_protocol_takes_the_speakers_option_and_refuses_a_non_boolean() -> None:
    starts = {
        NativeProtocol(): {"type": "Start"},
        OddAsrProtocol(): {"name": "StartTranscription", "message_id": "", "token": "", "task_id": ""},
        FunAsrProtocol(): {"mode": "2pass", "wav_name": "w"},
    }
    for adapter, frame in starts.items():
        assert adapter.parse_start(json.dumps(frame)).speakers is False
        assert adapter.parse_start(json.dumps({**frame, "speakers": True})).speakers is True
        with pytest.raises(v.ProtocolError, match="speakers must be true or false"):
            adapter.parse_start(json.dumps({**frame, "speakers": "yes"}))


def test_finals_carry_the_speaker_in_each_protocols_shape() -> None:
    native = json.loads(NativeProtocol().on_final(0, "Hi.", 0, 500, speaker=ALICE)[0])
    assert (native["speaker"], native["speaker_name"], native["speaker_similarity"]) == ("Alice", "Alice", 0.93)
    native = json.loads(NativeProtocol().on_final(0, "Hi.", 0, 500, speaker=ANONYMOUS)[0])
    assert native["speaker"] == "Speaker 2" and "speaker_name" not in native
    oddasr = OddAsrProtocol()
    oddasr.parse_start(json.dumps({"name": "StartTranscription", "message_id": "", "token": "", "task_id": ""}))
    frame = json.loads(oddasr.on_final(0, "Hi.", 0, 500, speaker=ALICE)[0])
    assert frame["payload"]["speaker"] == "Alice" and frame["payload"]["speaker_similarity"] == 0.93
    assert not set(frame["header"]) & set(frame["payload"])
    funasr = FunAsrProtocol()
    funasr.parse_start(json.dumps({"mode": "2pass"}))
    message = json.loads(funasr.on_final(0, "Hi.", 0, 500, speaker=ANONYMOUS)[0])
    assert message["spk_name"] == "Speaker 2" and "spk_similarity" not in message


# --- a worker that cannot name speakers --------------------------------------------------
def _runtime(engine: object) -> SimpleNamespace:
    return SimpleNamespace(engine=engine, settings=SimpleNamespace(live_speaker_match_threshold=0.85), jobs=None)


def test_a_worker_without_a_speaker_model_says_so() -> None:
    engine = SimpleNamespace(name="whisper", speaker_model=None, embed_speaker=lambda clip: clip)
    with pytest.raises(SpeakersUnavailable, match="speaker labels are not available on this server"):
        SessionSpeakers(_runtime(engine), "")  # type: ignore[arg-type]


def test_a_speaker_model_still_loading_is_started_and_the_client_told_to_retry() -> None:
    started = []
    engine = SimpleNamespace(name="whisper", speaker_model="resemblyzer-ge2e", speaker_model_ready=False,
                             embed_speaker=lambda clip: clip, start_loading_speaker_model=lambda: started.append(1))
    with pytest.raises(SpeakersUnavailable, match="still loading"):
        SessionSpeakers(_runtime(engine), "")  # type: ignore[arg-type]
    assert started == [1]


# --- through real processes --------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("livespeakers"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=0, stream_idle_timeout_s=2.0, stream_slot_wait_s=10.0) as stack:
        stack.start_stream_workers(1)
        stack.wait_stream_slots(1)
        yield stack


@pytest.mark.integration
def test_a_live_session_labels_two_voices_after_telling_a_client_that_came_too_early(
        stack: Stack, speech_dir: Path) -> None:
    path, truth = conversation(["alice", "bob"], speech_dir / "live-two.wav", turns=4)
    pcm = soundfile.read(str(path), dtype="int16")[0].tobytes()
    # The stream worker loads its speaker model on the first session that asks for speakers.
    first = native_session(stack, pcm[:32000], {"speakers": True})
    assert first[-1]["type"] == "Error" and "still loading" in first[-1]["message"], first
    wait_for_speaker_model(stack)
    stack.wait_stream_slots(1)
    received = native_session(stack, pcm, {"speakers": True})
    finals = [m for m in received if m["type"] == "Final"]
    assert received[-1]["type"] == "Summary" and len(finals) == 4
    voices = [true_voice(truth, f["start"], f["end"]) for f in finals]
    by_voice = {voice: {f["speaker"] for f, fv in zip(finals, voices, strict=True) if fv == voice} for voice in voices}
    # Each voice its own labels (how well one voice stays under one label: bench/live_speakers.py).
    assert [f["speaker"] for f in finals[:2]] == ["Speaker 1", "Speaker 2"], finals
    assert not by_voice["alice"] & by_voice["bob"], finals
    assert "speaker_name" not in finals[0], "no voice is enrolled"
    job_url = stack.url(f"/v1/jobs/{received[0]['job_id']}")
    wait_until(lambda: requests.get(job_url, timeout=10).json()["status"] == "succeeded", timeout_s=60,
               what="the session's job")
    spk = requests.get(f"{job_url}/transcript?format=spk", timeout=10).text.splitlines()
    assert [line.split(":")[0] for line in spk] == [f["speaker"] for f in finals]
    # The sentences stored as they came (the stream.ended webhook's, a failed session's) too.
    stored = JobRepository(make_session_factory(make_engine(stack.settings.database_url))).stream_transcript_segments(
        received[0]["job_id"])
    assert [f"Speaker {s.speaker + 1}" for s in stored] == [f["speaker"] for f in finals]
    assert [[w.word for w in s.words] for s in stored] == [[w["word"] for w in f["words"]] for f in finals]
    # Sessions that do not ask get no speaker.
    stack.wait_stream_slots(1)
    plain = [m for m in native_session(stack, pcm[:len(pcm) // 2]) if m["type"] == "Final"]
    assert plain and all("speaker" not in m for m in plain)


@pytest.mark.integration
def test_oddasr_stream_speakers_prints_each_sentences_speaker(stack: Stack, speech_dir: Path) -> None:
    import subprocess
    import sys

    path, _ = conversation(["alice", "bob"], speech_dir / "live-two.wav", turns=4)
    wait_for_speaker_model(stack)
    stack.wait_stream_slots(1)
    done = subprocess.run([sys.executable, "-m", "shared.cli.main", "stream", str(path), "--server", stack.base_url,
                           "--speed", "3", "--language", "en", "--speakers"],
                          capture_output=True, text=True, timeout=180, check=False, env=stack.env)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 4 and all(re.match(r"\[\s*\d+\.\d\d - \s*\d+\.\d\d\] Speaker \d+: \S", line)
                                   for line in lines), lines
    assert lines[0].split("] ")[1].startswith("Speaker 1:") and lines[1].split("] ")[1].startswith("Speaker 2:")


@pytest.mark.integration
def test_an_enrolled_voice_is_named_live_and_an_unknown_one_is_not(stack: Stack, speech_dir: Path) -> None:
    """Alice enrolled through the API (the file worker makes her voiceprint); Bob not: Alice's
    sentences carry her name and similarity, Bob's never a name."""
    clip = enrollment_clip("alice", speech_dir / "live-enroll-alice.wav")
    enrolled = requests.post(stack.url("/v1/speakers"), data={"name": "alice"},
                             files=[("audio", (clip.name, clip.read_bytes(), "audio/wav"))], timeout=120)
    assert enrolled.status_code in (201, 202), enrolled.text
    wait_until(lambda: requests.get(stack.url(f"/v1/speakers/{enrolled.json()['id']}"), timeout=10).json()["status"]
               == "ready", timeout_s=120, what="alice's voiceprint")
    path, truth = conversation(["alice", "bob"], speech_dir / "live-two.wav", turns=4)
    wait_for_speaker_model(stack)
    stack.wait_stream_slots(1)
    received = native_session(stack, soundfile.read(str(path), dtype="int16")[0].tobytes(), {"speakers": True})
    finals = [m for m in received if m["type"] == "Final"]
    assert len(finals) == 4, received
    for final in finals:
        if true_voice(truth, final["start"], final["end"]) == "alice":
            assert final["speaker"] == final["speaker_name"] == "alice", final
            assert SpeakerSettings().live_speaker_match_threshold <= final["speaker_similarity"] <= 1.0
        else:
            assert final["speaker"].startswith("Speaker ") and "speaker_name" not in final, final
