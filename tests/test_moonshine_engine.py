"""The Moonshine live engine on its real weights, fed directly (no service): what it hears,
how its partials behave, that its finals do not depend on its partials, and how a session's
engine is chosen."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile

from shared.engines_catalog import is_english, live_language_refusal
from shared.errors import EngineError, NotSupportedError
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from tests.support.stream_feed import feed
from worker.engines.base import StreamEvent, StreamOptions
from worker.engines.fsmn_vad_lite import FsmnVadLite
from worker.engines.live_engines import LiveEngines
from worker.engines.model_files import resolve_vad_model_dir
from worker.engines.moonshine_model import MoonshineModel, resolve_moonshine_dir, tidy_punctuation
from worker.engines.moonshine_stream import MoonshineStreamEngine

SENTENCES = [REFERENCE_SENTENCES[1], REFERENCE_SENTENCES[4], REFERENCE_SENTENCES[5]]
FRAME_SAMPLES = 1600  # 100 ms


def clean(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


@pytest.fixture(scope="module")
def model() -> MoonshineModel:
    return MoonshineModel()


@pytest.fixture(scope="module")
def engine(model: MoonshineModel) -> MoonshineStreamEngine:
    return MoonshineStreamEngine(model, FsmnVadLite(resolve_vad_model_dir(""), max_end_silence_ms=800))


@pytest.fixture(scope="module")
def recording(speech_dir: Path) -> np.ndarray:
    samples, rate = soundfile.read(make_long_recording(SENTENCES, speech_dir / "moonshine-three.wav", gap_s=1.2),
                                   dtype="float32")
    assert rate == 16000
    return samples


def stream(engine: MoonshineStreamEngine, samples: np.ndarray, *, partials: bool = True) -> list[StreamEvent]:
    return feed(engine.open_stream(StreamOptions(language="en", want_partials=partials)), samples, FRAME_SAMPLES)


def test_moonshine_transcribes_english_speech(model: MoonshineModel, recording: np.ndarray) -> None:
    first = recording[: int(4.0 * 16000)]
    assert jiwer.wer(clean(SENTENCES[0]), clean(model.decode(first))) <= 0.25
    assert model.decode(np.zeros(800, dtype=np.float32)) == "", "under 0.1 s: nothing to decode"


def test_a_clip_longer_than_the_decoder_takes_is_decoded_in_pieces(model: MoonshineModel,
                                                                   recording: np.ndarray) -> None:
    """These ONNX files fail past about 9.25 s in one piece; a long sentence still decodes whole."""
    assert recording.size > 10 * 16000
    text = model.decode(recording)
    assert jiwer.wer(clean(" ".join(SENTENCES)), clean(text)) <= 0.2, text


def test_a_tampered_weight_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "tiny-en"
    shutil.copytree(resolve_moonshine_dir(), copy)
    with (copy / "encoder_model.ort").open("r+b") as handle:
        handle.seek(4096)
        byte = handle.read(1)
        handle.seek(4096)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(EngineError, match="sha256"):
        MoonshineModel(copy)


def test_partials_show_the_hypothesis_and_a_stable_part_that_only_grows(
        engine: MoonshineStreamEngine, recording: np.ndarray) -> None:
    events = stream(engine, recording)
    finals = [e for e in events if e.kind == "final"]
    assert [e.index for e in finals] == [0, 1, 2]
    assert jiwer.wer(clean(" ".join(SENTENCES)), clean(" ".join(e.text for e in finals))) <= 0.2
    for index in range(3):
        partials = [e for e in events if e.kind == "partial" and e.index == index]
        assert partials and partials[0].text, f"sentence {index} had no interim text"
        stable = ""
        for event in partials:
            assert event.text.startswith(event.stable), "the stable part is the hypothesis' beginning"
            assert event.stable.startswith(stable), f"stable text was taken back: {stable!r} -> {event.stable!r}"
            stable = event.stable
        assert stable, f"sentence {index} never had a stable word"


def test_first_words_come_within_half_a_second_of_speech(engine: MoonshineStreamEngine,
                                                         recording: np.ndarray) -> None:
    """Counted in audio, not wall time (so it holds on a busy machine): the first partial of each
    sentence is out after at most 0.5 s of its audio has been fed."""
    events = stream(engine, recording)
    for final in (e for e in events if e.kind == "final"):
        first = next(e for e in events if e.kind == "partial" and e.index == final.index)
        assert first.end_ms - final.start_ms <= 500 + 250, (final, first)  # + the VAD's look-back


def test_finals_do_not_depend_on_partials(engine: MoonshineStreamEngine, recording: np.ndarray) -> None:
    """Under load the session loop skips partials; the finals must not change for it."""
    with_partials = [e.text for e in stream(engine, recording) if e.kind == "final"]
    without = [e.text for e in stream(engine, recording, partials=False) if e.kind == "final"]
    assert with_partials == without


class _Named:
    def __init__(self, name: str) -> None:
        self.name = self.model_name = name

    def open_stream(self, options: StreamOptions) -> object:
        return object()


def test_auto_sends_english_to_moonshine_and_the_rest_to_whisper() -> None:
    moonshine, whisper = _Named("moonshine"), _Named("whisper")
    auto = LiveEngines(mode="auto", general=whisper, moonshine=moonshine)  # type: ignore[arg-type]
    assert auto.choose(StreamOptions(language=None)) is moonshine
    assert auto.choose(StreamOptions(language="en-US")) is moonshine
    assert auto.choose(StreamOptions(language="zh")) is whisper
    assert auto.choose(StreamOptions(language="en", hotwords=("OddASR",))) is whisper, "Moonshine cannot bias"
    only = LiveEngines(mode="moonshine", general=None, moonshine=moonshine)  # type: ignore[arg-type]
    with pytest.raises(NotSupportedError, match="English only"):
        only.choose(StreamOptions(language="de"))
    assert is_english("English") and not is_english("es")
    # the API refuses the same, before it holds a stream worker
    assert live_language_refusal("moonshine", "de") is not None
    assert live_language_refusal("moonshine", "en-GB") is None and live_language_refusal("auto", "de") is None


def test_a_tail_decode_is_placed_behind_the_stable_words_only_where_they_are_found() -> None:
    from worker.engines.moonshine_stream import anchored_end, without_repeated_phrase

    anchor = ["age", "of", "foolishness.", "It"]
    assert anchored_end(anchor, ["ness.", "It", "was", "the", "epoch"]) is None, "one word is no anchor"
    assert anchored_end(anchor, ["of", "foolishness,", "it", "was", "the", "epoch"]) == 3
    assert anchored_end(anchor, ["It", "was", "the", "epoch", "of"]) is None
    looped = ["It", "was", "a", "season", "of", "light.", "It", "was", "a", "season", "of", "light.", "It"]
    assert without_repeated_phrase(looped) == \
        ["It", "was", "a", "season", "of", "light."]
    assert without_repeated_phrase(["no", "no", "no"]) == ["no", "no", "no"], "short repeats are speech"
    # Moonshine base on a clip a Finalize cut mid-word: the loop's second copy cut by the token limit.
    cut_loop = "Please send the report to my office please send the report to my"
    assert without_repeated_phrase(cut_loop.split(" "), cut_off_at_end=True) == cut_loop.split(" ")[:7]
    speech = "the cat sat on the mat and the cat"
    assert without_repeated_phrase(speech.split(" "), cut_off_at_end=True) == speech.split(" "), \
        "two words again at the end are speech"
    half_said = ["It", "was", "a", "season", "of", "light.", "It", "was", "a", "season", "of"]
    assert without_repeated_phrase(half_said) == half_said, "anaphora, said so far: speech, not a loop"


def test_a_repeat_cut_off_at_the_end_is_a_loop_only_when_the_token_limit_cut_it(
        model: MoonshineModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """A partial's clip ending inside "it was a season of darkness" decodes as "It was a season
    of light. It was a season of": taking that for a loop held the partials back, at eight
    sessions, until "darkness" came (1.2 s). The same words are a loop when the decode ran out of
    tokens instead of ending."""
    decoded = "It was a season of light. It was a season of"
    monkeypatch.setattr(model, "detokenize", lambda tokens: decoded)
    clip = np.zeros(16000, dtype=np.float32)
    monkeypatch.setattr(model, "_generate", lambda clip: ([1], False))
    assert model.decode(clip) == decoded
    monkeypatch.setattr(model, "_generate", lambda clip: ([1], True))
    assert model.decode(clip) == "It was a season of light."


def test_commas_said_twice_are_shown_once(model: MoonshineModel) -> None:
    """Moonshine base wrote "In short,, the period" in a final; the captions showed both."""
    assert tidy_punctuation("In short,, the period") == "In short, the period"
    assert tidy_punctuation("yes , , no") == "yes , no"
    assert tidy_punctuation("Well... no, 1,000, and 2,5") == "Well... no, 1,000, and 2,5"
    comma = next(index for index, piece in enumerate(model._vocabulary) if piece == b",")
    short = next(index for index, piece in enumerate(model._vocabulary) if piece == "\u2581short".encode())
    assert model.detokenize([short, comma, comma]) == "short,"


def test_a_number_with_many_zeros_is_not_cut_as_a_loop(model: MoonshineModel) -> None:
    from worker.engines.moonshine_model import _repeated_tail

    zero = 51  # any token: four in a row ("10000") is a number, twelve a loop
    assert _repeated_tail([7, zero, zero, zero, zero]) == (0, 0)
    assert _repeated_tail([7] + [zero] * 12) == (1, 12)
    assert _repeated_tail([5, 6] * 4) == (2, 4)


def test_a_dropped_sentence_that_showed_partials_gives_up_its_index(engine: MoonshineStreamEngine) -> None:
    session = engine.open_stream(StreamOptions(language="en"))
    session._open(0)  # a sentence that showed a partial, then closed as under 150 ms of speech
    session._agreement.shown = ["Thank", "you"]
    assert session._close(100) == [] and session._index == 1
    session._open(200)
    assert session._close(250) == [] and session._index == 1, "no partial went out: the index stays"


# --- phrases: a long sentence closes at a short pause -------------------------------------

def _phrases(speech_dir: Path, texts: list[str], name: str) -> np.ndarray:
    """`texts` said one after another: each synthetic sentence ends in ~0.37 s of silence, a
    phrase's pause, well under the VAD's 800 ms end of speech."""
    samples, _ = soundfile.read(make_long_recording(texts, speech_dir / name, gap_s=0.0), dtype="float32")
    return samples


def test_a_long_sentence_closes_at_a_phrase_pause(engine: MoonshineStreamEngine, speech_dir: Path) -> None:
    """Three phrases of 3.1 s, 2.9 s and 2 s with 0.37 s pauses are one stretch of speech to the VAD.
    Each becomes its own sentence, its final out before the next phrase's first partial (before,
    one 8 s sentence was cut mid-phrase and the words after each pause were a long partial's
    refresh)."""
    texts = [REFERENCE_SENTENCES[1], REFERENCE_SENTENCES[7], REFERENCE_SENTENCES[4]]
    events = stream(engine, _phrases(speech_dir, texts, "phrases-three.wav"))
    finals = [e for e in events if e.kind == "final"]
    assert [e.index for e in finals] == [0, 1, 2], [e.text for e in finals]
    for final, text in zip(finals, texts, strict=True):
        assert jiwer.wer(clean(text), clean(final.text)) <= 0.25, (text, final.text)
    for earlier, later in zip(finals, finals[1:], strict=False):
        assert earlier.end_ms <= later.start_ms
        first_partial = next(i for i, e in enumerate(events) if e.kind == "partial" and e.index == later.index)
        assert events.index(earlier) < first_partial, "the closed phrase's final comes first"


def test_a_short_sentence_runs_on_over_a_pause(engine: MoonshineStreamEngine, speech_dir: Path) -> None:
    """Under `PAUSE_CUT_AFTER_S` (3 s) a pause does not cut: "My brother bought a new car last
    week" (2 s) and the next phrase stay one sentence, as the VAD has them."""
    texts = [REFERENCE_SENTENCES[4], REFERENCE_SENTENCES[6]]
    finals = [e for e in stream(engine, _phrases(speech_dir, texts, "phrases-short.wav")) if e.kind == "final"]
    assert len(finals) == 1 and jiwer.wer(clean(" ".join(texts)), clean(finals[0].text)) <= 0.25, finals


