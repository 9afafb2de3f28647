"""One-click unsubscribe (RFC 8058) at the List-Unsubscribe URL of every bulletin."""

from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.audience.models import (
    MembershipStatus,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
)
from service.audit.services import history
from service.newsletters.models import Newsletter
from service.tracking.models import Event, EventKind
from tests.factories import DeliveryFactory, MembershipFactory, SubscriberFactory
from tests.public.conftest import Audience, delivery_tokens, messages, subscribe, tamper, text

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@dataclass
class Recipient:
    subscriber_id: int
    delivery_id: int
    issue_id: int
    path: str
    preferences_token: str


@pytest.fixture
def recipient(db_session: Session, audience: Audience) -> Recipient:
    subscriber = SubscriberFactory(email="destinataire@example.fr")
    MembershipFactory(subscriber=subscriber, segment=audience.elus)
    MembershipFactory(subscriber=subscriber, segment=audience.commerce)
    delivery = DeliveryFactory(subscriber=subscriber)
    unsubscribe, preferences = delivery_tokens(delivery.id)
    return Recipient(
        subscriber.id, delivery.id, delivery.issue_id, f"/u/{unsubscribe}", preferences
    )


@pytest.fixture
def provider(app: Flask, db_session: Session) -> FlaskClient:
    """A mail provider's client: no cookies at all."""
    return app.test_client(use_cookies=False)


def _count(db_session: Session, model: type) -> int:
    return db_session.scalar(select(func.count()).select_from(model)) or 0


def _subscriber(db_session: Session, subscriber_id: int) -> Subscriber:
    db_session.expire_all()
    subscriber = db_session.get(Subscriber, subscriber_id)
    assert subscriber is not None
    return subscriber


def test_one_click_post_without_cookie_or_csrf(
    provider: FlaskClient, db_session: Session, recipient: Recipient
) -> None:
    response = provider.post(
        recipient.path,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert "Vous êtes désinscrit de toutes nos lettres" in text(response)
    assert "Set-Cookie" not in response.headers

    subscriber = _subscriber(db_session, recipient.subscriber_id)
    assert subscriber.status is SubscriberStatus.UNSUBSCRIBED
    assert all(m.status is MembershipStatus.UNSUBSCRIBED for m in subscriber.memberships)
    assert all(m.unsubscribed_at is not None for m in subscriber.memberships)
    [suppression] = db_session.scalars(select(Suppression)).all()
    assert suppression.reason is SuppressionReason.UNSUBSCRIBED
    [event] = db_session.scalars(select(Event)).all()
    assert event.kind is EventKind.UNSUBSCRIBE
    assert (event.issue_id, event.delivery_id) == (recipient.issue_id, recipient.delivery_id)
    [entry] = history(db_session, "subscriber", recipient.subscriber_id)
    assert entry.action == "subscriber.unsubscribed"
    assert entry.details == {"via": "one-click"}


def test_one_click_is_idempotent(
    provider: FlaskClient, db_session: Session, recipient: Recipient
) -> None:
    for _ in range(2):
        assert provider.post(recipient.path, data=ONE_CLICK).status_code == 200
    assert _count(db_session, Event) == 1
    assert _count(db_session, Suppression) == 1
    assert len(history(db_session, "subscriber", recipient.subscriber_id)) == 1


def test_multipart_body_works_too(
    provider: FlaskClient, db_session: Session, recipient: Recipient
) -> None:
    response = provider.post(recipient.path, data=ONE_CLICK, content_type="multipart/form-data")
    assert response.status_code == 200
    assert _subscriber(db_session, recipient.subscriber_id).status is SubscriberStatus.UNSUBSCRIBED


def test_get_shows_a_button_and_changes_nothing(
    client: FlaskClient, db_session: Session, recipient: Recipient
) -> None:
    response = client.get(recipient.path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>Se désinscrire</h1>" in html
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in html
    assert '<form method="post">' in html  # posts to the same URL
    assert "style=" not in html
    assert _subscriber(db_session, recipient.subscriber_id).status is SubscriberStatus.ACTIVE
    assert _count(db_session, Event) == 0
    assert _count(db_session, Suppression) == 0


def test_post_without_the_one_click_body_is_refused(
    provider: FlaskClient, db_session: Session, recipient: Recipient
) -> None:
    assert provider.post(recipient.path).status_code == 400
    assert provider.post(recipient.path, data={"List-Unsubscribe": "x"}).status_code == 400
    assert _subscriber(db_session, recipient.subscriber_id).status is SubscriberStatus.ACTIVE
    assert _count(db_session, Event) == 0


def test_tampered_or_foreign_tokens_get_a_french_404(
    provider: FlaskClient, db_session: Session, recipient: Recipient
) -> None:
    token = recipient.path.rsplit("/", 1)[1]
    for path in (
        f"/u/{tamper(token)}",
        f"/u/{token[:-1]}",
        f"/u/{recipient.preferences_token}",  # right delivery, wrong kind
        f"/u/{delivery_tokens(recipient.delivery_id + 1000)[0]}",  # no such delivery
        "/u/x",
    ):
        for method in ("GET", "POST"):
            response = provider.open(path, method=method, data=ONE_CLICK)
            assert response.status_code == 404, f"{method} {path}"
            page = text(response)
            assert "Lien invalide ou expiré" in page
            assert "destinataire" not in page
    assert _subscriber(db_session, recipient.subscriber_id).status is SubscriberStatus.ACTIVE
    assert _count(db_session, Event) == 0


def test_erased_subscriber_still_answers(
    provider: FlaskClient, db_session: Session, recipient: Recipient
) -> None:
    """After erasure the delivery stays (anonymous statistics): the link still works."""
    db_session.delete(_subscriber(db_session, recipient.subscriber_id))
    db_session.commit()
    assert provider.get(recipient.path).status_code == 200
    assert provider.post(recipient.path, data=ONE_CLICK).status_code == 200
    assert _count(db_session, Event) == 1


def test_unsubscribed_address_cannot_be_subscribed_again_by_the_form(
    *,
    client: FlaskClient,
    provider: FlaskClient,
    db_session: Session,
    audience: Audience,
    recipient: Recipient,
    mail_sink: object,
) -> None:
    provider.post(recipient.path, data=ONE_CLICK)
    response = subscribe(client, "Destinataire@example.fr", [audience.elus.id])
    assert response.status_code == 200
    assert messages(mail_sink) == []
    assert _subscriber(db_session, recipient.subscriber_id).status is SubscriberStatus.UNSUBSCRIBED


def test_the_unsubscribed_page_says_where_to_write(
    provider: FlaskClient, db_session: Session, recipient: Recipient, audience: Audience
) -> None:
    # No reply-to: the sender's address.
    response = provider.post(recipient.path, data=ONE_CLICK)
    page = text(response)
    assert "Vous avez changé d'avis ? Écrivez à Agence d'urbanisme de l'Artois" in page
    assert '<a href="mailto:lettre@agence.example.org">lettre@agence.example.org</a>' in (
        response.get_data(as_text=True)
    )
    newsletter = db_session.scalars(select(Newsletter).order_by(Newsletter.id)).first()
    assert newsletter is not None
    newsletter.reply_to = "contact@aula.example.org"
    db_session.commit()
    again = provider.post(recipient.path, data=ONE_CLICK).get_data(as_text=True)
    assert '<a href="mailto:contact@aula.example.org">contact@aula.example.org</a>' in again
