"""FunASR runtime's websocket protocol (`mode` online / offline / 2pass), as its clients speak it.

Traps (PROTOCOLS.md): every message carries `mode`, `text`, `wav_name` and `is_final`;
online text goes out as increments the client concatenates; a `2pass-offline` message is the
corrected text of one sentence and makes the client drop its pending online text; in
`offline` mode the client closes at the first offline message, so the whole result is one
message after the end; `is_end: true` is acknowledged after the last result.
"""

from __future__ import annotations

import json
import re
from typing import Any

from api.streaming import vocabulary as v
from shared.transcript import join_texts

MODES = ("2pass", "online", "offline")
#: Bound on chunk_size entries and look-backs: 100 frames is 6 s, far beyond any real client.
MAX_CHUNK_FRAMES = 100


def looks_like(frame: dict[str, Any]) -> bool:
    return bool({"mode", "is_speaking", "chunk_size", "wav_name", "audio_fs"} & frame.keys())


class FunAsrProtocol:
    name = "funasr"

    def __init__(self) -> None:
        self.mode = "2pass"
        self._wav_name = "demo"
        #: Online text already sent for the sentence in progress, per sentence index.
        self._sent_online: dict[int, str] = {}
        self._offline_texts: list[str] = []
        self._offline_words: list[v.TimedWord] = []

    def parse_start(self, text: str) -> v.StartCommand:
        frame = v.json_object(text)
        mode = frame.get("mode", "2pass")
        if mode not in MODES:
            raise v.ProtocolError(v.BAD_REQUEST, f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        self.mode = mode
        self._wav_name = str(frame.get("wav_name") or "demo")
        chunk_size = _chunk_size(frame["chunk_size"]) if "chunk_size" in frame else None
        sample_rate_hz = frame.get("audio_fs", 16000)
        if not isinstance(sample_rate_hz, int) or not 8000 <= sample_rate_hz <= 48000:
            raise v.ProtocolError(v.BAD_REQUEST, "audio_fs must be a whole number of Hz between 8000 and 48000")
        wav_format = str(frame.get("wav_format") or "pcm").lower()
        if wav_format not in {"pcm", "wav"}:
            raise v.ProtocolError(v.BAD_REQUEST, f"wav_format {wav_format!r} is not supported here: send pcm")
        return v.StartCommand(
            sample_rate_hz=sample_rate_hz, hotwords=parse_hotwords(frame.get("hotwords", frame.get("hotword"))),
            want_partials=mode != "offline", name=self._wav_name,
            language=frame.get("language") or None,
            stop_at_once=v.StopCommand(ack=bool(frame.get("is_end"))) if frame.get("is_speaking") is False else None,
            callback_url=v.callback_url_of(frame), reprocess=v.reprocess_of(frame), mode=mode,
            hotword_set=v.hotword_set_of(frame),
            # FunASR's clients have no key field; a client that can add one to its config frame
            # does (its Python client cannot add a header, nor a query to the URL it builds).
            token=str(frame.get("api_key") or ""),
            chunk_size=chunk_size, encoder_chunk_look_back=_look_back(frame, "encoder_chunk_look_back"),
            decoder_chunk_look_back=_look_back(frame, "decoder_chunk_look_back"), speakers=v.speakers_of(frame),
        )

    def parse_control(self, text: str) -> v.Command:
        frame = v.json_object(text)
        if frame.get("is_speaking") is False:
            return v.StopCommand(ack=bool(frame.get("is_end")))
        return v.IgnoredCommand()  # no keepalive in this protocol: only audio keeps it going

    # --- server frames -------------------------------------------------------------------
    def on_started(self, job_id: str, resumed_bytes: int | None = None) -> list[str]:
        del job_id  # FunASR's server says nothing until it has text
        return []

    def on_partial(self, index: int, text: str, start_ms: int, end_ms: int,
                   stable_text: str | None = None) -> list[str]:
        """FunASR's clients append each online message to what they show: only stable text."""
        if self.mode == "offline":
            return []
        increment = self._increment(index, text if stable_text is None else stable_text)
        if not increment:
            return []
        return [self._message("online" if self.mode == "online" else "2pass-online", increment)]

    def on_final(self, index: int, text: str, start_ms: int, end_ms: int, words: tuple[v.TimedWord, ...] = (),
                 speaker: v.SpeakerLabel | None = None) -> list[str]:
        """Corrected sentences carry their word times as FunASR's runtime sends them (`timestamp`,
        `stamp_sents`) and, when asked for, the speaker (`spk_name`, as FunASR's own field)."""
        if self.mode == "offline":
            self._offline_texts.append(text)
            self._offline_words.extend(words)
            return []
        if self.mode == "online":
            # Online clients see only increments: send what the partials have not said yet.
            increment = self._increment(index, text)
            return [self._message("online", increment)] if increment else []
        self._sent_online.pop(index, None)
        extra = timestamps(words)
        if speaker is not None:
            extra["spk_name"] = speaker.label
            if speaker.similarity is not None:
                extra["spk_similarity"] = speaker.similarity
        return [self._message("2pass-offline", text, **extra)]

    def on_end(self, ack: bool, audio_s: float = 0.0, finals: int | None = None) -> list[str]:
        frames = []
        if self.mode == "offline":
            frames.append(self._message("offline", join_texts(self._offline_texts), is_final=True,
                                        **timestamps(tuple(self._offline_words))))
        if ack:
            frames.append(self._message(self.mode, "", is_final=True, is_end=True))
        return frames

    def on_error(self, kind: str, message: str) -> list[str]:
        return [self._message(self.mode, "", is_final=True, error=message, error_kind=kind)]

    def _increment(self, index: int, text: str) -> str:
        sent = self._sent_online.get(index, "")
        if text.startswith(sent):
            increment = text[len(sent):]
        else:  # the final reworded the partial: add only what goes beyond it
            sent_words = len(sent.split())
            increment = " ".join(text.split()[sent_words:])
            increment = f" {increment}" if increment and sent else increment
        if sent and increment and not increment.startswith(" ") and not sent.endswith(" "):
            increment = f" {increment}"
        self._sent_online[index] = sent + increment
        return increment

    def _message(self, mode: str, text: str, *, is_final: bool = False, **extra: Any) -> str:
        return json.dumps({"mode": mode, "text": text, "wav_name": self._wav_name, "is_final": is_final, **extra},
                          ensure_ascii=False)


def timestamps(words: tuple[v.TimedWord, ...]) -> dict[str, Any]:
    """FunASR runtime's fields for timed text: `timestamp`, a JSON *string* of `[start_ms, end_ms]`
    per unit (its clients `JSON.parse` it), and `stamp_sents`, the text cut at punctuation:
    `[{text_seg, punc, start, end, ts_list}]` with the units of `text_seg` joined by spaces."""
    if not words:
        return {}
    sentences: list[dict[str, Any]] = []
    pieces: list[str] = []
    stamps: list[list[int]] = []
    for word in words:
        bare = _PUNCTUATION.sub("", word.word)
        trailing = word.word[len(word.word.rstrip("".join(_PUNCTUATION_CHARS))):]
        if bare:
            pieces.append(bare)
            stamps.append([word.start_ms, word.end_ms])
        if (trailing or word is words[-1]) and stamps:
            sentences.append({"text_seg": " ".join(pieces), "punc": trailing[:1], "start": stamps[0][0],
                              "end": stamps[-1][1], "ts_list": stamps})
            pieces, stamps = [], []
    every_stamp = [stamp for sentence in sentences for stamp in sentence["ts_list"]]
    return {"timestamp": json.dumps(every_stamp, separators=(",", ":")), "stamp_sents": sentences}


_PUNCTUATION_CHARS = ",.;:!?，。；：！？、"
_PUNCTUATION = re.compile(f"[{re.escape(_PUNCTUATION_CHARS)}]")


def parse_hotwords(raw: object) -> list[str]:
    """FunASR clients send a JSON object string `{"word": weight}`, or words joined by `,`."""
    if not raw:
        return []
    if isinstance(raw, dict):
        return [str(word) for word in raw]
    text = str(raw).strip()
    if text.startswith("{"):
        try:
            weights = json.loads(text)
        except ValueError:
            raise v.ProtocolError(v.BAD_REQUEST, "hotwords must be a JSON object of weights or words joined by ','") \
                from None
        return [str(word) for word in weights] if isinstance(weights, dict) else []
    return [word.strip() for word in text.replace("\n", ",").split(",") if word.strip()]


def _chunk_size(raw: object) -> tuple[int, int, int]:
    """FunASR's `[look-back, chunk, look-ahead]` in 60 ms frames; the chunk (the middle) is
    what the streaming model decodes at a time, so it cannot be 0."""
    problem = "chunk_size must be three whole numbers of 60 ms frames up to 100, the middle one >= 1, e.g. [5, 10, 5]"
    values = raw.split(",") if isinstance(raw, str) else raw
    try:
        numbers = [int(value) for value in values]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise v.ProtocolError(v.BAD_REQUEST, problem) from None
    if len(numbers) != 3 or any(not 0 <= n <= MAX_CHUNK_FRAMES for n in numbers) or numbers[1] < 1:
        raise v.ProtocolError(v.BAD_REQUEST, problem)
    return numbers[0], numbers[1], numbers[2]


def _look_back(frame: dict[str, Any], key: str) -> int | None:
    """How many chunks the streaming model's encoder or decoder attends back (None: default)."""
    raw = frame.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_CHUNK_FRAMES:
        raise v.ProtocolError(v.BAD_REQUEST, f"{key} must be a whole number between 0 and {MAX_CHUNK_FRAMES}")
    return raw
