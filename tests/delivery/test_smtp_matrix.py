"""Each SMTP answer a receiver can give ends in the state DESIGN.md §4 promises.

The receiver is a real aiosmtpd server with scripted moods per recipient; the
relay errors (unreachable, credentials refused, TLS refused) use real servers too.
"""

import asyncio
import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.audience.models import Subscriber, SubscriberStatus
from service.config import Config
from service.delivery import services
from service.delivery.models import Delivery, DeliveryStatus
from service.delivery.sender import SmtpSender
from service.issues.models import Issue, IssueStatus
from tests.conftest import free_port
from tests.delivery.test_sending import _approved_issue, serving
from tests.factories import MembershipFactory, SegmentFactory, SubscriberFactory, UserFactory

SLOW = 1.5  # seconds the slow server waits; the sender's timeout is below it


class Moods:
    """Per recipient: 4xx once then OK, 5xx, 421 and hang up, hang up after the dot,
    too slow after the dot, too slow before DATA."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.accepted: list[str] = []

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, server: Any, _session: Any, envelope: Any, address: str, _options: Any
    ) -> str:
        self.seen[address] = self.seen.get(address, 0) + 1
        local = address.split("@", maxsplit=1)[0]
        if local == "tard" and self.seen[address] == 1:
            return "451 4.3.0 Reessayez plus tard"
        if local == "refus":
            return "554 5.7.1 Message refuse"
        if local == "occupe" and self.seen[address] == 1:  # reply, then hang up at once
            await server.push("421 4.7.0 Trop de connexions, au revoir")
            server.transport.close()
            return "421 4.7.0 Trop de connexions, au revoir"
        if local == "lentrcpt" and self.seen[address] == 1:
            await asyncio.sleep(SLOW)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        local = envelope.rcpt_tos[0].split("@")[0]
        if local == "coupe":
            server.transport.close()
            return "250 jamais lu"
        if local == "lent":
            await asyncio.sleep(SLOW)
        self.accepted.append(envelope.rcpt_tos[0])
        return "250 2.0.0 Accepte"


@pytest.fixture
def moody(app: Flask) -> Iterator[tuple[Moods, Config]]:
    with serving(app, Moods()) as served:
        yield served


def _statuses(db_session: Session) -> dict[str, tuple[DeliveryStatus, int, str]]:
    db_session.expire_all()
    return {
        address.split("@")[0]: (status, attempts, reply or "")
        for address, status, attempts, reply in db_session.execute(
            select(Subscriber.email, Delivery.status, Delivery.attempts, Delivery.last_reply).join(
                Subscriber, Subscriber.id == Delivery.subscriber_id
            )
        )
    }


def test_reply_matrix(db_session: Session, moody: tuple[Moods, Config]) -> None:
    handler, config = moody
    segment = SegmentFactory(slug="elus")
    names = ("tard", "refus", "occupe", "coupe", "lent", "lentrcpt", "ok")
    for name in names:
        MembershipFactory(
            segment=segment, subscriber=SubscriberFactory(email=f"{name}@bruay.example.fr")
        )
    issue = _approved_issue(db_session, segment)
    services.start_sending(db_session, issue, UserFactory(role=Role.PUBLISHER))
    with SmtpSender(config, timeout=SLOW / 3) as sender:
        services.send_batch(db_session, issue.id, config, sender, owner="test")
        first = _statuses(db_session)
        assert first["tard"][0] is DeliveryStatus.DEFERRED
        assert first["tard"][2].startswith("451")
        assert first["refus"][0] is DeliveryStatus.FAILED  # 5.7.1 is not a bad address
        assert first["occupe"][0] is DeliveryStatus.DEFERRED
        assert first["occupe"][2].startswith("421")
        assert first["coupe"][0] is DeliveryStatus.UNKNOWN
        assert first["lent"][0] is DeliveryStatus.UNKNOWN  # the timeout came after the "."
        assert first["lentrcpt"][0] is DeliveryStatus.DEFERRED  # before DATA: safe to retry
        assert first["ok"][0] is DeliveryStatus.SENT
        # The address that refused a policy is not suppressed; nothing else was marked.
        assert set(db_session.scalars(select(Subscriber.status))) == {SubscriberStatus.ACTIVE}

        # Time passes: deferred ones are due again and go out once; unknown ones never.
        db_session.execute(
            Delivery.__table__.update()
            .where(Delivery.status == DeliveryStatus.DEFERRED)
            .values(next_attempt_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
        db_session.commit()
        services.send_batch(db_session, issue.id, config, sender, owner="test")
    second = _statuses(db_session)
    assert second["tard"][:2] == (DeliveryStatus.SENT, 2)
    assert second["occupe"][:2] == (DeliveryStatus.SENT, 2)
    assert second["lentrcpt"][0] is DeliveryStatus.SENT
    assert second["coupe"][:2] == (DeliveryStatus.UNKNOWN, 1)
    assert second["lent"][:2] == (DeliveryStatus.UNKNOWN, 1)
    # "lent" reached the server once (it may have kept it); "coupe" once, unread.
    assert handler.seen["lent@bruay.example.fr"] == 1
    assert handler.seen["coupe@bruay.example.fr"] == 1
    assert sorted(handler.accepted).count("tard@bruay.example.fr") == 1


def _one_recipient_issue(db_session: Session) -> Issue:
    segment = SegmentFactory(slug="elus")
    for n in range(3):
        MembershipFactory(segment=segment, subscriber=SubscriberFactory(email=f"e{n}@lens.fr"))
    issue = _approved_issue(db_session, segment)
    services.start_sending(db_session, issue, UserFactory(role=Role.PUBLISHER))
    return issue


def _after_relay_error(db_session: Session, issue: Issue) -> tuple[Issue, list[Delivery]]:
    db_session.expire_all()
    fresh = db_session.get(Issue, issue.id)
    assert fresh is not None
    return fresh, list(db_session.scalars(select(Delivery)))


def test_unreachable_relay_releases_the_batch_and_keeps_sending(
    db_session: Session, app: Flask
) -> None:
    config = replace(app.extensions["lettrine_config"], smtp_port=free_port())  # nobody there
    issue = _one_recipient_issue(db_session)
    with SmtpSender(config, timeout=2) as sender:
        result = services.send_batch(db_session, issue.id, config, sender, owner="test")
    assert result.stopped
    assert result.sent == 0
    fresh, deliveries = _after_relay_error(db_session, issue)
    assert fresh.status is IssueStatus.SENDING  # the sweeper will try again
    assert "injoignable" in (fresh.send_error or "")
    assert {(d.status, d.attempts) for d in deliveries} == {(DeliveryStatus.QUEUED, 0)}


def test_refused_credentials_pause_the_issue_with_the_reason(
    db_session: Session, app: Flask
) -> None:
    controller = Controller(
        Moods(),
        hostname="127.0.0.1",
        port=free_port(),
        auth_require_tls=False,
        authenticator=lambda *_args: AuthResult(
            success=False, handled=False, message="535 5.7.8 Identifiants invalides"
        ),
    )
    controller.start()
    try:
        config = replace(
            app.extensions["lettrine_config"],
            smtp_port=controller.port,
            smtp_username="lettrine",
            smtp_password="faux",
        )
        issue = _one_recipient_issue(db_session)
        with SmtpSender(config, timeout=5) as sender:
            services.send_batch(db_session, issue.id, config, sender, owner="test")
    finally:
        controller.stop()
    fresh, deliveries = _after_relay_error(db_session, issue)
    assert fresh.status is IssueStatus.PAUSED
    assert "identifiants refusés" in (fresh.send_error or "")
    assert "SMTP_PASSWORD" in (fresh.send_error or "")
    assert {(d.status, d.attempts) for d in deliveries} == {(DeliveryStatus.QUEUED, 0)}
    # Resuming clears the reason and the deliveries are all still there to send.
    services.set_paused(db_session, fresh, UserFactory(role=Role.PUBLISHER), paused=False)
    assert fresh.send_error is None


def test_relay_without_tls_pauses_when_tls_is_required(
    db_session: Session, moody: tuple[Moods, Config]
) -> None:
    _handler, config = moody
    config = replace(config, smtp_starttls=True)
    issue = _one_recipient_issue(db_session)
    with SmtpSender(config, timeout=5) as sender:
        services.send_batch(db_session, issue.id, config, sender, owner="test")
    fresh, deliveries = _after_relay_error(db_session, issue)
    assert fresh.status is IssueStatus.PAUSED
    assert "TLS" in (fresh.send_error or "")
    assert {d.status for d in deliveries} == {DeliveryStatus.QUEUED}
