"""Returned reports: DSNs and ARF complaints, through the webhook, onto the ledger."""

from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from emails.tokens import TokenSigner
from service.audience.models import Subscriber, SubscriberStatus, Suppression
from service.delivery.bounces import SOFT_LIMIT, bounce_address, classify
from service.delivery.models import Delivery, DeliveryStatus
from service.tracking.models import Event, EventKind
from tests.factories import IssueFactory, SubscriberFactory

SECRET = "test-secret-key"
DOMAIN = "lettre.aula.example.org"


def _dsn(to: str, action: str, status: str) -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: Undelivered Mail\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nLe message n'a pas pu etre remis.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; elu@lens.example.fr\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} Utilisateur inconnu\r\n"
        "--b--\r\n"
    ).encode()


def _arf(issue_id: int, delivery_id: int) -> bytes:
    return (
        "From: abuse@fai.example.net\r\nTo: abuse@aula.example.org\r\nSubject: Complaint\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nThis is a complaint.\r\n"
        "--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{issue_id}.{delivery_id}@{DOMAIN}>\r\nSubject: La lettre\r\n"
        "--b--\r\n"
    ).encode()


@pytest.fixture
def delivery(db_session: Session) -> Delivery:
    issue = IssueFactory()
    subscriber = SubscriberFactory(email="elu@lens.example.fr")
    row = Delivery(issue_id=issue.id, subscriber_id=subscriber.id, status=DeliveryStatus.SENT)
    db_session.add(row)
    db_session.commit()
    return row


@pytest.fixture
def hook(app: Flask, client: FlaskClient) -> FlaskClient:
    app.extensions["lettrine_config"] = replace(
        app.extensions["lettrine_config"], bounce_webhook_token="jeton-du-serveur-de-courrier"
    )
    return client


WEBHOOK_TOKEN = "jeton-du-serveur-de-courrier"


def _post(client: FlaskClient, raw: bytes, token: str = WEBHOOK_TOKEN) -> dict:  # type: ignore[type-arg]
    response = client.post(
        "/webhooks/bounces",
        data=raw,
        headers={"Authorization": f"Bearer {token}"},
        content_type="message/rfc822",
    )
    assert response.status_code == 202, response.status_code
    return response.get_json()  # type: ignore[no-any-return]


def test_the_bounce_address_names_the_delivery(delivery: Delivery) -> None:
    signer = TokenSigner(SECRET)
    address = bounce_address(signer, delivery.id, DOMAIN)
    assert address.startswith("bounces+")
    assert address.endswith(f"@{DOMAIN}")
    report = classify(_dsn(address.upper(), "failed", "5.1.1"), signer)  # case changed on the way
    assert (report.kind, report.delivery_id, report.status) == ("hard", delivery.id, "5.1.1")
    forged = address.replace(address[8:12], "0000")
    assert classify(_dsn(forged, "failed", "5.1.1"), signer).delivery_id is None


def test_hard_bounce_through_the_webhook(
    hook: FlaskClient, delivery: Delivery, db_session: Session
) -> None:
    address = bounce_address(TokenSigner(SECRET), delivery.id, DOMAIN)
    assert _post(hook, _dsn(address, "failed", "5.1.1"))["kind"] == "hard"
    db_session.expire_all()
    assert db_session.get(Delivery, delivery.id).status is DeliveryStatus.BOUNCED  # type: ignore[union-attr]
    assert db_session.scalars(select(Subscriber.status)).one() is SubscriberStatus.BOUNCED
    assert db_session.scalars(select(Suppression.reason)).one().value == "hard_bounce"
    assert db_session.scalars(select(Event.kind)).one() is EventKind.BOUNCE


def test_delays_are_soft_until_they_repeat(
    hook: FlaskClient, delivery: Delivery, db_session: Session
) -> None:
    address = bounce_address(TokenSigner(SECRET), delivery.id, DOMAIN)
    for _ in range(SOFT_LIMIT - 1):
        assert _post(hook, _dsn(address, "delayed", "4.2.2"))["kind"] == "soft"
    db_session.expire_all()
    assert db_session.scalars(select(Subscriber.status)).one() is SubscriberStatus.ACTIVE
    _post(hook, _dsn(address, "delayed", "4.2.2"))
    db_session.expire_all()
    assert db_session.scalars(select(Subscriber.status)).one() is SubscriberStatus.BOUNCED


def test_complaints_suppress(hook: FlaskClient, delivery: Delivery, db_session: Session) -> None:
    assert _post(hook, _arf(delivery.issue_id, delivery.id))["kind"] == "complaint"
    db_session.expire_all()
    assert db_session.scalars(select(Subscriber.status)).one() is SubscriberStatus.COMPLAINED
    assert db_session.scalars(select(Suppression.reason)).one().value == "complaint"


def test_auto_replies_are_ignored(
    hook: FlaskClient, delivery: Delivery, db_session: Session
) -> None:
    address = bounce_address(TokenSigner(SECRET), delivery.id, DOMAIN)
    raw = (
        f"From: elu@lens.example.fr\r\nTo: {address}\r\nAuto-Submitted: auto-replied\r\n"
        "Subject: Absent\r\n\r\nJe suis absent.\r\n"
    ).encode()
    assert _post(hook, raw)["kind"] == "ignore"
    assert db_session.scalars(select(Suppression)).first() is None


def test_the_webhook_needs_its_token(app: Flask, client: FlaskClient, hook: FlaskClient) -> None:
    assert (
        client.post(
            "/webhooks/bounces", data=b"x", headers={"Authorization": "Bearer faux"}
        ).status_code
        == 403
    )
    app.extensions["lettrine_config"] = replace(
        app.extensions["lettrine_config"], bounce_webhook_token=None
    )
    assert client.post("/webhooks/bounces", data=b"x").status_code == 404
