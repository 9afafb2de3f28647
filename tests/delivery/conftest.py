from collections.abc import Iterator

import pytest
from flask import Flask


@pytest.fixture(autouse=True)
def app_context(app: Flask) -> Iterator[None]:
    # Use cases enqueue follow-up tasks through the app's Celery (memory broker here).
    with app.app_context():
        yield
