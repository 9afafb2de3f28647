"""Sending requests a publisher can make at the wrong moment: twice at once, to an
empty audience, for someone who unsubscribed in the meantime."""

import datetime as dt
import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from service.accounts.models import Role, User
from service.audience.models import SubscriberStatus
from service.config import Config
from service.delivery import services
from service.delivery.models import Delivery, DeliveryStatus
from service.delivery.sender import SmtpSender
from service.issues.models import Issue, IssueStatus
from tests.delivery.faults import RECIPIENTS, seed
from tests.delivery.test_sending import Receiver, _approved_issue, receiver  # noqa: F401
from tests.factories import MembershipFactory, SegmentFactory, SubscriberFactory, UserFactory
from tests.processes import truncate_all


def test_an_empty_audience_is_refused_with_the_reason(db_session: Session) -> None:
    segment = SegmentFactory(slug="vide")
    MembershipFactory(
        segment=segment, subscriber=SubscriberFactory(status=SubscriberStatus.BOUNCED)
    )
    issue = _approved_issue(db_session, segment)
    with pytest.raises(services.DeliveryError, match="aucun abonné actif"):
        services.start_sending(db_session, issue, UserFactory(role=Role.PUBLISHER))
    db_session.rollback()
    db_session.expire_all()
    assert db_session.get(Issue, issue.id).status is IssueStatus.APPROVED  # type: ignore[union-attr]
    assert db_session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_a_scheduled_issue_whose_segments_emptied_goes_back_with_the_reason(
    db_session: Session,
) -> None:
    full, empty = SegmentFactory(slug="elus"), SegmentFactory(slug="vide")
    MembershipFactory(segment=full)
    ready = _approved_issue(db_session, full)
    stranded = _approved_issue(db_session, empty)
    user = UserFactory(role=Role.PUBLISHER)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    for issue in (ready, stranded):
        services.start_sending(db_session, issue, user, at=soon)
        issue.scheduled_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    db_session.commit()
    assert services.start_due(db_session) == [ready.id]
    db_session.expire_all()
    assert db_session.get(Issue, ready.id).status is IssueStatus.SENDING  # type: ignore[union-attr]
    back = db_session.get(Issue, stranded.id)
    assert back is not None
    assert back.status is IssueStatus.APPROVED
    assert "aucun abonné actif" in (back.send_error or "")


def test_unsubscribed_before_the_claim_never_receives_it(
    db_session: Session,
    receiver: tuple[Receiver, Config],  # noqa: F811
) -> None:
    handler, config = receiver
    segment = SegmentFactory(slug="elus")
    leaving = SubscriberFactory(email="part@lens.fr")
    for subscriber in (leaving, SubscriberFactory(email="reste@lens.fr")):
        MembershipFactory(segment=segment, subscriber=subscriber)
    issue = _approved_issue(db_session, segment)
    services.start_sending(db_session, issue, UserFactory(role=Role.PUBLISHER))
    leaving.status = SubscriberStatus.UNSUBSCRIBED  # one click, after the snapshot
    db_session.commit()
    with SmtpSender(config) as sender:
        services.send_batch(db_session, issue.id, config, sender, owner="t")
    assert [rcpts for rcpts, _raw in handler.messages] == [["reste@lens.fr"]]
    statuses = set(db_session.scalars(select(Delivery.status)))
    assert statuses == {DeliveryStatus.SENT, DeliveryStatus.CANCELLED}


@pytest.mark.postgres_only
def test_two_send_clicks_at_once_make_one_snapshot(engine: Engine, app: Flask) -> None:
    """Two publishers press « Envoyer » together: one wins, the other is refused."""
    issue_id = seed(engine)  # committed for real: two connections must see it
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def click() -> None:
        with app.app_context(), factory() as session:
            mine = session.get(Issue, issue_id)
            user = session.scalars(select(User)).one()
            assert mine is not None
            barrier.wait()
            try:
                outcomes.append(services.start_sending(session, mine, user))
            except Exception as error:  # noqa: BLE001 - the loser's refusal is the point
                session.rollback()
                outcomes.append(error)

    try:
        threads = [threading.Thread(target=click) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert RECIPIENTS in outcomes, outcomes
        refused = [o for o in outcomes if isinstance(o, Exception)]
        assert [type(o) for o in refused] == [services.DeliveryError], outcomes
        with factory() as check:
            assert check.scalar(select(func.count()).select_from(Delivery)) == RECIPIENTS
    finally:
        truncate_all(engine)
