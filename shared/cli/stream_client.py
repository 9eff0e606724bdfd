"""`oddasr stream FILE|--mic`: stream a recording at real-time pace (or the default
microphone) to a server over the native protocol and print what comes back: the partial text
rewritten in place, each final sentence on a line of its own, and the session's summary.

The file is decoded and resampled locally (any format the server accepts), so the server
receives exactly what a live microphone would send: 16 kHz 16-bit mono PCM in 100 ms frames.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.sync.client import connect

from shared.audio import decode_16k_mono
from shared.cli.client import KEY_HINT
from shared.errors import OddAsrError

SAMPLE_RATE_HZ = 16000
FRAME_S = 0.1


@dataclass
class StreamResult:
    finals: list[dict] = field(default_factory=list)
    summary: dict | None = None
    error: dict | None = None


def stream_url(server: str) -> str:
    """`http(s)://host:port` of the API -> its websocket `/v1/stream`."""
    base = server.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://"):]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://"):]
    return f"{base}/v1/stream"


class _Printer:
    """Partials overwrite one line (on a terminal); finals are printed whole, one a line."""

    def __init__(self, out: TextIO, live: bool) -> None:
        self.out = out
        self.live = live
        self._partial_chars = 0

    def partial(self, text: str) -> None:
        if not self.live:
            return
        self.out.write("\r" + text + " " * max(0, self._partial_chars - len(text)))
        self._partial_chars = len(text)
        self.out.flush()

    def final(self, message: dict) -> None:
        speaker = f"{message['speaker']}: " if message.get("speaker") else ""
        line = f"[{message['start']:7.2f} - {message['end']:7.2f}] {speaker}{message['text']}"
        if self.live and self._partial_chars:
            self.out.write("\r" + " " * self._partial_chars + "\r")
        self._partial_chars = 0
        self.out.write(line + "\n")
        self.out.flush()


def _receive(ws, printer: _Printer, result: StreamResult) -> None:  # type: ignore[no-untyped-def]
    try:
        for raw in ws:
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "Partial":
                printer.partial(message["text"])
            elif kind == "Final":
                result.finals.append(message)
                printer.final(message)
            elif kind == "Summary":
                result.summary = message
            elif kind == "Error":
                result.error = message
    except ConnectionClosed:
        pass


def file_frames(path: Path, speed: float = 1.0) -> Iterator[bytes]:
    """A recording as 100 ms PCM frames, paced against the clock (no drift) at `speed` x real time."""
    samples = decode_16k_mono(path)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    frame_bytes = int(SAMPLE_RATE_HZ * FRAME_S) * 2
    started_s = time.monotonic()
    for index, offset in enumerate(range(0, len(pcm), frame_bytes)):
        yield pcm[offset:offset + frame_bytes]
        delay_s = started_s + (index + 1) * FRAME_S / speed - time.monotonic()
        if delay_s > 0:
            time.sleep(delay_s)


class MicrophoneUnavailable(Exception):
    pass


def open_microphone(stop: threading.Event) -> Iterator[bytes]:
    """The default input device as 100 ms PCM frames until `stop` is set (Ctrl-C). Opened
    here, before any connection, so a missing microphone never holds a stream worker. Needs
    the optional `sounddevice` package (PortAudio): `pip install 'oddasr[mic]'`."""
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the package is there, PortAudio is not
        raise MicrophoneUnavailable(f"no microphone support here ({exc}); install it with "
                                    "`pip install 'oddasr[mic]'` and Debian's libportaudio2") from None
    frames: queue.Queue[bytes] = queue.Queue()
    try:
        stream = sounddevice.RawInputStream(samplerate=SAMPLE_RATE_HZ, channels=1, dtype="int16",
                                            blocksize=int(SAMPLE_RATE_HZ * FRAME_S),
                                            callback=lambda data, _n, _t, _s: frames.put(bytes(data)))
        stream.start()
    except Exception as exc:  # PortAudio's own error type: no device, busy device
        raise MicrophoneUnavailable(f"cannot open the default microphone: {exc}") from None

    def frames_until_stopped() -> Iterator[bytes]:
        with stream:
            while not stop.is_set():
                try:
                    yield frames.get(timeout=0.5)
                except queue.Empty:
                    continue

    return frames_until_stopped()


def stream_audio(frames: Iterable[bytes], server: str, *, name: str, language: str | None = None,
                 hotwords: list[str] | None = None, api_key: str = "", out: TextIO | None = None,
                 speakers: bool = False) -> StreamResult:
    """Send `frames` (16 kHz s16le mono) as one session and return what the server sent;
    `speakers`: each final names its speaker, printed in front of its text."""
    out = out or sys.stdout
    printer = _Printer(out, live=out.isatty())
    result = StreamResult()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    start = {"type": "Start", "sample_rate": SAMPLE_RATE_HZ, "name": name, "language": language,
             "hotwords": hotwords or [], "speakers": speakers}
    with connect(stream_url(server), additional_headers=headers, open_timeout=30) as ws:
        ws.send(json.dumps(start))
        begin = json.loads(ws.recv(timeout=60))
        if begin.get("type") != "Begin":
            result.error = begin
            return result
        receiver = threading.Thread(target=_receive, args=(ws, printer, result), daemon=True)
        receiver.start()
        try:
            for frame in frames:
                if result.error:
                    break
                ws.send(frame)
            ws.send(json.dumps({"type": "Close"}))
        except ConnectionClosed:
            pass
        receiver.join(timeout=120)
    return result


def stream_file(path: Path, server: str, *, language: str | None = None, hotwords: list[str] | None = None,
                api_key: str = "", speed: float = 1.0, out: TextIO | None = None,
                speakers: bool = False) -> StreamResult:
    """Stream `path` and return what the server sent; `speed` 2.0 sends twice as fast as real time."""
    return stream_audio(file_frames(path, speed), server, name=path.name, language=language, hotwords=hotwords,
                        api_key=api_key, out=out, speakers=speakers)


def summary_line(summary: dict, server: str) -> str:
    """What a finished session says: its job, how much audio, how many sentences, where to read it."""
    finals = int(summary["finals"])
    sentences = "1 sentence" if finals == 1 else f"{finals} sentences"
    return (f"session {summary['job_id']}: {summary['duration_s']:.1f} s of audio, {sentences}; "
            f"the transcript: {server.rstrip('/')}/v1/jobs/{summary['job_id']}/transcript")


def run_stream(path: Path | None, server: str, *, language: str | None, hotwords: list[str], api_key: str,
               speed: float, speakers: bool = False) -> int:
    """The command: a file (`path`) or, with None, the microphone until Ctrl-C; 0 when the
    session ended with its summary."""
    stop = threading.Event()
    try:
        if path is None:
            sys.stderr.write("listening to the default microphone; Ctrl-C ends the session\n")
            frames: Iterable[bytes] = _until_interrupted(open_microphone(stop), stop)
            name = "microphone"
        else:
            frames, name = file_frames(path, speed), path.name
        result = stream_audio(frames, server, name=name, language=language, hotwords=hotwords, api_key=api_key,
                              speakers=speakers)
    except MicrophoneUnavailable as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except OddAsrError as exc:
        sys.stderr.write(f"error: {path}: {exc.message}\n")
        return 1
    except (OSError, InvalidURI) as exc:
        sys.stderr.write(f"error: cannot stream to {stream_url(server)}: {exc}\n")
        return 1
    except InvalidStatus as exc:
        hint = f"; {KEY_HINT}" if exc.response.status_code == 401 else ""
        sys.stderr.write(f"error: the server refused the websocket ({exc.response.status_code}): "
                         f"{exc.response.body.decode(errors='replace')[:300]}{hint}\n")
        return 1
    if result.error:
        hint = f"; {KEY_HINT}" if result.error.get("kind") == "unauthorized" else ""
        sys.stderr.write(f"error: {result.error.get('message') or result.error}{hint}\n")
        return 1
    if result.summary is None:
        sys.stderr.write("error: the session ended without its summary (the connection was lost)\n")
        return 1
    summary = result.summary
    sys.stderr.write(summary_line(summary, server) + "\n")
    return 0


def _until_interrupted(frames: Iterator[bytes], stop: threading.Event) -> Iterator[bytes]:
    """Ctrl-C ends the microphone's frames (and so the session, with its summary), not the program."""
    try:
        yield from frames
    except KeyboardInterrupt:
        stop.set()
