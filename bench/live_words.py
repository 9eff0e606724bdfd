"""Word times of live finals: what the alignment step costs per final and how far its word
boundaries land from Whisper's own word times on the same real speech.

The Moonshine live engine (which times no words) is fed the two human recordings of the
moonshine_voice wheel (bench/streaming.py's audio) directly, in 60 ms frames, without a
service; each final's words come from worker/engines/word_timing.py. The reference is
faster-whisper base with `word_timestamps=True` on the same audio, one call per final's clip
(so both sides hear the same sentence). Words are paired by their normalised spelling
(difflib), and the error is |start - start'| and |end - end'| over every paired word.

Also measured, as the alternative the issue names: Whisper tiny.en's cross-attention
alignment (CTranslate2 `align`, through faster-whisper's `find_alignment`) of Moonshine's text
on the same clip: its cost and error.

    PYTHONPATH=$PWD python bench/live_words.py
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from streaming import load_audio  # noqa: E402

from shared.transcript import Word  # noqa: E402
from worker.engines import vad_sentences  # noqa: E402
from worker.engines.base import SAMPLE_RATE_HZ, StreamOptions  # noqa: E402
from worker.engines.fsmn_vad_lite import FsmnVadLite  # noqa: E402
from worker.engines.model_files import resolve_vad_model_dir, resolve_whisper_model  # noqa: E402
from worker.engines.moonshine_model import MoonshineModel  # noqa: E402
from worker.engines.moonshine_stream import MoonshineStreamEngine  # noqa: E402

FRAME_SAMPLES = 960
CLIP_PAD_MS = 200
DUMP = os.environ.get("LIVE_WORDS_DUMP", "")


def norm(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


def boundary_errors_s(ours: list[Word], reference: list[Word]) -> list[float]:
    a, b = [norm(w.word) for w in ours], [norm(w.word) for w in reference]
    errors = []
    for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            mine, theirs = ours[block.a + k], reference[block.b + k]
            errors += [abs(mine.start_s - theirs.start_s), abs(mine.end_s - theirs.end_s)]
    return errors


def main() -> None:
    audio = load_audio("moonshine", 600.0, None)
    samples = audio.samples.astype(np.float32) / 32768.0
    print(f"audio: {audio.described}, {samples.size / SAMPLE_RATE_HZ:.1f} s")
    engine = MoonshineStreamEngine(MoonshineModel(), FsmnVadLite(resolve_vad_model_dir(""), max_end_silence_ms=800))
    align_costs_ms: list[float] = []
    align_cpu_ms: list[float] = []
    original = vad_sentences.align_words

    def timed_align(*args, **kwargs):  # type: ignore[no-untyped-def]
        started, started_cpu = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            align_costs_ms.append((time.perf_counter() - started) * 1000)
            align_cpu_ms.append((time.thread_time() - started_cpu) * 1000)

    vad_sentences.align_words = timed_align
    session = engine.open_stream(StreamOptions(language="en", want_partials=False))
    finals = []
    for start in range(0, samples.size, FRAME_SAMPLES):
        finals += session.accept_audio(samples[start:start + FRAME_SAMPLES])
    finals += session.finish()
    vad_sentences.align_words = original

    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

    cache = Path(tempfile.gettempdir()) / "oddasr-bench-models"
    base = WhisperModel(str(resolve_whisper_model("base", cache)), device="cpu", compute_type="int8", cpu_threads=2)
    tiny = WhisperModel(str(resolve_whisper_model("tiny.en", cache)), device="cpu", compute_type="int8", cpu_threads=2)
    tokenizer = Tokenizer(tiny.hf_tokenizer, False, task="transcribe", language="en")
    energy_errors: list[float] = []
    attention_errors: list[float] = []
    attention_costs_ms: list[float] = []
    cases: list = []
    for final in finals:
        clip_start_ms = max(0, final.start_ms - CLIP_PAD_MS)
        clip = samples[clip_start_ms * 16: (final.end_ms + CLIP_PAD_MS) * 16]
        segments, _ = base.transcribe(clip, language="en", beam_size=5, word_timestamps=True, vad_filter=False,
                                      condition_on_previous_text=False)
        offset_s = clip_start_ms / 1000
        reference = [Word(word=w.word.strip(), start_s=offset_s + w.start, end_s=offset_s + w.end)
                     for s in segments for w in (s.words or [])]
        energy_errors += boundary_errors_s(list(final.words), reference)
        if DUMP:
            cases.append((clip, clip_start_ms, final.start_ms, final.end_ms, final.text, reference))
        started = time.perf_counter()
        attention_words = cross_attention_words(tiny, tokenizer, clip, final.text, clip_start_ms)
        attention_costs_ms.append((time.perf_counter() - started) * 1000)
        attention_errors += boundary_errors_s(attention_words, reference)
    if DUMP:
        import pickle
        Path(DUMP).write_bytes(pickle.dumps(cases))
    print(f"finals: {len(finals)}; words paired with Whisper base's: {len(energy_errors) // 2}")
    for name, errors, costs in (("energy + syllables DP (shipped)", energy_errors, align_costs_ms),
                                ("Whisper tiny.en cross-attention", attention_errors, attention_costs_ms)):
        print(f"{name:34s} boundary error median {np.median(errors):.3f} s, p90 {np.percentile(errors, 90):.3f} s;"
              f" cost per final median {np.median(costs):.1f} ms, max {np.max(costs):.1f} ms")
    print(f"alignment CPU time per final (what it costs a machine without other load): median "
          f"{np.median(align_cpu_ms):.1f} ms, max {np.max(align_cpu_ms):.1f} ms; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; Whisper runs with 2 threads")


def cross_attention_words(model, tokenizer, clip: np.ndarray, text: str, clip_start_ms: int) -> list[Word]:  # type: ignore[no-untyped-def]
    """Moonshine's text aligned on the clip by tiny.en's cross-attention (faster-whisper's DTW)."""
    features = model.feature_extractor(clip)
    num_frames = features.shape[-1]
    encoder_output = model.encode(np.pad(features, ((0, 0), (0, max(0, 3000 - num_frames))))[:, :3000])
    tokens = tokenizer.encode(" " + text.strip())
    alignment = model.find_alignment(tokenizer, [tokens], encoder_output, num_frames)
    words = alignment[0] if alignment and isinstance(alignment[0], list) else alignment
    return [Word(word=w["word"].strip(), start_s=clip_start_ms / 1000 + w["start"],
                 end_s=clip_start_ms / 1000 + w["end"]) for w in words if w["word"].strip()]


if __name__ == "__main__":
    main()
