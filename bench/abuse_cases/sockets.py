"""Sockets that try to make the API hold audio before any session starts (issue 17, item 6).

500 websockets from 5 loopback addresses, opened 100 at a time and kept open, each sending
1 MiB of "audio" (16 frames of 64 KiB) before any start message, then waiting for what the
server answers; and 500 that each send 60 KiB (under the early-audio cap) and then nothing,
which the server holds until its 10 s start timeout: those meet the per-address cap.
Before the fix the API kept up to 1 MiB of such early audio per socket (plus what it had
read ahead), from any number of sockets per address, for 10 s each; now an address holds
at most `max_sockets_per_client` websockets, and each holds at most 64 KiB of early audio
(none before a key is checked when keys are required).

The client is raw TCP (a handshake and masked frames by hand): 500 sockets cost it no
threads of their own, and it can send without reading.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psutil

from bench.abuse_cases import Case
from tests.support.stack import Stack

SOCKETS = 500
ADDRESSES = [f"127.0.2.{index}" for index in range(1, 6)]
EARLY_AUDIO_BYTES = 1 << 20
#: Under the early-audio cap: such a socket is held until the start timeout.
HELD_EARLY_BYTES = 60 * 1024
FRAME_BYTES = 64 * 1024
SEND_TIMEOUT_S = 5.0
REPLY_TIMEOUT_S = 15.0
OPCODE_BINARY = 0x2
OPCODE_TEXT = 0x1
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA
#: Outcomes in which the server kept the socket and its audio until its start timeout (10 s;
#: 1008 is the ping timeout of this client that answers no ping, at the same moment).
HELD = ("no answer", "held until the start timeout", "close 1008")


def _frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame; the mask key is zero, so the payload goes as it is."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    elif len(payload) < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
    return head + b"\0\0\0\0" + payload


def _read_reply(sock: socket.socket) -> str:
    """What the server said first after the early audio (pings skipped): an error kind, a close
    code, or how the connection ended."""
    data = b""
    try:
        while True:
            while (bounds := _frame_bounds(data)) is None or len(data) < bounds[1]:
                chunk = sock.recv(65536)
                if not chunk:
                    return "closed"
                data += chunk
            opcode, body, data = data[0] & 0x0F, data[bounds[0]:bounds[1]], data[bounds[1]:]
            if opcode not in (OPCODE_PING, OPCODE_PONG):
                break
    except TimeoutError:
        return "no answer"
    except OSError:
        return "reset"
    if opcode == OPCODE_CLOSE:
        return f"close {struct.unpack('>H', body[:2])[0]}" if len(body) >= 2 else "close"
    if opcode == OPCODE_TEXT:
        if b"no start message" in body:
            return "held until the start timeout"
        for kind in ("frame_too_large", "unauthorized"):
            if kind.encode() in body:
                return kind
        return "text"
    return f"opcode {opcode}"


def _frame_bounds(data: bytes) -> tuple[int, int] | None:
    """Where the payload of the first (unmasked, server) frame in `data` starts and ends;
    None while its header is incomplete."""
    if len(data) < 2:
        return None
    length = data[1] & 0x7F
    if length < 126:
        return 2, 2 + length
    header = 4 if length == 126 else 10
    if len(data) < header:
        return None
    return header, header + int.from_bytes(data[2:header], "big")


def _one_socket(port: int, source: str, held: list[socket.socket], early_bytes: int) -> tuple[socket.socket, str]:
    """Open one websocket from `source` and send `early_bytes` before any start message; the
    socket and, when the exchange already ended, how ("" while it is open)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=SEND_TIMEOUT_S, source_address=(source, 0))
    held.append(sock)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            return sock, "closed at upgrade"
        head += chunk
    status = head.split(b" ", 2)[1].decode()
    if status != "101":
        return sock, f"http {status}"
    frame_bytes = min(FRAME_BYTES, early_bytes)
    frame = _frame(OPCODE_BINARY, b"\0" * frame_bytes)
    sent_bytes = 0
    try:
        while sent_bytes < early_bytes:
            sock.sendall(frame)
            sent_bytes += frame_bytes
    except TimeoutError:
        pass  # the server stopped reading: TCP holds the rest on our side
    except OSError:
        return sock, f"reset after {sent_bytes >> 10} KiB"
    return sock, ""


def _reply_of(sock: socket.socket) -> str:
    sock.settimeout(REPLY_TIMEOUT_S)
    return _read_reply(sock)


def _api_rss_mb(stack: Stack) -> float:
    total_bytes = 0
    for name, process in stack.processes.items():
        if name.startswith("api"):
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(process.pid)
                total_bytes += sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    return total_bytes / 1e6


def early_audio_flood(stack: Stack) -> str:
    return _attack(stack, EARLY_AUDIO_BYTES)


def sockets_held_open(stack: Stack) -> str:
    return _attack(stack, HELD_EARLY_BYTES)


def _attack(stack: Stack, early_bytes: int) -> str:
    before_mb = _api_rss_mb(stack)
    peak_mb = before_mb
    held: list[socket.socket] = []
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_mb
        while not done.wait(0.1):
            peak_mb = max(peak_mb, _api_rss_mb(stack))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        outcomes: Counter[str] = Counter()
        with ThreadPoolExecutor(max_workers=100) as pool:
            # All sockets opened and fed first (kept open), then every open one's answer read.
            futures = [pool.submit(_one_socket, stack.settings.port, ADDRESSES[index % len(ADDRESSES)], held,
                                   early_bytes)
                       for index in range(SOCKETS)]
            still_open = []
            for future in futures:
                try:
                    sock, outcome = future.result()
                except OSError as exc:
                    outcomes[type(exc).__name__] += 1
                    continue
                if outcome:
                    outcomes[outcome] += 1
                else:
                    still_open.append(sock)
            for outcome in pool.map(_reply_of, still_open):
                outcomes[outcome] += 1
    finally:
        done.set()
        sampler.join()
        for sock in held:
            with contextlib.suppress(OSError):
                sock.close()
    refused = sum(count for outcome, count in outcomes.items() if outcome not in HELD)
    detail = ", ".join(f"{outcome}: {count}" for outcome, count in outcomes.most_common())
    return (f"{refused}/{SOCKETS} refused ({detail}); API RSS +{peak_mb - before_mb:.0f} MB at peak "
            f"({SOCKETS} x {early_bytes >> 10} KiB sent)")


GOAL = "each socket holds <= 64 KiB before its start (none before a key when keys are required); RSS growth small"


def cases() -> list[Case]:
    return [
        Case(name="sockets: 500 x 1 MiB before start (keys off)", goal=GOAL, attack=early_audio_flood),
        Case(name="sockets: 500 x 1 MiB before start (keys required)", goal=GOAL, attack=early_audio_flood,
             overrides={"auth_mode": "required", "api_key_hash_secret": "bench-abuse-sockets"}),
        Case(name="sockets: 500 x 60 KiB before start, held open (keys off)", attack=sockets_held_open,
             goal="at most max_sockets_per_client (32) held per address; the rest 429"),
    ]
