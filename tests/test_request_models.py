"""The request models are the routes' validation and the contract's request parts at once:
what a route reads is what the document lists, and a refusal keeps the message clients act on.
(Units: no stack. The routes' answers are checked end to end by tests/test_api_validation.py,
tests/test_openai_errors.py and, against the document, tests/test_api_fuzz.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from api.openapi.document import build_document
from api.request_models.bodies import HotwordSetBody, NewApiKey
from api.request_models.job_form import JobForm
from api.request_models.openai_form import KNOWN_MODELS, TranscriptionForm
from api.request_models.queries import JobListQuery, TranscriptQuery
from api.request_models.speaker_form import SpeakerForm
from shared.errors import BadRequestError

DOCUMENT = build_document(auth_required=True, version="test")


def _form_fields(path: str) -> set[str]:
    body = DOCUMENT["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    return set(body["properties"])


def _field_names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


@pytest.mark.parametrize(("path", "model", "files"), [
    ("/v1/jobs", JobForm, {"audio"}),
    ("/v1/asr", JobForm, {"audio"}),
    ("/v1/audio/transcriptions", TranscriptionForm, {"file"}),
    ("/v1/speakers", SpeakerForm, {"audio"}),
])
def test_every_field_a_form_reads_is_documented_and_nothing_else(path: str, model: type[BaseModel],
                                                                 files: set[str]) -> None:
    """Before the models, `mask_sensitive_words` was read from the job form but missing from the document."""
    assert _form_fields(path) == _field_names(model) | files


def test_the_fixed_mode_variants_document_the_form_without_mode() -> None:
    assert _form_fields("/v1/asr/file") == _field_names(JobForm) - {"mode"} | {"audio"}


def test_query_parameters_and_json_bodies_come_from_the_models() -> None:
    listed = {p["name"] for p in DOCUMENT["paths"]["/v1/jobs"]["get"]["parameters"]}
    assert listed == _field_names(JobListQuery)
    transcript = {p["name"] for p in DOCUMENT["paths"]["/v1/jobs/{job_id}/transcript"]["get"]["parameters"]}
    assert transcript == _field_names(TranscriptQuery) | {"job_id"}
    schemas = DOCUMENT["components"]["schemas"]
    assert set(schemas["NewApiKey"]["properties"]) == _field_names(NewApiKey)
    assert set(schemas["HotwordSetBody"]["properties"]) == _field_names(HotwordSetBody)
    assert "title" not in str(schemas["NewApiKey"])  # pydantic's titles are not part of the contract


@pytest.mark.parametrize(("model", "data", "message"), [
    (JobForm, {"mode": "stream"}, "unknown mode 'stream': use one of file, sentence"),
    (JobForm, {"output_format": "pdf"}, "unknown output_format 'pdf'"),
    (JobForm, {"diarize": "maybe"}, "'diarize' must be true or false, not 'maybe'"),
    (JobForm, {"diarize": "1", "min_speakers": "two"}, "'min_speakers' must be a whole number of speakers"),
    (JobForm, {"min_speakers": "2"}, "min_speakers and max_speakers need diarize=true"),
    (JobForm, {"diarize": "1", "min_speakers": "3", "max_speakers": "2"}, "min_speakers is larger than max_speakers"),
    (JobForm, {"identify_speakers": "true"}, "identify_speakers names the speakers that diarization finds"),
    (JobForm, {"language": "english!"}, "'language' must be a language code"),
    (JobForm, {"hotwords": "x" * 2001}, "'hotwords' is longer than 2000 characters"),
    (JobForm, {"hotword": " ".join(["w"] * 201)}, "at most 200 hotwords are accepted, got 201"),
    (JobForm, {"use_itn": "perhaps"}, "'use_itn' must be true or false"),
    (JobListQuery, {"limit": "0"}, "'limit' must be between 1 and 100"),
    (JobListQuery, {"offset": "x"}, "'offset' must be an integer, not 'x'"),
    (JobListQuery, {"status": "done"}, "unknown status 'done': use one of queued"),
    (TranscriptQuery, {"format": "pdf"}, "unknown format 'pdf'"),
    (NewApiKey, {}, "'name' is required: a string of 1 to 128 characters"),
    (NewApiKey, {"name": ""}, "a key needs a name of 1 to 128 characters"),
    (NewApiKey, {"name": "a", "admin": "yes"}, "'admin' must be true or false"),
    (NewApiKey, {"name": "a", "max_jobs_in_flight": -1}, "'max_jobs_in_flight' must be a whole number, 0 or more"),
    (NewApiKey, {"name": "a", "requests_per_minute": 2**40}, "requests_per_minute must be between 0 and"),
    (HotwordSetBody, {"words": []}, "the set holds no hotwords"),
    (HotwordSetBody, {"words": "Alibaba"}, '"words" must be a list'),
    (SpeakerForm, {}, "missing the speaker's 'name'"),
    (SpeakerForm, {"name": "<b>"}, "may not hold '<', '>' or control characters"),
    (SpeakerForm, {"name": "Ann", "wait": "later"}, "'wait' must be true or false"),
])
def test_a_refusal_keeps_the_message_clients_act_on(model: type[Any], data: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequestError) as refusal:
        model.parse(data)
    assert message in str(refusal.value)


def test_the_openai_form_names_the_field_at_fault_in_param() -> None:
    context = {KNOWN_MODELS: ["whisper-1"]}
    for data, param in (({"model": "gpt-4o"}, "model"), ({"response_format": "xml"}, "response_format"),
                        ({"prompt": "x" * 2001}, None), ({"language": "??"}, "language")):
        with pytest.raises(BadRequestError) as refusal:
            TranscriptionForm.parse(data, context=context)
        assert refusal.value.param == param, data
    form = TranscriptionForm.parse({"prompt": " Alibaba ", "timestamp_granularities[]": ["word"]}, context=context)
    assert form.hotwords == ["Alibaba"] and form.timestamp_granularities == ["word"]


def test_values_are_normalised_as_the_routes_always_did() -> None:
    form = JobForm.parse({"mode": " SENTENCE ", "output_format": "", "diarize": "on", "min_speakers": "2",
                          "language": "en-US", "hotwords": "", "hotword": "Alibaba,OddASR", "use_itn": ""})
    assert (form.mode, form.output_format, form.diarize, form.min_speakers) == ("sentence", "txt", True, 2)
    assert form.language == "en" and form.use_itn is None and form.hotword == "Alibaba,OddASR"
    assert SpeakerForm.parse({"name": "  Ann   Lee "}).name == "Ann Lee"
    assert NewApiKey.parse({"name": "team", "max_jobs_in_flight": 3}).limits.max_jobs_in_flight == 3
