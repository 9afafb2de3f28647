"""The preference centre: opened by a bulletin's per-delivery link or by one of ours."""

from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.audience.models import (
    Membership,
    MembershipStatus,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
)
from service.audience.services import address_hmac
from service.audience.subscriptions import PREFERENCES_SALT, preferences_token
from service.audit.services import history
from service.tracking.models import Event, EventKind
from tests.factories import DeliveryFactory, MembershipFactory, SubscriberFactory
from tests.public.conftest import (
    INVALID,
    SECRET,
    Audience,
    delivery_tokens,
    page_csrf,
    signed_ago,
    tamper,
    text,
)


@dataclass
class Reader:
    subscriber_id: int
    delivery_id: int
    path: str  # the bulletin's preferences link
    unsubscribe_path: str


@pytest.fixture
def reader(db_session: Session, audience: Audience) -> Reader:
    subscriber = SubscriberFactory(
        email="lecteur@example.fr", first_name="Paul", last_name="Martin", commune="Lens"
    )
    MembershipFactory(subscriber=subscriber, segment=audience.elus)
    MembershipFactory(subscriber=subscriber, segment=audience.private)
    delivery = DeliveryFactory(subscriber=subscriber)
    unsubscribe, preferences = delivery_tokens(delivery.id)
    return Reader(subscriber.id, delivery.id, f"/preferences/{preferences}", f"/u/{unsubscribe}")


def _subscriber(db_session: Session, subscriber_id: int) -> Subscriber:
    db_session.expire_all()
    subscriber = db_session.get(Subscriber, subscriber_id)
    assert subscriber is not None
    return subscriber


def _memberships(db_session: Session, subscriber_id: int) -> dict[int, Membership]:
    return {m.segment_id: m for m in _subscriber(db_session, subscriber_id).memberships}


