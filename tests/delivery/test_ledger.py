"""The production write path on PostgreSQL (what the worker runs): a session on the
engine, attempts and outcomes through the batch's autocommit connection, each
message's outcome written with the next one's attempt."""

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session as OrmSession

from service import create_app
from service.accounts.models import User
from service.db import Session
from service.delivery import services
from service.delivery.models import Delivery, DeliveryStatus
from service.delivery.sender import SmtpSender
from service.issues.models import Issue, IssueStatus
from tests.conftest import free_port, make_config
from tests.delivery.faults import Counting, seed
from tests.processes import truncate_all

pytestmark = pytest.mark.postgres_only
COUNT = 450  # more than two batches


@pytest.fixture
def live(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[tuple[Flask, Counting]]:
    receiver = Counting()
    smtp = Controller(receiver, hostname="127.0.0.1", port=free_port())
    smtp.start()
    app = create_app(make_config(tmp_path / "app", database_url, smtp_port=smtp.port))
    try:
        yield app, receiver
    finally:
        smtp.stop()
        app.extensions["engine"].dispose()
        truncate_all(engine)


def test_batches_through_the_ledger(engine: Engine, live: tuple[Flask, Counting]) -> None:
    app, receiver = live
    issue_id = seed(engine, COUNT)
    config = app.extensions["lettrine_config"]
    with app.app_context():
        session = Session()
        issue = session.get(Issue, issue_id)
        assert services.start_sending(session, issue, session.scalars(select(User)).one()) == COUNT
        with SmtpSender(config) as sender:
            while services.send_batch(Session(), issue_id, config, sender, owner="w").more:
                # The session is the engine's: nothing of the batch is left uncommitted.
                assert not Session().in_transaction()
        Session.remove()
    with OrmSession(engine) as check:
        assert check.scalar(select(Issue.status).where(Issue.id == issue_id)) is IssueStatus.SENT
        rows = check.execute(
            select(Delivery.status, Delivery.attempts, Delivery.message_id, Delivery.leased_by)
        ).all()
        assert Counter(r.status for r in rows) == {DeliveryStatus.SENT: COUNT}
        assert {r.attempts for r in rows} == {1}
        assert all(r.message_id and r.message_id.startswith(f"{issue_id}.") for r in rows)
        assert {r.leased_by for r in rows} == {None}
        assert check.scalar(select(func.count(func.distinct(Delivery.message_id)))) == COUNT
    assert receiver.total == COUNT
    assert set(receiver.received.values()) == {1}


def test_the_last_outcome_of_a_batch_is_written(
    engine: Engine, live: tuple[Flask, Counting]
) -> None:
    """The outcome waiting for a next attempt that never comes (end of batch, pause)."""
    app, _receiver = live
    issue_id = seed(engine, 3)
    config = app.extensions["lettrine_config"]
    with app.app_context():
        session = Session()
        services.start_sending(
            session, session.get(Issue, issue_id), session.scalars(select(User)).one()
        )
        with SmtpSender(config) as sender:
            result = services.send_batch(Session(), issue_id, config, sender, owner="w")
        Session.remove()
    assert result.sent == 3
    with OrmSession(engine) as check:
        assert set(check.scalars(select(Delivery.status))) == {DeliveryStatus.SENT}
