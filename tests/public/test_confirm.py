"""Confirmation links: refused when tampered with, expired, or for a suppressed address."""

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from service.audience.models import (
    MembershipStatus,
    Subscriber,
    SubscriberStatus,
    SuppressionReason,
)
from service.audience.services import suppress
from service.audience.subscriptions import CONFIRM_SALT, confirmation_token, preferences_token
from tests.factories import MembershipFactory, SubscriberFactory
from tests.public.conftest import INVALID, SECRET, Audience, page_csrf, signed_ago, tamper, text


@pytest.fixture
def pending(db_session: Session, audience: Audience) -> int:
    subscriber = SubscriberFactory(email="attente@example.fr", status=SubscriberStatus.PENDING)
    MembershipFactory(subscriber=subscriber, segment=audience.elus, status=MembershipStatus.PENDING)
    return int(subscriber.id)


def _refused(client: FlaskClient, path: str) -> None:
    for method in ("GET", "POST"):
        response = client.open(
            path, method=method, data={"csrf_token": page_csrf(client, "/inscription")}
        )
        assert response.status_code == 404, f"{method} {path}"
        page = text(response)
        assert INVALID in page
        assert 'href="/inscription"' in response.get_data(as_text=True)


def _status(db_session: Session, subscriber_id: int) -> SubscriberStatus:
    db_session.expire_all()
    subscriber = db_session.get(Subscriber, subscriber_id)
    assert subscriber is not None
    return subscriber.status


def test_tampered_confirmation_token_is_refused(
    client: FlaskClient, db_session: Session, audience: Audience, pending: int
) -> None:
    token = confirmation_token(SECRET, pending, [audience.elus.id])
    _refused(client, f"/inscription/confirmer/{tamper(token)}")
    _refused(client, f"/inscription/confirmer/{token[:-1]}")
    _refused(client, "/inscription/confirmer/n-importe-quoi")
    assert _status(db_session, pending) is SubscriberStatus.PENDING


def test_expired_confirmation_token_is_refused(
    client: FlaskClient, db_session: Session, audience: Audience, pending: int
) -> None:
    old = signed_ago(CONFIRM_SALT, [pending, [audience.elus.id]], 8 * 86400)
    _refused(client, f"/inscription/confirmer/{old}")
    assert _status(db_session, pending) is SubscriberStatus.PENDING
    # Six days old still works.
    recent = signed_ago(CONFIRM_SALT, [pending, [audience.elus.id]], 6 * 86400)
    path = f"/inscription/confirmer/{recent}"
    assert client.post(path, data={"csrf_token": page_csrf(client, path)}).status_code == 200
    assert _status(db_session, pending) is SubscriberStatus.ACTIVE


def test_token_of_another_purpose_is_refused(
    client: FlaskClient, audience: Audience, pending: int
) -> None:
    _refused(client, f"/inscription/confirmer/{preferences_token(SECRET, pending)}")


def test_suppressed_since_the_link_was_sent(
    client: FlaskClient, db_session: Session, audience: Audience, pending: int
) -> None:
    """An old link never brings back an address that asked to hear nothing more."""
    token = confirmation_token(SECRET, pending, [audience.elus.id])
    suppress(db_session, SECRET, "attente@example.fr", SuppressionReason.UNSUBSCRIBED)
    db_session.commit()
    _refused(client, f"/inscription/confirmer/{token}")
    assert _status(db_session, pending) is SubscriberStatus.PENDING
