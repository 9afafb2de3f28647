"""Pause, resume and cancel with real workers: they act within a second, and a paused
then resumed issue reaches each remaining recipient exactly once."""

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession

from service.accounts.models import User
from service.db import Session
from service.delivery import services
from service.delivery.models import Delivery, DeliveryStatus
from service.issues.models import Issue
from tests.conftest import TEST_REDIS_URL
from tests.delivery.faults import RECIPIENTS, Run, sending
from tests.processes import truncate_all

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]
DELAY = 0.01  # the receiver takes 10 ms a message: the issue lasts long enough to act on


def _act(run: Run, action: str) -> float:
    """Pause, resume or cancel as the publisher does; returns when it was committed."""
    with run.app.app_context():
        session = Session()
        issue = session.get(Issue, run.issue_id)
        user = session.scalars(select(User)).one()
        assert issue is not None
        if action == "cancel":
            services.cancel(session, issue, user)
        else:
            services.set_paused(session, issue, user, paused=action == "pause")
        Session.remove()
    return time.monotonic()


def _quiet_since(run: Run, seconds: float) -> float:
    """Wait until no message has arrived for ``seconds``; return when the last one did."""
    last_total, last_change = run.receiver.total, time.monotonic()
    while time.monotonic() - last_change < seconds:
        run.receiver.wait_for(last_total + 1, seconds)
        if run.receiver.total != last_total:
            last_total, last_change = run.receiver.total, time.monotonic()
    return run.receiver.last_at


@pytest.fixture
def clean(engine: Engine) -> object:
    yield None
    truncate_all(engine)


def test_pause_then_resume(engine: Engine, database_url: str, tmp_path: Path, clean: None) -> None:
    with sending(engine, database_url, TEST_REDIS_URL, tmp_path) as run:
        run.receiver.delay = DELAY
        assert run.receiver.wait_for(RECIPIENTS // 10, 120), run.tail()
        paused_at = _act(run, "pause")
        last = _quiet_since(run, 3)
        assert last - paused_at < 1.0  # the messages on the wire, then nothing
        during_pause = run.receiver.total
        assert during_pause < RECIPIENTS
        _act(run, "resume")
        assert run.finished(240), run.tail()
        missing, extra = run.receiver.verdict()
    assert (missing, extra) == (set(), 0)


def test_cancel_stops_within_a_second(
    engine: Engine, database_url: str, tmp_path: Path, clean: None
) -> None:
    with sending(engine, database_url, TEST_REDIS_URL, tmp_path) as run:
        run.receiver.delay = DELAY
        assert run.receiver.wait_for(RECIPIENTS // 10, 120), run.tail()
        cancelled_at = _act(run, "cancel")
        last = _quiet_since(run, 3)
        assert last - cancelled_at < 1.0
        with OrmSession(engine) as check:
            statuses = list(check.scalars(select(Delivery.status)))
        sent = statuses.count(DeliveryStatus.SENT)
        # Every message is either out (and received once) or cancelled; none left open.
        assert sent == run.receiver.total
        assert statuses.count(DeliveryStatus.CANCELLED) == RECIPIENTS - sent
        _missing, extra = run.receiver.verdict()
    assert extra == 0
