"""Moonshine tiny (English) on onnxruntime: our own encoder-decoder loop over its ONNX files.

Moonshine is an encoder-decoder like Whisper, but its encoder takes the raw waveform at any
length (no 30 s padding), so a decode costs in proportion to the clip: tens of milliseconds for
the first seconds of a sentence, where Whisper pays its whole window on every partial. That is
what makes it a live engine.

The weights are the int8 `.ort` files inside the `moonshine-voice==0.1.0` wheel (pinned by
version and sha256 in requirements/models.txt; each file's sha256 is checked again here at
load). Its own runtime (a native library and a streaming loop) is not used: this loop, greedy
with a key/value cache, was 2-3x cheaper than its streaming loop when measured, and its native
library is one more binary to trust.

One `MoonshineModel` per process; `decode()` may be called from several threads at once
(onnxruntime's `InferenceSession.run` is thread-safe), each call running on one intra-op thread
so that sessions of one process decode in parallel on different cores.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from shared.engines_catalog.moonshine import MOONSHINE
from shared.errors import EngineError
from worker.engines.base import SAMPLE_RATE_HZ
from worker.engines.model_files import package_dir, sha256_of
from worker.engines.partial_agreement import normalised_word

logger = logging.getLogger(__name__)

MOONSHINE_PACKAGE = "moonshine_voice"
#: sha256 of each file of the tiny-en model as `moonshine-voice==0.1.0` ships it.
MOONSHINE_TINY_EN_FILES = {
    "encoder_model.ort": "94e90a4654fc45cdfedb77c4c08e1739f48862998e58fada384b25118134f221",
    "decoder_model_merged.ort": "cf524c4862d36e9e5ab032eddc73637efd822d70e868ac575cf1a46e1e4708a0",
    "tokenizer.bin": "6884b35fd6377d4c4d32336a0bc152f36b64d1e45b6503683cdc238250a8472d",
}
#: Token ids of the tokenizer: start and end of the transcript; ids 3..258 are single bytes.
START_TOKEN, END_TOKEN = 1, 2
FIRST_BYTE_TOKEN, LAST_BYTE_TOKEN = 3, 258
#: Greedy decoding stops at this many tokens per second of audio (Moonshine's own bound is
#: 6.5; speech rarely passes 4), so a looping decode cannot run on.
MAX_TOKENS_PER_S = 6.5
#: A decode that repeats its last n-gram this many times in a row is looping (it happens on
#: clips cut mid-word): it stops there, keeping one copy. A single token needs more repeats:
#: the vocabulary has "0" but no "00", so "10000" is four of them.
REPEAT_NGRAM_MAX = 4
REPEAT_LIMIT = 4
SINGLE_TOKEN_REPEAT_LIMIT = 12
#: The longest clip the decoder takes in one piece: these ONNX files fail on more than 384
#: encoder frames (about 9.25 s; measured). Longer clips are decoded in pieces cut at their
#: quietest moment.
MAX_CLIP_S = 9.0
#: Pieces are cut at the quietest 50 ms within this much before the limit.
CUT_SEARCH_S = 2.0
#: Clips shorter than this are not decoded (the encoder's first frame needs 127 samples; a
#: few words need far more).
MIN_CLIP_SAMPLES = SAMPLE_RATE_HZ // 10
#: A phrase of this many words said twice in a row in a decode is a loop (see
#: `without_repeated_phrase`).
REPEAT_MIN_WORDS = 3
#: Commas in a row ("In short,, the period": Moonshine base says it at a clause break).
_REPEATED_COMMA = re.compile(r",(?:\s*,)+")


def read_tokenizer(path: Path) -> list[bytes]:
    """The vocabulary of `tokenizer.bin`: one entry per token, each a length byte and its bytes
    (SentencePiece pieces with `\u2581` for a space; ids 3..258 stand for raw bytes)."""
    data = path.read_bytes()
    tokens: list[bytes] = []
    offset = 0
    while offset < len(data):
        length = data[offset]
        offset += 1
        if length >= 0x80:  # a second length byte (no piece in this vocabulary is that long)
            length = (length & 0x7F) | (data[offset] << 7)
            offset += 1
        tokens.append(data[offset:offset + length])
        offset += length
    return tokens


def resolve_moonshine_dir(directory: Path | None = None) -> Path:
    """The tiny-en files (by default inside the installed wheel), each checked against its
    pinned sha256, so a corrupted or tampered file fails loudly instead of loading."""
    directory = directory or package_dir(MOONSHINE_PACKAGE) / "assets" / "tiny-en"
    for name, expected in MOONSHINE_TINY_EN_FILES.items():
        path = directory / name
        if not path.is_file():
            raise EngineError(f"the Moonshine model file {path} is missing: reinstall requirements/models.txt")
        if sha256_of(path) != expected:
            raise EngineError(f"the Moonshine model file {path} does not match its pinned sha256")
    return directory


class MoonshineModel:
    """The encoder and decoder sessions and the vocabulary, loaded once per process."""

    name = MOONSHINE.name
    model_name = "moonshine-tiny-en"

    def __init__(self, model_dir: Path | None = None, *, cpu_threads: int = 1, verified: bool = False,
                 model_name: str | None = None, suffix: str = ".ort") -> None:
        """`model_dir`: tiny-en by default; another model's files (Moonshine base, built by
        worker/engines/moonshine_base.py) with `verified` when their caller checked them, named
        `encoder_model{suffix}` and `decoder_model_merged{suffix}` beside `tokenizer.bin`."""
        import onnxruntime

        if not verified:
            model_dir = resolve_moonshine_dir(model_dir)
        assert model_dir is not None
        if model_name:
            self.model_name = model_name
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, cpu_threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        self._encoder = onnxruntime.InferenceSession(str(model_dir / f"encoder_model{suffix}"), options,
                                                     providers=providers)
        self._decoder = onnxruntime.InferenceSession(str(model_dir / f"decoder_model_merged{suffix}"), options,
                                                     providers=providers)
        self._decoder_outputs = [output.name for output in self._decoder.get_outputs()]
        self._vocabulary = read_tokenizer(model_dir / "tokenizer.bin")
        # The cache's shape, and which masks the export takes, are read from the model itself:
        # tiny and base differ in both.
        decoder_inputs = {item.name: item for item in self._decoder.get_inputs()}
        self._empty_cache = {
            name: np.zeros((1, item.shape[1], 0, item.shape[3]), dtype=np.float32)
            for name, item in decoder_inputs.items() if name.startswith("past_key_values.")
        }
        self._encoder_takes_mask = any(item.name == "attention_mask" for item in self._encoder.get_inputs())
        self._decoder_takes_mask = "encoder_attention_mask" in decoder_inputs

    def decode(self, clip: np.ndarray) -> str:
        """The text of float32 16 kHz mono `clip` (greedy, stops at the end token or a loop)."""
        clip = np.ascontiguousarray(clip, dtype=np.float32).reshape(-1)
        texts = []
        limit = int(MAX_CLIP_S * SAMPLE_RATE_HZ)
        while clip.size > limit:
            cut = quietest_sample(clip, limit - int(CUT_SEARCH_S * SAMPLE_RATE_HZ), limit)
            texts.append(self._decode_piece(clip[:cut]))
            clip = clip[cut:]
        texts.append(self._decode_piece(clip))
        return " ".join(text for text in texts if text)

    def _decode_piece(self, clip: np.ndarray) -> str:
        if clip.size < MIN_CLIP_SAMPLES:
            return ""
        try:
            tokens, hit_limit = self._generate(clip)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"the Moonshine decoder failed: {exc}") from exc
        text = self.detokenize(tokens)
        if hit_limit:  # a loop the token limit cut off: its last copy may be cut short
            text = " ".join(without_repeated_phrase(text.split(), cut_off_at_end=True))
        return text

    def detokenize(self, tokens: list[int]) -> str:
        pieces = []
        for token in tokens:
            if FIRST_BYTE_TOKEN <= token <= LAST_BYTE_TOKEN:
                pieces.append(bytes([token - FIRST_BYTE_TOKEN]))
            elif token > LAST_BYTE_TOKEN and token < len(self._vocabulary):
                pieces.append(self._vocabulary[token])
        return tidy_punctuation(b"".join(pieces).decode("utf-8", errors="replace").replace("\u2581", " ").strip())

    # --- inside --------------------------------------------------------------------------
    def _generate(self, clip: np.ndarray) -> tuple[list[int], bool]:
        """The clip's tokens, and whether the token limit (not the end token) ended them."""
        encoder_feed = {"input_values": clip[np.newaxis, :]}
        if self._encoder_takes_mask:
            encoder_feed["attention_mask"] = np.ones((1, clip.size), dtype=np.int64)
        hidden = self._encoder.run(None, encoder_feed)[0]
        masks = {"encoder_attention_mask": np.ones((1, hidden.shape[1]), dtype=np.int64)} \
            if self._decoder_takes_mask else {}
        cache: dict[str, Any] = dict(self._empty_cache)
        max_tokens = max(4, math.ceil(clip.size / SAMPLE_RATE_HZ * MAX_TOKENS_PER_S))
        tokens: list[int] = []
        previous = START_TOKEN
        for step in range(max_tokens):
            outputs = self._decoder.run(None, {
                "input_ids": np.array([[previous]], dtype=np.int64), "encoder_hidden_states": hidden,
                "use_cache_branch": np.array([step > 0]), **masks, **cache})
            previous = int(outputs[0][0, -1].argmax())
            for name, value in zip(self._decoder_outputs[1:], outputs[1:], strict=True):
                # The encoder's keys and values are computed on the first step only; later steps
                # return placeholders for them.
                if step == 0 or ".decoder." in name:
                    cache[name.replace("present", "past_key_values")] = value
            if previous == END_TOKEN:
                return tokens, False
            tokens.append(previous)
            repeated, times = _repeated_tail(tokens)
            if repeated:
                return tokens[:len(tokens) - repeated * (times - 1)], False  # keep one copy
        return tokens, True