def test_a_pause_cut_that_no_speech_follows_makes_nothing_of_the_silence(engine: MoonshineStreamEngine,
                                                                        speech_dir: Path) -> None:
    """A 3 s phrase closes at its pause; then 2 s of silence: no second sentence (Moonshine makes
    words of silence), and the VAD's own end of speech finds nothing open."""
    samples = np.concatenate([_phrases(speech_dir, [REFERENCE_SENTENCES[1]], "phrase-alone.wav"),
                              np.zeros(2 * 16000, dtype=np.float32)])
    events = stream(engine, samples)
    assert [e.kind for e in events if e.kind == "final"] == ["final"]
    assert {e.index for e in events} == {0}, [(e.kind, e.index, e.text) for e in events]


def test_phrase_cuts_do_not_depend_on_how_the_audio_arrives(engine: MoonshineStreamEngine, speech_dir: Path) -> None:
    """A resumed session resends its audio from a byte offset, in other pieces: its sentences
    and finals must be the same (pauses are found frame by frame on the stream's clock)."""
    samples = _phrases(speech_dir, [REFERENCE_SENTENCES[1], REFERENCE_SENTENCES[7], REFERENCE_SENTENCES[4]],
                       "phrases-three.wav")
    finals_by_piece = []
    for piece in (1600, 960, 2719):
        session = engine.open_stream(StreamOptions(language="en", want_partials=False))
        events = feed(session, samples, piece)
        finals_by_piece.append([(e.start_ms, e.end_ms, e.text) for e in events if e.kind == "final"])
    assert len(finals_by_piece[0]) == 3
    assert finals_by_piece[0] == finals_by_piece[1] == finals_by_piece[2]


