"""The public subscription form: double opt-in, consent evidence, answers that tell nothing."""

import datetime as dt

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
from service.audience.services import suppress
from service.audience.subscriptions import CONSENT_TEXT_VERSION, truncate_ip
from service.audit.services import history
from tests.factories import MembershipFactory, SubscriberFactory
from tests.public.conftest import (
    SAME_ANSWER,
    SECRET,
    Audience,
    body_text,
    confirm_path,
    messages,
    page_csrf,
    preferences_path,
    subscribe,
    text,
)

CLAIRE = "claire.dumont@" + "liévin.fr".encode("idna").decode()


def _subscriber(db_session: Session, address: str) -> Subscriber | None:
    db_session.expire_all()
    return db_session.scalars(select(Subscriber).where(Subscriber.email == address)).first()


def _count(db_session: Session, model: type) -> int:
    return db_session.scalar(select(func.count()).select_from(model)) or 0


def test_form_is_branded_accessible_and_csp_clean(client: FlaskClient, audience: Audience) -> None:
    response = client.get("/inscription")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = text(response)
    assert "<h1>S'inscrire à La Lettre de l&#39;Agence</h1>" in html
    # Consent text, naming the data controller (the first newsletter's sender).
    assert "soient conservées par Agence d'urbanisme de l'Artois, responsable du traitement" in page
    assert "Je peux me désinscrire à tout moment" in page
    # Public static segments only.
    assert "Élus et élues" in page
    assert "Commerce de demain" in page
    assert "Partenaires (interne)" not in page
    assert "Règle publique" not in page
    assert '<label for="email">Adresse e-mail' in html
    assert '<label for="consent">' in html
    # Honeypot hidden by a stylesheet class, out of the tab order, hidden from screen readers.
    assert '<div class="hp" aria-hidden="true">' in html
    assert 'tabindex="-1"' in html
    # CSP: no inline style or script; the brand comes from a stylesheet.
    assert "style=" not in html
    assert "<style" not in html
    assert "<script" not in html
    assert 'href="/lettre.css"' in html
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]


