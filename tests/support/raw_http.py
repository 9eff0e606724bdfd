"""HTTP at the socket level, for what `requests` cannot do: stop sending a body the moment the
server answers, set any Host and Origin on a websocket handshake, read an answer that a reset
may follow."""

from __future__ import annotations

import base64
import os
import select
import socket

CHUNK_BYTES = 64 * 1024


def connect(port: int, timeout_s: float = 30.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout_s)


def read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """Status and whatever of the answer arrived (a reset after it may cut the rest); 0: none."""
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data) < data.find(b"\r\n\r\n") + 4 + 512:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    except (ConnectionResetError, TimeoutError):
        pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data


def send_chunked(port: int, method: str, path: str, total_bytes: int, headers: str = "") -> tuple[int, bytes, int]:
    """Send a chunked body of up to `total_bytes`, stopping as soon as the server answers or
    closes. Returns (status, answer, body bytes sent); status 0: the connection was reset."""
    sock = connect(port)
    sent_bytes = 0
    try:
        sock.sendall((f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n"
                      f"{headers}\r\n").encode())
        chunk = f"{CHUNK_BYTES:x}\r\n".encode() + b"a" * CHUNK_BYTES + b"\r\n"
        while sent_bytes < total_bytes:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered (or closed) before the end of the body
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent_bytes += CHUNK_BYTES
        else:
            sock.sendall(b"0\r\n\r\n")
        status, answer = read_answer(sock)
        return status, answer, sent_bytes
    finally:
        sock.close()


def handshake_status(port: int, host: str, origin: str | None = None, path: str = "/") -> int:
    """The status a websocket handshake gets (101: opened)."""
    sock = connect(port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      + (f"Origin: {origin}\r\n" if origin else "") + "\r\n").encode())
        line = b""
        while b"\r\n" not in line:
            piece = sock.recv(1024)
            if not piece:
                break
            line += piece
        return int(line.split(b" ", 2)[1])
    finally:
        sock.close()
