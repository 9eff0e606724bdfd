"""Memory and start-up time of a Whisper worker process against the bare engine.

Each measurement is a fresh process that transcribes the same generated recording:

- `bare`: faster-whisper's WhisperModel alone (the floor: what the decoder itself needs);
- `worker-numpy`: a worker process as Celery's process-init hook builds it (the Celery app,
  tasks, database, storage and Redis clients, the engine) with fsmn-vad in numpy and the
  speaker embedder left unloaded until a diarize job (this version);
- `worker-onnx`: the same with fsmn-vad on onnxruntime (the alternative runtime);
- `worker-torch`: the same with fsmn-vad through FunASR/torch and the speaker embedder loaded at
  start (how workers ran before).

Printed per kind: seconds from process spawn to engine loaded, RSS once loaded, RSS after the
transcription, peak RSS (VmHWM), and the ratio of the worker's peak to the bare engine's.
Run: `.venv/bin/python bench/memory.py [--model base] [--vad numpy|onnx|torch|all] [--repeat 3]`
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CACHE_DIR  # noqa: E402

SENTENCES = 16
THREADS = 2
BEAM_SIZE = 5


def _memory_mb() -> dict[str, float]:
    """This process's resident set now and at its peak, from /proc (Linux)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def _child(kind: str, model_dir: str, model: str, audio_path: str, spawned_at: float) -> dict[str, float]:
    """Runs in the measured process: load as `kind` does, transcribe once, report."""
    if kind == "bare":
        import soundfile
        from faster_whisper import WhisperModel

        whisper = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=THREADS)
        loaded_at = time.time()
        loaded = _memory_mb()
        audio, _ = soundfile.read(audio_path, dtype="float32")
        started = time.perf_counter()
        segments, _ = whisper.transcribe(audio, beam_size=BEAM_SIZE, vad_filter=False,
                                         condition_on_previous_text=False)
        text = " ".join(segment.text for segment in segments)
    else:
        import worker.celery_app  # noqa: F401  (what a prefork child inherits from its parent)
        import worker.engines.whisper_engine as whisper_engine
        import worker.tasks  # noqa: F401
        from shared.audio import decode_16k_mono
        from shared.config import get_settings
        from worker.engines.base import TranscriptionOptions
        from worker.services.runtime import init_process_runtime

        if kind == "worker-torch":
            # The engine as it was: fsmn-vad through FunASR (same arguments), embedder at start.
            from worker.engines.fsmn_vad import FsmnVad

            whisper_engine.FsmnVadLite = lambda model_dir, **kw: FsmnVad(  # type: ignore[misc,assignment]
                model_dir, cpu_threads=THREADS, **kw)
        elif kind == "worker-onnx":
            from worker.engines.fsmn_vad_lite import FsmnVadLite

            whisper_engine.FsmnVadLite = lambda model_dir, **kw: FsmnVadLite(  # type: ignore[misc,assignment]
                model_dir, runtime="onnx", **kw)
        runtime = init_process_runtime(get_settings())
        if kind == "worker-torch":
            runtime.engine._speaker_embedder()  # type: ignore[attr-defined]
        loaded_at = time.time()
        loaded = _memory_mb()
        audio = decode_16k_mono(Path(audio_path))
        started = time.perf_counter()
        text = runtime.engine.transcribe(audio, TranscriptionOptions()).text
    transcribe_s = time.perf_counter() - started
    done = _memory_mb()
    heavy = sorted({name.split(".")[0] for name in sys.modules} & {"torch", "funasr", "resemblyzer", "onnxruntime"})
    return {"startup_s": loaded_at - spawned_at, "loaded_mb": loaded["VmRSS"], "after_mb": done["VmRSS"],
            "peak_mb": done["VmHWM"], "transcribe_s": transcribe_s, "words": len(text.split()),
            "heavy": ",".join(heavy) or "-"}  # type: ignore[dict-item]


