"""Tasks leave only with a committed transaction."""

from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from service.taskqueue import enqueue_after_commit
from tests.factories import SegmentFactory


@pytest.fixture
def sent(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    # The broker is the boundary: record what would be published to it.
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        app.extensions["celery"],
        "send_task",
        lambda name, args, kwargs: calls.append((name, args)),  # noqa: ARG005
    )
    return calls


def test_sent_on_commit(app: Flask, db_session: Session, sent: list[tuple[str, Any]]) -> None:
    with app.app_context():
        SegmentFactory.build()
        enqueue_after_commit(db_session(), "lettrine.system.heartbeat", "a")  # type: ignore[operator]
        assert sent == []
        db_session.commit()
    assert sent == [("lettrine.system.heartbeat", ("a",))]


def test_dropped_on_rollback(app: Flask, db_session: Session, sent: list[tuple[str, Any]]) -> None:
    with app.app_context():
        session = db_session()  # type: ignore[operator]
        enqueue_after_commit(session, "lettrine.system.heartbeat", "b")
        session.rollback()
        SegmentFactory()  # an unrelated commit afterwards
        session.commit()
    assert sent == []
