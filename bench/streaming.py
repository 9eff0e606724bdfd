"""Live streaming as a user feels it: latency from speech, flush after stop, cost, accuracy.

Each session is a client of the native protocol (`ws://host:port/v1/stream`): `Start`
(16 kHz, language "en"), then 16-bit mono PCM in 100 ms frames, each sent once the 100 ms it
holds would have been spoken (a microphone's pace, against a monotonic schedule), then
`Close`. For 1, 2, 4 and 8 sessions at once (`--streams`), on one stack whose stream workers
run with the config's default settings, it reports

- first text: for every sentence of the client's own audio (speech onsets found by the
  energy VAD of bench/speech_onsets.py: speech after >= 300 ms of silence), the arrival of
  the first message that shows text for it (a `Partial` with text, or a `Final`, whose
  start..end overlaps the sentence) minus the moment the speaker began it (session start +
  the onset's offset). p50 / p95 over every sentence of every session;
- final after stop: the last audio frame sent -> the last `Final` received. The audio ends
  0.2 s after its last speech, so this times the flush of the open sentence. p50 / p95;
- refused sessions: sessions told `Error` kind "busy" (no free stream slot in time);
- CPU: the stream worker process tree's CPU time over the level (psutil), as % of the
  machine (and of one core), and the largest resident memory of a stream worker process at
  the level's end;
- WER (lowercase, no punctuation) of each session's finals, joined, against the text of the
  same audio submitted as a file job (the offline result of the same service), and against
  the known transcript when the audio has one;
- relay overhead: each relay frame's trip through Redis, both directions (p50 / p99).

Audio (`--audio`, capped at `--seconds`, cut at a pause): by default real human speech, the
two recordings the installed moonshine_voice package ships (assets/two_cities.wav, Dickens
read aloud, and assets/beckett.wav), whose texts are known; `espeak` for the synthetic
sentences of tests/support/speech.py; or the path of any WAV (`--reference` its transcript).

Run: `.venv/bin/python bench/streaming.py [--streams 1,2,4,8] [--seconds 60]
[--audio auto|moonshine|espeak|PATH] [--reference TEXT_OR_FILE] [--stream-engine NAME]
[--whisper-model NAME]`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import jiwer
import numpy as np
import psutil
import redis
import requests
import soundfile
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CACHE_DIR, run_redis  # noqa: E402
from bench.speech_onsets import Segment, speech_segments  # noqa: E402
from shared import stream_messages as sm  # noqa: E402
from shared.config import Settings  # noqa: E402
from tests.support.human_speech import HUMAN_CLIPS as MOONSHINE_CLIPS  # noqa: E402
from tests.support.human_speech import human_speech_dir  # noqa: E402
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording, synthesize  # noqa: E402
from tests.support.stack import Stack, running_stack, wait_for_job  # noqa: E402
from tests.support.ws_clients import open_ws  # noqa: E402

SAMPLE_RATE_HZ = 16000
FRAME_S = 0.1
FRAME_BYTES = 3200
#: Audio after the last speech: the end of audio, not a pause, closes the last sentence.
TAIL_S = 0.2
CLIP_GAP_S = 1.0
ESPEAK_GAP_S = 1.2
SESSION_TIMEOUT_S = 300.0
#: Settings that running_stack sets for the tests and the benchmark puts back to the config's
#: defaults (those a version lacks are skipped).
CONFIG_DEFAULTS = ("whisper_model", "whisper_beam_size", "cpu_threads", "stream_sessions_per_worker",
                   "stream_engine")



def clean(text: str) -> str:
    """Lowercase, no punctuation: what WER is computed on."""
    text = text.lower().replace("\u2019", "'")
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text).split())


def wer(reference: str, hypothesis: str) -> float:
    reference, hypothesis = clean(reference), clean(hypothesis)
    if not reference:
        return float("nan")
    return float(jiwer.wer(reference, hypothesis))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# --- audio -------------------------------------------------------------------------------

@dataclass
class BenchAudio:
    samples: np.ndarray  #: int16, 16 kHz mono, ending TAIL_S after the last speech
    segments: list[Segment]
    described: str
    reference: str | None  #: the known transcript, when the audio has one

    @property
    def pcm(self) -> bytes:
        return self.samples.astype("<i2").tobytes()


def read_16k_mono(path: Path) -> np.ndarray:
    """Any WAV as int16 16 kHz mono (channels averaged, resampled with soxr)."""
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != SAMPLE_RATE_HZ:
        import soxr

        mono = soxr.resample(mono, rate, SAMPLE_RATE_HZ)
    return (np.clip(mono, -1.0, 32767 / 32768) * 32768).astype(np.int16)


def moonshine_assets() -> Path | None:
    """moonshine_voice's assets folder; None if absent."""
    return human_speech_dir()


