"""What the service adds on top of the bare engine, measured in one run on one machine.

1. Long files (30 s or more of speech): the same files through the bare engine (decode +
   transcribe in this process) and through the whole service (upload, queue, worker,
   storage, database, poll), one at a time, with one worker process using the same engine
   settings. Prints the ratio of service time to engine time (goal <= 1.05).
2. Sentence jobs of 1-2 s: median latency of the synchronous `/v1/asr/sentence` round trip
   minus the median bare-engine time on the same clips (goal <= 15 ms added).

Run: `.venv/bin/python bench/overhead.py [--files 3] [--sentences 20]`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import long_files, median_ms, run_redis, sentence_clips, timed  # noqa: E402
from shared.audio import decode_16k_mono  # noqa: E402
from tests.support.stack import running_stack, stack_settings  # noqa: E402
from worker.engines.base import TranscriptionOptions  # noqa: E402
from worker.engines.registry import load_engine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--sentences-per-file", type=int, default=9, help="about 4 s of speech each")
    parser.add_argument("--sentences", type=int, default=20, help="sentence jobs to time")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    files = long_files(args.files, args.sentences_per_file)
    clips = sentence_clips(args.sentences)
    tmp = Path(tempfile.mkdtemp(prefix="oddasr-bench-"))
    redis_server = run_redis(tmp / "redis")
    overrides = {"whisper_model": args.model, "cpu_threads": args.threads, "whisper_beam_size": 5}
    settings = stack_settings(tmp / "engine", redis_server.url, **overrides)
    engine = load_engine(settings)
    file_options = TranscriptionOptions(language=None, hotwords=(), diarize=False, mode="file")
    sentence_options = TranscriptionOptions(language=None, hotwords=(), diarize=False, mode="sentence")

    def bare(path: Path, options: TranscriptionOptions) -> None:
        engine.transcribe(decode_16k_mono(path), options)

    bare(clips[0], sentence_options)  # warm up caches and allocators
    try:
        with running_stack(tmp / "stack", redis_server.url, file_concurrency=1, sentence_concurrency=1,
                           **overrides) as stack:
            def service_file(path: Path) -> None:
                # The synchronous endpoint wakes on the worker's event: no polling interval is
                # added to the service time.
                with path.open("rb") as audio:
                    response = requests.post(stack.url("/v1/asr/file"), files={"audio": audio}, timeout=600)
                assert response.status_code == 200, response.text

            worker_s: list[float] = []

            def service_sentence(path: Path) -> None:
                with path.open("rb") as audio:
                    response = requests.post(stack.url("/v1/asr/sentence"), files={"audio": audio}, timeout=60)
                assert response.status_code == 200, response.text
                job_id = response.headers["X-OddASR-Job-Id"]
                job = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
                worker_s.append(job["processing_s"])

            service_sentence(clips[0])
            worker_s.clear()
            audio_s = sum(len(decode_16k_mono(p)) / 16000 for p in files)
            engine_s = service_s = 0.0
            for path in files:  # interleaved, so drift in machine load hits both sides alike
                engine_s += timed(lambda p=path: bare(p, file_options))
                service_s += timed(lambda p=path: service_file(p))
            engine_ms, service_ms = [], []
            for path in clips:
                engine_ms.append(timed(lambda p=path: bare(p, sentence_options)))
                service_ms.append(timed(lambda p=path: service_sentence(p)))
    finally:
        redis_server.stop()

    print(f"model {args.model}, {args.threads} threads, beam 5; files: {len(files)} totalling {audio_s:.1f} s of audio")
    print(f"long files: bare engine {engine_s:.2f} s (RTF {engine_s / audio_s:.3f}), "
          f"service {service_s:.2f} s (RTF {service_s / audio_s:.3f})")
    print(f"service/engine time ratio: {service_s / engine_s:.3f}  (goal <= 1.05)")
    sentence_audio_s = sum(len(decode_16k_mono(p)) / 16000 for p in clips) / len(clips)
    added_ms = median_ms(service_ms) - median_ms(engine_ms)
    print(f"sentence jobs ({len(clips)}, mean {sentence_audio_s:.2f} s of audio): median bare engine "
          f"{median_ms(engine_ms):.1f} ms, median /v1/asr/sentence round trip {median_ms(service_ms):.1f} ms")
    print(f"median added latency (round trip - bare engine): {added_ms:.1f} ms  (goal <= 15 ms)")
    outside_ms = [(total - inside) for total, inside in zip(service_ms, worker_s, strict=True)]
    print(f"median time outside the worker's processing (upload, probe, storage, queue, database, wake-up): "
          f"{median_ms(outside_ms):.1f} ms  (goal <= 15 ms)")


if __name__ == "__main__":
    main()
