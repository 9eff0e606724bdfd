"""The pieces of a live session on their own: audio framing, protocol adapters, partial
stabilisation, and slot claims against a real redis-server."""

from __future__ import annotations

import json
import struct
import threading
import time
from collections import Counter

import pytest
import redis

from api.streaming import vocabulary as v
from api.streaming.framing import AudioFramer, wav_payload_offset
from api.streaming.protocols import detect
from api.streaming.protocols.funasr import FunAsrProtocol, parse_hotwords
from api.streaming.protocols.oddasr import OddAsrProtocol
from shared import stream_messages as sm
from shared.stream_slots import SlotCapacity, claim_slot, heartbeat_slot, release_slot, summarize_slots
from worker.engines.partial_agreement import agreed_prefix, shown_hypothesis
from worker.streaming.capacity import DEFAULT_SESSION_COST_CORES, CapacityMonitor, LagGauge


def wav_header(data_bytes: int, extra_chunk: bytes = b"") -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(extra_chunk) + data_bytes) + b"WAVE" + b"fmt " +
            struct.pack("<I", len(fmt)) + fmt + extra_chunk + b"data" + struct.pack("<I", data_bytes))


# --- framing -------------------------------------------------------------------------------
def test_a_leading_wav_header_is_stripped_even_with_extra_chunks() -> None:
    pcm = bytes(range(10))
    header = wav_header(len(pcm), extra_chunk=b"LIST" + struct.pack("<I", 5) + b"abcde\0")
    assert wav_payload_offset(header + pcm) == len(header)
    assert AudioFramer().push(header + pcm) == pcm
    assert wav_payload_offset(pcm) == 0


def test_odd_byte_counts_are_carried_to_the_next_frame() -> None:
    framer = AudioFramer()
    assert framer.push(b"\x01\x02\x03") == b"\x01\x02"
    assert framer.push(b"\x04") == b"\x03\x04"
    assert framer.push(b"RIFF....WAVE") == b"RIFF....WAVE", "only the first frame may carry a header"


# --- protocol detection and adapters -------------------------------------------------------
def test_protocol_is_detected_from_the_first_frame_with_the_port_as_fallback() -> None:
    assert detect(json.dumps({"name": "StartTranscription"}), "funasr").name == "oddasr"
    assert detect(json.dumps({"mode": "2pass", "chunk_size": [5, 10, 5]}), "oddasr").name == "funasr"
    assert detect(json.dumps({"is_speaking": True}), "oddasr").name == "funasr"
    assert detect("not json", "funasr").name == "funasr"
    assert detect(None, "oddasr").name == "oddasr"


def test_oddasr_frames_never_overlap_header_and_payload_keys() -> None:
    adapter = OddAsrProtocol()
    adapter.parse_start(json.dumps({"name": "StartTranscription", "message_id": "abc", "task_id": ""}))
    frames = [*adapter.on_started("job1"), *adapter.on_partial(0, "hello", 0, 500),
              *adapter.on_final(0, "Hello.", 0, 900), *adapter.on_end(False), *adapter.on_error(v.BUSY, "busy")]
    for raw in frames:
        frame = json.loads(raw)
        assert not set(frame["header"]) & set(frame["payload"])
        assert "time" in frame["payload"] and isinstance(frame["header"]["status"], int)
        assert frame["header"]["message_id"] == "abc" and frame["header"]["task_id"] == "job1"
    assert json.loads(frames[-1])["header"]["status"] == 20020001


@pytest.mark.parametrize("first", ["[]", "{}", json.dumps({"name": "StartTranscription", "sample_rate": 4000}),
                                   json.dumps({"name": "StartTranscription", "hotwords": 42}),
                                   json.dumps({"name": "StartTranscription", "hotwords": [{"w": 1}]})])
