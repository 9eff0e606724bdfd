"""Websocket clients that behave like the real OddASR and FunASR clients (PROTOCOLS.md).

They use the `websockets` library, as both projects' own clients do, and record every
message with the time it arrived, so tests can check order, shape and latency.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

#: OddASR's test client sends 19,200 bytes (600 ms) every ~0.3 s: twice real time.
ODDASR_CHUNK_BYTES = 19200
ODDASR_INTERVAL_S = 0.3
#: FunASR's clients send 60 ms frames (1,920 bytes at 16 kHz).
FUNASR_FRAME_BYTES = 1920


@dataclass
class Received:
    at_s: float
    data: dict


@dataclass
class SessionLog:
    messages: list[Received] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    started_s: float = 0.0
    audio_end_s: float = 0.0

    def named(self, name: str) -> list[dict]:
        return [m.data for m in self.messages if m.data.get("header", {}).get("name") == name]

    def of_mode(self, mode: str) -> list[dict]:
        return [m.data for m in self.messages if m.data.get("mode") == mode]


def _ssl_context(url: str) -> ssl.SSLContext | None:
    if not url.startswith("wss"):
        return None
    context = ssl.create_default_context()
    context.check_hostname = False  # FunASR's client checks no certificate either
    context.verify_mode = ssl.CERT_NONE
    return context


def open_ws(url: str, subprotocols: list[str] | None = None, source_ip: str | None = None) -> ClientConnection:
    """`source_ip`: connect from this loopback address (the server caps sockets per address)."""
    extra = {"source_address": (source_ip, 0)} if source_ip else {}
    return connect(url, ssl=_ssl_context(url), subprotocols=subprotocols, open_timeout=10,  # type: ignore[arg-type]
                   max_size=None, ping_interval=None, **extra)


def _collect(ws: ClientConnection, log: SessionLog, until=None) -> None:  # type: ignore[no-untyped-def]
    try:
        while True:
            raw = ws.recv(timeout=120)
            data = json.loads(raw)
            log.messages.append(Received(time.monotonic(), data))
            if until is not None and until(data):
                return
    except ConnectionClosed as exc:
        log.close_code = exc.rcvd.code if exc.rcvd else None
        log.close_reason = exc.rcvd.reason if exc.rcvd else ""
    except TimeoutError:
        pass


def oddasr_session(url: str, wav: Path, *, chunk_bytes: int = ODDASR_CHUNK_BYTES,
                   interval_s: float = ODDASR_INTERVAL_S, stop_message: dict | None = None,
                   task_id: str = "", callback_url: str = "") -> SessionLog:
    """OddASR's test client: start, wait for SentenceBegin with status 0, send the whole WAV
    file (header included) in 600 ms chunks at twice real time, never close: it ends when
    the server closes. `stop_message` is sent after the audio when given (the web page)."""
    log = SessionLog(started_s=time.monotonic())
    with open_ws(url) as ws:
        start = {"name": "StartTranscription", "message_id": "m-1", "token": "", "task_id": task_id}
        ws.send(json.dumps({**start, "callback_url": callback_url} if callback_url else start))
        first = json.loads(ws.recv(timeout=60))
        log.messages.append(Received(time.monotonic(), first))
        header = first.get("header", {})
        if header.get("name") != "SentenceBegin" or header.get("status") != 0:
            _collect(ws, log)
            return log
        reader = threading.Thread(target=_collect, args=(ws, log), daemon=True)
        reader.start()
        data = wav.read_bytes()
        try:
            for offset in range(0, len(data), chunk_bytes):
                ws.send(data[offset:offset + chunk_bytes])
                time.sleep(interval_s)
            log.audio_end_s = time.monotonic()
            if stop_message is not None:
                ws.send(json.dumps(stop_message))
        except ConnectionClosed:
            pass
        reader.join(timeout=120)
    return log


def funasr_session(url: str, pcm: bytes, *, mode: str = "2pass", is_end: bool = True, realtime_factor: float = 1.0,
                   frame_bytes: int = FUNASR_FRAME_BYTES, config: dict | None = None,
                   early_audio: bytes = b"", close_after_s: float | None = None,
                   close_after_offline: int | None = None) -> SessionLog:
    """FunASR's client: config, paced PCM frames, `is_speaking: false` (with `is_end` for the
    current client), then wait for the end acknowledgement (current) or close after
    `close_after_s` (older clients: about 2 s in 2pass), or as soon as `close_after_offline`
    corrected sentences ("2pass-offline") have arrived."""
    log = SessionLog(started_s=time.monotonic())
    frame_s = frame_bytes / 32000 / realtime_factor
    with open_ws(url, subprotocols=["binary"]) as ws:
        if early_audio:
            ws.send(early_audio)
        message = {"mode": mode, "chunk_size": [5, 10, 5], "chunk_interval": 10, "encoder_chunk_look_back": 4,
                   "decoder_chunk_look_back": 0, "audio_fs": 16000, "wav_name": "demo", "wav_format": "pcm",
                   "is_speaking": True, "hotwords": "", "itn": True, **(config or {})}
        ws.send(json.dumps(message))
        done = threading.Event()

        def until(data: dict) -> bool:
            return bool(data.get("is_end")) or (mode == "offline" and data.get("mode") == "offline") or \
                bool(data.get("error")) or \
                (close_after_offline is not None and len(log.of_mode("2pass-offline")) >= close_after_offline)

        reader = threading.Thread(target=lambda: (_collect(ws, log, until), done.set()), daemon=True)
        reader.start()
        next_s = time.monotonic()
        try:
            for offset in range(0, len(pcm), frame_bytes):
                if done.is_set():
                    break
                ws.send(pcm[offset:offset + frame_bytes])
                next_s += frame_s
                time.sleep(max(0.0, next_s - time.monotonic()))
            log.audio_end_s = time.monotonic()
            end = {"is_speaking": False, "is_end": True} if is_end else {"is_speaking": False}
            ws.send(json.dumps(end))
        except ConnectionClosed:
            pass
        done.wait(timeout=close_after_s if close_after_s is not None else 120)
    return log
