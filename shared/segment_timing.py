"""Segment times that follow the speech: cut at pauses, snapped to speech spans, never overlapping.

Engines time segments badly in ways a subtitle shows at once: Whisper's timestamp tokens come
out as round 4 s and 5 s steps back to back across pauses once its window holds several
sentences, FunASR without a speaker model gives one segment for the whole file, and two
decodes of neighbouring audio can overlap. Given the speech spans of the audio (split at every
pause a cue must not run through, see worker/engines/speech_spans.py) and, where the engine has
them, word times, `fit_to_speech` rebuilds the segments so that each one lies within one span,
starts where its speech starts and ends where it ends. `without_overlaps` is the last word on
order, also used by the renderers for transcripts stored before this existed.

Pure code on the Transcript model: engines call it, renderers may too.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.transcript import Segment, Word, join_texts

Span = tuple[float, float]

#: A word that overlaps no span is snapped to the nearest one within this distance; farther
#: away, the VAD missed it (whispered speech) and the word keeps its own times.
SNAP_DISTANCE_S = 0.6
#: The shortest segment written: a zero-length cue is dropped by players.
MIN_SEGMENT_S = 0.01


def _span_of(start_s: float, end_s: float, spans: Sequence[Span]) -> int | None:
    """Index of the span that overlaps `start_s..end_s` most, else the nearest within reach."""
    best, best_overlap = None, 0.0
    for index, (span_start, span_end) in enumerate(spans):
        overlap = min(end_s, span_end) - max(start_s, span_start)
        if overlap > best_overlap:
            best, best_overlap = index, overlap
    if best is not None:
        return best
    nearest, nearest_gap = None, SNAP_DISTANCE_S
    for index, (span_start, span_end) in enumerate(spans):
        gap = max(span_start - end_s, start_s - span_end, 0.0)
        if gap <= nearest_gap:
            nearest, nearest_gap = index, gap
    return nearest


def _pieces(segment: Segment, spans: Sequence[Span]) -> list[tuple[int | None, Segment]]:
    """`segment` cut where its words move to another span (a pause lies between them); each
    piece with its span's index, timed by its words (an engine's segment times are coarser).
    Without words, the whole segment and its best span."""
    if not segment.words:
        return [(_span_of(segment.start_s, segment.end_s, spans), segment)]
    runs: list[tuple[int | None, list[Word]]] = []
    for word in segment.words:
        index = _span_of(word.start_s, word.end_s, spans)
        if runs and runs[-1][0] == index:
            runs[-1][1].append(word)
        else:
            runs.append((index, [word]))
    if len(runs) == 1:
        words = runs[0][1]
        return [(runs[0][0], segment.model_copy(update={"start_s": words[0].start_s, "end_s": words[-1].end_s}))]
    texts = _split_text(segment.text, [words for _, words in runs])
    return [
        (index, segment.model_copy(update={
            "start_s": words[0].start_s, "end_s": words[-1].end_s, "words": words, "text": text,
        }))
        for (index, words), text in zip(runs, texts, strict=True)
    ]


def _split_text(text: str, runs: list[list[Word]]) -> list[str]:
    """`text` cut where each run's first word begins in it, so spacing and punctuation stay
    the engine's own; the runs' words joined instead where a word is not found in order."""
    starts = []
    position = 0
    for run_index, words in enumerate(runs):
        for word_index, word in enumerate(words):
            found = text.find(word.word, position)
            if found < 0:
                return [join_texts(w.word for w in run) for run in runs]
            if word_index == 0 and run_index > 0:
                starts.append(found)
            position = found + len(word.word)
    bounds = [0, *starts, len(text)]
    pieces = [text[start:end].strip() for start, end in zip(bounds, bounds[1:], strict=False)]
    return pieces if all(pieces) else [join_texts(w.word for w in run) for run in runs]


def fit_to_speech(segments: Sequence[Segment], spans: Sequence[Span]) -> list[Segment]:
    """Segments cut at the pauses between `spans`, the first of each span starting where its
    speech starts, the last ending where it ends, the others at their words, clamped inside
    their span; then in order, without overlaps. No spans (silence, or a VAD that heard
    nothing): the segments only lose their overlaps."""
    if not spans:
        return without_overlaps(segments)
    pieces = [piece for segment in segments for piece in _pieces(segment, spans)]
    fitted: list[Segment] = []
    for position, (index, piece) in enumerate(pieces):
        if index is None:
            fitted.append(piece)
            continue
        span_start, span_end = spans[index]
        first_in_span = position == 0 or pieces[position - 1][0] != index
        last_in_span = position == len(pieces) - 1 or pieces[position + 1][0] != index
        start_s = span_start if first_in_span else min(max(piece.start_s, span_start), span_end)
        end_s = span_end if last_in_span else min(max(piece.end_s, span_start), span_end)
        if end_s - start_s < MIN_SEGMENT_S:
            end_s = start_s + MIN_SEGMENT_S
        fitted.append(piece.model_copy(update={"start_s": round(start_s, 3), "end_s": round(end_s, 3)}))
    return [_words_inside(segment) for segment in without_overlaps(fitted)]


def _words_inside(segment: Segment) -> Segment:
    """The segment's words clamped into it: the alignment stretches a first word over the
    silence before it, which the segment's start, from the speech, no longer does."""
    if not segment.words:
        return segment
    words = []
    for word in segment.words:
        start_s = min(max(word.start_s, segment.start_s), segment.end_s)
        end_s = min(max(word.end_s, start_s), segment.end_s)
        words.append(word.model_copy(update={"start_s": round(start_s, 3), "end_s": round(end_s, 3)}))
    return segment.model_copy(update={"words": words})


def without_overlaps(segments: Sequence[Segment]) -> list[Segment]:
    """Segments in order of start, each ending no later than the next one starts.

    An overlap is cut at the next segment's start; a segment starting with or inside one that
    started no earlier is moved to that one's end. Both keep at least MIN_SEGMENT_S.
    """
    ordered = sorted(segments, key=lambda s: (s.start_s, s.end_s))
    out: list[Segment] = []
    for segment in ordered:
        if out and segment.start_s < out[-1].end_s:
            previous = out[-1]
            if segment.start_s - previous.start_s >= MIN_SEGMENT_S:
                out[-1] = previous.model_copy(update={"end_s": segment.start_s})
            else:
                start_s = round(previous.end_s, 3)
                segment = segment.model_copy(update={
                    "start_s": start_s, "end_s": max(segment.end_s, round(start_s + MIN_SEGMENT_S, 3))})
        out.append(segment)
    return out
