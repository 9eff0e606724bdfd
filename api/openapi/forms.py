"""The multipart forms of the endpoints that take audio, as api/options.py parses them.

Fields the parsers read are all here with their limits; what a schema cannot say (an audio
file's bytes must decode, `min_speakers` needs `diarize=true`, a `callback_url` needs a
signing secret on the server) is in the descriptions, and answered 400, 415 or 422.
"""

from __future__ import annotations

from typing import Any

from api.options import MAX_HOTWORDS, MAX_HOTWORDS_CHARS, MAX_SPEAKERS, MODES
from api.routes.openai import RESPONSE_FORMATS
from shared.render import RENDERERS

Schema = dict[str, Any]

_AUDIO_DESCRIPTION = ("The audio file (WAV, FLAC, MP3, Ogg/Opus, M4A, WebM, ...): probed before anything is"
                      " stored, so bytes that are not audio answer 415 and broken or too long audio 422.")
_BOOLEAN = {"type": "boolean", "description": "true or false (also 1/0, yes/no, on/off)."}
_SPEAKERS = {"type": "integer", "minimum": 1, "maximum": MAX_SPEAKERS, "description": "Needs diarize=true."}
_CALLBACK = {"type": "string", "description": "Where a signed webhook (Standard Webhooks) is POSTed when the job"
                                              " ends; 400 when the server has no signing secret or the URL is not"
                                              " one it may call."}
_LANGUAGE = {"type": "string", "description": "A language code such as `en` or `zh`, or `auto` (the default)."}


def _binary(description: str) -> Schema:
    return {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream",
            "description": description}


def _multipart(properties: dict[str, Schema], required: list[str]) -> Schema:
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": required, "properties": properties}}}}


def job_form(*, with_mode: bool = True) -> Schema:
    """The form of POST /v1/jobs and of OddASR's /v1/asr (whose /file and /sentence variants fix the mode)."""
    properties: dict[str, Schema] = {"audio": _binary(_AUDIO_DESCRIPTION)}
    if with_mode:
        properties["mode"] = {"type": "string", "enum": [*MODES, ""], "default": "file",
                              "description": "`sentence`: a short utterance on the low-latency queue."
                                             " Empty: the default."}
    properties.update({
        "output_format": {"type": "string", "enum": [*sorted(RENDERERS), ""], "default": "txt",
                          "description": "Empty: the default."},
        "language": _LANGUAGE,
        "hotwords": {"type": "string", "maxLength": MAX_HOTWORDS_CHARS,
                     "description": f"Words to favour, separated by spaces, commas or newlines (at most"
                                    f" {MAX_HOTWORDS})."},
        "hotword": {"type": "string", "maxLength": MAX_HOTWORDS_CHARS, "description": "An alias of `hotwords`."},
        "hotword_set": {"type": "string", "description": "A hotword set of the key (GET /v1/hotwords), `default`"
                                                         " (the server's, also used when none is named) or `none`;"
                                                         " an unknown one answers 400."},
        "use_itn": {**_BOOLEAN, "description": "Inverse text normalization (`twenty five` -> `25`); empty: the"
                                               " server's default. 422 where the engine cannot honour it."},
        "diarize": _BOOLEAN, "word_timestamps": _BOOLEAN,
        "min_speakers": _SPEAKERS, "max_speakers": _SPEAKERS,
        "identify_speakers": {**_BOOLEAN, "description": "Name diarized speakers after the key's enrolled voices"
                                                         " (POST /v1/speakers). Needs diarize=true."},
        "callback_url": _CALLBACK, "webhook_url": {**_CALLBACK, "description": "An alias of `callback_url`."},
    })
    return _multipart(properties, ["audio"])


def transcription_form() -> Schema:
    """OpenAI's `POST /v1/audio/transcriptions` form."""
    return _multipart({
        "file": _binary(_AUDIO_DESCRIPTION),
        "model": {"type": "string", "default": "whisper-1", "description": "One of the ids GET /v1/models lists."},
        "language": _LANGUAGE,
        "prompt": {"type": "string", "maxLength": MAX_HOTWORDS_CHARS, "description": "Used as a hotword hint."},
        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"},
        "timestamp_granularities[]": {"type": "array", "items": {"type": "string", "enum": ["segment", "word"]}},
        "callback_url": _CALLBACK,
    }, ["file"])
