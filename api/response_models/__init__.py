"""The answers of the API's routes other than a job's own (those are `shared.jobs.public_models`,
shared with the webhooks): each route builds its JSON through one of these models, and the
OpenAPI document's response schemas are generated from the same models (api/openapi)."""