def test_oddasr_bad_starts_are_bad_requests(first: str) -> None:
    with pytest.raises(v.ProtocolError) as raised:
        OddAsrProtocol().parse_start(first)
    assert raised.value.kind == v.BAD_REQUEST


def test_funasr_config_variants_real_clients_send() -> None:
    start = FunAsrProtocol().parse_start(json.dumps({"mode": "online", "chunk_size": "5,10,5",
                                                     "hotword": "阿里巴巴 20"}))
    assert start.want_partials and start.sample_rate_hz == 16000
    offline = FunAsrProtocol().parse_start(json.dumps({"mode": "offline", "audio_fs": 8000, "is_speaking": False,
                                                       "is_end": True}))
    assert not offline.want_partials and offline.sample_rate_hz == 8000
    assert offline.stop_at_once is not None and offline.stop_at_once.ack
    assert parse_hotwords(json.dumps({"阿里巴巴": 20, "OddASR": 10})) == ["阿里巴巴", "OddASR"]
    assert parse_hotwords("Alibaba, OddASR,") == ["Alibaba", "OddASR"]
    with pytest.raises(v.ProtocolError):
        FunAsrProtocol().parse_start(json.dumps({"chunk_size": [5, 10]}))


def test_funasr_online_text_goes_out_as_increments_and_2pass_finals_reset_them() -> None:
    adapter = FunAsrProtocol()
    adapter.parse_start(json.dumps({"mode": "2pass"}))
    sent = [json.loads(f) for f in [*adapter.on_partial(0, "The", 0, 0), *adapter.on_partial(0, "The weather", 0, 0),
                                    *adapter.on_partial(0, "The weather", 0, 0)]]
    assert [m["text"] for m in sent] == ["The", " weather"]
    assert all(m["mode"] == "2pass-online" and m["is_final"] is False for m in sent)
    final = json.loads(adapter.on_final(0, "The weather is nice.", 0, 0)[0])
    assert final["mode"] == "2pass-offline" and final["text"] == "The weather is nice."
    assert json.loads(adapter.on_partial(1, "Please", 0, 0)[0])["text"] == "Please"
    ack = json.loads(adapter.on_end(ack=True)[-1])
    assert ack == {"mode": "2pass", "text": "", "wav_name": "demo", "is_final": True, "is_end": True}


def test_funasr_offline_mode_says_everything_in_one_message() -> None:
    adapter = FunAsrProtocol()
    adapter.parse_start(json.dumps({"mode": "offline"}))
    assert adapter.on_partial(0, "x", 0, 0) == [] and adapter.on_final(0, "One.", 0, 0) == []
    adapter.on_final(1, "Two.", 0, 0)
    messages = [json.loads(f) for f in adapter.on_end(ack=False)]
    assert messages == [{"mode": "offline", "text": "One. Two.", "wav_name": "demo", "is_final": True}]


# --- partial stabilisation -----------------------------------------------------------------
def test_agreement_commits_only_what_two_decodes_share_and_never_takes_it_back() -> None:
    assert agreed_prefix([], [], ["The"]) == []
    assert agreed_prefix([], ["The", "whether"], ["The", "weather", "is"]) == ["The"]
    assert agreed_prefix(["The"], ["The", "weather", "is"], ["the", "weather,", "is", "nice"]) == \
        ["The", "weather,", "is"]
    assert agreed_prefix(["The", "weather"], ["But", "whenever"], ["But", "whenever", "it"]) == ["The", "weather"]
    # the newest hypothesis' last word may be cut off by the clip's end: never committed
    assert agreed_prefix([], ["Please."], ["Please."]) == []
    assert agreed_prefix([], ["Please.", "send"], ["Please", "send", "the"]) == ["Please", "send"]


def test_a_partial_shows_the_newest_hypothesis_behind_what_is_committed() -> None:
    assert shown_hypothesis(["We", "need"], ["we", "need", "three", "more"]) == ["We", "need", "three", "more"]
    # worded differently: the committed words stay, the rest follows from where they align
    assert shown_hypothesis(["We", "need"], ["I", "need", "three"]) == ["We", "need", "three"]
    assert shown_hypothesis(["We", "need"], ["Something", "else"]) == ["We", "need"]


