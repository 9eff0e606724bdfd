"""Issue 17, item 4: fifty webhook receivers that trickle their answers, and sentence jobs.

Fifty receivers, each on its own loopback address (127.0.0.2 ... 127.0.0.51), answer every
event with `Content-Length: 1000000000` and then one byte every 2 s
(tests/support/trickle_receiver.py). Fifty sentence jobs name them as their `callback_url`.
The figure: sentence-job latency (submit to result, `POST /v1/asr` with `mode=sentence`, one
at a time) before the receivers exist, and again while all fifty hold their deliveries. The
attempt deadline is raised to 10 minutes here so that every receiver still holds its attempt
while the second sample runs: what keeps the sentence worker free is the webhooks node, not
the deadline. On code where deliveries ran on the sentence queue the first trickle holds the
only sentence worker and the jobs stall; that is reported as such instead of a latency.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.abuse_cases import Case
from bench.common import sentence_clips
from tests.support.stack import Stack
from tests.support.trickle_receiver import TrickleReceiver, running_trickle_receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RECEIVERS = 50
TRICKLE_INTERVAL_S = 2.0
SAMPLES = 10
#: How long the fifty callback jobs and their deliveries may take to get going.
SETUP_LIMIT_S = 240.0
#: One sample that takes longer than this is a stalled sentence queue.
SAMPLE_LIMIT_S = 60.0


def _sentence_latency_s(stack: Stack, clip: Path, callback_url: str | None = None) -> float | None:
    """Submit to result of one sentence job; None when it did not finish in SAMPLE_LIMIT_S."""
    data = {"mode": "sentence", **({"callback_url": callback_url} if callback_url else {})}
    started_s = time.perf_counter()
    try:
        with clip.open("rb") as audio:
            response = requests.post(stack.url("/v1/asr"), files={"audio": (clip.name, audio)}, data=data,
                                     timeout=SAMPLE_LIMIT_S)
    except requests.Timeout:
        return None
    response.raise_for_status()
    return time.perf_counter() - started_s


def _sample(stack: Stack, clips: list[Path]) -> list[float] | None:
    latencies_s: list[float] = []
    for index in range(SAMPLES):
        latency_s = _sentence_latency_s(stack, clips[index % len(clips)])
        if latency_s is None:
            return None
        latencies_s.append(latency_s)
    return latencies_s


def _describe(latencies_s: list[float]) -> str:
    ordered = sorted(latencies_s)
    p90_s = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p90 {p90_s * 1000:.0f} ms"


def _held(receivers: list[TrickleReceiver]) -> int:
    return sum(receiver.snapshot()[1] for receiver in receivers)


def _submit(stack: Stack, clip: Path, callback_url: str) -> str:
    with clip.open("rb") as audio:
        response = requests.post(stack.url("/v1/jobs"), files={"audio": (clip.name, audio)},
                                 data={"mode": "sentence", "callback_url": callback_url}, timeout=60)
    response.raise_for_status()
    return str(response.json()["id"])


def trickling_receivers(stack: Stack) -> str:
    clips = sentence_clips(8)
    before = _sample(stack, clips)
    if before is None:
        return "sentence jobs stalled before any receiver existed"
    with contextlib.ExitStack() as receivers_alive:
        receivers = [receivers_alive.enter_context(running_trickle_receiver(f"127.0.0.{2 + index}",
                                                                            TRICKLE_INTERVAL_S))
                     for index in range(RECEIVERS)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda pair: _submit(stack, clips[pair[0] % len(clips)], f"{pair[1].url}/hook"),
                          enumerate(receivers)))
        deadline_s = time.monotonic() + SETUP_LIMIT_S
        while _held(receivers) < RECEIVERS and time.monotonic() < deadline_s:
            time.sleep(0.5)
        held_before = _held(receivers)
        if held_before < RECEIVERS:
            return (f"only {held_before} of {RECEIVERS} receivers reached in {SETUP_LIMIT_S:.0f} s: the callback "
                    "jobs stalled (deliveries held the sentence worker)")
        during = _sample(stack, clips)
        held_after = _held(receivers)
    if during is None:
        return f"before: {_describe(before)}; during: a sentence job did not finish in {SAMPLE_LIMIT_S:.0f} s"
    return (f"sentence job before: {_describe(before)}; while {min(held_before, held_after)} receivers "
            f"trickle: {_describe(during)}")


def cases() -> list[Case]:
    return [Case(
        name="webhooks: 50 receivers trickle a 1 GB answer",
        goal="sentence-job latency unchanged while 50 receivers trickle",
        attack=trickling_receivers,
        overrides={"webhook_secrets": [SECRET], "webhook_allowed_networks": ["127.0.0.0/8"],
                   "webhook_attempt_deadline_s": 600.0, "webhook_retry_schedule_s": [600.0]},
    )]