class _SpeechWithoutEnd:
    """A VAD that heard speech start at 0 and never end (speech in noise goes on for it)."""

    def __init__(self) -> None:
        self._started = False

    def accept(self, samples: np.ndarray, is_final: bool = False) -> list[tuple[int, int]]:
        if self._started:
            return []
        self._started = True
        return [(0, -1)]


def test_speech_that_comes_back_too_quiet_for_an_onset_is_still_transcribed(model: MoonshineModel,
                                                                             speech_dir: Path) -> None:
    """After a pause cut, speech that comes back under the loudness threshold (a soft voice in
    noise) makes no onset. While the VAD still hears speech, the next sentence opens anyway where
    the cut left off, so no audio falls between two sentences."""
    phrase = _phrases(speech_dir, [REFERENCE_SENTENCES[1]], "phrase-alone.wav")
    soft = _phrases(speech_dir, [REFERENCE_SENTENCES[4]], "phrase-soft.wav") * 10 ** (-40 / 20)  # 40 dB down
    session = MoonshineStreamEngine(model, _VadFactory()).open_stream(StreamOptions(language="en"))
    events = feed(session, np.concatenate([phrase, soft]), FRAME_SAMPLES, finish=False)
    finals = [e for e in events if e.kind == "final"]
    assert len(finals) == 1 and finals[0].end_ms < phrase.size // 16, "the loud phrase closed at its pause"
    assert session._open_start_ms is not None and session._open_start_ms <= finals[0].end_ms + 400, \
        "the soft speech after it is in an open sentence, from where the cut left off"


