"""Speaker embeddings from Resemblyzer's GE2E encoder (its weights ship in the wheel)."""

from __future__ import annotations

import numpy as np

from worker.engines.base import SAMPLE_RATE_HZ

#: Shorter clips are padded by repetition: the encoder needs about 1.6 s to say anything.
MIN_CLIP_S = 1.6


class ResemblyzerEmbedder:
    def __init__(self, device: str = "cpu") -> None:
        from resemblyzer import VoiceEncoder

        self._encoder = VoiceEncoder(device=device, verbose=False)

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        min_samples = int(MIN_CLIP_S * SAMPLE_RATE_HZ)
        if clip.size == 0:
            clip = np.zeros(min_samples, dtype=np.float32)
        if clip.size < min_samples:
            clip = np.tile(clip, int(np.ceil(min_samples / clip.size)))[:min_samples]
        peak = float(np.max(np.abs(clip))) or 1.0
        embedding = self._encoder.embed_utterance(clip / peak * 0.5)
        return embedding / (np.linalg.norm(embedding) or 1.0)


#: Torch threads for the embedder where it serves live sessions: GE2E is a small LSTM, and on
#: a 2-core machine running other decoders one thread embedded a 4 s sentence in 24 ms at the
#: median where two took 300 ms (contention; bench/live_speakers.py).
LIVE_TORCH_THREADS = 1


def use_live_threads() -> None:
    """Run the (already loaded) embedder on `LIVE_TORCH_THREADS`: for a stream worker process,
    where nothing else of the process uses torch."""
    import torch

    if torch.get_num_threads() != LIVE_TORCH_THREADS:
        torch.set_num_threads(LIVE_TORCH_THREADS)
