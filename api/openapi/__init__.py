"""The published HTTP contract: an OpenAPI 3.1 document, served as JSON.

The request parts (multipart forms, query parameters, JSON bodies) are generated from the
pydantic models the routes validate with (api/request_models, via request_schemas.py), so
what a route accepts and what the document says cannot drift. The answers are still written
here, taking their enums from the modules that enforce them (statuses, modes, formats).
What can drift, a route added or removed, is caught by tests/test_openapi.py, which compares
the document's (path, method) pairs with Flask's url_map both ways; tests/test_api_fuzz.py then
sends generated requests to a real stack and checks every answer against the document.
"""
