"""Named speakers (voiceprints): the matching (pure), the renderers, and a real stack with
auth required, real Resemblyzer and generated voices: two keys, two enrolled voices, a third
voice nobody enrolled, bad enrollments, and workers that have no speaker model."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests

from shared.config import Settings
from shared.db.api_keys import ApiKeyRepository
from shared.db.migrate import upgrade_to_head
from shared.db.models import SpeakerStatus
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.db.speakers import SpeakerRepository
from shared.errors import NotSupportedError
from shared.render import render
from shared.storage import make_storage
from shared.transcript import Segment, Transcript
from tests.support.stack import Stack, running_stack
from tests.support.voices import conversation, enrollment_clip, true_voice
from worker.engines.voiceprints import best_match, identify, normalised_mean, speaker_speech
from worker.services.runtime import WorkerRuntime
from worker.services.speakers import name_speakers, run_enrollment

HASH_SECRET = "test-speakers-hash-secret"


def unit(vector: list[float]) -> np.ndarray:
    array = np.array(vector, dtype=float)
    return array / np.linalg.norm(array)


# --- matching, pure ---------------------------------------------------------------------------
def test_best_match_names_above_the_threshold_only() -> None:
    prints = [("alice", unit([1, 0, 0]).tolist()), ("bob", unit([0, 1, 0]).tolist())]
    match = best_match(unit([0.9, 0.1, 0]), prints, threshold=0.9)
    assert match is not None and match.name == "alice" and match.similarity > 0.99
    weak = best_match(unit([1, 1, 1]), prints, threshold=0.9)
    assert weak is not None and weak.name is None and weak.candidate in {"alice", "bob"}
    assert best_match(unit([1, 0, 0]), [], threshold=0.5) is None
    # A vector of another size (another model) is never compared.
    assert best_match(unit([1, 0]), prints, threshold=0.0) is None


def test_enrollment_parts_average_to_a_unit_vector() -> None:
    mean = normalised_mean([unit([1, 0]), unit([0, 1])])
    assert np.allclose(mean, unit([1, 1]))
    with pytest.raises(ValueError):
        normalised_mean([unit([1, 0]), -unit([1, 0])])


def test_identify_names_each_diarized_speaker_from_its_own_speech() -> None:
    rate = 16000
    audio = np.concatenate([np.full(rate, 0.1), np.full(rate, -0.1), np.full(rate, 0.3)]).astype(np.float32)
    segments = [Segment(start_s=0, end_s=1, text="a", speaker=0), Segment(start_s=1, end_s=2, text="b", speaker=1),
                Segment(start_s=2, end_s=3, text="c", speaker=0), Segment(start_s=3, end_s=3, text="d")]
    speech = speaker_speech(audio, segments)
    assert speech[0].size == 2 * rate and speech[1].size == rate

    def embed(clip: np.ndarray) -> np.ndarray:  # a positive mean sounds like alice, a negative one like nobody
        return unit([1, 0]) if clip.mean() > 0 else unit([0, 1])

    named = identify(audio, segments, embed, [("alice", unit([1, 0.05]).tolist())], threshold=0.8)
    assert [s.speaker_name for s in named] == ["alice", None, "alice", None]
    assert named[1].speaker_similarity is not None and named[1].speaker_similarity < 0.8
    assert named[3].speaker_similarity is None  # not diarized: untouched
    assert identify(audio, segments, embed, [], threshold=0.8) == segments


def test_every_format_shows_the_names() -> None:
    transcript = Transcript(text="Hello there. Hi.", duration_s=3.0, segments=[
        Segment(start_s=0, end_s=1, text="Hello there.", speaker=0, speaker_name="Alice", speaker_similarity=0.93),
        Segment(start_s=1, end_s=2, text="Hi.", speaker=1, speaker_similarity=0.41)])
    assert render(transcript, "spk")[0] == "Alice: Hello there.\nSpeaker 2: Hi.\n"
    assert "Alice: Hello there." in render(transcript, "srt")[0]
    assert "<v Alice>Hello there." in render(transcript, "vtt")[0]
    assert "Alice: Hello there." in render(transcript, "srt-oddasr")[0]
    assert '"speaker_name":"Alice"' in render(transcript, "json")[0]


# --- workers that cannot embed ---------------------------------------------------------------------
class NoSpeakerModelEngine:
    """A FunASR engine as loaded without ODDASR_FUNASR_SPK_MODEL, as far as voiceprints see."""

    name = "funasr"
    model_name = "paraformer"
    supports_diarization = False
    speaker_model = None

    def embed_speaker(self, clip: np.ndarray) -> np.ndarray:
        raise AssertionError("never called without a speaker model")


def test_a_worker_without_a_speaker_model_says_so(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    upgrade_to_head(settings.database_url)
    factory = make_session_factory(make_engine(settings.database_url))
    storage = make_storage(settings)
    runtime = WorkerRuntime(settings=settings, jobs=JobRepository(factory), storage=storage, redis=None,  # type: ignore[arg-type]
                            engine=NoSpeakerModelEngine(), identity="test:1")  # type: ignore[arg-type]
    speakers = SpeakerRepository(factory)
    storage.put_bytes("speakers/x/0", b"RIFF")
    row = speakers.create("", "alice", ["speakers/x/0"], 6.0)
    assert run_enrollment(runtime, row.id) == SpeakerStatus.FAILED
    failed = speakers.find(row.id)
    assert failed is not None and failed.status == SpeakerStatus.FAILED
    assert "ODDASR_FUNASR_SPK_MODEL" in (failed.error or "")
    assert failed.audio_keys == [] and not storage.exists("speakers/x/0")
    assert run_enrollment(runtime, row.id) is None  # a redelivery changes nothing
    with pytest.raises(NotSupportedError, match="ODDASR_FUNASR_SPK_MODEL"):
        name_speakers(runtime, "", np.zeros(16000, dtype=np.float32), Transcript(text=""))


def test_the_funasr_engine_embeds_with_its_campplus_model(tmp_path: Path, tiny_funasr_models: dict[str, Path],
                                                          speech_dir: Path) -> None:
    from shared.audio import decode_16k_mono
    from tests.test_funasr_engine import funasr_settings
    from worker.engines.registry import load_engine

    engine = load_engine(Settings(**funasr_settings(tmp_path, tiny_funasr_models)))  # type: ignore[arg-type]
    assert engine.speaker_model == "campplus"  # type: ignore[attr-defined]
    audio = decode_16k_mono(enrollment_clip("alice", speech_dir / "voiceprint-enroll-alice.wav"))
    vector = engine.embed_speaker(audio[:16000 * 6])  # type: ignore[attr-defined]
    assert vector.ndim == 1 and vector.size >= 64 and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-6
    without = load_engine(Settings(**funasr_settings(tmp_path, tiny_funasr_models, funasr_spk_model="")))  # type: ignore[arg-type]
    assert without.speaker_model is None  # type: ignore[attr-defined]
    with pytest.raises(NotSupportedError, match="ODDASR_FUNASR_SPK_MODEL"):
        without.embed_speaker(audio[:16000])  # type: ignore[attr-defined]


# --- a real stack ------------------------------------------------------------------------------------
@dataclass
class Deployment:
    stack: Stack
    key_a: str
    key_b: str

    def call(self, method: str, path: str, key: str, **kwargs: object) -> requests.Response:
        return requests.request(method, self.stack.url(path), headers={"Authorization": f"Bearer {key}"},
                                timeout=120, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Deployment]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("speakers")
    with running_stack(tmp, redis_server.url, file_concurrency=1, sentence_concurrency=0, auth_mode="required",
                       api_key_hash_secret=HASH_SECRET, speaker_enroll_wait_s=60.0) as stack:
        keys = ApiKeyRepository(make_session_factory(make_engine(stack.settings.database_url)), HASH_SECRET.encode())
        yield Deployment(stack=stack, key_a=keys.create("team-a")[1], key_b=keys.create("team-b")[1])


def enroll(deployment: Deployment, key: str, name: str, clips: list[Path], **form: str) -> requests.Response:
    files = [("audio", (clip.name, clip.read_bytes(), "audio/wav")) for clip in clips]
    return deployment.call("POST", "/v1/speakers", key, data={"name": name, **form}, files=files)


@pytest.fixture(scope="module")
def enrolled(deployment: Deployment, speech_dir: Path) -> dict[str, str]:
    """alice waits for her voiceprint (201); bob does not wait (202) and is polled."""
    alice = enroll(deployment, deployment.key_a, "alice",
                   [enrollment_clip("alice", speech_dir / "voiceprint-enroll-alice.wav")])
    assert alice.status_code == 201, alice.text
    assert alice.json()["status"] == "ready" and alice.json()["embedding_model"] == "resemblyzer-ge2e"
    assert "embedding" not in alice.json()
    bob = enroll(deployment, deployment.key_a, "bob",
                 [enrollment_clip("bob", speech_dir / "voiceprint-enroll-bob.wav")], wait="false")
    assert bob.status_code == 202 and bob.headers["Location"].endswith(bob.json()["id"])
    deadline_s = time.monotonic() + 60
    while (status := deployment.call("GET", bob.headers["Location"], deployment.key_a).json()["status"]) == "enrolling":
        assert time.monotonic() < deadline_s, "bob's enrollment never finished"
        time.sleep(0.2)
    assert status == "ready"
    return {"alice": alice.json()["id"], "bob": bob.json()["id"]}


def test_enrolled_names_label_a_dialogue_and_an_unknown_voice_stays_numbered(
        deployment: Deployment, enrolled: dict[str, str], speech_dir: Path) -> None:
    path, truth = conversation(["alice", "grace", "bob"], speech_dir / "voiceprint-dialogue.wav", turns=6)
    submitted = deployment.call("POST", "/v1/jobs", deployment.key_a, files={"audio": path.open("rb")},
                                data={"diarize": "true", "identify_speakers": "true", "output_format": "spk"})
    assert submitted.status_code == 202, submitted.text
    job = wait_for_job_as(deployment, deployment.key_a, submitted.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    segments = job["result"]["segments"]
    right_s = total_s = 0.0
    for segment in segments:
        expected = true_voice(truth, segment["start"], segment["end"])
        expected_name = expected if expected in enrolled else None
        total_s += segment["end"] - segment["start"]
        right_s += (segment["end"] - segment["start"]) * (segment["speaker_name"] == expected_name)
        assert segment["speaker_similarity"] is not None
    seen = [(true_voice(truth, s["start"], s["end"]), s["speaker"], s["speaker_name"], s["speaker_similarity"])
            for s in segments]
    assert right_s / total_s > 0.85, seen
    assert {s["speaker_name"] for s in segments} == {"alice", "bob", None}
    spk = deployment.call("GET", f"/v1/jobs/{job['id']}/transcript?format=spk", deployment.key_a).text
    assert "alice: " in spk and "bob: " in spk and "Speaker " in spk


def wait_for_job_as(deployment: Deployment, key: str, job_id: str, timeout_s: float = 120.0) -> dict:
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        job = deployment.call("GET", f"/v1/jobs/{job_id}", key).json()
        if job["status"] in {"succeeded", "failed", "canceled"}:
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} not final after {timeout_s} s")


def test_another_key_can_neither_see_nor_use_the_speakers(deployment: Deployment, enrolled: dict[str, str],
                                                          speech_dir: Path) -> None:
    alice_id = enrolled["alice"]
    listed = deployment.call("GET", "/v1/speakers", deployment.key_a).json()["speakers"]
    assert {s["name"] for s in listed} >= {"alice", "bob"}
    assert deployment.call("GET", "/v1/speakers", deployment.key_b).json() == {"speakers": []}
    assert deployment.call("GET", f"/v1/speakers/{alice_id}", deployment.key_b).status_code == 404
    assert deployment.call("DELETE", f"/v1/speakers/{alice_id}", deployment.key_b).status_code == 404
    assert deployment.call("GET", f"/v1/speakers/{alice_id}", deployment.key_a).json()["status"] == "ready"
    path, _truth = conversation(["alice", "bob"], speech_dir / "voiceprint-short.wav", turns=2)
    submitted = deployment.call("POST", "/v1/jobs", deployment.key_b, files={"audio": path.open("rb")},
                                data={"diarize": "true", "identify_speakers": "true"})
    job = wait_for_job_as(deployment, deployment.key_b, submitted.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["segments"] and all("speaker_name" not in s for s in job["result"]["segments"])


def test_a_deleted_speaker_is_gone(deployment: Deployment, speech_dir: Path) -> None:
    created = enroll(deployment, deployment.key_b, "carol",
                     [enrollment_clip("carol", speech_dir / "voiceprint-enroll-carol.wav")])
    assert created.status_code == 201, created.text
    speaker_id = created.json()["id"]
    assert deployment.call("DELETE", f"/v1/speakers/{speaker_id}", deployment.key_b).json() == {"deleted": speaker_id}
    assert deployment.call("GET", f"/v1/speakers/{speaker_id}", deployment.key_b).status_code == 404


def _trimmed(source: Path, target: Path, seconds: float) -> Path:
    subprocess.run(["sox", str(source), str(target), "trim", "0", str(seconds)], check=True, capture_output=True)
    return target


def _repeated(source: Path, target: Path, times: int) -> Path:
    subprocess.run(["sox", *[str(source)] * times, str(target)], check=True, capture_output=True)
    return target


def test_bad_enrollments_are_refused_with_a_reason(deployment: Deployment, speech_dir: Path, tmp_path: Path) -> None:
    clip = enrollment_clip("dave", speech_dir / "voiceprint-enroll-dave.wav")
    short = enroll(deployment, deployment.key_a, "dave", [_trimmed(clip, tmp_path / "short.wav", 3.0)])
    assert short.status_code == 422 and "5 to 30 s" in short.json()["error"]
    long = enroll(deployment, deployment.key_a, "dave", [clip, _repeated(clip, tmp_path / "long.wav", 2)])
    assert long.status_code == 422 and "5 to 30 s" in long.json()["error"] and "long.wav" in long.json()["error"]
    nameless = enroll(deployment, deployment.key_a, "", [clip])
    assert nameless.status_code == 400 and "name" in nameless.json()["error"]
    assert enroll(deployment, deployment.key_a, "<b>dave</b>", [clip]).status_code == 400
    no_audio = deployment.call("POST", "/v1/speakers", deployment.key_a, data={"name": "dave"})
    assert no_audio.status_code == 400 and "audio" in no_audio.json()["error"]
    (tmp_path / "notes.txt").write_text("not audio at all " * 200)
    assert enroll(deployment, deployment.key_a, "dave", [tmp_path / "notes.txt"]).status_code == 415
    assert all(s["name"] != "dave" for s in deployment.call("GET", "/v1/speakers", deployment.key_a).json()["speakers"])
    alone = deployment.call("POST", "/v1/jobs", deployment.key_a, files={"audio": clip.open("rb")},
                            data={"identify_speakers": "true"})
    assert alone.status_code == 400 and "diarize=true" in alone.json()["error"]


def test_a_server_without_a_speaker_model_refuses_enrollment(tmp_path: Path, redis_server,  # type: ignore[no-untyped-def]
                                                             speech_dir: Path) -> None:
    from api.app import create_app

    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_server.url, enable_diarization=False)
    upgrade_to_head(settings.database_url)
    clip = enrollment_clip("alice", speech_dir / "voiceprint-enroll-alice.wav")
    with create_app(settings).test_client() as client:
        answer = client.post("/v1/speakers", data={"name": "alice", "audio": (clip.open("rb"), "alice.wav")})
    assert answer.status_code == 422 and "ODDASR_ENABLE_DIARIZATION" in answer.get_json()["error"]
