"""Subtitle and segment times follow the speech by default (issue 23, item 1).

A generated dialogue with known speech times goes through a real stack (gunicorn API, Celery
worker, Redis, the real Whisper tiny.en and fsmn-vad weights; FunASR's real pipeline with tiny
random models) as WAV and as MP3, and every output that carries times is read back: srt, vtt,
the job's json segments, OpenAI's verbose_json (from the transcript endpoint and from
/v1/audio/transcriptions), and spk (one line per segment). Each sentence's first cue starts
within 0.2 s of its onset (median 0.1 s at most), later cues of a sentence start inside it, no
two cues overlap and none covers more than 0.2 s of a pause of 0.5 s or more.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import srt

from shared.render import render
from shared.segment_timing import fit_to_speech, without_overlaps
from shared.transcript import Segment, Transcript, Word
from tests.support.stack import Stack, running_stack, wait_for_job
from tests.support.timed_dialogue import (
    TOLERANCE_S,
    TimedDialogue,
    as_mp3,
    make_timed_dialogue,
    read_outputs,
    score_cues,
)
from worker.engines.funasr_timestamps import segments_from_result
from worker.engines.speech_spans import tighten_span

Cues = list[tuple[float, float]]


# --- the pure rules ---------------------------------------------------------------------------
def _segment(start_s: float, end_s: float, text: str = "x", words: list[Word] | None = None) -> Segment:
    return Segment(start_s=start_s, end_s=end_s, text=text, words=words or [])


def test_an_overlap_is_cut_at_the_next_segments_start() -> None:
    fixed = without_overlaps([_segment(47.07, 52.07, "eleven"), _segment(51.5, 55.0, "twelve")])
    assert [(s.start_s, s.end_s) for s in fixed] == [(47.07, 51.5), (51.5, 55.0)]


def test_a_segment_starting_with_the_previous_one_moves_after_it() -> None:
    fixed = without_overlaps([_segment(1.0, 3.0, "a"), _segment(1.0, 2.0, "b")])
    assert fixed[0].end_s <= fixed[1].start_s < fixed[1].end_s


def test_a_segment_is_cut_where_its_words_cross_a_pause() -> None:
    words = [Word(word="Good", start_s=0.9, end_s=1.3), Word(word="morning.", start_s=1.3, end_s=2.2),
             Word(word="How", start_s=2.4, end_s=3.1), Word(word="are", start_s=3.1, end_s=3.3),
             Word(word="you?", start_s=3.3, end_s=3.7)]
    spans = [(1.02, 1.95), (2.9, 3.75)]
    fitted = fit_to_speech([_segment(0.0, 5.0, "Good morning. How are you?", words)], spans)
    assert [(s.start_s, s.end_s, s.text) for s in fitted] == [(1.02, 1.95, "Good morning."),
                                                              (2.9, 3.75, "How are you?")]


def test_a_cut_keeps_the_engines_own_text_between_the_pieces() -> None:
    words = [Word(word="iPhone", start_s=0.5, end_s=0.9), Word(word="很", start_s=0.9, end_s=1.1),
             Word(word="好。", start_s=1.1, end_s=1.3), Word(word="我们", start_s=2.5, end_s=2.9),
             Word(word="走吧", start_s=2.9, end_s=3.3)]
    fitted = fit_to_speech([_segment(0.0, 4.0, "iPhone很好。我们走吧", words)], [(0.5, 1.3), (2.5, 3.3)])
    assert [s.text for s in fitted] == ["iPhone很好。", "我们走吧"]


def test_funasr_token_times_go_back_onto_its_punctuated_text() -> None:
    result = {"text": "你好，世界。It's fine, ok", "timestamp": [[100, 300], [300, 500], [500, 700], [700, 900],
                                                                     [1500, 1800], [1800, 2000], [2000, 2200]]}
    segments = segments_from_result(result, diarize=False)
    assert [(s.text, s.start_s, s.end_s) for s in segments] == [("你好，世界。", 0.1, 0.9), ("It's fine, ok", 1.5, 2.2)]
    assert segments_from_result({"text": "a b", "timestamp": [[0, 500]]}, diarize=False)[0].text == "a b"


def test_segments_without_words_snap_to_their_span_and_keep_their_text() -> None:
    fitted = fit_to_speech([_segment(25.83, 29.83, "one"), _segment(29.83, 34.83, "two")],
                           [(26.32, 29.29), (30.36, 34.68)])
    assert [(s.start_s, s.end_s, s.text) for s in fitted] == [(26.32, 29.29, "one"), (30.36, 34.68, "two")]


def test_two_segments_in_one_span_share_it_in_order() -> None:
    words_a = [Word(word="Yes.", start_s=1.0, end_s=1.4)]
    words_b = [Word(word="Sure", start_s=1.5, end_s=1.9), Word(word="thing.", start_s=1.9, end_s=2.6)]
    fitted = fit_to_speech([_segment(0.5, 1.5, "Yes.", words_a), _segment(1.5, 3.0, "Sure thing.", words_b)],
                           [(1.1, 2.4)])
    assert [(s.start_s, s.end_s) for s in fitted] == [(1.1, 1.4), (1.5, 2.4)]


def test_a_vad_span_is_tightened_to_the_sound_and_cut_at_a_silent_pause() -> None:
    """fsmn-vad pads its spans; inside the padding the frame energies say where sound is. A
    two-frame click before the speech starts nothing; 0.6 s of silence inside cuts the span;
    a start moves by at most 0.45 s (beyond the VAD's padding the VAD knows better)."""
    levels_db = np.full(400, -80.0)
    levels_db[25:27] = -40.0  # a click at 0.25 s
    levels_db[60:150] = -20.0  # speech 0.60-1.50 s
    levels_db[210:330] = -22.0  # speech 2.10-3.30 s, after 0.6 s of silence
    assert tighten_span(levels_db, -80.0, 300, 3500) == [(0.6, 1.5), (2.1, 3.3)]
    assert tighten_span(levels_db, -80.0, 200, 1600) == [(0.6, 1.5)]
    assert tighten_span(levels_db, -80.0, 0, 1600) == [(0.45, 1.5)]


def test_renderers_never_write_overlapping_cues_from_an_old_transcript() -> None:
    stored = Transcript(text="a b", segments=[_segment(47.07, 52.07, "a"), _segment(51.5, 55.0, "b")])
    cues = list(srt.parse(render(stored, "srt")[0]))
    assert cues[0].end <= cues[1].start
    segments = json.loads(render(stored, "verbose_json")[0])["segments"]
    assert segments[0]["end"] <= segments[1]["start"]


# --- through a real stack ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dialogue(speech_dir: Path) -> TimedDialogue:
    return make_timed_dialogue(speech_dir)


@pytest.fixture(scope="module")
def whisper_stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("subtitles"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=0) as stack:
        yield stack


def _finished_job(stack: Stack, path: Path, **fields: str) -> dict:
    with path.open("rb") as audio:
        response = requests.post(stack.url("/v1/jobs"), files={"audio": (path.name, audio)}, data=fields, timeout=60)
    assert response.status_code == 202, response.text
    job = wait_for_job(stack, response.json()["id"], timeout_s=300)
    assert job["status"] == "succeeded", job
    return job


def cues_by_format(stack: Stack, job: dict) -> dict[str, Cues]:
    outputs = read_outputs(stack.url(f"/v1/jobs/{job['id']}/transcript"), job)
    assert outputs.spk_lines == len(outputs.cues["json"]), "spk writes one line per segment"
    if not job["options"].get("word_timestamps"):
        assert outputs.words == 0, "words only when asked for"
    return outputs.cues


def assert_cues_follow_speech(cues: Cues, dialogue: TimedDialogue, label: str, *, all_sentences: bool = True) -> None:
    timing = score_cues(cues, dialogue)
    report = f"{label}: {timing} cues={cues}"
    assert not all_sentences or not timing.missing_sentences, report
    assert timing.max_abs_error_s <= TOLERANCE_S, report
    assert timing.median_abs_error_s <= 0.1, report
    assert not timing.misplaced_cues, report
    assert timing.overlaps == 0, report
    assert not timing.through_pauses, report


@pytest.mark.integration
@pytest.mark.parametrize("container", ["wav", "mp3"])
def test_whisper_cues_follow_the_speech_in_every_format(whisper_stack: Stack, dialogue: TimedDialogue,
                                                        speech_dir: Path, container: str) -> None:
    path = dialogue.path if container == "wav" else as_mp3(dialogue, speech_dir)
    job = _finished_job(whisper_stack, path)
    for fmt, cues in cues_by_format(whisper_stack, job).items():
        assert_cues_follow_speech(cues, dialogue, f"{container} {fmt}")


@pytest.mark.integration
def test_word_timestamps_keep_their_words_inside_the_fitted_segments(whisper_stack: Stack,
                                                                     dialogue: TimedDialogue) -> None:
    job = _finished_job(whisper_stack, dialogue.path, word_timestamps="true")
    transcript = Transcript.model_validate_json(
        requests.get(whisper_stack.url(f"/v1/jobs/{job['id']}/transcript"), params={"format": "json"}, timeout=30).text)
    for segment in transcript.segments:
        assert segment.words
        assert all(segment.start_s <= w.start_s <= w.end_s <= segment.end_s for w in segment.words), segment
    for fmt, cues in cues_by_format(whisper_stack, job).items():
        assert_cues_follow_speech(cues, dialogue, f"word_timestamps {fmt}")


@pytest.mark.integration
def test_openai_verbose_json_follows_the_speech(whisper_stack: Stack, dialogue: TimedDialogue) -> None:
    with dialogue.path.open("rb") as audio:
        response = requests.post(whisper_stack.url("/v1/audio/transcriptions"), files={"file": audio},
                                 data={"model": "whisper-1", "response_format": "verbose_json"}, timeout=300)
    assert response.status_code == 200, response.text
    cues = [(s["start"], s["end"]) for s in response.json()["segments"]]
    assert_cues_follow_speech(cues, dialogue, "openai verbose_json")


@pytest.fixture(scope="module")
def funasr_stack(tmp_path_factory: pytest.TempPathFactory, own_redis,  # type: ignore[no-untyped-def]
                 tiny_funasr_models: dict[str, Path]) -> Iterator[Stack]:
    # Its own redis: the Whisper stack of this module listens on the same queue names.
    with running_stack(tmp_path_factory.mktemp("subtitles-funasr"), own_redis.url, file_concurrency=1,
                       sentence_concurrency=0, engine="funasr", funasr_asr_model=str(tiny_funasr_models["asr"]),
                       funasr_punc_model=str(tiny_funasr_models["punc"]), cpu_threads=2) as stack:
        yield stack


@pytest.mark.integration
def test_funasr_cues_follow_the_speech(funasr_stack: Stack, dialogue: TimedDialogue) -> None:
    """The tiny random models' text is noise; their times and the service's fitting are real.

    The tiny model gives one unit of text per span of FunASR's own VAD, which joins sentences
    across pauses shorter than its 0.8 s: such a unit lands in one sentence (a unit is never
    split), so a sentence may have no cue here; a real model times each character or word.
    """
    job = _finished_job(funasr_stack, dialogue.path)
    assert job["engine"] == "funasr"
    for fmt, cues in cues_by_format(funasr_stack, job).items():
        assert len(cues) >= len(dialogue.sentences) - 3, cues
        assert_cues_follow_speech(cues, dialogue, f"funasr {fmt}", all_sentences=False)
