"""The message of an error answer, in OddASR's flat shape or OpenAI's (on the OpenAI routes)."""

from __future__ import annotations


def error_message(body: dict) -> str:
    error = body["error"]
    return error if isinstance(error, str) else error["message"]