def server_vad_speech_end_s(samples: np.ndarray, last: Segment) -> float:
    """Where the service's own VAD (fsmn-vad) hears the last speech end: a breath or room noise
    after it is "speech" to the energy VAD, and audio ended there would let the service close
    the sentence before the end of audio, so "final after stop" would time nothing."""
    from worker.engines.fsmn_vad_lite import FsmnVadLite
    from worker.engines.model_files import resolve_vad_model_dir

    vad = FsmnVadLite(resolve_vad_model_dir(""), max_end_silence_ms=800)
    clip = samples[: int((last.end_s + 1.0) * SAMPLE_RATE_HZ)].astype(np.float32) / 32768.0
    ends_s = [end_ms / 1000 for _, end_ms in vad.segments_ms(clip) if end_ms / 1000 > last.onset_s]
    return max(ends_s) if ends_s else last.end_s


def cap(samples: np.ndarray, segments: list[Segment], seconds: float) -> tuple[np.ndarray, list[Segment], bool]:
    """End the audio TAIL_S after the last speech segment that fits in `seconds` (a pause);
    True when nothing was cut but silence."""
    fitting = [s for s in segments if s.end_s + TAIL_S <= seconds]
    if not fitting:  # one segment longer than the cap: cut it, mid-speech
        end = min(len(samples), int(seconds * SAMPLE_RATE_HZ))
        return samples[:end], [s for s in segments[:1] if s.onset_s < seconds], False
    end_s = min(fitting[-1].end_s, server_vad_speech_end_s(samples, fitting[-1])) + TAIL_S
    end = int(round(end_s * SAMPLE_RATE_HZ))
    out = samples[:end]
    if len(out) < end:  # speech up to the very end of the file: add the tail as silence
        out = np.concatenate([out, np.zeros(end - len(out), dtype=np.int16)])
    return out, fitting, len(fitting) == len(segments)


def moonshine_audio(assets: Path, seconds: float) -> BenchAudio:
    """two_cities then beckett, each trimmed 0.5 s after its speech, 1 s of silence between."""
    parts: list[np.ndarray] = []
    segments: list[Segment] = []
    clip_last_end_s: list[float] = []
    offset_s = 0.0
    for index, (name, _) in enumerate(MOONSHINE_CLIPS):
        clip = read_16k_mono(assets / name)
        clip_segments = speech_segments(clip)  # per clip: each has its own noise floor
        clip = clip[: int((clip_segments[-1].end_s + 0.5) * SAMPLE_RATE_HZ)]
        if index:
            parts.append(np.zeros(int(CLIP_GAP_S * SAMPLE_RATE_HZ), dtype=np.int16))
            offset_s += CLIP_GAP_S
        parts.append(clip)
        segments += [Segment(round(s.onset_s + offset_s, 3), round(s.end_s + offset_s, 3)) for s in clip_segments]
        clip_last_end_s.append(round(clip_segments[-1].end_s + offset_s, 3))
        offset_s += len(clip) / SAMPLE_RATE_HZ
    samples, kept, _ = cap(np.concatenate(parts), segments, seconds)
    kept_end_s = kept[-1].end_s if kept else 0.0
    # The known text covers whole clips only: none when the cut fell inside one.
    whole = [(name, text) for (name, text), end_s in zip(MOONSHINE_CLIPS, clip_last_end_s, strict=True)
             if end_s <= kept_end_s]
    cut = kept_end_s not in clip_last_end_s
    names = " + ".join(name for name, _ in MOONSHINE_CLIPS[:len(whole) + cut])
    return BenchAudio(samples, kept, f"human speech, moonshine_voice assets {names}" + (" (cut at a pause)" if cut
                                                                                        else ""),
                      None if cut else " ".join(text for _, text in whole))


