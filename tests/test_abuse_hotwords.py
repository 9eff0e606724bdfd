"""Issue 17, item 1: hotword matching is linear, runs once in the worker, and every way
hotwords enter is capped.

The matcher must find exactly what the regex it replaced found (that regex, kept here as the
oracle, took seconds over one transcript with a thousand hotwords). A job's hits are stored
when it ends; `GET /v1/jobs/{id}` returns them and never matches. The caps of the form field
`hotwords` hold for the three live protocols' start messages and for the OpenAI `prompt`.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import requests
import soundfile
from flask.testing import FlaskClient

from api.app import create_app
from api.deps import EXTENSION_KEY, ApiDeps
from api.options import MAX_HOTWORDS, MAX_HOTWORDS_CHARS, check_hotwords
from shared.db.models import TERMINAL_STATUSES, Job, JobStatus, utc_now
from shared.db.repository import JobRepository
from shared.db.session import make_engine, make_session_factory
from shared.errors import BadRequestError
from shared.hotwords import hotword_hits
from shared.sensitive_words import SensitiveWords
from shared.storage import make_storage
from shared.transcript import Segment, Transcript, Word
from shared.word_matching import WordMatcher
from tests.support.job_rows import job_row
from tests.support.speech import REFERENCE_SENTENCES, synthesize
from tests.support.stack import Stack, running_stack
from tests.support.ws_clients import open_ws
from tests.test_api_validation import make_settings


# --- the regex this replaced, as the oracle of its semantics ----------------------------------
def _regex_matches(words: Iterable[str], text: str) -> list[tuple[str, int, int]]:
    latin = "A-Za-z0-9_'"
    ordered = sorted(dict.fromkeys(w for w in words if w), key=len, reverse=True)
    if not ordered:
        return []

    def pattern(word: str) -> str:
        escaped = re.escape(word)
        if re.match(rf"[{latin}]", word[0]):
            escaped = rf"(?<![{latin}]){escaped}"
        if re.match(rf"[{latin}]", word[-1]):
            escaped = rf"{escaped}(?![{latin}])"
        return escaped

    regex = re.compile("|".join(f"({pattern(w)})" for w in ordered), re.IGNORECASE)
    return [(ordered[m.lastindex - 1], m.start(), m.end()) for m in regex.finditer(text)]  # type: ignore[operator]


_PIECES = ["report", "Report", "quarterly report", "rep", "port", "reporter", "ab", "abc", "b-c", "c'd", "北京",
           "北京大学", "京大", "学a", "x_y", "Straße", "ΣΊΣΥΦΟΣ", "σίσυφος", "42", "4", "a.b", "(ab)", "o'neil"]
_FILLER = [" ", " ", ", ", ". ", "-", "'", "_", "", "。", "的", "s", "1", "\n"]


@pytest.mark.parametrize("seed", range(30))
def test_the_matcher_finds_what_the_regex_it_replaced_found(seed: int) -> None:
    rng = random.Random(seed)
    # Entries whose case-folded forms differ: the regex picked among equal ones in set order.
    words = list({w.casefold(): w for w in rng.sample(_PIECES, rng.randint(1, len(_PIECES)))}.values())
    text = "".join(rng.choice(_PIECES + _FILLER) + rng.choice(_FILLER) for _ in range(rng.randint(0, 60)))
    found = [(m.word, m.start, m.end) for m in WordMatcher(words).find(text)]
    assert found == _regex_matches(words, text), (words, text)


@pytest.mark.parametrize(("words", "text", "expected"), [
    (["report"], "reporter reports report", [("report", 17, 23)]),  # whole Latin words only
    (["report", "quarterly report"], "the quarterly report", [("quarterly report", 4, 20)]),  # the longer wins
    (["北京"], "我在北京大学", [("北京", 2, 4)]),  # Chinese anywhere
    (["北京a", "北京"], "北京ab", [("北京", 0, 2)]),  # a shorter entry where the longer is no whole word
    (["Alibaba", "alibaba"], "ALIBABA", [("Alibaba", 0, 7)]),  # case ignored; the first spelling reported
    (["İstanbul", "straße"], "İSTANBUL STRASSE Straße", [("İstanbul", 0, 8), ("straße", 17, 23)]),
])
def test_the_matcher_keeps_each_rule(words: list[str], text: str, expected: list[tuple[str, int, int]]) -> None:
    assert [(m.word, m.start, m.end) for m in WordMatcher(words).find(text)] == expected


def test_a_thousand_hotwords_over_a_long_transcript_are_counted_exactly() -> None:
    """The case that took the regex 7.7 s of CPU over 7,000 characters, at 15 times the text:
    the counts are exact (how long it takes is the benchmark's business)."""
    rng = random.Random(17)
    words = sorted({"".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(5, 12))) for _ in range(1000)})
    planted = {word: 0 for word in words}
    segments = []
    for index in range(300):
        tokens = []
        for _ in range(60):
            if rng.random() < 0.2:
                word = rng.choice(words)
                planted[word] += 1
                tokens.append(word.upper() if rng.random() < 0.3 else word)
            else:
                tokens.append("zz" + "".join(rng.choices("0123456789", k=4)))
        segments.append(Segment(start_s=index, end_s=index + 1.0, text=" ".join(tokens) + "."))
    transcript = Transcript.from_segments(segments, language="en", duration_s=300.0, engine="e", model="m")
    assert len(transcript.text) > 100_000
    counts = {hit["word"]: hit["count"] for hit in hotword_hits(transcript, words)}
    assert counts == {word: count for word, count in planted.items() if count}


