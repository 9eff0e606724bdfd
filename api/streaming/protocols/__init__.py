"""Wire protocol adapters, and the detection of a session's protocol from its first frame."""

from __future__ import annotations

import json

from api.streaming.protocols import funasr, native, oddasr
from api.streaming.vocabulary import WireProtocol

PROTOCOLS = {"oddasr": oddasr.OddAsrProtocol, "funasr": funasr.FunAsrProtocol, "native": native.NativeProtocol}


def detect(first_text: str | None, default: str) -> WireProtocol:
    """The adapter for a session, from the keys of its first JSON frame; `default` (the one
    the port is known for) when the frame says nothing recognisable, so its error is
    worded in the protocol the client most likely speaks."""
    if first_text is not None:
        try:
            frame = json.loads(first_text)
        except ValueError:
            frame = None
        if isinstance(frame, dict):
            if native.looks_like(frame):  # first: its Start may carry a `name` too
                return native.NativeProtocol()
            if oddasr.looks_like(frame):
                return oddasr.OddAsrProtocol()
            if funasr.looks_like(frame):
                return funasr.FunAsrProtocol()
    return PROTOCOLS[default]()