class _VadFactory:
    def open_stream(self) -> _SpeechWithoutEnd:
        return _SpeechWithoutEnd()


def test_a_sentence_carried_on_after_a_pause_does_not_start_with_a_capital(engine: MoonshineStreamEngine) -> None:
    """Dickens read aloud: "... like the present period," then, after a pause, "that some of
    its noisiest authorities ..." and "for good or for evil". Moonshine capitalises every
    decode's first word, and the joined transcript read "present period, That some"."""
    from shared.audio import decode_16k_mono
    from tests.support.human_speech import human_speech_dir
    from worker.engines.sentence_case import CONTINUATION_WORDS

    assets = human_speech_dir()
    if assets is None:
        pytest.skip("moonshine_voice's recordings are not installed")
    finals = [e for e in stream(engine, decode_16k_mono(assets / "two_cities.wav"), partials=False)
              if e.kind == "final"]
    continued = [(before.text, after) for before, after in zip(finals, finals[1:], strict=False)
                 if not before.text.rstrip().endswith((".", "?", "!"))
                 and after.text.split()[0].lower() in CONTINUATION_WORDS]
    assert len(continued) >= 2, [f.text for f in finals]  # the recording's "that some", "for good"
    for before, after in continued:
        assert after.text[0].islower(), (before, after.text)
        assert after.words[0].word == after.text.split()[0]  # the word times say it the same way
