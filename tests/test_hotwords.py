"""Hotword sets: the original's file format, weights, versions, jobs that use them, hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.app import create_app
from shared.errors import BadRequestError
from shared.hotwords import (
    DEFAULT_WEIGHT,
    HotwordEntry,
    by_weight,
    entries_from_json,
    hotword_hits,
    parse_hotword_lines,
)
from shared.transcript import Segment, Transcript, Word
from tests.test_api_validation import make_settings, post, wav_bytes


def test_the_original_file_format_with_weights_phrases_and_comments() -> None:
    entries = parse_hotword_lines("\ufeffAlibaba 20\n# comment\n\nJane Doe 30\nOddASR\nalibaba 5\nNoise 0\n")
    assert entries == [HotwordEntry("alibaba", 5), HotwordEntry("Jane Doe", 30), HotwordEntry("OddASR", DEFAULT_WEIGHT),
                       HotwordEntry("Noise", 0)]
    assert [e.word for e in by_weight(entries)] == ["Jane Doe", "OddASR", "alibaba"]  # heaviest first, 0 dropped


@pytest.mark.parametrize(("text", "words"), [
    ("word 101", "0 to 100"), ("word -1", "0 to 100"), ("42", "weight without a word"), ("x" * 101, "characters"),
])
def test_bad_lines_are_refused_naming_the_line(text: str, words: str) -> None:
    with pytest.raises(BadRequestError, match=words) as refused:
        parse_hotword_lines(f"fine 10\n{text}")
    assert "line 2" in refused.value.message


def test_json_entries_are_checked_like_the_file() -> None:
    assert entries_from_json([{"word": "Alibaba", "weight": 20}, "OddASR"]) == [
        HotwordEntry("Alibaba", 20), HotwordEntry("OddASR", DEFAULT_WEIGHT)]
    for bad in ([{"word": "x", "weight": "high"}], [42], {"word": "x"}):
        with pytest.raises(BadRequestError):
            entries_from_json(bad)


def test_hits_say_which_hotwords_appear_how_often_and_when() -> None:
    transcript = Transcript.from_segments([
        Segment(start_s=0.0, end_s=2.0, text="Ask Alibaba about OddASR.",
                words=[Word(word=" Ask", start_s=0.0, end_s=0.3), Word(word=" Alibaba", start_s=0.4, end_s=0.9),
                       Word(word=" about", start_s=1.0, end_s=1.2), Word(word=" OddASR.", start_s=1.3, end_s=1.9)]),
        Segment(start_s=3.0, end_s=5.0, text="alibaba again, and Jane Doe."),
    ], language="en", duration_s=5.0, engine="e", model="m")
    hits = {hit["word"]: hit for hit in hotword_hits(transcript, ["Alibaba", "OddASR", "Jane Doe", "Missing"])}
    assert hits["Alibaba"]["count"] == 2
    assert hits["Alibaba"]["times"] == [{"start": 0.4, "end": 0.9}, {"start": 3.0, "end": 5.0}]
    assert hits["OddASR"]["times"] == [{"start": 1.3, "end": 1.9}]
    assert hits["Jane Doe"]["count"] == 1 and "Missing" not in hits
    assert hotword_hits(transcript, []) == []


def test_sets_are_created_replaced_versioned_listed_and_deleted(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    with create_app(make_settings(tmp_path, redis_server.url)).test_client() as client:
        created = client.put("/v1/hotwords/products", data="Alibaba 20\nOddASR 40\n", content_type="text/plain")
        assert created.status_code == 201, created.get_data(as_text=True)
        assert created.get_json()["version"] == "1" and created.get_json()["count"] == 2
        replaced = client.put("/v1/hotwords/products", json={"words": [{"word": "Qwen", "weight": 50}, "OddASR"]})
        assert replaced.status_code == 200 and replaced.get_json()["version"] == "2"
        assert [w["word"] for w in client.get("/v1/hotwords/products").get_json()["words"]] == ["Qwen", "OddASR"]
        listing = client.get("/v1/hotwords").get_json()
        assert [s["name"] for s in listing["sets"]] == ["products"] and listing["default"] is None
        for name, body in (("default", "x"), ("bad name!", "x"), ("empty", "# only a comment\n")):
            assert client.put(f"/v1/hotwords/{name}", data=body, content_type="text/plain").status_code == 400
        assert client.delete("/v1/hotwords/products").status_code == 200
        assert client.get("/v1/hotwords/products").status_code == 404
        assert client.delete("/v1/hotwords/products").status_code == 404


def test_a_job_records_its_set_version_and_the_words_heaviest_first(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    hotwords_file = tmp_path / "hotwords"
    hotwords_file.write_text("Alibaba 20\nOddASR 40\n", encoding="utf-8")
    settings = make_settings(tmp_path, redis_server.url, hotwords_path=hotwords_file)
    with create_app(settings).test_client() as client:
        client.put("/v1/hotwords/names", data="Jane Doe 30\nQwen 90\n", content_type="text/plain")
        options = post(client, wav_bytes(1.0), hotword_set="names", hotwords="extra Qwen").get_json()["options"]
        assert options["hotwords"] == ["Qwen", "Jane Doe", "extra"]  # the set's weights, then the request's own
        assert options["hotword_set"] == "names" and options["hotword_set_version"] == "1"
        assert options["hotword_weights"] == {"Qwen": 90, "Jane Doe": 30, "extra": DEFAULT_WEIGHT}
        default = post(client, wav_bytes(1.0)).get_json()["options"]  # the server's file, when no set is named
        assert default["hotwords"] == ["OddASR", "Alibaba"] and default["hotword_set"] == "default"
        assert default["hotword_set_version"].startswith("file-")
        assert post(client, wav_bytes(1.0), hotword_set="none").get_json()["options"]["hotwords"] == []
        unknown = post(client, wav_bytes(1.0), hotword_set="nope")
        assert unknown.status_code == 400 and "GET /v1/hotwords" in unknown.get_json()["error"]
        assert client.get("/v1/hotwords/default").get_json()["read_only"] is True


def test_a_hotword_file_that_cannot_be_read_stops_the_api(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError, match="hotword file"):
        create_app(make_settings(tmp_path, redis_server.url, hotwords_path=tmp_path / "missing"))
    (tmp_path / "bad").write_text("word 500\n")
    with pytest.raises(RuntimeError, match="0 to 100"):
        create_app(make_settings(tmp_path, redis_server.url, hotwords_path=tmp_path / "bad"))