def test_a_differently_worded_decode_does_not_stall_the_stable_text() -> None:
    committed = ["It", "was", "the", "epoch", "of", "belief", "that", "was", "the"]
    previous = ["It", "was", "the", "epoch", "of", "belief,", "it", "was", "the", "epoch", "of"]
    current = ["It", "was", "the", "epoch", "of", "belief,", "it", "was", "the", "epoch", "of", "incredulity."]
    assert agreed_prefix(committed, previous, current) == [*committed, "epoch", "of"]


# --- relay frames --------------------------------------------------------------------------
def test_relay_frames_carry_binary_audio_after_a_json_line() -> None:
    payload = bytes(range(256)) * 3
    header, decoded = sm.decode_frame(sm.encode_frame(sm.RelayHeader(kind=sm.AUDIO, seq=7, fence=3), payload))
    assert (header.kind, header.seq, header.fence, decoded) == (sm.AUDIO, 7, 3, payload)
    with pytest.raises(ValueError):
        sm.decode_frame(b"no header line")


# --- slots against a real redis-server -----------------------------------------------------
@pytest.fixture()
def client(redis_server) -> redis.Redis:  # type: ignore[no-untyped-def]
    # A database of its own: the session's server is shared with other modules' stacks.
    connection = redis.Redis.from_url(redis_server.url, db=15)
    connection.flushdb()
    yield connection
    connection.flushdb()


def test_each_slot_is_claimed_by_exactly_one_of_many_racers(client: redis.Redis) -> None:
    for index in range(3):
        heartbeat_slot(client, f"w{index}", state="idle")
    wins: list[str] = []
    lock = threading.Lock()

    def race(session: int) -> None:
        claim = claim_slot(client, f"s{session}")
        if claim is not None:
            with lock:
                wins.append(claim.worker_id)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(wins) == Counter({"w0": 1, "w1": 1, "w2": 1})
    assert summarize_slots(client).idle == 0


def test_a_dead_workers_slot_is_never_claimed_and_only_the_holder_frees_a_slot(client: redis.Redis) -> None:
    heartbeat_slot(client, "dead", state="idle", now_s=time.time() - 10)
    assert claim_slot(client, "s1") is None
    heartbeat_slot(client, "alive", state="idle")
    claim = claim_slot(client, "s2")
    assert claim is not None and claim.worker_id == "alive"
    assert not release_slot(client, "alive", claim.fence + 1), "a stale token frees nothing"
    assert claim_slot(client, "s3") is None
    assert release_slot(client, "alive", claim.fence)
    assert claim_slot(client, "s4") is not None


def test_a_busy_worker_rewrites_its_slot_as_busy_after_redis_lost_it(client: redis.Redis) -> None:
    heartbeat_slot(client, "w", state="idle")
    claim = claim_slot(client, "s1")
    assert claim is not None
    client.flushdb()  # Redis restarted without its data
    heartbeat_slot(client, "w", state="claimed", session_id="s1", fence=claim.fence)
    assert claim_slot(client, "s2") is None, "a worker in a session is never handed out twice"


def _capacity(load: float, *, admit: bool = True, cost: float = 0.2, cores: float = 2.0) -> SlotCapacity:
    return SlotCapacity(cores=cores, load_cores=load, session_cost_cores=cost, admit=admit)


def test_a_host_at_its_measured_capacity_takes_no_new_session(client: redis.Redis) -> None:
    """Admission counts cores: two idle slots, but the host's measured load plus one session's
    cost passes 90 % of its cores, so neither is handed out; once the load falls, one is."""
    for slot in ("p1-a", "p1-b"):
        heartbeat_slot(client, slot, state="idle", capacity=_capacity(1.7))
    assert claim_slot(client, "s1") is None, "1.7 + 0.2 cores > 0.9 x 2 cores"
    for slot in ("p1-a", "p1-b"):
        heartbeat_slot(client, slot, state="idle", capacity=_capacity(0.5))
    assert claim_slot(client, "s2") is not None