def test_an_occurrence_takes_the_times_of_the_words_it_spans() -> None:
    words = [Word(word=" Alibaba", start_s=0.0, end_s=0.5), Word(word=" and", start_s=0.6, end_s=0.7),
             Word(word=" Jane", start_s=0.8, end_s=1.0), Word(word=" Doe,", start_s=1.1, end_s=1.4),
             Word(word=" alibaba.", start_s=1.5, end_s=2.0)]
    transcript = Transcript.from_segments([Segment(start_s=0, end_s=2, text="Alibaba and Jane Doe, alibaba.",
                                                   words=words)], language="en", duration_s=2, engine="e", model="m")
    hits = {hit["word"]: hit["times"] for hit in hotword_hits(transcript, ["Alibaba", "Jane Doe"])}
    assert hits == {"Alibaba": [{"start": 0.0, "end": 0.5}, {"start": 1.5, "end": 2.0}],
                    "Jane Doe": [{"start": 0.8, "end": 1.4}]}


def test_sensitive_words_are_masked_by_the_same_matcher() -> None:
    assert SensitiveWords(("report", "北京")).mask_text("Report: reporter in 北京大学.") == "***: reporter in ***大学."


# --- the caps ---------------------------------------------------------------------------------
def test_the_form_caps_apply_to_any_list_of_hotwords() -> None:
    assert check_hotwords(["a"] * MAX_HOTWORDS) == ["a"] * MAX_HOTWORDS
    with pytest.raises(BadRequestError, match=f"at most {MAX_HOTWORDS} hotwords"):
        check_hotwords(["a"] * (MAX_HOTWORDS + 1))
    with pytest.raises(BadRequestError, match=f"'prompt' is longer than {MAX_HOTWORDS_CHARS}"):
        check_hotwords(["x" * (MAX_HOTWORDS_CHARS + 1)], field="prompt")


# --- stored hits: the API reads, never matches -------------------------------------------------
@pytest.fixture
def api(tmp_path: Path, redis_server) -> Iterator[tuple[FlaskClient, ApiDeps]]:  # type: ignore[no-untyped-def]
    app = create_app(make_settings(tmp_path, redis_server.url))
    with app.test_client() as client:
        yield client, app.extensions[EXTENSION_KEY]


_TRANSCRIPT = Transcript.from_segments([Segment(start_s=0.0, end_s=2.0, text="Ask Alibaba about OddASR.")],
                                       language="en", duration_s=2.0, engine="e", model="m")


def _finished_job(deps: ApiDeps, hotwords: list[str], hits: list[dict[str, object]] | None) -> str:
    job_id = uuid.uuid4().hex
    key = f"transcripts/{job_id}.json"
    deps.storage.put_bytes(key, _TRANSCRIPT.model_dump_json().encode())
    deps.jobs.create(job_row(job_id, options={"hotwords": hotwords}))
    deps.jobs.transition(job_id, JobStatus.RUNNING)
    fields: dict[str, object] = {"hotword_hits": hits} if hits is not None else {}
    assert deps.jobs.transition(job_id, JobStatus.SUCCEEDED, transcript_key=key, finished_at=utc_now(), **fields)
    return job_id


