"""Prometheus metrics plumbing shared by the API and the workers (no metric definitions).

Each process group (an API's gunicorn master and its workers, a Celery node and its prefork
children, the stream worker supervisor and its children) writes its metrics through
prometheus_client's multiprocess mode into a directory of its own, and one process of the
group serves them all: the API at `/metrics`, the workers on a port of their own.
"""
