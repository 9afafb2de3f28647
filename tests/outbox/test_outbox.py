"""The dev outbox: a real SMTP server (aiosmtpd) storing into the test database,
read back through the back office."""

import smtplib
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from emails.tokens import TokenSigner
from service.accounts.models import Role
from service.outbox.models import OutboxMessage
from service.outbox.server import make_controller
from tests.conftest import free_port
from tests.factories import UserFactory
from tests.helpers import csrf_token, login


@pytest.fixture
def smtp_server(db_session: Session) -> Iterator[Controller]:
    # Bound to the test's connection: the SMTP thread and the test take turns on it.
    factory = sessionmaker(bind=db_session.connection(), join_transaction_mode="create_savepoint")
    controller = make_controller(factory, "127.0.0.1", free_port())
    controller.start()
    yield controller
    controller.stop()


def _bulletin() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Agence d'urbanisme <lettre@aula.example.org>"
    msg["To"] = "claire.dumont@mairie-lievin.example.fr"
    msg["Subject"] = "Le commerce de demain : prochains ateliers à Liévin"
    msg["Message-ID"] = "<test-1@aula.example.org>"
    msg.set_content("Bonjour,\nLe prochain atelier a lieu à Liévin.\n")
    msg.add_alternative(
        "<html><body><h1>Ateliers</h1><p>Le prochain atelier a lieu à Liévin.</p>"
        "<script>alert('x')</script></body></html>",
        subtype="html",
    )
    return msg


def test_smtp_message_is_stored_and_shown(
    client: FlaskClient, db_session: Session, smtp_server: Controller
) -> None:
    with smtplib.SMTP(smtp_server.hostname, smtp_server.port) as smtp:
        refused = smtp.send_message(_bulletin())
    assert refused == {}
    stored = db_session.scalars(select(OutboxMessage)).one()
    assert stored.subject == "Le commerce de demain : prochains ateliers à Liévin"
    assert stored.recipients == "claire.dumont@mairie-lievin.example.fr"
    assert stored.message_id == "<test-1@aula.example.org>"

    UserFactory(email="redaction@agence.example.org", role=Role.EDITOR)
    login(client, "redaction@agence.example.org")
    listing = client.get("/outbox/").get_data(as_text=True)
    assert "Le commerce de demain : prochains ateliers à Liévin" in listing
    assert "claire.dumont@mairie-lievin.example.fr" in listing

    detail = client.get(f"/outbox/{stored.id}").get_data(as_text=True)
    assert "Le prochain atelier a lieu à Liévin." in detail  # the text part
    assert "Message-ID" in detail
    assert "&lt;test-1@aula.example.org&gt;" in detail
    assert f'<iframe class="email-preview" sandbox src="/outbox/{stored.id}/html"' in detail
    assert "<script>" not in detail

    html = client.get(f"/outbox/{stored.id}/html")
    assert html.status_code == 200
    assert "<h1>Ateliers</h1>" in html.get_data(as_text=True)
    assert html.headers["Content-Security-Policy"].startswith("sandbox;")
    assert "script-src" not in html.headers["Content-Security-Policy"]

    raw = client.get(f"/outbox/{stored.id}/raw")
    assert raw.mimetype == "message/rfc822"
    assert b"Subject:" in raw.data


def test_analysts_cannot_read_the_outbox(client: FlaskClient, db_session: Session) -> None:
    UserFactory(email="analyse@agence.example.org", role=Role.ANALYST)
    login(client, "analyse@agence.example.org")
    assert client.get("/outbox/").status_code == 403


