"""The published HTTP contract: an OpenAPI 3.1 document built from the code's own constants.

The document is Python (no YAML in the API image) and takes its enums from the modules that
enforce them (statuses, modes, formats, page size), so those cannot drift. What can drift, a
route added or removed, is caught by tests/test_openapi.py, which compares the document's
(path, method) pairs with Flask's url_map both ways; tests/test_api_fuzz.py then sends
generated requests to a real stack and checks every answer against the document.
"""
