"""Live streaming: websocket sessions pinned to stream worker processes, and the relay between."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class StreamingSettings(BaseModel):
    """Stream workers and their slots, a session's limits and timeouts, the relay's heartbeats.

    Which engine serves live sessions (`stream_engine`) is declared beside `engine` in
    shared.config.settings, since the two are checked together."""

    #: Stream worker processes; the original's asr_stream_cfg.max_instance. Each loads the live
    #: models once and serves up to `stream_sessions_per_worker` sessions at a time, one thread
    #: each (bench/streaming.py measured 2 x 4 on 2 cores: see the README, "Live streaming").
    stream_workers: int = 2
    #: Live sessions one stream worker process serves at once (its slots). A session stays
    #: pinned to its process for its whole life; admission by measured load (shared.stream_slots)
    #: refuses a new one before the host falls behind real time, whatever this allows.
    stream_sessions_per_worker: int = 4
    #: The model that decodes a Moonshine session's finals (its partials are always tiny's):
    #: `base` (built once into the model cache from the pinned moonshine-cpp wheel, +390 MB per
    #: stream worker process) or `tiny`. Measured on held-out speech (bench/live_wer.py): WER
    #: 0.073 with base, 0.100 with tiny, 0.082 with Whisper base's live path.
    moonshine_finals_model: Literal["base", "tiny"] = "base"
    #: The original's `disable_stream`: no stream workers, websockets answer "disabled".
    disable_stream: bool = False
    #: How long a new session waits for a free stream worker before it is told "busy".
    stream_slot_wait_s: float = 10.0
    #: No audio for this long ends a session (the original's free_resource_timeout; OddASR's
    #: test client never closes, so this is how its sessions end).
    stream_idle_timeout_s: float = 5.0
    #: KeepAlives hold a session open through silence, but not for ever: a session that sent
    #: no audio for this long ends with the error `idle` (its sentences kept). Only audio and
    #: the protocol's own KeepAlive count; text frames the protocol ignores keep nothing alive.
    stream_keepalive_max_s: float = Field(default=60.0, gt=0)
    #: Audio a client may send before its start message (FunASR clients may), kept until the
    #: session starts; past it the session is refused. None is kept before the key is checked
    #: when keys are required (then audio before the start message is refused at once).
    stream_max_early_audio_bytes: int = Field(default=64 * 1024, ge=0)
    #: Websockets one client address may hold open at once on one API process (0: no limit);
    #: past it the upgrade is answered 429 before a websocket exists.
    max_sockets_per_client: int = Field(default=32, ge=0)
    #: Live sessions one API key may run at once, across API processes (0: no limit); past it
    #: a new session is refused as `limited`. Resuming a session does not count as a new one.
    max_live_sessions_per_key: int = Field(default=16, ge=0)
    stream_max_session_s: float = 3 * 3600.0
    stream_max_frame_bytes: int = 1024 * 1024
    #: Audio the worker may hold unprocessed; past it the API stops reading the socket, so a
    #: client sending faster than real time is slowed by TCP instead of filling memory.
    stream_max_backlog_s: float = 30.0
    #: How often the open sentence is re-decoded for partial results.
    stream_partial_interval_ms: int = 500
    #: Both halves of the relay send a heartbeat this often.
    stream_heartbeat_interval_s: float = 0.5
    #: The API ends a session when its worker was silent this long (a dead worker).
    stream_worker_timeout_s: float = 1.5
    #: A worker ends a session when the API was silent this long (a dead API process).
    stream_api_timeout_s: float = 5.0
    #: Websocket pings; a client that answers none for two intervals is taken as gone.
    stream_ping_interval_s: float = 5.0
    #: A client whose connection drops (no close frame) may reconnect this long after and go
    #: on with the same session; its worker holds the session meanwhile. 0: no resuming.
    stream_resume_window_s: float = 30.0
    #: A session's recording that could not be stored at its end stays on the stream worker's
    #: disk and its job stays running; storing is tried again this often ...
    stream_recording_retry_interval_s: float = Field(default=30.0, gt=0)
    #: ... this many times in all (the first try at the end included), before the job fails.
    stream_recording_store_attempts: int = Field(default=10, ge=1)
