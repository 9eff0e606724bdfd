"""The published HTTP contract: an OpenAPI 3.1 document, served as JSON.

Both halves grow from the models the code runs on. The request parts (multipart forms, query
parameters, JSON bodies) come from the pydantic models the routes validate with
(api/request_models, via request_schemas.py); the answers' schemas come from the models the
routes build their JSON with (shared/jobs/public_models.py, api/response_models,
shared/render_models.py, via response_schemas.py). What is written by hand is the words: one
row per operation in paths.py (its summary and what each status means), built by
operations.py. tests/test_openapi.py compares the document's (path, method) pairs with Flask's
url_map both ways and checks real answers against the schemas; tests/test_api_fuzz.py sends
generated requests to a real stack and checks every answer against the document.
"""
