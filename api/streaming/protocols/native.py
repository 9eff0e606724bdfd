"""OddASR's own streaming protocol on `/v1/stream`: JSON control messages, binary audio.

Client -> server: `{"type": "Start", "sample_rate": 16000, "language": "en", "hotwords": [...],
"partials": true, "name": ..., "callback_url": ..., "token": ...}`, then binary frames of
16-bit little-endian mono PCM, and any time `{"type": "KeepAlive"}` (silence does not end the
session), `{"type": "Finalize"}` (close the open sentence now, keep going) or
`{"type": "Close"}` (finish: the last finals, a `Summary`, close 1000).

Server -> client: `Begin` (session and job id, the audio format), `Partial` and `Final`
(`index`, `text`, `start`/`end` in seconds; a `Final` also has `words: [{word, start, end}]`
and, for a session started with `"speakers": true`, `speaker` (and `speaker_name`,
`speaker_similarity` when an enrolled voice matched); a `Partial`'s `text` is the whole current
hypothesis, which may still change, and its `stable_text` the beginning of it that will not),
`Summary`, `Error` (`kind`, `message`).
The two compatible protocols exist for existing clients; this one says what the server
does in its own words and carries what the others cannot (the job, the counts).
"""

from __future__ import annotations

import json
from typing import Any

from api.streaming import vocabulary as v
from shared import reprocess

START = "Start"
_CONTROL = {"KeepAlive": v.KeepAliveCommand, "Finalize": v.FlushCommand, "Close": v.StopCommand}


def looks_like(frame: dict[str, Any]) -> bool:
    return frame.get("type") == START


class NativeProtocol:
    name = "native"

    def __init__(self) -> None:
        self._session_id = ""
        self._sample_rate_hz = 16000
        self._finals = 0
        self._partials = 0
        self._last_end_ms = 0
        self._reprocess = reprocess.NONE

    def parse_start(self, text: str) -> v.StartCommand:
        frame = v.json_object(text)
        if frame.get("type") != START:
            raise v.ProtocolError(v.BAD_REQUEST, f'the first message must be {{"type": "{START}", ...}}, '
                                                 f"got type {frame.get('type')!r}")
        sample_rate_hz = frame.get("sample_rate", 16000)
        if isinstance(sample_rate_hz, bool) or not isinstance(sample_rate_hz, int) \
                or not 8000 <= sample_rate_hz <= 48000:
            raise v.ProtocolError(v.BAD_REQUEST, "sample_rate must be a whole number of Hz between 8000 and 48000")
        hotwords = frame.get("hotwords") or []
        if isinstance(hotwords, str):
            hotwords = hotwords.split()
        if not isinstance(hotwords, list) or not all(isinstance(word, str) for word in hotwords):
            raise v.ProtocolError(v.BAD_REQUEST, "hotwords must be a list of strings")
        partials = frame.get("partials", True)
        if not isinstance(partials, bool):
            raise v.ProtocolError(v.BAD_REQUEST, "partials must be true or false")
        language = frame.get("language") or None
        if language is not None and not isinstance(language, str):
            raise v.ProtocolError(v.BAD_REQUEST, "language must be a language code such as 'en'")
        self._sample_rate_hz = sample_rate_hz
        start = v.StartCommand(
            token=str(frame.get("token") or ""), sample_rate_hz=sample_rate_hz, language=language,
            hotwords=hotwords, want_partials=partials, name=str(frame.get("name") or "")[:255],
            callback_url=v.callback_url_of(frame), reprocess=v.reprocess_of(frame),
            hotword_set=v.hotword_set_of(frame),
            task_id=str(frame.get("session") or "")[:64], last_final_index=v.last_final_index_of(frame, "last_final"),
            speakers=v.speakers_of(frame),
        )
        self._reprocess = start.reprocess
        return start

    def parse_control(self, text: str) -> v.Command:
        frame = v.json_object(text)
        kind = frame.get("type")
        if kind in _CONTROL:
            return _CONTROL[kind]()
        if kind == START:
            raise v.ProtocolError(v.BAD_REQUEST, "the session has already started")
        raise v.ProtocolError(v.BAD_REQUEST, f"unknown message type {kind!r}: send KeepAlive, Finalize or Close")

    # --- server messages -----------------------------------------------------------------
    def on_started(self, job_id: str, resumed_bytes: int | None = None) -> list[str]:
        self._session_id = job_id
        resumed: dict[str, Any] = {}
        if resumed_bytes is not None:  # the client resends its audio from this byte on
            resumed = {"resumed": True, "audio_received_bytes": resumed_bytes,
                       "audio_received_s": round(resumed_bytes / (2 * self._sample_rate_hz), 3)}
        return [_message("Begin", session_id=job_id, job_id=job_id,
                         audio={"encoding": "pcm_s16le", "sample_rate": self._sample_rate_hz, "channels": 1},
                         links={"job": f"/v1/jobs/{job_id}", "transcript": f"/v1/jobs/{job_id}/transcript"},
                         **resumed)]

    def on_partial(self, index: int, text: str, start_ms: int, end_ms: int,
                   stable_text: str | None = None) -> list[str]:
        self._partials += 1
        return [_message("Partial", index=index, text=text, stable_text=text if stable_text is None else stable_text,
                         start=start_ms / 1000, end=end_ms / 1000)]

    def on_final(self, index: int, text: str, start_ms: int, end_ms: int, words: tuple[v.TimedWord, ...] = (),
                 speaker: v.SpeakerLabel | None = None) -> list[str]:
        self._finals += 1
        self._last_end_ms = max(self._last_end_ms, end_ms)
        fields: dict[str, Any] = {}
        if speaker is not None:
            fields["speaker"] = speaker.label
            if speaker.name is not None:
                fields.update(speaker_name=speaker.name, speaker_similarity=speaker.similarity)
        return [_message("Final", index=index, text=text, start=start_ms / 1000, end=end_ms / 1000,
                         words=[{"word": w.word, "start": w.start_ms / 1000, "end": w.end_ms / 1000} for w in words],
                         **fields)]

    def on_end(self, ack: bool, audio_s: float = 0.0, finals: int | None = None) -> list[str]:
        del ack  # every native session ends with its summary
        summary: dict[str, Any] = {"session_id": self._session_id, "job_id": self._session_id,
                                   "duration_s": round(audio_s, 3),
                                   "finals": self._finals if finals is None else finals, "partials": self._partials}
        if self._reprocess != reprocess.NONE:
            summary["reprocess"] = {"mode": self._reprocess, "job_id": reprocess.reprocess_job_id(self._session_id)}
        return [_message("Summary", **summary)]

    def on_error(self, kind: str, message: str) -> list[str]:
        return [_message("Error", kind=kind, message=message)]


def _message(message_type: str, **fields: Any) -> str:
    return json.dumps({"type": message_type, **fields}, ensure_ascii=False)