def test_claimed_sessions_count_before_they_have_used_any_cpu(client: redis.Redis) -> None:
    """Sessions claimed a moment ago have measured nothing yet: each is booked at its cost, so a
    burst of starts cannot overfill an idle host."""
    for index in range(12):
        heartbeat_slot(client, f"slot{index}", state="idle", capacity=_capacity(0.0, cost=0.3))
    claims = [claim_slot(client, f"s{index}") for index in range(12)]
    assert sum(claim is not None for claim in claims) == 6, "6 x 0.3 = 1.8 = 0.9 x 2 cores"


def test_a_process_with_a_session_behind_real_time_takes_none(client: redis.Redis) -> None:
    heartbeat_slot(client, "lagging", state="idle", capacity=_capacity(0.2, admit=False))
    assert claim_slot(client, "s1") is None
    heartbeat_slot(client, "lagging", state="idle", capacity=_capacity(0.2, admit=True))
    assert claim_slot(client, "s2") is not None


def test_lag_is_measured_without_comparing_two_clocks() -> None:
    """The API's clock may be minutes off the worker's: only waits beyond the smallest
    difference seen count as lag."""
    gauge = LagGauge()
    skew_s = -120.0  # the API's clock two minutes behind
    for sent_s, processed_s in ((100.0, 100.05), (100.1, 100.15), (100.2, 102.2)):
        gauge.frame(1.7e9 + sent_s + skew_s, now_s=1.7e9 + processed_s)
    assert gauge.lag_s == pytest.approx(1.95)


def test_the_monitor_learns_a_sessions_cost_from_its_load() -> None:
    lags: list[float] = []
    monitor = CapacityMonitor(lambda: lags, cores=2)
    assert monitor.sample().admit
    lags.extend([0.1, 2.5])  # two sessions, one far behind
    # Burn CPU until this process has used 0.2 s of it and a sample's 0.5 s have passed: on a
    # busy machine a fixed wall time may hold almost no CPU time of ours.
    started_cpu_s, started_wall_s = time.process_time(), time.monotonic()
    while time.process_time() - started_cpu_s < 0.2 or time.monotonic() - started_wall_s < 0.6:
        sum(range(10_000))
    capacity = monitor.sample()
    assert not capacity.admit
    assert capacity.load_cores > 0 and capacity.session_cost_cores != DEFAULT_SESSION_COST_CORES


# --- which ports an API process binds --------------------------------------------------------
def test_websocket_ports_follow_disable_stream_and_tls() -> None:
    from shared.cli.commands import api_argv, api_listeners, api_roles
    from shared.config import Settings

    plain = Settings(port=9002, ws_port=8101, funasr_ws_port=10095)
    assert api_listeners(plain) == ["127.0.0.1:9002", "127.0.0.1:8101", "127.0.0.1:10095"]
    assert api_roles(plain) == ["all"]
    assert api_listeners(Settings(disable_stream=True)) == ["127.0.0.1:9002"]
    assert api_listeners(Settings(funasr_ws_port=0, ws_port=8101)) == ["127.0.0.1:9002", "127.0.0.1:8101"]
    tls = Settings.model_construct(**{**plain.model_dump(), "enable_https": True})
    assert api_roles(tls) == ["http", "websocket"]
    assert api_roles(Settings(enable_https=True, disable_stream=True)) == ["all"]
    # https_api: the HTTP port speaks TLS too; one process again when both do.
    both = Settings.model_construct(**{**plain.model_dump(), "enable_https": True, "https_api": True,
                                       "ssl_cert_path": "c.pem", "ssl_key_path": "k.pem"})
    assert api_roles(both) == ["all"] and "--certfile" in api_argv(both, "all")
    http_only = Settings.model_construct(**{**both.model_dump(), "enable_https": False})
    assert api_roles(http_only) == ["http", "websocket"]
    assert "--certfile" in api_argv(http_only, "http") and "--certfile" not in api_argv(http_only, "websocket")
    assert "--certfile" not in api_argv(plain, "all") and "--certfile" in api_argv(tls, "websocket")
    assert http_only.api_base_url == "https://127.0.0.1:9002" and plain.api_base_url == "http://127.0.0.1:9002"


