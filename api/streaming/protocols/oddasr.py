"""OddASR's websocket protocol (StartTranscription ... SentenceBegin / TranscriptionResultChanged /
SentenceEnd), as its test client and web page speak it.

Traps this adapter exists to avoid (see PROTOCOLS.md): the client flattens `header` and
`payload` into one object, so their keys never overlap; a payload always carries `time`;
`status` is an integer and 0 only for success; the start reply is sent only once a worker
really holds the session; the test client never closes, so the session's end is announced
with `SentenceEnd` / `END` / `fin: 1` and a close 1000.
"""

from __future__ import annotations

import json
from typing import Any

from api.streaming import vocabulary as v

NAMESPACE = "SpeechTranscriber"

#: Error codes. 1002xxxx: the client's request; 2002xxxx: the server side (README lists them).
STATUS_CODES: dict[str, int] = {
    v.BAD_REQUEST: 10020001,
    v.UNKNOWN_TASK: 10020003,
    v.FRAME_TOO_LARGE: 10020004,
    v.UNAUTHORIZED: 10020005,
    v.LIMITED: 10020006,
    v.CANCELED: 10020007,
    v.IDLE: 10020008,
    v.BUSY: 20020001,
    v.WORKER_LOST: 20020002,
    v.DISABLED: 20020003,
    v.UNAVAILABLE: 20020004,
    v.MAX_LENGTH: 20020005,
    v.INTERNAL: 20020006,
}

_STOP_NAMES = {"STOP_SESSION_REQ", "StopTranscription"}


def looks_like(frame: dict[str, Any]) -> bool:
    return "name" in frame or frame.get("msg_type") == "STOP_SESSION_REQ" or "service_type" in frame


class OddAsrProtocol:
    name = "oddasr"

    def __init__(self) -> None:
        self._message_id = ""
        self._task_id = ""
        self._started_ms = 0
        #: The stable text last sent for the sentence in progress (index -> text).
        self._sent_partials: dict[int, str] = {}

    def parse_start(self, text: str) -> v.StartCommand:
        frame = v.json_object(text)
        if frame.get("name") != "StartTranscription":
            raise v.ProtocolError(v.BAD_REQUEST,
                                  f"the first message must be StartTranscription, got {frame.get('name')!r}")
        self._message_id = str(frame.get("message_id") or "")
        sample_rate_hz = frame.get("sample_rate", 16000)
        if not isinstance(sample_rate_hz, int) or not 8000 <= sample_rate_hz <= 48000:
            raise v.ProtocolError(v.BAD_REQUEST, "sample_rate must be a whole number of Hz between 8000 and 48000")
        hotwords = frame.get("hotwords") or ""
        if isinstance(hotwords, str):
            hotwords = hotwords.split()
        elif not isinstance(hotwords, list) or not all(isinstance(word, str | int | float) for word in hotwords):
            raise v.ProtocolError(v.BAD_REQUEST, "hotwords must be words joined by spaces, or a list of words")
        return v.StartCommand(
            task_id=str(frame.get("task_id") or ""), message_id=self._message_id, token=str(frame.get("token") or ""),
            sample_rate_hz=sample_rate_hz, language=frame.get("language") or None,
            hotwords=[str(word) for word in hotwords],
            callback_url=v.callback_url_of(frame), reprocess=v.reprocess_of(frame),
            hotword_set=v.hotword_set_of(frame),
            last_final_index=v.last_final_index_of(frame, "last_final_index"), speakers=v.speakers_of(frame),
        )

    def parse_control(self, text: str) -> v.Command:
        frame = v.json_object(text)
        if frame.get("name") in _STOP_NAMES or frame.get("msg_type") == "STOP_SESSION_REQ":
            return v.StopCommand()
        if frame.get("name") == "StartTranscription":
            raise v.ProtocolError(v.BAD_REQUEST, "the session has already started")
        return v.IgnoredCommand()  # no keepalive in this protocol: only audio keeps it going

    # --- server frames -------------------------------------------------------------------
    def on_started(self, job_id: str, resumed_bytes: int | None = None) -> list[str]:
        self._task_id = job_id
        payload: dict[str, Any] = {"begin_time": 0, "confidence": 1.0, "fin": 1, "index": 0, "result": "", "time": 0}
        if resumed_bytes is not None:  # resend the audio from this byte of the PCM on
            payload["audio_received_bytes"] = resumed_bytes
        return [self._frame("SentenceBegin", payload)]

    def on_partial(self, index: int, text: str, start_ms: int, end_ms: int,
                   stable_text: str | None = None) -> list[str]:
        """OddASR's clients show each TranscriptionResultChanged as the sentence so far, which only
        grows: they get the stable part, once per change."""
        stable = text if stable_text is None else stable_text
        if not stable or self._sent_partials.get(index) == stable:
            return []
        self._sent_partials = {index: stable}
        return [self._frame("TranscriptionResultChanged", _payload(index, stable, start_ms, end_ms))]

    def on_final(self, index: int, text: str, start_ms: int, end_ms: int, words: tuple[v.TimedWord, ...] = (),
                 speaker: v.SpeakerLabel | None = None) -> list[str]:
        """The original's `words: [{word, begin_time, end_time}]` (ms); the speaker in keys of
        their own (its clients read the keys they know)."""
        payload = _payload(index, text, start_ms, end_ms)
        payload["words"] = [{"word": w.word, "begin_time": w.start_ms, "end_time": w.end_ms} for w in words]
        if speaker is not None:
            payload["speaker"] = speaker.label
            if speaker.name is not None:
                payload.update(speaker_name=speaker.name, speaker_similarity=speaker.similarity)
        return [self._frame("SentenceEnd", payload)]

    def on_end(self, ack: bool, audio_s: float = 0.0, finals: int | None = None) -> list[str]:
        del ack  # every OddASR session ends with the END message
        return [self._frame("SentenceEnd", {"begin_time": 0, "end_time": 0, "confidence": 1.0, "fin": 1, "index": 0,
                                            "result": "END", "time": 0})]

    def on_error(self, kind: str, message: str) -> list[str]:
        status = STATUS_CODES.get(kind, STATUS_CODES[v.INTERNAL])
        return [self._frame("TaskFailed", {"begin_time": 0, "confidence": 0.0, "fin": 1, "index": 0, "result": "",
                                           "time": 0}, status=status, status_text=message)]

    def _frame(self, name: str, payload: dict[str, Any], *, status: int = 0, status_text: str = "") -> str:
        header = {"message_id": self._message_id, "name": name, "namespace": NAMESPACE, "status": status,
                  "status_text": status_text, "task_id": self._task_id}
        return json.dumps({"header": header, "payload": payload}, ensure_ascii=False)


def _payload(index: int, text: str, start_ms: int, end_ms: int) -> dict[str, Any]:
    return {"begin_time": start_ms, "end_time": end_ms, "confidence": 1.0, "fin": 0, "index": index,
            "result": text, "time": end_ms, "words": []}