def without_repeated_phrase(words: list[str], min_words: int = REPEAT_MIN_WORDS,
                            cut_off_at_end: bool = False) -> list[str]:
    """`words` up to the first phrase of `min_words` or more said twice in a row, kept once.

    A partial decodes a clip that ends mid-word, and Moonshine then sometimes says the sentence
    so far twice ("It was a season of light. It was a season of light. It"). Two partials can
    agree on that, and words once stable are never taken back: the partials would stall on it
    until the final. Speech rarely repeats three words or more back to back.

    `cut_off_at_end`: a second copy that runs to the end of `words` counts even when it is
    shorter than the first: what a decode looks like when its token limit cut the loop off
    ("Please send the report to my office please send the report to my"; Moonshine base on a
    clip a Finalize cut mid-word). Only then: speech says that too ("It was a season of light,
    it was a season of" is Dickens half said, and a partial cut there waited 1.2 s, at eight
    sessions, for the word that told the two apart).
    """
    normal = [normalised_word(word) for word in words]
    for start in range(len(words)):
        for size in range(min_words, len(words) - start):
            again = normal[start + size:start + 2 * size]
            whole = len(again) == size or (cut_off_at_end and start + 2 * size > len(words))
            if len(again) >= min_words and whole and normal[start:start + len(again)] == again:
                return words[:start + size]
    return words


def tidy_punctuation(text: str) -> str:
    """`text` with commas said twice in a row said once: captions and subtitles show it as is."""
    return _REPEATED_COMMA.sub(",", text)


def quietest_sample(samples: np.ndarray, start: int, end: int, window_samples: int = SAMPLE_RATE_HZ // 20) -> int:
    """The middle of the quietest `window_samples` of `samples[start:end]`: where a cut splits
    no word."""
    window = window_samples
    start = max(0, start)
    span = samples[start:end]
    count = span.size // window
    if count < 2:
        return end
    energy = np.square(span[:count * window]).reshape(count, window).sum(axis=1)
    return start + int(energy.argmin()) * window + window // 2


def _repeated_tail(tokens: list[int]) -> tuple[int, int]:
    """The size of the n-gram that ends `tokens` repeated its limit of times in a row, and that
    limit; (0, 0) when none is."""
    for size in range(1, REPEAT_NGRAM_MAX + 1):
        times = SINGLE_TOKEN_REPEAT_LIMIT if size == 1 else REPEAT_LIMIT
        span = size * times
        if len(tokens) < span:
            continue
        tail = tokens[-span:]
        if all(tail[i] == tail[i % size] for i in range(span)):
            return size, times
    return 0, 0