def espeak_audio(seconds: float) -> BenchAudio:
    """As many of the test sentences, spoken by espeak-ng with 1.2 s pauses, as fit."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    texts: list[str] = []
    total_s = 0.0
    for index, text in enumerate(REFERENCE_SENTENCES):
        duration_s = soundfile.info(str(synthesize(text, CACHE_DIR / f"stream-sentence-{index}.wav"))).duration
        if texts and total_s + duration_s + TAIL_S > seconds:
            break
        texts.append(text)
        total_s += duration_s + ESPEAK_GAP_S
    wav = make_long_recording(texts, CACHE_DIR / f"stream-bench-{len(texts)}.wav", gap_s=ESPEAK_GAP_S)
    full = read_16k_mono(wav)
    samples, kept, whole = cap(full, speech_segments(full), seconds)
    return BenchAudio(samples, kept, f"espeak-ng, {len(texts)} test sentences with {ESPEAK_GAP_S} s pauses",
                      " ".join(texts) if whole else None)


def file_audio(path: Path, seconds: float, reference: str | None) -> BenchAudio:
    full = read_16k_mono(path)
    samples, kept, whole = cap(full, speech_segments(full), seconds)
    return BenchAudio(samples, kept, f"{path}" + ("" if whole else " (cut at a pause)"),
                      reference if whole else None)


def load_audio(choice: str, seconds: float, reference_arg: str | None) -> BenchAudio:
    if choice in ("auto", "moonshine"):
        assets = moonshine_assets()
        if assets is not None:
            return moonshine_audio(assets, seconds)
        if choice == "moonshine":
            raise SystemExit("moonshine_voice's assets/two_cities.wav and beckett.wav are not installed")
        print("moonshine_voice's recordings are not installed: using espeak-ng speech instead")
        return espeak_audio(seconds)
    if choice == "espeak":
        return espeak_audio(seconds)
    reference = None
    if reference_arg:
        reference_path = Path(reference_arg)
        reference = reference_path.read_text() if reference_path.is_file() else reference_arg
    return file_audio(Path(choice), seconds, reference)


# --- one session -------------------------------------------------------------------------

@dataclass
class SessionResult:
    refused: bool = False
    errors: list[str] = field(default_factory=list)
    first_text_s: list[float] = field(default_factory=list)  #: one per sentence that got text
    missed: int = 0  #: sentences that no message showed text for
    final_after_stop_s: float = float("nan")
    text: str = ""
    begin_wait_s: float = float("nan")


def run_session(url: str, audio: BenchAudio) -> SessionResult:
    """One native-protocol session paced like a microphone; its timings and text."""
    result = SessionResult()
    pcm = audio.pcm
    messages: list[tuple[float, dict]] = []
    done = threading.Event()
    with open_ws(url) as ws:
        connected_s = time.monotonic()
        ws.send(json.dumps({"type": "Start", "sample_rate": SAMPLE_RATE_HZ, "language": "en"}))
        try:
            first = json.loads(ws.recv(timeout=120))
        except (ConnectionClosed, TimeoutError) as exc:
            result.errors.append(f"no Begin: {exc!r}")
            return result
        if first.get("type") != "Begin":
            result.refused = first.get("type") == "Error" and first.get("kind") == "busy"
            result.errors.append(f"{first.get('kind')}: {first.get('message')}")
            return result
        result.begin_wait_s = time.monotonic() - connected_s

        def read() -> None:
            try:
                while True:
                    data = json.loads(ws.recv(timeout=SESSION_TIMEOUT_S))
                    messages.append((time.monotonic(), data))
                    if data.get("type") in ("Summary", "Error"):
                        return
            except (ConnectionClosed, TimeoutError):
                return
            finally:
                done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        # The speaker starts talking at started_s; frame i holds [i, i + 1) x 100 ms of it and
        # leaves once that much has been spoken, as from a microphone.
        started_s = time.monotonic()
        total_s = len(pcm) / (2 * SAMPLE_RATE_HZ)
        try:
            for index, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
                due_s = started_s + min((index + 1) * FRAME_S, total_s)
                time.sleep(max(0.0, due_s - time.monotonic()))
                if done.is_set():
                    break
                ws.send(pcm[offset:offset + FRAME_BYTES])
            audio_end_s = time.monotonic()
            ws.send(json.dumps({"type": "Close"}))
        except ConnectionClosed as exc:
            audio_end_s = time.monotonic()
            done.wait(5.0)
            if not any(m.get("type") == "Error" for _, m in messages):  # else that error says why
                result.errors.append(f"closed while sending: {exc!r}")
        done.wait(SESSION_TIMEOUT_S)
    errors = [m for _, m in messages if m.get("type") == "Error"]
    result.errors += [f"{m.get('kind')}: {m.get('message')}" for m in errors]
    result.refused = result.refused or any(m.get("kind") == "busy" for m in errors)
    finals = [(t, m) for t, m in messages if m.get("type") == "Final"]
    if finals:
        result.final_after_stop_s = finals[-1][0] - audio_end_s
    by_index = {int(m.get("index", i)): str(m.get("text") or "") for i, (_, m) in enumerate(finals)}
    result.text = " ".join(by_index[i] for i in sorted(by_index))
    result.first_text_s, result.missed = first_text_latencies(messages, started_s, audio.segments)
    if os.environ.get("BENCH_VERBOSE"):
        print("  per sentence (onset s: first text s): " + ", ".join(
            f"{segment.onset_s:.1f}: {latency:.2f}" for segment, latency in zip(audio.segments, result.first_text_s,
                                                                              strict=False)))
    return result


def safe_session(url: str, audio: BenchAudio, delay_s: float = 0.0) -> SessionResult:
    """run_session after `delay_s`, with a failure to connect or a broken socket counted, not
    raised."""
    time.sleep(delay_s)
    try:
        return run_session(url, audio)
    except Exception as exc:  # noqa: BLE001 - reported in the level's row
        return SessionResult(errors=[f"session failed: {exc!r}"])


def first_text_latencies(messages: list[tuple[float, dict]], started_s: float,
                         segments: list[Segment]) -> tuple[list[float], int]:
    """For each sentence, the first message showing text over it: its arrival minus the
    sentence's onset in wall time. Also how many sentences none showed."""
    shown = []
    for arrived_s, message in messages:
        kind = message.get("type")
        stable = str(message.get("stable_text") or "")  # absent on older servers
        if kind == "Final" or (kind == "Partial" and (str(message.get("text") or "").strip() or stable.strip())):
            shown.append((arrived_s, float(message.get("start") or 0.0), float(message.get("end") or 0.0)))
    latencies, missed = [], 0
    for segment in segments:
        for arrived_s, start_s, end_s in shown:
            if start_s < segment.end_s and end_s > segment.onset_s:
                latencies.append(arrived_s - (started_s + segment.onset_s))
                break
        else:
            missed += 1
    return latencies, missed