def _measure(kind: str, model_dir: Path, model: str, audio: Path, data_dir: Path) -> dict[str, float]:
    env = dict(os.environ)
    env.update({
        "ODDASR_DATA_DIR": str(data_dir), "ODDASR_WHISPER_MODEL": model, "ODDASR_CPU_THREADS": str(THREADS),
        "ODDASR_WHISPER_BEAM_SIZE": str(BEAM_SIZE), "ODDASR_MODEL_CACHE_DIR": str(model_dir.parent),
        # Nothing listens there: the worker's one Redis write fails fast and is only logged.
        "ODDASR_REDIS_URL": "redis://127.0.0.1:9/0", "ODDASR_LOG_LEVEL": "ERROR",
    })
    spawned_at = time.time()
    result = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(model_dir), model, str(audio), repr(spawned_at)],
        capture_output=True, text=True, env=env, check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base", help="base or tiny.en")
    parser.add_argument("--vad", choices=["numpy", "onnx", "torch", "all"], default="all",
                        help="which worker to measure: this version (numpy), with onnxruntime (onnx), "
                             "the former one (torch), or all three")
    parser.add_argument("--repeat", type=int, default=3, help="runs per kind; medians are printed")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, model_dir, model, audio, spawned_at = args.child
        print(json.dumps(_child(kind, model_dir, model, audio, float(spawned_at))))
        return

    from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
    from worker.engines.model_files import resolve_whisper_model

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    texts = [REFERENCE_SENTENCES[i % len(REFERENCE_SENTENCES)] for i in range(SENTENCES)]
    audio = make_long_recording(texts, CACHE_DIR / f"memory-{SENTENCES}.wav", gap_s=1.0)
    model_cache = Path(os.environ.get("ODDASR_TEST_MODEL_CACHE", Path.home() / ".cache" / "oddasr-models"))
    model_dir = resolve_whisper_model(args.model, model_cache)
    kinds = ["bare"] + {"numpy": ["worker-numpy"], "onnx": ["worker-onnx"], "torch": ["worker-torch"],
                        "all": ["worker-torch", "worker-onnx", "worker-numpy"]}[args.vad]
    import soundfile

    print(f"Whisper {args.model}, int8, {THREADS} threads, beam {BEAM_SIZE}; "
          f"{soundfile.info(str(audio)).duration:.1f} s of generated speech ({SENTENCES} sentences); "
          f"median of {args.repeat} fresh processes per kind")
    medians: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as data_dir:
        for kind in kinds:
            runs = [_measure(kind, model_dir, args.model, audio, Path(data_dir)) for _ in range(args.repeat)]
            medians[kind] = {key: statistics.median(run[key] for run in runs) for key in runs[0] if key != "heavy"}
            medians[kind]["heavy"] = runs[0]["heavy"]
            medians[kind]["peak_range"] = f"{min(r['peak_mb'] for r in runs):.0f}-{max(r['peak_mb'] for r in runs):.0f}"
    bare_peak = medians["bare"]["peak_mb"]
    print(f"{'process':14} {'startup s':>9} {'loaded MB':>9} {'after MB':>9} {'peak MB':>8} {'x bare':>7} "
          f"{'peak range':>10} {'transcribe s':>12} {'words':>5}  heavy imports")
    for kind, row in medians.items():
        print(f"{kind:14} {row['startup_s']:9.2f} {row['loaded_mb']:9.0f} {row['after_mb']:9.0f} "
              f"{row['peak_mb']:8.0f} {row['peak_mb'] / bare_peak:7.2f} {row['peak_range']:>10} "
              f"{row['transcribe_s']:12.2f} "
              f"{row['words']:5.0f}  {row['heavy']}")
    for kind in ("worker-numpy", "worker-onnx"):
        if kind in medians:
            ratio = medians[kind]["peak_mb"] / bare_peak
            verdict = "met" if ratio <= 1.2 else "MISSED"
            print(f"{kind} peak is {ratio:.2f}x the bare engine's (goal <= 1.20): {verdict}")


if __name__ == "__main__":
    main()
