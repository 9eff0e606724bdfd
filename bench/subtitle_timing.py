"""How well subtitle cues fit the speech, per engine, input and output format (issue 23, item 1).

A generated dialogue (tests/support/timed_dialogue.py: 15 sentences by three espeak-ng voices,
57.5 s, pauses of 0.6-1.2 s, speech times known to the sample) goes through a real stack as
WAV, as a 44.1 kHz MP3 and as WAV with white noise 20 dB and 10 dB under the speech; each finished job's
srt, vtt, json, verbose_json and job-result segments are read back with the parsers clients
use. Per row: cues; each sentence's first cue's start minus its true onset (median and max of
the absolute error, and the signed median: negative is early); later cues starting outside
their sentence; overlapping cue pairs; cues covering more than 0.2 s of a pause of 0.5 s or
more; sentences with no cue; and the job's processing time. Goal: max error <= 0.2 s,
median <= 0.1 s, zero overlaps, zero cues through pauses, in every format.

    PYTHONPATH=$PWD .venv/bin/python bench/subtitle_timing.py [--engines whisper,funasr] [--model tiny.en]

`--human` times Whisper's cues (in-process) on the two human recordings the moonshine_voice
package ships, whose true onsets nobody marked: each onset that an independent energy detector
(bench/speech_onsets.py, 0.5 s pauses) finds is matched with the nearest cue start.

`--cost` measures instead what the fitting costs Whisper, in-process: decoding the dialogue's
VAD chunks with word times off and on (the fitting needs them; interleaved runs, medians), and
the extra VAD pass that finds the speech spans.

FunASR runs FunASR's real pipeline with tiny random models (their text is noise; their token
times and the service's fitting are what is measured); Whisper runs the real weights.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import run_redis  # noqa: E402
from tests.support.stack import Stack, running_stack, wait_for_job  # noqa: E402
from tests.support.timed_dialogue import (  # noqa: E402
    TimedDialogue,
    as_mp3,
    make_timed_dialogue,
    read_outputs,
    score_cues,
    with_noise,
)

SPEECH_DIR = Path(os.environ.get("ODDASR_TEST_SPEECH_CACHE", Path.home() / ".cache" / "oddasr-test-speech"))
MODEL_CACHE = Path(os.environ.get("ODDASR_TEST_MODEL_CACHE", Path.home() / ".cache" / "oddasr-test-models"))
HEADER = (f"{'engine':<22} {'input':<10} {'format':<13} {'cues':>4} {'med|err| s':>10} {'max|err| s':>10} "
          f"{'med err s':>9} {'misplaced':>9} {'overlaps':>8} {'thru pause':>10} {'missing':>7} {'job s':>6}")


def run_job(stack: Stack, path: Path) -> dict:
    with path.open("rb") as audio:
        response = requests.post(stack.url("/v1/jobs"), files={"audio": (path.name, audio)}, timeout=60)
    response.raise_for_status()
    job = wait_for_job(stack, response.json()["id"], timeout_s=600)
    if job["status"] != "succeeded":
        raise RuntimeError(f"job failed: {job}")
    return job


def report(stack: Stack, label: str, inputs: dict[str, Path], dialogue: TimedDialogue) -> list[tuple[float, int]]:
    """Print one row per input and format; returns (max error, overlaps + through pauses) per row."""
    results = []
    for name, path in inputs.items():
        job = run_job(stack, path)
        outputs = read_outputs(stack.url(f"/v1/jobs/{job['id']}/transcript"), job)
        for fmt, cues in outputs.cues.items():
            timing = score_cues(cues, dialogue)
            signed = statistics.median(timing.start_errors_s) if timing.start_errors_s else float("nan")
            print(f"{label:<22} {name:<10} {fmt:<13} {len(cues):>4} {timing.median_abs_error_s:>10.3f} "
                  f"{timing.max_abs_error_s:>10.3f} {signed:>+9.3f} {len(timing.misplaced_cues):>9} "
                  f"{timing.overlaps:>8} {len(timing.through_pauses):>10} {len(timing.missing_sentences):>7} "
                  f"{job['processing_s']:>6.2f}", flush=True)
            results.append((timing.max_abs_error_s, timing.overlaps + len(timing.through_pauses)))
    return results


def measure_cost(model: str, runs: int, dialogue: TimedDialogue) -> None:
    """Whisper decode time with word times off / on, and the speech-span pass, medians of `runs`."""
    import soundfile

    from shared.config import Settings
    from worker.engines.fsmn_vad import merge_into_chunks
    from worker.engines.speech_spans import speech_spans_s
    from worker.engines.whisper_engine import VAD_PAD_MS, WhisperEngine

    settings = Settings(whisper_model=model, cpu_threads=2, model_cache_dir=MODEL_CACHE,
                        data_dir=Path(tempfile.mkdtemp(prefix="oddasr-subtitle-cost-")))
    engine = WhisperEngine(settings)
    audio, _rate = soundfile.read(str(dialogue.path), dtype="float32")
    chunks = merge_into_chunks(engine._vad.segments_ms(audio), max_chunk_s=settings.vad_max_chunk_s,  # noqa: SLF001
                               pad_ms=VAD_PAD_MS, audio_ms=audio.size // 16)

    def decode(words: bool) -> None:
        for start_ms, end_ms in chunks:
            segments, _info = engine._model.transcribe(  # noqa: SLF001
                audio[start_ms * 16:end_ms * 16], language="en", beam_size=settings.whisper_beam_size,
                vad_filter=False, condition_on_previous_text=False, word_timestamps=words)
            list(segments)

    seconds: dict[str, list[float]] = {"words off": [], "words on": [], "speech spans": []}
    for _ in range(runs):
        for words in (False, True):
            started_s = time.perf_counter()
            decode(words)
            seconds["words on" if words else "words off"].append(time.perf_counter() - started_s)
        started_s = time.perf_counter()
        speech_spans_s(engine._vad, audio)  # noqa: SLF001
        seconds["speech spans"].append(time.perf_counter() - started_s)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"whisper {model}, beam {settings.whisper_beam_size}, {dialogue.duration_s:.1f} s of audio, "
          f"medians of {runs}: decode with word times off {medians['words off']:.2f} s, on "
          f"{medians['words on']:.2f} s ({medians['words on'] / medians['words off'] - 1:+.0%}); "
          f"speech spans {medians['speech spans']:.2f} s (RTF {medians['speech spans'] / dialogue.duration_s:.4f})")


def measure_human(model: str) -> None:
    """Cue starts vs bench/speech_onsets.py's onsets on the moonshine_voice recordings."""
    from bench.speech_onsets import speech_segments
    from bench.streaming import MOONSHINE_CLIPS, moonshine_assets
    from shared.audio import decode_16k_mono
    from shared.config import Settings
    from worker.engines.base import TranscriptionOptions
    from worker.engines.whisper_engine import WhisperEngine

    assets = moonshine_assets()
    if assets is None:
        print("moonshine_voice's recordings are not installed: nothing to measure")
        return
    engine = WhisperEngine(Settings(whisper_model=model, cpu_threads=2, model_cache_dir=MODEL_CACHE,
                                    data_dir=Path(tempfile.mkdtemp(prefix="oddasr-subtitle-human-"))))
    for name, _text in MOONSHINE_CLIPS:
        audio = decode_16k_mono(assets / name)
        onsets_s = [segment.onset_s for segment in speech_segments(audio, min_pause_s=0.5)]
        starts_s = [segment.start_s for segment in engine.transcribe(audio, TranscriptionOptions()).segments]
        errors_s = [min((start - onset for start in starts_s), key=abs) for onset in onsets_s]
        print(f"{name} ({audio.size / 16000:.1f} s, whisper {model}): {len(starts_s)} cues, {len(onsets_s)} energy "
              f"onsets; nearest cue start - onset: median |err| {statistics.median(map(abs, errors_s)):.3f} s, "
              f"max {max(map(abs, errors_s)):.3f} s; each: {' '.join(f'{e:+.2f}' for e in errors_s)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="whisper,funasr")
    parser.add_argument("--model", default="tiny.en", help="Whisper model (the service's default is base)")
    parser.add_argument("--cost", action="store_true", help="measure the cost of word times instead")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--human", action="store_true", help="cue starts on two human recordings instead")
    args = parser.parse_args()
    dialogue = make_timed_dialogue(SPEECH_DIR)
    if args.cost:
        measure_cost(args.model, args.runs, dialogue)
        return
    if args.human:
        measure_human(args.model)
        return
    inputs = {"wav": dialogue.path, "mp3": as_mp3(dialogue, SPEECH_DIR),
              "noise 20dB": with_noise(dialogue, SPEECH_DIR, 20.0),
              "noise 10dB": with_noise(dialogue, SPEECH_DIR, 10.0)}
    print(f"dialogue: {len(dialogue.sentences)} sentences, {dialogue.duration_s:.1f} s, "
          f"{len(dialogue.pauses)} pauses >= 0.5 s; goal: max|err| <= 0.2 s, median <= 0.1 s, 0 overlaps, "
          f"0 cues through pauses")
    print(HEADER)
    tmp = Path(tempfile.mkdtemp(prefix="oddasr-subtitle-timing-"))
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for engine in engines:
        redis_server = run_redis(tmp / f"redis-{engine}")
        try:
            overrides: dict[str, object] = {"whisper_model": args.model}
            label = f"whisper {args.model}"
            if engine == "funasr":
                from tests.support.tiny_funasr import build_tiny_models

                models = build_tiny_models(MODEL_CACHE / "funasr-tiny")
                overrides = {"engine": "funasr", "funasr_asr_model": str(models["asr"]),
                             "funasr_punc_model": str(models["punc"]), "cpu_threads": 2}
                label = "funasr (tiny random)"
            with running_stack(tmp / f"stack-{engine}", redis_server.url, file_concurrency=1, sentence_concurrency=0,
                               **overrides) as stack:
                report(stack, label, inputs, dialogue)
        finally:
            redis_server.close()


if __name__ == "__main__":
    main()
