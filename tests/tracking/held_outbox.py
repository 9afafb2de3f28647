"""gunicorn's factory for ``test_worker``: the production app, but its tracking outbox
never pushes on a timer, so only the push at exit can bring its hits to Redis."""

from flask import Flask

from service import create_app
from service.tracking import ingest


def app() -> Flask:
    ingest.PUSH_INTERVAL = 3600.0
    ingest.PUSH_SIZE = 10**9
    return create_app()