# --- the stream workers' cost ------------------------------------------------------------

def worker_tree(stack: Stack) -> tuple[psutil.Process, list[psutil.Process]]:
    root = psutil.Process(stack.processes["stream-worker"].pid)
    return root, root.children(recursive=True)


def cpu_seconds(stack: Stack) -> dict[tuple[int, float], float]:
    """CPU time (user + system) of each process of the stream worker tree, by (pid, birth)."""
    root, children = worker_tree(stack)
    times = {}
    for process in (root, *children):
        with contextlib.suppress(psutil.Error):
            cpu = process.cpu_times()
            times[(process.pid, process.create_time())] = cpu.user + cpu.system
    return times


def worker_rss_mb(stack: Stack) -> float:
    """The largest resident memory of one stream worker process (the children of the
    supervisor, or the supervisor itself when it has none), MB."""
    root, children = worker_tree(stack)
    sizes = []
    for process in children or [root]:
        with contextlib.suppress(psutil.Error):
            sizes.append(process.memory_info().rss / 2**20)
    return max(sizes, default=float("nan"))


# --- the relay ---------------------------------------------------------------------------

class RelayTap:
    """Subscribes to every session's channels and times each frame's trip through Redis."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe("oddasr:stream:session:*")
        self.to_worker_ms: list[float] = []
        self.to_api_ms: list[float] = []
        self.api_handling_ms: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if not message or message["type"] != "pmessage":
                continue
            now_s = time.time()
            try:
                header, _ = sm.decode_frame(message["data"])
            except Exception:  # noqa: BLE001 - a frame of another shape: not timed
                continue
            delay_ms = (now_s - header.sent_at_s) * 1000
            if message["channel"].endswith(b":in"):
                self.to_worker_ms.append(delay_ms)
                if header.received_at_s:
                    self.api_handling_ms.append((header.sent_at_s - header.received_at_s) * 1000)
            else:
                self.to_api_ms.append(delay_ms)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.pubsub.close()
        self.client.close()

    def report(self) -> None:
        print("relay overhead, over every frame of every level:")
        for label, values in (("API->worker via Redis", self.to_worker_ms), ("worker->API via Redis", self.to_api_ms),
                              ("API handling (client frame -> publish)", self.api_handling_ms)):
            print(f"  {label}: p50 {pct(values, 50):.2f} ms, p99 {pct(values, 99):.2f} ms ({len(values)} frames)")


# --- the run -----------------------------------------------------------------------------

def offline_text(stack: Stack, wav: Path) -> str:
    """The same audio as a file job: the service's own offline text, the accuracy to match."""
    with wav.open("rb") as handle:
        response = requests.post(stack.url("/v1/jobs"), files={"audio": (wav.name, handle, "audio/wav")},
                                 data={"language": "en"}, timeout=60)
    response.raise_for_status()
    job = wait_for_job(stack, response.json()["id"], timeout_s=600)
    if job["status"] != "succeeded":
        raise RuntimeError(f"the file job ended {job['status']}: {job.get('error')}")
    return str(job["result"]["text"])


