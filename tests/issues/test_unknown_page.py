"""The operator's page for messages whose outcome is unknown."""

import datetime as dt
from zoneinfo import ZoneInfo

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.audit.models import AuditEntry
from service.audit.services import record
from service.delivery.models import Delivery, DeliveryStatus
from service.issues.models import Issue, IssueStatus
from tests.factories import DeliveryFactory, IssueFactory, SubscriberFactory, UserFactory
from tests.helpers import csrf_token, login


def _sent_issue_with_unknowns(db_session: Session) -> tuple[Issue, list[Delivery]]:
    issue = IssueFactory(status=IssueStatus.SENT)
    unknown = [
        DeliveryFactory(
            issue=issue,
            subscriber=SubscriberFactory(email=f"perdu{n}@bruay.fr"),
            status=DeliveryStatus.UNKNOWN,
            message_id=f"{issue.id}.{n}@lettre.example.org",
            last_reply="connexion perdue après l'envoi du message",
        )
        for n in range(2)
    ]
    DeliveryFactory(issue=issue, subscriber=SubscriberFactory(email="recu@bruay.fr"))
    db_session.commit()
    return issue, unknown


def _publisher(client: FlaskClient) -> None:
    UserFactory(email="pub@aula.example.org", role=Role.PUBLISHER)
    login(client, "pub@aula.example.org")


def test_the_page_lists_only_unknown_outcomes(client: FlaskClient, db_session: Session) -> None:
    issue, _unknown = _sent_issue_with_unknowns(db_session)
    _publisher(client)
    page = client.get(f"/numeros/{issue.id}/inconnus").get_data(as_text=True)
    assert "perdu0@bruay.fr" in page
    assert "perdu1@bruay.fr" in page
    assert "recu@bruay.fr" not in page
    assert f"{issue.id}.0@lettre.example.org" in page


def test_confirm_then_resend(client: FlaskClient, db_session: Session) -> None:
    issue, unknown = _sent_issue_with_unknowns(db_session)
    _publisher(client)
    url = f"/numeros/{issue.id}/inconnus"
    confirmed = client.post(
        url,
        data={
            "csrf_token": csrf_token(client, url),
            "version": issue.version,
            "action": "confirmer",
            "delivery": [unknown[0].id],
        },
    )
    assert confirmed.status_code == 302
    db_session.expire_all()
    assert db_session.get(Delivery, unknown[0].id).status is DeliveryStatus.SENT  # type: ignore[union-attr]
    assert db_session.get(Issue, issue.id).status is IssueStatus.SENT  # type: ignore[union-attr]

    resent = client.post(
        url,
        data={
            "csrf_token": csrf_token(client, url),
            "version": issue.version,
            "action": "renvoyer",
            "delivery": [unknown[1].id, unknown[0].id],  # the confirmed one is left alone
        },
    )
    assert resent.status_code == 302
    db_session.expire_all()
    assert db_session.get(Delivery, unknown[0].id).status is DeliveryStatus.SENT  # type: ignore[union-attr]
    assert db_session.get(Delivery, unknown[1].id).status is DeliveryStatus.QUEUED  # type: ignore[union-attr]
    # The issue goes back to sending so the worker picks the message up again.
    assert db_session.get(Issue, issue.id).status is IssueStatus.SENDING  # type: ignore[union-attr]
    actions = set(db_session.scalars(select(AuditEntry.action)))
    assert {"delivery.unknown_confirmed", "delivery.unknown_resent"} <= actions


def test_editors_cannot_resolve(client: FlaskClient, db_session: Session) -> None:
    issue, unknown = _sent_issue_with_unknowns(db_session)
    UserFactory(email="red@aula.example.org", role=Role.EDITOR)
    login(client, "red@aula.example.org")
    url = f"/numeros/{issue.id}/inconnus"
    assert client.get(url).status_code == 403
    db_session.expire_all()
    assert db_session.get(Delivery, unknown[0].id).status is DeliveryStatus.UNKNOWN  # type: ignore[union-attr]


def test_the_send_form_warns_when_the_window_is_closed(
    client: FlaskClient, db_session: Session
) -> None:
    issue = IssueFactory(status=IssueStatus.APPROVED)
    # A window of one minute, twelve hours away: closed whenever the test runs.
    issue.newsletter.send_window_start = dt.time(3, 0)
    issue.newsletter.send_window_end = dt.time(3, 1)
    now_paris = dt.datetime.now(dt.UTC).astimezone(ZoneInfo("Europe/Paris")).time()
    if dt.time(3, 0) <= now_paris < dt.time(3, 2):
        issue.newsletter.send_window_start, issue.newsletter.send_window_end = (
            dt.time(15, 0),
            dt.time(15, 1),
        )
    db_session.commit()
    _publisher(client)
    page = client.get(f"/numeros/{issue.id}").get_data(as_text=True)
    assert "Hors de la plage d&#39;envoi" in page
    fresh = db_session.get(Issue, issue.id)
    assert fresh is not None
    fresh.newsletter.send_window_start = fresh.newsletter.send_window_end = None
    db_session.commit()
    assert "Hors de la plage" not in client.get(f"/numeros/{issue.id}").get_data(as_text=True)


def test_the_history_speaks_french(client: FlaskClient, db_session: Session) -> None:
    issue, unknown = _sent_issue_with_unknowns(db_session)
    record(db_session, None, "issue.sent", "issue", issue.id)
    db_session.commit()
    _publisher(client)
    url = f"/numeros/{issue.id}/inconnus"
    client.post(
        url,
        data={
            "csrf_token": csrf_token(client, url),
            "version": issue.version,
            "action": "renvoyer",
            "delivery": [unknown[0].id],
        },
    )
    page = client.get(f"/numeros/{issue.id}").get_data(as_text=True)
    assert "issue.sent" not in page
    assert "delivery.unknown_resent" not in page
    assert "Lettrine" in page  # the actor of what the system did
