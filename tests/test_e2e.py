"""The whole service through real processes: gunicorn API, Celery workers, Redis, SQLite,
local storage and the real Whisper tiny.en + fsmn-vad weights on speech with known text."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jiwer
import pytest
import redis
import requests
import srt
import webvtt

from shared import redis_keys
from tests.support.speech import REFERENCE_SENTENCES, make_dialogue, speaker_accuracy, synthesize
from tests.support.stack import Stack, running_stack, wait_for_job

pytestmark = pytest.mark.integration


def normalise(text: str) -> str:
    return " ".join("".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(normalise(reference), normalise(hypothesis))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("stack"), redis_server.url) as running:
        yield running


@pytest.fixture(scope="module")
def speech(speech_dir: Path) -> dict[str, tuple[Path, str]]:
    """A few clips with known text: name -> (wav path, reference)."""
    clips = {}
    for index, sentence in enumerate(REFERENCE_SENTENCES[:4]):
        clips[f"s{index}"] = (synthesize(sentence, speech_dir / f"s{index}.wav"), sentence)
    two = " ".join(REFERENCE_SENTENCES[4:6])
    clips["two"] = (synthesize(two, speech_dir / "two.wav"), two)
    return clips


def post_job(stack: Stack, path: Path, **fields: str) -> requests.Response:
    with path.open("rb") as audio:
        return requests.post(stack.url("/v1/jobs"), files={"audio": (path.name, audio)}, data=fields, timeout=60)


def test_file_job_round_trip_with_every_format(stack: Stack, speech: dict[str, tuple[Path, str]]) -> None:
    path, reference = speech["two"]
    response = post_job(stack, path)
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["status"] == "queued"
    assert response.headers["Location"].endswith(f"/v1/jobs/{created['id']}")
    job = wait_for_job(stack, created["id"])
    assert job["status"] == "succeeded", job
    assert job["audio_duration_s"] > 1.0
    result = job["result"]
    assert wer(reference, result["text"]) < 0.35, result["text"]
    assert result["segments"], job
    for segment in result["segments"]:
        assert 0 <= segment["start"] < segment["end"] <= job["audio_duration_s"] + 0.5
    base = stack.url(f"/v1/jobs/{created['id']}/transcript")
    subtitles = list(srt.parse(requests.get(base, params={"format": "srt"}, timeout=10).text))
    assert subtitles and subtitles[0].index == 1
    vtt = webvtt.from_buffer(io.StringIO(requests.get(base, params={"format": "vtt"}, timeout=10).text))
    assert len(vtt.captions) == len(subtitles)
    spk = requests.get(base, params={"format": "spk"}, timeout=10).text
    assert spk.startswith("Speaker 1: ")
    txt = requests.get(base, timeout=10)
    assert txt.headers["Content-Type"].startswith("text/plain")
    assert normalise(txt.text) == normalise(result["text"])
    as_json = requests.get(base, params={"format": "json"}, timeout=10).json()
    assert as_json["text"] == result["text"]
    bad = requests.get(base, params={"format": "docx"}, timeout=10)
    # The message names the parameter as it was sent (`format`), not the submit form's name.
    assert bad.status_code == 400 and "unknown format 'docx'" in bad.json()["error"], bad.text


def test_sentence_jobs_take_the_low_latency_lane(stack: Stack, speech: dict[str, tuple[Path, str]]) -> None:
    path, reference = speech["s0"]
    created = post_job(stack, path, mode="sentence").json()
    assert created["queue"] == "sentence"
    job = wait_for_job(stack, created["id"])
    assert job["status"] == "succeeded"
    assert wer(reference, job["result"]["text"]) < 0.35


def test_oddasr_compatible_endpoints_answer_synchronously(stack: Stack, speech: dict[str, tuple[Path, str]]) -> None:
    path, reference = speech["s1"]
    for endpoint, fields in (("/v1/asr", {}), ("/v1/asr/file", {"output_format": "spk"}),
                             ("/v1/asr/sentence", {"hotwords": "weather Monday"})):
        with path.open("rb") as audio:
            response = requests.post(stack.url(endpoint), files={"audio": audio}, data=fields, timeout=120)
        assert response.status_code == 200, response.text
        text = response.json()["text"]
        assert wer(reference, text.replace("Speaker 1:", "")) < 0.35, (endpoint, text)
    with path.open("rb") as audio:
        legacy_srt = requests.post(stack.url("/v1/asr"), files={"audio": audio}, data={"output_format": "srt"},
                                   timeout=120).json()["text"]
    assert list(srt.parse(legacy_srt))


def test_missing_audio_on_the_legacy_endpoint_is_a_400(stack: Stack) -> None:
    response = requests.post(stack.url("/v1/asr"), data={"mode": "file"}, timeout=10)
    assert response.status_code == 400
    assert "audio" in response.json()["error"]


def test_openai_compatible_transcriptions(stack: Stack, speech: dict[str, tuple[Path, str]]) -> None:
    models = requests.get(stack.url("/v1/models"), timeout=10).json()
    ids = [m["id"] for m in models["data"]]
    assert "whisper-1" in ids
    path, reference = speech["s2"]

    def call(**fields: str) -> requests.Response:
        with path.open("rb") as audio:
            return requests.post(stack.url("/v1/audio/transcriptions"), files={"file": (path.name, audio)},
                                 data={"model": "whisper-1", **fields}, timeout=120)

    assert wer(reference, call().json()["text"]) < 0.35
    assert wer(reference, call(response_format="text").text) < 0.35
    assert list(srt.parse(call(response_format="srt").text))
    assert call(response_format="vtt").text.startswith("WEBVTT")
    verbose = call(response_format="verbose_json", **{"timestamp_granularities[]": "word"}).json()
    assert verbose["segments"] and verbose["duration"] > 0
    assert verbose.get("words"), verbose
    assert call(model="no-such-model").status_code == 400
    assert call(response_format="docx").status_code == 400


def test_twenty_simultaneous_submissions_all_complete(stack: Stack, speech: dict[str, tuple[Path, str]]) -> None:
    clips = [speech[f"s{i % 4}"] for i in range(20)]

    def submit(index: int) -> requests.Response:
        path, _ = clips[index]
        return post_job(stack, path, mode="sentence" if index % 3 == 0 else "file")

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(submit, range(20)))
    assert [r.status_code for r in responses] == [202] * 20, [r.text for r in responses if r.status_code != 202]
    jobs = [wait_for_job(stack, r.json()["id"], timeout_s=300) for r in responses]
    assert [j["status"] for j in jobs] == ["succeeded"] * 20
    for job, (_, reference) in zip(jobs, clips, strict=True):
        assert wer(reference, job["result"]["text"]) < 0.5


def test_models_load_once_per_worker_process(stack: Stack, speech: dict[str, tuple[Path, str]]) -> None:
    for _ in range(4):
        assert wait_for_job(stack, post_job(stack, speech["s3"][0]).json()["id"])["status"] == "succeeded"
    client = redis.Redis.from_url(stack.settings.effective_redis_url)
    loads = {k.decode(): int(v) for k, v in client.hgetall(redis_keys.MODEL_LOADS_HASH).items()}
    jobs = requests.get(stack.url("/v1/jobs"), params={"limit": 100}, timeout=10).json()["jobs"]
    workers_used = {j["worker"] for j in jobs if j["worker"]}
    assert workers_used <= set(loads), (workers_used, loads)
    # 2 file children + 1 sentence child, each loaded exactly once whatever the job count.
    assert len(jobs) > len(loads)
    assert all(count == 1 for identity, count in loads.items() if identity in workers_used), loads


def test_list_paginates_and_delete_removes_results(stack: Stack, speech: dict[str, tuple[Path, str]]) -> None:
    ids = [post_job(stack, speech["s0"][0]).json()["id"] for _ in range(3)]
    for job_id in ids:
        wait_for_job(stack, job_id)
    page = requests.get(stack.url("/v1/jobs"), params={"limit": 2}, timeout=10).json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    assert page["next"] and page["total"] >= 3
    assert requests.get(stack.url("/v1/jobs"), params={"status": "bogus"}, timeout=10).status_code == 400
    deleted = requests.delete(stack.url(f"/v1/jobs/{ids[0]}"), timeout=10)
    assert deleted.status_code == 200
    assert requests.get(stack.url(f"/v1/jobs/{ids[0]}/transcript"), timeout=10).status_code == 410
    audio_dir = Path(stack.settings.storage_local_dir) / "audio"
    assert not (audio_dir / ids[0]).exists()
    assert requests.get(stack.url("/v1/jobs/doesnotexist"), timeout=10).status_code == 404


def test_diarized_dialogue_through_the_queue(stack: Stack, speech_dir: Path) -> None:
    path, turns = make_dialogue(REFERENCE_SENTENCES[:6], speech_dir / "e2e-dialogue.wav")
    job = wait_for_job(stack, post_job(stack, path, diarize="true", output_format="spk").json()["id"])
    assert job["status"] == "succeeded", job
    segments = job["result"]["segments"]
    assert {s["speaker"] for s in segments} == {0, 1}
    accuracy = speaker_accuracy(turns, [(s["start"], s["end"], s["speaker"]) for s in segments])
    assert accuracy > 0.8, (accuracy, segments)
    spk = requests.get(stack.url(f"/v1/jobs/{job['id']}/transcript"), timeout=10).text.splitlines()
    assert spk[0].startswith("Speaker 1: ") and spk[1].startswith("Speaker 2: ")
    srt_text = requests.get(stack.url(f"/v1/jobs/{job['id']}/transcript"), params={"format": "srt"}, timeout=10).text
    assert "Speaker 2: " in srt_text


def test_readyz_reports_dependencies_and_live_queues(stack: Stack) -> None:
    body = requests.get(stack.url("/readyz"), timeout=10).json()
    assert body["ready"] is True
    assert body["checks"] == {"redis": "ok", "database": "ok", "storage": "ok"}
    assert body["queues"]["cpu"]["workers"] and body["queues"]["sentence"]["workers"]
    assert body["file_queue_served"] is True
    assert requests.get(stack.url("/healthz"), timeout=10).json() == {"status": "ok"}


def test_service_text_matches_the_bare_engine_and_the_reference(stack: Stack,
                                                                speech: dict[str, tuple[Path, str]]) -> None:
    """The queue, storage and decoding around the engine change nothing in what it hears."""
    from shared.audio import decode_16k_mono
    from worker.engines.base import TranscriptionOptions
    from worker.engines.registry import load_engine

    bare = load_engine(stack.settings)
    references, service_texts, bare_texts = [], [], []
    for name in ("s0", "s1", "s2", "two"):
        path, reference = speech[name]
        job = wait_for_job(stack, post_job(stack, path).json()["id"])
        assert job["status"] == "succeeded"
        references.append(reference)
        service_texts.append(job["result"]["text"])
        bare_texts.append(bare.transcribe(decode_16k_mono(path), TranscriptionOptions()).text)
    service_wer = wer(" ".join(references), " ".join(service_texts))
    bare_wer = wer(" ".join(references), " ".join(bare_texts))
    assert service_wer < 0.25, service_texts
    assert wer(" ".join(bare_texts), " ".join(service_texts)) <= 0.05, (bare_texts, service_texts)
    assert abs(service_wer - bare_wer) <= 0.05


@pytest.mark.parametrize(("container", "codec", "suffix"), [("mp3", "libmp3lame", "mp3"), ("webm", "libopus", "webm"),
                                                              ("ipod", "aac", "m4a")])
def test_compressed_uploads_are_decoded_for_real(stack: Stack, speech: dict[str, tuple[Path, str]], tmp_path: Path,
                                                 container: str, codec: str, suffix: str) -> None:
    """What phones and browsers send: the same speech, re-encoded, gives the same words."""
    import av
    import numpy as np
    import soundfile

    path, reference = speech["s1"]
    samples, rate_hz = soundfile.read(str(path), dtype="float32")
    target = tmp_path / f"speech.{suffix}"
    with av.open(str(target), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=48000 if codec == "libopus" else 44100)
        resampler = av.AudioResampler(format=stream.codec_context.codec.audio_formats[0].name, layout="mono",
                                      rate=stream.rate)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = rate_hz
        for converted in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(converted):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    job = wait_for_job(stack, post_job(stack, target).json()["id"])
    assert job["status"] == "succeeded", job
    assert wer(reference, job["result"]["text"]) < 0.35, job["result"]["text"]


def test_a_wav_scp_batch_runs_with_bounded_jobs_reports_a_bad_file_and_resumes(
        stack: Stack, speech: dict[str, tuple[Path, str]], tmp_path: Path) -> None:
    """`oddasr transcribe list.scp dir/`: one output per key; a file that is not audio fails
    alone; `--resume` redoes only what has no output."""
    import subprocess
    import sys

    (tmp_path / "not-audio.txt").write_text("hello")
    listing = tmp_path / "wav.scp"
    listing.write_text(f"alpha {speech['s0'][0]}\nbeta {speech['s1'][0]}\n# a comment\n\nbroken not-audio.txt\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "gamma.wav").write_bytes(speech["s2"][0].read_bytes())
    out = tmp_path / "out"

    def transcribe(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "shared.cli.main", "transcribe", str(listing), str(folder),
                               "--server", stack.base_url, "--output-dir", str(out), "--jobs", "2", *extra],
                              capture_output=True, text=True, timeout=300, check=False, env=stack.env)

    first = transcribe()
    assert first.returncode == 1, first.stderr
    assert sorted(p.name for p in out.iterdir()) == ["alpha.txt", "beta.txt", "gamma.txt"]
    assert "broken: FAILED" in first.stderr and "refused it (415)" in first.stderr, first.stderr
    assert "3 transcribed, 0 skipped, 1 failed, of 4 inputs" in first.stderr
    # Each output holds its own input's words (another sentence would be a WER near 1).
    assert wer(speech["s0"][1], (out / "alpha.txt").read_text()) < 0.5
    assert wer(speech["s2"][1], (out / "gamma.txt").read_text()) < 0.5
    (out / "beta.txt").unlink()
    second = transcribe("--resume")
    assert "1 transcribed, 2 skipped, 1 failed, of 4 inputs" in second.stderr, second.stderr
    assert (out / "beta.txt").read_text().strip()