def test_tls_without_a_certificate_is_refused_at_start_with_the_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shared.config import Settings

    with pytest.raises(ValueError, match="ssl_cert_path and ssl_key_path"):
        Settings(enable_https=True)
    with pytest.raises(ValueError, match="no such file"):
        Settings(enable_https=True, ssl_cert_path=str(tmp_path / "c.pem"), ssl_key_path=str(tmp_path / "k.pem"))
    with pytest.raises(ValueError, match="https_api puts TLS on the HTTP API"):
        Settings(https_api=True, disable_stream=True)


def test_reprocess_ids_are_derived_and_stages_named() -> None:
    from shared import reprocess

    assert reprocess.reprocess_job_id("a" * 32) == reprocess.reprocess_job_id("a" * 32) != reprocess.reprocess_job_id(
        "b" * 32)
    assert len(reprocess.reprocess_job_id("a" * 32)) == 32
    assert reprocess.stage_of("running", None) == "live"
    assert reprocess.stage_of("succeeded", None) == "reprocess_pending"
    assert reprocess.stage_of("succeeded", "queued") == "reprocessing"
    assert reprocess.stage_of("succeeded", "succeeded") == "reprocessed"
    assert reprocess.stage_of("succeeded", "failed") == "reprocess_failed"
    assert reprocess.stage_of("failed", None) == "ended"


def test_sessions_spread_over_processes_before_filling_one(client: redis.Redis) -> None:
    for process in (1, 2):
        for slot in range(3):
            client.eval(  # slots of two processes of one host, as their heartbeats write them
                "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])", 1, "oddasr:stream:slots",
                f"p{process}-s{slot}", json.dumps({"state": "idle", "heartbeat_s": time.time(), "host": "h",
                                                  "pid": process, "cores": 8, "load_cores": 0,
                                                  "session_cost_cores": 0.1, "admit": 1}))
    claims = [claim_slot(client, f"s{index}") for index in range(4)]
    assert Counter(claim.worker_id.split("-")[0] for claim in claims if claim) == Counter({"p1": 2, "p2": 2})


def test_the_stable_text_stays_the_beginning_of_the_masked_text() -> None:
    from worker.streaming.session_loop import common_word_prefix

    assert common_word_prefix("my credit", "my *** number") == "my"
    assert common_word_prefix("we need three", "we need three more") == "we need three"
    assert common_word_prefix("", "anything") == ""


def test_only_a_child_that_fails_on_its_own_soon_after_start_counts_towards_giving_up() -> None:
    """Three young children asked to stop (deploys) made the supervisor give up and leave the
    host with no stream worker; a SIGKILL still counts (the OOM killer at every start)."""
    import signal

    from worker.streaming.main import QUICK_DEATH_S, failed_at_start

    young_s, old_s = 1.0, QUICK_DEATH_S + 1
    assert failed_at_start(1, young_s)  # SystemExit: a missing model, at every start
    assert failed_at_start(-signal.SIGSEGV, young_s)  # a crash
    assert failed_at_start(-signal.SIGKILL, young_s)  # the OOM killer, loading a model too big
    assert not failed_at_start(1, old_s)
    for stopped in (0, -signal.SIGTERM, -signal.SIGINT):
        assert not failed_at_start(stopped, young_s)
