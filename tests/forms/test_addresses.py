"""Addresses typed into back-office forms follow the audience's rule, with French reasons."""

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role, User
from service.newsletters.models import Newsletter
from tests.factories import NewsletterFactory, UserFactory
from tests.helpers import csrf_token, login


def test_invite_refuses_an_address_smtp_cannot_carry(
    client: FlaskClient, db_session: Session
) -> None:
    UserFactory(email="admin@agence.example.org", role=Role.ADMIN)
    login(client, "admin@agence.example.org")
    token = csrf_token(client, "/utilisateurs")
    response = client.post(
        "/utilisateurs/inviter",
        data={"csrf_token": token, "name": "José", "email": "josé@exemple.fr", "role": "editor"},
        follow_redirects=True,
    )
    assert "caractères accentués avant le @" in response.get_data(as_text=True)
    assert db_session.scalars(select(User).where(User.name == "José")).first() is None


def test_sender_address_is_stored_as_it_will_be_sent(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    newsletter = NewsletterFactory()
    UserFactory(email="admin@agence.example.org", role=Role.ADMIN)
    login(client, "admin@agence.example.org")
    page = f"/lettres/{newsletter.id}"
    token = csrf_token(client, page)
    data = {
        "csrf_token": token,
        "name": newsletter.name,
        "sender_name": "Agence",
        "sender_email": " Lettre@Agençe.example.fr ",
        "postal_address": "1 rue X, Béthune",
        "main_color": "#1d4f91",
        "tracking_mode": "individual",
        "tracking_retention_days": "365",
    }
    response = client.post(page, data=data)
    assert response.status_code in {200, 302}, response.get_data(as_text=True)[-800:]
    db_session.expire_all()
    stored = db_session.get(Newsletter, newsletter.id)
    assert stored is not None
    assert stored.sender_email == f"lettre@{'agençe'.encode('idna').decode()}.example.fr"
