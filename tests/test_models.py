import datetime as dt

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from service.delivery.models import Delivery, DeliveryStatus
from service.issues.models import Issue
from service.tracking.models import Event, EventKind
from tests.factories import IssueFactory, SubscriberFactory


def test_one_delivery_per_issue_and_subscriber(db_session: Session) -> None:
    issue, subscriber = IssueFactory(), SubscriberFactory()
    db_session.add(Delivery(issue_id=issue.id, subscriber_id=subscriber.id))
    db_session.flush()
    db_session.add(Delivery(issue_id=issue.id, subscriber_id=subscriber.id))
    with pytest.raises(IntegrityError):
        db_session.flush()


def test_subscriber_emails_are_unique(db_session: Session) -> None:
    SubscriberFactory(email="jean.dupont@mairie-lens.example.fr")
    with pytest.raises(IntegrityError):
        SubscriberFactory(email="jean.dupont@mairie-lens.example.fr")


def test_datetimes_come_back_aware_in_utc(db_session: Session) -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    issue = IssueFactory(scheduled_at=dt.datetime(2027, 1, 16, 9, 30, tzinfo=paris))
    db_session.expire_all()
    stored = db_session.get(Issue, issue.id)
    assert stored is not None
    assert stored.scheduled_at is not None
    assert stored.scheduled_at == dt.datetime(2027, 1, 16, 8, 30, tzinfo=dt.UTC)
    assert stored.scheduled_at.utcoffset() == dt.timedelta(0)


def test_naive_datetimes_are_refused(db_session: Session) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        IssueFactory(scheduled_at=dt.datetime(2027, 1, 16, 9, 30))  # noqa: DTZ001


def test_stale_issue_edit_is_detected(db_session: Session) -> None:
    """Two people edit the same issue: the second save, based on an old version, fails."""
    issue = IssueFactory(title="Version de Claire")
    db_session.commit()
    # Karim saves first (another request, another session: a Core UPDATE here).
    table = Issue.__table__
    db_session.execute(
        update(table)
        .where(table.c.id == issue.id)
        .values(title="Version de Karim", version=table.c.version + 1)
    )
    db_session.commit()
    issue.title = "Version de Claire, modifiée"
    with pytest.raises(StaleDataError):
        db_session.flush()
    db_session.rollback()
    assert db_session.scalar(select(Issue.title).where(Issue.id == issue.id)) == "Version de Karim"


def test_delivery_defaults_and_terminal_states(db_session: Session) -> None:
    issue, subscriber = IssueFactory(), SubscriberFactory()
    delivery = Delivery(issue_id=issue.id, subscriber_id=subscriber.id)
    db_session.add(delivery)
    db_session.flush()
    assert delivery.status is DeliveryStatus.QUEUED
    assert delivery.attempts == 0
    assert not DeliveryStatus.DEFERRED.is_terminal
    assert DeliveryStatus.UNKNOWN.is_terminal


def test_events_survive_subscriber_erasure(db_session: Session) -> None:
    issue, subscriber = IssueFactory(), SubscriberFactory()
    delivery = Delivery(issue_id=issue.id, subscriber_id=subscriber.id)
    db_session.add(delivery)
    db_session.flush()
    db_session.add(Event(kind=EventKind.OPEN, issue_id=issue.id, delivery_id=delivery.id))
    db_session.delete(subscriber)
    db_session.flush()
    db_session.expire_all()
    assert db_session.get(Delivery, delivery.id).subscriber_id is None  # type: ignore[union-attr]
    assert db_session.scalar(select(Event.issue_id)) == issue.id
