"""The effect of a hotword set on rare names and product words, through the whole service.

Generated speech (espeak-ng) of sentences that each carry rare names or product words is
transcribed twice by the same workers: with no hotwords (`hotword_set=none`) and with a set
holding those words. Reported: the share of the rare words written exactly right (recall),
the WER over the rare words alone (each rare word against what stands in its place), and the
WER of the whole text, with and without the set.
Run: `.venv/bin/python bench/hotwords.py [--model tiny.en]`
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import jiwer
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CACHE_DIR, run_redis  # noqa: E402
from tests.support.speech import synthesize  # noqa: E402
from tests.support.stack import Stack, running_stack, wait_for_job  # noqa: E402

SENTENCES = [
    ("Please forward the invoice to Siobhan Nakamura before Friday.", ["Siobhan", "Nakamura"]),
    ("The Zyxtronix controller replaced the old board last week.", ["Zyxtronix"]),
    ("Ask Thorvald Quispe to review the Kubernetes deployment.", ["Thorvald", "Quispe", "Kubernetes"]),
    ("Our new Oddasr release ships with the Paraformer model.", ["Oddasr", "Paraformer"]),
    ("Meet Aoife Brannigan at the Velmora office tomorrow morning.", ["Aoife", "Brannigan", "Velmora"]),
    ("The Quarkly dashboard shows the Nimbusflow queue depth.", ["Quarkly", "Nimbusflow"]),
    ("Send the contract to Ngozi Okonkwo and Dmitri Vasquez.", ["Ngozi", "Okonkwo", "Dmitri", "Vasquez"]),
    ("The Helixor sensor reported a fault in the Tavrin pump.", ["Helixor", "Tavrin"]),
]


def clean(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def transcribe(stack: Stack, path: Path, **fields: str) -> str:
    with path.open("rb") as audio:
        created = requests.post(stack.url("/v1/jobs"), files={"audio": (path.name, audio)},
                                data={"language": "en", **fields}, timeout=60)
    created.raise_for_status()
    job = wait_for_job(stack, created.json()["id"], timeout_s=300)
    assert job["status"] == "succeeded", job
    return str(job["result"]["text"])


def rare_word_scores(pairs: list[tuple[str, str, list[str]]]) -> tuple[float, float, float]:
    """(recall of the rare words, WER over the rare words, WER of the whole text)."""
    found = total = 0
    rare_refs, rare_hyps, refs, hyps = [], [], [], []
    for reference, hypothesis, rare in pairs:
        hyp_words = clean(hypothesis)
        refs.append(" ".join(clean(reference)))
        hyps.append(" ".join(hyp_words))
        for word in rare:
            total += 1
            found += word.lower() in hyp_words
        # The rare words against the hypothesis words aligned to them.
        output = jiwer.process_words(" ".join(clean(reference)), " ".join(hyp_words))
        ref_words = clean(reference)
        for chunk in output.alignments[0]:
            for offset in range(chunk.ref_end_idx - chunk.ref_start_idx):
                ref_word = ref_words[chunk.ref_start_idx + offset]
                if ref_word in {w.lower() for w in rare}:
                    rare_refs.append(ref_word)
                    hyp_index = chunk.hyp_start_idx + offset
                    matched = hyp_words[hyp_index] if chunk.type != "delete" and hyp_index < chunk.hyp_end_idx else ""
                    rare_hyps.append(matched or "<deleted>")
    rare_wer = sum(r != h for r, h in zip(rare_refs, rare_hyps, strict=True)) / max(1, len(rare_refs))
    return found / total, rare_wer, jiwer.wer(refs, hyps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    args = parser.parse_args()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    clips = [(synthesize(text, CACHE_DIR / f"hotwords-{i}.wav"), text, rare) for i, (text, rare) in
             enumerate(SENTENCES)]
    tmp = Path(tempfile.mkdtemp(prefix="oddasr-hotword-bench-"))
    redis_server = run_redis(tmp / "redis")
    try:
        with running_stack(tmp / "stack", redis_server.url, file_concurrency=1, sentence_concurrency=0,
                           whisper_model=args.model, whisper_beam_size=5) as stack:
            words = sorted({word for _, _, rare in clips for word in rare})
            response = requests.put(stack.url("/v1/hotwords/rare"), data="\n".join(f"{w} 50" for w in words),
                                    headers={"Content-Type": "text/plain"}, timeout=10)
            response.raise_for_status()
            without = [(text, transcribe(stack, path, hotword_set="none"), rare) for path, text, rare in clips]
            with_set = [(text, transcribe(stack, path, hotword_set="rare"), rare) for path, text, rare in clips]
    finally:
        redis_server.stop()
    print(f"model {args.model}, beam 5; {len(clips)} sentences, {sum(len(r) for _, _, r in clips)} rare words; "
          f"the set holds the {len(words)} rare words")
    for label, pairs in (("without the set", without), ("with the set", with_set)):
        recall, rare_wer, wer = rare_word_scores(pairs)
        print(f"{label:16s} rare words right {recall:6.1%}   WER on rare words {rare_wer:6.1%}   "
              f"whole-text WER {wer:6.1%}")
    for (reference, plain, _), (_, biased, _) in zip(without, with_set, strict=True):
        print(f"  ref: {reference}\n  -  : {plain}\n  +  : {biased}")


if __name__ == "__main__":
    main()