def test_brand_stylesheet(client: FlaskClient, audience: Audience) -> None:
    response = client.get("/lettre.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    css = response.get_data(as_text=True)
    assert "--brand: #7a1f5c;" in css
    assert "--brand-on: #ffffff;" in css
    assert ".hp {" in css


def test_subscribe_confirm_end_to_end(
    client: FlaskClient, db_session: Session, audience: Audience, mail_sink: object
) -> None:
    response = subscribe(
        client,
        "claire.dumont@liévin.fr",
        [audience.elus.id, audience.commerce.id],
        civility="Mme",
        first_name="Claire",
        last_name="Dumont",
        organisation="Mairie de Liévin",
        function="Adjointe au commerce",
        commune="Liévin",
    )
    assert response.status_code == 200
    assert SAME_ANSWER in text(response)

    subscriber = _subscriber(db_session, CLAIRE)
    assert subscriber is not None
    assert subscriber.status is SubscriberStatus.PENDING
    assert (subscriber.civility, subscriber.first_name, subscriber.last_name) == (
        "Mme",
        "Claire",
        "Dumont",
    )
    assert subscriber.organisation == "Mairie de Liévin"
    assert subscriber.function == "Adjointe au commerce"
    assert subscriber.commune == "Liévin"
    assert subscriber.consent_source == "formulaire"
    assert subscriber.consent_ip == "203.0.113.0"
    assert subscriber.consent_text_version == CONSENT_TEXT_VERSION
    assert subscriber.consent_at is not None
    assert dt.datetime.now(dt.UTC) - subscriber.consent_at < dt.timedelta(minutes=1)
    assert subscriber.confirmed_at is None
    assert {m.segment_id: m.status for m in subscriber.memberships} == {
        audience.elus.id: MembershipStatus.PENDING,
        audience.commerce.id: MembershipStatus.PENDING,
    }

    [(rcpts, message)] = messages(mail_sink)
    assert rcpts == [CLAIRE]
    assert message["Subject"] == "Confirmez votre inscription à La Lettre de l'Agence"
    assert "La Lettre de l'Agence" in message["From"]
    body = body_text(message)
    assert "Bonjour Claire Dumont," in body
    assert "- Commerce de demain\n- Élus et élues" in body
    assert "valable 7 jours" in body
    path = confirm_path(message)

    # A GET (a mail scanner following the link) changes nothing.
    page = client.get(path)
    assert page.status_code == 200
    assert "Confirmer mon inscription" in text(page)
    assert "Élus et élues" in text(page)
    subscriber = _subscriber(db_session, CLAIRE)
    assert subscriber is not None
    assert subscriber.status is SubscriberStatus.PENDING

    # The button: a POST with its CSRF token.
    done = client.post(path, data={"csrf_token": page_csrf(client, path)})
    assert done.status_code == 200
    assert "votre inscription est confirmée" in text(done)
    subscriber = _subscriber(db_session, CLAIRE)
    assert subscriber is not None
    assert subscriber.status is SubscriberStatus.ACTIVE
    assert subscriber.confirmed_at is not None
    first_confirmation = subscriber.confirmed_at
    assert all(m.status is MembershipStatus.ACTIVE for m in subscriber.memberships)
    assert all(m.confirmed_at is not None for m in subscriber.memberships)

    # Idempotent: a second confirmation changes nothing and still says it is done.
    again = client.post(path, data={"csrf_token": page_csrf(client, path)})
    assert again.status_code == 200
    subscriber = _subscriber(db_session, CLAIRE)
    assert subscriber is not None
    assert subscriber.confirmed_at == first_confirmation
    actions = [entry.action for entry in history(db_session, "subscriber", subscriber.id)]
    assert actions == ["subscriber.subscription_requested", "subscriber.subscription_confirmed"]

    # The preference link of the email opens the subscriber's preferences.
    prefs = client.get(preferences_path(message))
    assert prefs.status_code == 200
    assert CLAIRE in text(prefs)


def test_confirm_without_csrf_token_changes_nothing(
    client: FlaskClient, db_session: Session, audience: Audience, mail_sink: object
) -> None:
    subscribe(client, "sans.jeton@example.fr", [audience.elus.id])
    [(_rcpts, message)] = messages(mail_sink)
    response = client.post(confirm_path(message))
    assert response.status_code == 400
    assert "Formulaire expiré" in text(response)
    subscriber = _subscriber(db_session, "sans.jeton@example.fr")
    assert subscriber is not None
    assert subscriber.status is SubscriberStatus.PENDING


def _known_addresses(db_session: Session, audience: Audience) -> dict[str, str]:
    """One address in each state the form must not reveal."""
    pending = SubscriberFactory(email="en.attente@example.fr", status=SubscriberStatus.PENDING)
    MembershipFactory(subscriber=pending, segment=audience.elus, status=MembershipStatus.PENDING)
    active = SubscriberFactory(email="deja.inscrit@example.fr", first_name="Aline")
    MembershipFactory(subscriber=active, segment=audience.elus)
    SubscriberFactory(email="parti@example.fr", status=SubscriberStatus.UNSUBSCRIBED)
    suppressed = SubscriberFactory(
        email="supprime@example.fr", status=SubscriberStatus.UNSUBSCRIBED
    )
    suppress(db_session, SECRET, suppressed.email, SuppressionReason.UNSUBSCRIBED)
    suppress(db_session, SECRET, "efface@example.fr", SuppressionReason.ERASED)
    db_session.commit()
    return {
        "unknown": "inconnu@example.fr",
        "pending": pending.email,
        "active": active.email,
        "unsubscribed": "parti@example.fr",
        "suppressed": suppressed.email,
        "erased": "efface@example.fr",
    }


def test_same_answer_whatever_the_address(
    client: FlaskClient, db_session: Session, audience: Audience, mail_sink: object
) -> None:
    addresses = _known_addresses(db_session, audience)
    answers = {}
    for number, (state, address) in enumerate(addresses.items()):
        response = subscribe(
            client, address, [audience.elus.id], ip=f"198.51.100.{number}", first_name="Intrus"
        )
        answers[state] = (response.status_code, response.get_data(as_text=True))
    assert len(set(answers.values())) == 1, "the answer differs between address states"
    assert answers["unknown"][0] == 200
    assert SAME_ANSWER in " ".join(answers["unknown"][1].split()).replace("&#39;", "'")

    recipients = sorted(rcpt for rcpts, _message in messages(mail_sink) for rcpt in rcpts)
    # The active subscriber already receives "élus": nothing to confirm, no email.
    assert recipients == ["en.attente@example.fr", "inconnu@example.fr", "parti@example.fr"]

    # Suppressed and erased addresses: nothing stored, nothing sent.
    assert _subscriber(db_session, "efface@example.fr") is None
    suppressed = _subscriber(db_session, "supprime@example.fr")
    assert suppressed is not None
    assert suppressed.status is SubscriberStatus.UNSUBSCRIBED
    assert suppressed.memberships == []
    # An anonymous form never rewrites an active subscriber's details.
    active = _subscriber(db_session, "deja.inscrit@example.fr")
    assert active is not None
    assert active.first_name == "Aline"
    assert active.status is SubscriberStatus.ACTIVE
    # The unsubscribed (but not suppressed) address asks again: pending, to be confirmed.
    returning = _subscriber(db_session, "parti@example.fr")
    assert returning is not None
    assert returning.status is SubscriberStatus.PENDING


def test_active_subscriber_confirms_only_new_segments(
    client: FlaskClient, db_session: Session, audience: Audience, mail_sink: object
) -> None:
    subscriber = SubscriberFactory(email="active@example.fr", consent_source="import")
    MembershipFactory(subscriber=subscriber, segment=audience.elus)
    subscribe(client, "active@example.fr", [audience.elus.id, audience.commerce.id])

    [(_rcpts, message)] = messages(mail_sink)
    body = body_text(message)
    assert "- Commerce de demain" in body
    assert "Élus et élues" not in body
    reloaded = _subscriber(db_session, "active@example.fr")
    assert reloaded is not None
    assert reloaded.status is SubscriberStatus.ACTIVE
    assert reloaded.consent_source == "import"  # earlier evidence kept until confirmation
    statuses = {m.segment_id: m.status for m in reloaded.memberships}
    assert statuses == {
        audience.elus.id: MembershipStatus.ACTIVE,
        audience.commerce.id: MembershipStatus.PENDING,
    }

    path = confirm_path(message)
    client.post(path, data={"csrf_token": page_csrf(client, path)})
    reloaded = _subscriber(db_session, "active@example.fr")
    assert reloaded is not None
    statuses = {m.segment_id: m.status for m in reloaded.memberships}
    assert statuses[audience.commerce.id] is MembershipStatus.ACTIVE


def test_honeypot_filled_creates_nothing(
    client: FlaskClient, db_session: Session, audience: Audience, mail_sink: object
) -> None:
    response = subscribe(client, "robot@example.fr", [audience.elus.id], website="http://spam")
    assert response.status_code == 200
    assert SAME_ANSWER in text(response)
    assert _subscriber(db_session, "robot@example.fr") is None
    assert _count(db_session, Membership) == 0
    assert mail_sink.messages == []  # type: ignore[attr-defined]


def test_form_errors_are_announced_and_nothing_is_created(
    client: FlaskClient, db_session: Session, audience: Audience, mail_sink: object
) -> None:
    response = subscribe(client, "pas une adresse", [], consent=False, first_name="Jo")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = text(response)
    assert 'aria-invalid="true"' in html
    assert 'role="alert"' in html
    assert "Adresse invalide" in page
    assert "Choisissez au moins une lettre ou un thème." in page
    assert "Cochez cette case pour pouvoir vous inscrire." in page
    assert 'value="Jo"' in html  # what was typed is kept
    assert 'aria-describedby="consent-text consent-error"' in html
    assert _count(db_session, Subscriber) == 0
    assert mail_sink.messages == []  # type: ignore[attr-defined]


def test_private_segments_cannot_be_requested(
    client: FlaskClient, db_session: Session, audience: Audience, mail_sink: object
) -> None:
    response = subscribe(client, "curieux@example.fr", [audience.private.id])
    assert response.status_code == 200
    assert SAME_ANSWER not in text(response)
    assert _count(db_session, Subscriber) == 0


def test_addresses_are_normalised(
    client: FlaskClient, db_session: Session, audience: Audience, mail_sink: object
) -> None:
    subscribe(client, "  Jean.DUPONT@Mairie-Béthune.FR ", [audience.elus.id])
    subscribe(client, "jean.dupont@mairie-béthune.fr", [audience.commerce.id], ip="192.0.2.7")
    expected = "jean.dupont@" + "mairie-béthune.fr".encode("idna").decode()
    subscribers = db_session.scalars(select(Subscriber)).all()
    assert [s.email for s in subscribers] == [expected]
    assert len(subscribers[0].memberships) == 2
    assert [rcpts for rcpts, _m in messages(mail_sink)] == [[expected], [expected]]


def test_rate_limited_per_client_address(
    client: FlaskClient, db_session: Session, audience: Audience, mail_sink: object
) -> None:
    for number in range(5):
        response = subscribe(client, f"personne{number}@example.fr", [audience.elus.id])
        assert response.status_code == 200
    blocked = subscribe(client, "encore@example.fr", [audience.elus.id])
    assert blocked.status_code == 429
    assert "Trop de tentatives" in text(blocked)
    assert _subscriber(db_session, "encore@example.fr") is None
    # Another client is not affected.
    assert (
        subscribe(client, "autre@example.fr", [audience.elus.id], ip="192.0.2.1").status_code == 200
    )


def test_rate_limited_per_submitted_address(
    client: FlaskClient, db_session: Session, audience: Audience, mail_sink: object
) -> None:
    for number in range(3):
        response = subscribe(client, "cible@example.fr", [audience.elus.id], ip=f"192.0.2.{number}")
        assert response.status_code == 200
    blocked = subscribe(client, "Cible@example.fr", [audience.elus.id], ip="192.0.2.99")
    assert blocked.status_code == 429
    assert len(mail_sink.messages) == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("203.0.113.45", "203.0.113.0"),
        ("2001:db8:abcd:12:34::1", "2001:db8:abcd::"),
        ("::ffff:198.51.100.23", "198.51.100.0"),
        ("", None),
        (None, None),
        ("pas-une-ip", None),
    ],
)
def test_truncate_ip(raw: str | None, kept: str | None) -> None:
    assert truncate_ip(raw) == kept


def test_no_public_segment_still_subscribes(
    client: FlaskClient, db_session: Session, mail_sink: object
) -> None:
    """Without any public segment, the form subscribes to the newsletter itself."""
    response = subscribe(client, "simple@example.fr", [])
    assert SAME_ANSWER in text(response)
    [(_rcpts, message)] = messages(mail_sink)
    assert "Vous avez demandé à recevoir Lettrine." in body_text(message)
    path = confirm_path(message)
    client.post(path, data={"csrf_token": page_csrf(client, path)})
    subscriber = _subscriber(db_session, "simple@example.fr")
    assert subscriber is not None
    assert subscriber.status is SubscriberStatus.ACTIVE


def test_suppression_count_unchanged_by_subscribing(
    client: FlaskClient, db_session: Session, audience: Audience, mail_sink: object
) -> None:
    suppress(db_session, SECRET, "bloque@example.fr", SuppressionReason.HARD_BOUNCE)
    db_session.commit()
    subscribe(client, "BLOQUE@example.fr", [audience.elus.id])
    assert _count(db_session, Suppression) == 1
    assert _count(db_session, Subscriber) == 0
    assert mail_sink.messages == []  # type: ignore[attr-defined]