def test_only_admins_clear_the_outbox(
    client: FlaskClient, db_session: Session, smtp_server: Controller
) -> None:
    with smtplib.SMTP(smtp_server.hostname, smtp_server.port) as smtp:
        smtp.send_message(_bulletin())
    UserFactory(email="redaction@agence.example.org", role=Role.EDITOR)
    login(client, "redaction@agence.example.org")
    token = csrf_token(client, "/outbox/")
    assert client.post("/outbox/clear", data={"csrf_token": token}).status_code == 403
    assert db_session.scalars(select(OutboxMessage)).first() is not None

    client.post("/logout", data={"csrf_token": token})
    UserFactory(email="admin@agence.example.org", role=Role.ADMIN)
    login(client, "admin@agence.example.org")
    token = csrf_token(client, "/outbox/")
    response = client.post("/outbox/clear", data={"csrf_token": token}, follow_redirects=True)
    assert "1 message(s) supprimé(s)." in response.get_data(as_text=True)
    assert db_session.scalars(select(OutboxMessage)).first() is None


def test_unknown_message_is_a_404(client: FlaskClient, db_session: Session) -> None:
    UserFactory(email="redaction@agence.example.org")
    login(client, "redaction@agence.example.org")
    assert client.get("/outbox/999999").status_code == 404


def test_outbox_is_off_in_production(client: FlaskClient, app: Flask, db_session: Session) -> None:
    app.extensions["lettrine_config"] = replace(
        app.extensions["lettrine_config"], outbox_enabled=False
    )
    UserFactory(email="redaction@agence.example.org")
    login(client, "redaction@agence.example.org")
    assert client.get("/outbox/").status_code == 404


def test_malformed_messages_are_kept_and_shown(
    client: FlaskClient, db_session: Session, smtp_server: Controller
) -> None:
    raw = (
        b"From: robot@example.org\r\nTo: <\r\nMessage-ID: <<<>>>\r\n"
        b"Subject: =?utf-8?q?Ent=C3=AAte_cass=C3=A9?=\r\n"
        b"Content-Type: text/plain; charset=x-unknown\r\n\r\nCorps du message.\r\n"
    )
    with smtplib.SMTP(smtp_server.hostname, smtp_server.port) as smtp:
        assert smtp.sendmail("robot@example.org", ["dest@example.org"], raw) == {}
    stored = db_session.scalars(select(OutboxMessage)).one()
    assert stored.message_id == "<<<>>>"
    UserFactory(email="redaction@agence.example.org")
    login(client, "redaction@agence.example.org")
    page = client.get(f"/outbox/{stored.id}")
    assert page.status_code == 200
    assert "Corps du message." in page.get_data(as_text=True)


def test_reading_a_message_in_the_outbox_does_not_count_an_open(
    client: FlaskClient, db_session: Session, smtp_server: Controller
) -> None:
    signer = TokenSigner("secret")
    open_token = signer.system_tokens(7)[0]
    (link_token,) = signer.link_tokens(7, 1)
    pixel = f"http://lettrine.test/o/{open_token}.gif"
    msg = _bulletin()
    msg.get_body(("html",)).set_content(  # type: ignore[union-attr]
        f'<html><body><p><a href="http://lettrine.test/c/{link_token}">Programme</a></p>'
        '<img src="http://lettrine.test/static/logo.png" alt="Agence">'
        f'<img src="{pixel}" width="1" height="1" alt="" style="display:block;border:0;" />'
        "</body></html>",
        subtype="html",
    )
    with smtplib.SMTP(smtp_server.hostname, smtp_server.port) as smtp:
        smtp.send_message(msg)
    stored = db_session.scalars(select(OutboxMessage)).one()
    assert pixel.encode() in stored.raw.replace(b"=\r\n", b"").replace(b"=3D", b"=")

    UserFactory(email="redaction@agence.example.org", role=Role.EDITOR)
    login(client, "redaction@agence.example.org")
    html = client.get(f"/outbox/{stored.id}/html").get_data(as_text=True)
    assert f"/o/{open_token}" not in html  # nothing left for the frame to load
    assert 'src="http://lettrine.test/static/logo.png"' in html  # other images stay
    assert f'href="http://lettrine.test/c/{link_token}"' in html  # links as sent...
    detail = client.get(f"/outbox/{stored.id}").get_data(as_text=True)
    assert "ne compte pas comme une ouverture" in detail
    assert "1 lien suivi : le suivre ici compte comme un clic du destinataire" in detail