def test_page_shows_details_and_public_segments(
    client: FlaskClient, audience: Audience, reader: Reader
) -> None:
    response = client.get(reader.path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>Mes abonnements</h1>" in html
    assert "lecteur@example.fr" in html
    assert 'value="Paul"' in html
    assert 'value="Lens"' in html
    assert f'value="{audience.elus.id}" checked' in html
    assert f'value="{audience.commerce.id}">' in html
    assert "Partenaires (interne)" not in html
    assert "Me désinscrire de toutes les lettres" in html
    assert "style=" not in html
    assert "<script" not in html


def test_saving_preferences(
    client: FlaskClient, db_session: Session, audience: Audience, reader: Reader
) -> None:
    response = client.post(
        reader.path,
        data={
            "csrf_token": page_csrf(client, reader.path),
            "action": "save",
            "segments": [audience.commerce.id],
            "first_name": "Paul",
            "last_name": "Martin-Dubois",
            "civility": "M.",
            "commune": "",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == reader.path
    assert "Vos préférences sont enregistrées." in text(client.get(reader.path))

    subscriber = _subscriber(db_session, reader.subscriber_id)
    assert subscriber.last_name == "Martin-Dubois"
    assert subscriber.civility == "M."
    assert subscriber.commune is None
    assert subscriber.status is SubscriberStatus.ACTIVE
    memberships = _memberships(db_session, reader.subscriber_id)
    assert memberships[audience.elus.id].status is MembershipStatus.UNSUBSCRIBED
    assert memberships[audience.elus.id].unsubscribed_at is not None
    assert memberships[audience.commerce.id].status is MembershipStatus.ACTIVE
    assert memberships[audience.commerce.id].confirmed_at is not None
    # Segments not offered to the public are not the preference centre's business.
    assert memberships[audience.private.id].status is MembershipStatus.ACTIVE
    [entry] = history(db_session, "subscriber", reader.subscriber_id)
    assert entry.action == "subscriber.preferences_updated"
    assert entry.details == {"joined": [audience.commerce.id], "left": [audience.elus.id]}

    # Ticking a box again brings the segment back.
    client.post(
        reader.path,
        data={
            "csrf_token": page_csrf(client, reader.path),
            "action": "save",
            "segments": [audience.commerce.id, audience.elus.id],
        },
    )
    memberships = _memberships(db_session, reader.subscriber_id)
    assert memberships[audience.elus.id].status is MembershipStatus.ACTIVE
    assert memberships[audience.elus.id].unsubscribed_at is None


def test_invalid_input_is_announced(
    client: FlaskClient, db_session: Session, audience: Audience, reader: Reader
) -> None:
    response = client.post(
        reader.path,
        data={
            "csrf_token": page_csrf(client, reader.path),
            "action": "save",
            "first_name": "x" * 101,
            "segments": [audience.private.id],
        },
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'aria-invalid="true"' in html
    assert 'role="alert"' in html
    assert _subscriber(db_session, reader.subscriber_id).first_name == "Paul"


def test_unsubscribe_from_everything(
    client: FlaskClient, db_session: Session, audience: Audience, reader: Reader
) -> None:
    token = page_csrf(client, reader.path)
    for _ in range(2):  # twice: the second changes nothing
        response = client.post(reader.path, data={"csrf_token": token, "action": "unsubscribe_all"})
        assert response.status_code == 200
        assert "Désinscription" in text(response)

    subscriber = _subscriber(db_session, reader.subscriber_id)
    assert subscriber.status is SubscriberStatus.UNSUBSCRIBED
    assert all(m.status is MembershipStatus.UNSUBSCRIBED for m in subscriber.memberships)
    assert all(m.unsubscribed_at is not None for m in subscriber.memberships)
    [suppression] = db_session.scalars(select(Suppression)).all()
    assert suppression.reason is SuppressionReason.UNSUBSCRIBED
    assert suppression.address_hmac == address_hmac(SECRET, "lecteur@example.fr")
    actions = [e.action for e in history(db_session, "subscriber", reader.subscriber_id)]
    assert actions == ["subscriber.unsubscribed"]
    # The bulletin whose link was used is credited with one unsubscribe.
    events = db_session.scalars(select(Event).where(Event.kind == EventKind.UNSUBSCRIBE)).all()
    assert [e.delivery_id for e in events] == [reader.delivery_id]
    # The page now says so, and offers nothing to tick.
    page = client.get(reader.path)
    assert "Cette adresse ne reçoit plus nos lettres." in text(page)
    assert "Enregistrer mes préférences" not in text(page)


def test_post_without_csrf_token_changes_nothing(
    client: FlaskClient, db_session: Session, audience: Audience, reader: Reader
) -> None:
    assert client.post(reader.path, data={"action": "unsubscribe_all"}).status_code == 400
    assert _subscriber(db_session, reader.subscriber_id).status is SubscriberStatus.ACTIVE
    assert db_session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_our_own_preferences_link(
    client: FlaskClient, db_session: Session, audience: Audience, reader: Reader
) -> None:
    path = f"/preferences/{preferences_token(SECRET, reader.subscriber_id)}"
    assert "lecteur@example.fr" in text(client.get(path))
    recent = signed_ago(PREFERENCES_SALT, reader.subscriber_id, 29 * 86400)
    assert client.get(f"/preferences/{recent}").status_code == 200


def _refused(client: FlaskClient, path: str) -> None:
    for method in ("GET", "POST"):
        response = client.open(
            path,
            method=method,
            data={"csrf_token": page_csrf(client, "/inscription"), "action": "unsubscribe_all"},
        )
        assert response.status_code == 404, f"{method} {path}"
        assert INVALID in text(response)
        assert "lecteur" not in text(response)


def test_tampered_expired_or_foreign_links_are_refused(
    client: FlaskClient, db_session: Session, audience: Audience, reader: Reader
) -> None:
    token = reader.path.rsplit("/", 1)[1]
    ours = preferences_token(SECRET, reader.subscriber_id)
    _refused(client, f"/preferences/{tamper(token)}")
    _refused(client, f"/preferences/{tamper(ours)}")
    _refused(
        client, f"/preferences/{signed_ago(PREFERENCES_SALT, reader.subscriber_id, 31 * 86400)}"
    )
    # The unsubscribe token of the same delivery does not open the preferences.
    _refused(client, f"/preferences/{reader.unsubscribe_path.rsplit('/', 1)[1]}")
    # A delivery that does not exist, signed correctly.
    _refused(client, f"/preferences/{delivery_tokens(reader.delivery_id + 1000)[1]}")
    _refused(client, "/preferences/x")
    assert _subscriber(db_session, reader.subscriber_id).status is SubscriberStatus.ACTIVE


def test_erased_subscriber_link_is_refused(
    client: FlaskClient, db_session: Session, audience: Audience, reader: Reader
) -> None:
    db_session.delete(_subscriber(db_session, reader.subscriber_id))
    db_session.commit()
    _refused(client, reader.path)


def test_pending_subscriber_choices_wait_for_confirmation(
    client: FlaskClient, db_session: Session, audience: Audience
) -> None:
    subscriber = SubscriberFactory(email="nouveau@example.fr", status=SubscriberStatus.PENDING)
    MembershipFactory(subscriber=subscriber, segment=audience.elus, status=MembershipStatus.PENDING)
    path = f"/preferences/{preferences_token(SECRET, subscriber.id)}"
    page = client.get(path)
    assert "pas encore confirmée" in text(page)
    client.post(
        path,
        data={
            "csrf_token": page_csrf(client, path),
            "action": "save",
            "segments": [audience.elus.id, audience.commerce.id],
        },
    )
    memberships = _memberships(db_session, subscriber.id)
    assert memberships[audience.elus.id].status is MembershipStatus.PENDING
    assert memberships[audience.commerce.id].status is MembershipStatus.PENDING
    assert _subscriber(db_session, subscriber.id).status is SubscriberStatus.PENDING