def _refuse_matching(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a read matched hotwords against the transcript")

    monkeypatch.setattr(WordMatcher, "find", refused)


def test_get_returns_the_hits_the_worker_stored_and_matches_nothing(
        api: tuple[FlaskClient, ApiDeps], monkeypatch: pytest.MonkeyPatch) -> None:
    client, deps = api
    stored = [{"word": "Alibaba", "count": 1, "times": [{"start": 0.4, "end": 0.9}]}]
    job_id = _finished_job(deps, ["Alibaba", "OddASR"], stored)  # OddASR too is in the text: not matched again
    _refuse_matching(monkeypatch)
    for _ in range(3):
        body = client.get(f"/v1/jobs/{job_id}").get_json()
        assert body["result"]["hotword_hits"] == stored, body


def test_a_job_that_ended_before_stored_hits_gets_them_once_on_its_first_read(
        api: tuple[FlaskClient, ApiDeps], monkeypatch: pytest.MonkeyPatch) -> None:
    client, deps = api
    job_id = _finished_job(deps, ["alibaba", "Missing"], None)
    assert deps.jobs.get(job_id).hotword_hits is None
    first = client.get(f"/v1/jobs/{job_id}").get_json()["result"]["hotword_hits"]
    assert first == hotword_hits(_TRANSCRIPT, ["alibaba", "Missing"]) and first[0]["count"] == 1
    assert deps.jobs.get(job_id).hotword_hits == first
    _refuse_matching(monkeypatch)
    assert client.get(f"/v1/jobs/{job_id}").get_json()["result"]["hotword_hits"] == first


def test_deleting_a_job_forgets_its_hits(api: tuple[FlaskClient, ApiDeps]) -> None:
    _client, deps = api
    job_id = _finished_job(deps, ["Alibaba"], [{"word": "Alibaba", "count": 1, "times": []}])
    deps.jobs.clear_stored_keys(job_id)
    assert deps.jobs.get(job_id).hotword_hits is None


def test_an_openai_prompt_over_the_cap_is_refused_before_the_upload(api: tuple[FlaskClient, ApiDeps]) -> None:
    client, _deps = api
    response = client.post("/v1/audio/transcriptions", data={"model": "whisper-1",
                                                             "prompt": "word " * (MAX_HOTWORDS_CHARS // 5 + 1)})
    assert response.status_code == 400
    assert f"'prompt' is longer than {MAX_HOTWORDS_CHARS}" in response.get_json()["error"]["message"]  # OpenAI's shape


# --- real processes: the worker stores the hits; each protocol refuses too many hotwords -------
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("hotwordstack"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=0, stream_slot_wait_s=0.5) as stack:
        yield stack


@pytest.mark.integration
def test_the_worker_stores_the_hits_of_a_finished_job(stack: Stack, speech_dir: Path) -> None:
    clip = synthesize(REFERENCE_SENTENCES[1], speech_dir / "hotwords-report.wav")  # "...my office before noon..."
    with clip.open("rb") as audio:
        submitted = requests.post(stack.url("/v1/jobs"), files={"audio": ("a.wav", audio)},
                                  data={"hotwords": "office noon Tuesday"}, timeout=30)
    assert submitted.status_code == 202, submitted.text
    row = _final_row(stack, submitted.json()["id"])  # read before any GET could compute them
    assert row.status == "succeeded", row.error
    transcript = Transcript.model_validate_json(make_storage(stack.settings).get_bytes(str(row.transcript_key)))
    assert row.hotword_hits == hotword_hits(transcript, ["office", "noon", "Tuesday"])
    assert {hit["word"] for hit in row.hotword_hits} >= {"office"}
    job = requests.get(stack.url(f"/v1/jobs/{row.id}"), timeout=10).json()
    assert job["result"]["hotword_hits"] == row.hotword_hits


def _final_row(stack: Stack, job_id: str, timeout_s: float = 120.0) -> Job:
    """The job's row once it has ended, read from the database (a GET would compute missing hits)."""
    jobs = JobRepository(make_session_factory(make_engine(stack.settings.database_url)))
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        row = jobs.get(job_id)
        if row.status in TERMINAL_STATUSES:
            return row
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} not final after {timeout_s} s")


def _first_reply(url: str, first: str, subprotocols: list[str] | None = None) -> dict:
    with open_ws(url, subprotocols) as ws:
        ws.send(first)
        return json.loads(ws.recv(timeout=30))


_TOO_MANY = [f"word{i}" for i in range(MAX_HOTWORDS + 1)]
_AT_THE_CAP = _TOO_MANY[:MAX_HOTWORDS]


@pytest.mark.integration
def test_the_native_start_message_is_capped(stack: Stack) -> None:
    url = f"ws://127.0.0.1:{stack.settings.port}/v1/stream"
    reply = _first_reply(url, json.dumps({"type": "Start", "hotwords": _TOO_MANY}))
    assert reply["type"] == "Error" and reply["kind"] == "bad_request", reply
    assert f"at most {MAX_HOTWORDS} hotwords" in reply["message"]
    reply = _first_reply(url, json.dumps({"type": "Start", "hotwords": ["x" * (MAX_HOTWORDS_CHARS + 1)]}))
    assert reply["kind"] == "bad_request" and f"longer than {MAX_HOTWORDS_CHARS}" in reply["message"], reply
    # At the cap the start passes the check and waits for a stream worker (this stack has none).
    assert _first_reply(url, json.dumps({"type": "Start", "hotwords": _AT_THE_CAP}))["kind"] == "busy"


@pytest.mark.integration
def test_the_oddasr_start_message_is_capped(stack: Stack) -> None:
    url = f"ws://127.0.0.1:{stack.settings.ws_port}/v1/asr"
    reply = _first_reply(url, json.dumps({"name": "StartTranscription", "hotwords": " ".join(_TOO_MANY)}))
    assert reply["header"]["name"] == "TaskFailed" and reply["header"]["status"] == 10020001, reply
    assert f"at most {MAX_HOTWORDS} hotwords" in reply["header"]["status_text"]
    busy = _first_reply(url, json.dumps({"name": "StartTranscription", "hotwords": " ".join(_AT_THE_CAP)}))
    assert busy["header"]["status"] == 20020001, busy


@pytest.mark.integration
def test_the_funasr_start_message_is_capped(stack: Stack) -> None:
    url = f"ws://127.0.0.1:{stack.settings.funasr_ws_port}/"
    weights = json.dumps({word: 20 for word in _TOO_MANY})
    reply = _first_reply(url, json.dumps({"mode": "2pass", "hotwords": weights}), ["binary"])
    assert reply["is_final"] is True and reply["error_kind"] == "bad_request", reply
    assert f"at most {MAX_HOTWORDS} hotwords" in reply["error"]
    busy = _first_reply(url, json.dumps({"mode": "2pass", "hotwords": ",".join(_AT_THE_CAP)}), ["binary"])
    assert busy["error_kind"] == "busy", busy


@pytest.mark.integration
def test_an_openai_prompt_over_the_cap_is_a_400_from_the_real_api(stack: Stack) -> None:
    response = requests.post(stack.url("/v1/audio/transcriptions"),
                             data={"model": "whisper-1", "prompt": "p" * (MAX_HOTWORDS_CHARS + 1)},
                             files={"file": ("a.wav", b"RIFF")}, timeout=30)
    assert response.status_code == 400 and "'prompt'" in response.json()["error"]["message"], response.text


@pytest.mark.integration
def test_a_live_session_stores_its_hits_when_it_ends(stack: Stack, speech_dir: Path) -> None:
    """Last in this module: the stack gets a stream worker here (the tests above expect none)."""
    stack.start_stream_workers(1)
    try:
        stack.wait_stream_slots(1)
        clip = synthesize(REFERENCE_SENTENCES[1], speech_dir / "hotwords-report.wav")
        samples, rate_hz = soundfile.read(clip, dtype="int16")
        assert rate_hz == 16000
        pcm, frame_bytes = samples.tobytes(), 3200  # 100 ms frames, sent at about 4x real time
        received: list[dict] = []
        with open_ws(f"ws://127.0.0.1:{stack.settings.port}/v1/stream") as ws:
            ws.send(json.dumps({"type": "Start", "language": "en", "hotwords": ["office", "noon", "Tuesday"]}))
            begin = json.loads(ws.recv(timeout=30))
            assert begin["type"] == "Begin", begin
            for offset in range(0, len(pcm), frame_bytes):
                ws.send(pcm[offset:offset + frame_bytes])
                time.sleep(0.025)
            ws.send(json.dumps({"type": "Close"}))
            while not received or received[-1]["type"] not in {"Summary", "Error"}:
                received.append(json.loads(ws.recv(timeout=60)))
        assert received[-1]["type"] == "Summary", received[-3:]
        row = _final_row(stack, begin["job_id"])  # read before any GET could compute them
        transcript = Transcript.model_validate_json(make_storage(stack.settings).get_bytes(str(row.transcript_key)))
        assert row.hotword_hits == hotword_hits(transcript, ["office", "noon", "Tuesday"])
        job = requests.get(stack.url(f"/v1/jobs/{row.id}"), timeout=10).json()
        assert job["result"]["hotword_hits"] == row.hotword_hits and row.hotword_hits, job["result"]
    finally:
        stack.stop("stream-worker")
