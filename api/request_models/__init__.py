"""The request models: one pydantic model per form, query string or JSON body a route takes.

Each model is both the route's validation (the route calls `Model.parse(...)`) and the source
of that request's part of the OpenAPI document (api/openapi builds it from
`model_json_schema()`), so the published contract and what the server accepts cannot drift.
Fields whose check gives a message of its own (tests and clients read them) run the check in a
`mode="before"` validator that raises our `BadRequestError`; the type and constraints after it
are what the document shows, and pydantic enforces them too.
"""