def fmt(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


#: Sessions of one level start this far apart, as independent speakers do: the same recording
#: in lockstep would have every session decode each sentence start at the same instant, a load
#: no real set of speakers makes (measured: +0.3 s of first text at 8 sessions).
STAGGER_S = 0.43


def run_level(stack: Stack, streams: int, audio: BenchAudio, file_text: str) -> None:
    """`streams` sessions at once; prints their row and what went wrong."""
    url = f"ws://127.0.0.1:{stack.settings.port}/v1/stream"
    cores = os.cpu_count() or 1
    cpu_before = cpu_seconds(stack)
    wall_before_s = time.monotonic()
    with ThreadPoolExecutor(max_workers=streams) as pool:
        sessions = list(pool.map(lambda i: safe_session(url, audio, i * STAGGER_S), range(streams)))
    wall_s = time.monotonic() - wall_before_s
    cpu_after = cpu_seconds(stack)
    busy_s = sum(after - cpu_before.get(key, 0.0) for key, after in cpu_after.items())
    one_core_pct = 100 * busy_s / wall_s
    rss_mb = worker_rss_mb(stack)
    served = [s for s in sessions if not math.isnan(s.begin_wait_s)]  # those that got Begin
    firsts = [x for s in served for x in s.first_text_s]
    finals = [s.final_after_stop_s for s in served if not math.isnan(s.final_after_stop_s)]
    file_wers = [wer(file_text, s.text) for s in served]
    ref_wers = [wer(audio.reference, s.text) for s in served] if audio.reference else []
    refused = sum(s.refused for s in sessions)
    print(f"{streams:7d} | {fmt(pct(firsts, 50))} / {fmt(pct(firsts, 95))} | "
          f"{fmt(pct(finals, 50))} / {fmt(pct(finals, 95))} | {refused:7d} | "
          f"{one_core_pct / cores:5.1f} ({one_core_pct:.0f} of one core) | {fmt(rss_mb, 0)} | "
          f"{fmt(statistics.mean(file_wers) if file_wers else float('nan'), 3)} | "
          f"{fmt(statistics.mean(ref_wers), 3) if ref_wers else 'n/a'}", flush=True)
    if os.environ.get("BENCH_VERBOSE"):
        for number, session in enumerate(served, 1):
            print(f"  session {number} finals: {session.text!r}")
    missed = sum(s.missed for s in served)
    if missed:
        print(f"        {missed} of {missed + len(firsts)} sentences got no text at all (not in first text)")
    waits = [s.begin_wait_s for s in served]
    if waits and max(waits) > 0.5:
        print(f"        waited for a stream slot before Begin: up to {max(waits):.1f} s")
    errors = sorted({e for s in sessions for e in s.errors if not e.startswith("busy:")})
    for error in errors:
        print(f"        error: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="1,2,4,8", help="sessions at once, per level (default 1,2,4,8)")
    parser.add_argument("--seconds", type=float, default=60.0, help="longest audio per session (default 60)")
    parser.add_argument("--audio", default="auto", help="auto (default), moonshine, espeak, or a WAV's path")
    parser.add_argument("--reference", help="the transcript of --audio PATH: text, or a text file's path")
    parser.add_argument("--stream-engine", help="the stream_engine setting (default: the config's)")
    parser.add_argument("--whisper-model", help="the whisper_model setting (default: the config's)")
    args = parser.parse_args()
    levels = [int(x) for x in args.streams.split(",") if x.strip()]

    # running_stack fills in test settings (tiny.en, beam 1, one CPU thread, one session per
    # stream worker, no stream workers); put back the config's defaults for what the stream
    # workers use, and keep stream_workers at 0 there (the stack would otherwise wait for
    # workers not yet started): they are started below, as many as the config's default.
    defaults = Settings.model_fields
    overrides: dict[str, object] = {name: defaults[name].default for name in CONFIG_DEFAULTS if name in defaults}
    if args.whisper_model:
        overrides["whisper_model"] = args.whisper_model
    if args.stream_engine:
        if "stream_engine" not in defaults:
            raise SystemExit("this version has no stream_engine setting")
        overrides["stream_engine"] = args.stream_engine
    stream_workers = int(defaults["stream_workers"].default)

    audio = load_audio(args.audio, args.seconds, args.reference)
    tmp = Path(tempfile.mkdtemp(prefix="oddasr-stream-bench-"))
    wav = tmp / "bench.wav"
    soundfile.write(str(wav), audio.samples, SAMPLE_RATE_HZ, subtype="PCM_16")
    cores = os.cpu_count() or 1
    redis_server = run_redis(tmp / "redis")
    try:
        with running_stack(tmp / "stack", redis_server.url, file_concurrency=1, sentence_concurrency=1,
                           **overrides) as stack:
            settings = stack.settings
            engine = getattr(settings, "stream_engine", settings.engine)
            per_worker = int(getattr(settings, "stream_sessions_per_worker", 1))
            slots = stream_workers * per_worker
            stack.start_stream_workers(stream_workers)
            stack.wait_stream_slots(slots, timeout_s=300)
            file_text = offline_text(stack, wav)
            tap = RelayTap(settings.effective_redis_url)
            print(f"live streaming through the whole service, native protocol /v1/stream, {cores} cores")
            print(f"audio: {audio.described}; {len(audio.samples) / SAMPLE_RATE_HZ:.1f} s, "
                  f"{len(audio.segments)} sentences (speech onsets after >= 300 ms of silence), sent in real time "
                  f"in {FRAME_S * 1000:.0f} ms frames, ending {TAIL_S} s after the last speech")
            print(f"stream engine {engine}, whisper_model {settings.whisper_model} "
                  f"(beam {settings.whisper_beam_size}), cpu_threads {settings.cpu_threads or 'auto'}; "
                  f"{stream_workers} stream worker process(es) x "
                  f"{per_worker} session(s) = {slots} slot(s) (config defaults); a session waits up to "
                  f"{settings.stream_slot_wait_s:.0f} s for a slot")
            print(f"file job text of the same audio: {file_text!r}")
            if audio.reference is None:
                print("no known transcript for this audio: WER vs reference is n/a")
            print("first text: speech onset -> first Partial with text or Final over that sentence; final after "
                  "stop: last frame sent -> last Final; CPU: the stream worker processes, % of the machine; "
                  "RSS: largest stream worker process")
            print("streams | first text p50/p95 s | final after stop p50/p95 s | refused | CPU % machine | "
                  "RSS MB/worker | WER vs file job | WER vs reference")
            for streams in levels:
                time.sleep(2.0)  # let the workers' measured load of the level before settle
                stack.wait_stream_slots(slots, timeout_s=120)
                run_level(stack, streams, audio, file_text)
            tap.close()
            tap.report()
    finally:
        redis_server.close()


if __name__ == "__main__":
    main()
