"""Sending an issue: snapshot, claims, outcomes, control — against a real SMTP server."""

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.audience.models import (
    MembershipStatus,
    Segment,
    SegmentKind,
    Subscriber,
    SubscriberStatus,
    Suppression,
)
from service.config import Config
from service.delivery import services
from service.delivery.models import Delivery, DeliveryStatus
from service.delivery.sender import SmtpSender
from service.delivery.snapshot import parse_variant, snapshot
from service.issues.models import Issue, IssueStatus
from tests.conftest import free_port
from tests.factories import (
    BlockFactory,
    IssueFactory,
    MembershipFactory,
    SegmentFactory,
    SubscriberFactory,
    UserFactory,
)

Handler = TypeVar("Handler")


class Receiver:
    """A real SMTP server with a receiver's moods: some addresses refused, some delayed."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any
    ) -> str:
        if address.startswith("inconnu"):
            return "550 5.1.1 Destinataire inconnu"
        if address.startswith("plein"):
            return "452 4.2.2 Boite pleine, reessayez plus tard"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Accepte"


@contextmanager
def serving(app: Flask, handler: Handler) -> Iterator[tuple[Handler, Config]]:
    """A real SMTP server with ``handler``'s moods; the app's config points at it."""
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    config = replace(app.extensions["lettrine_config"], smtp_port=controller.port)
    app.extensions["lettrine_config"] = config
    try:
        yield handler, config
    finally:
        controller.stop()


@pytest.fixture
def receiver(app: Flask) -> Iterator[tuple[Receiver, Config]]:
    with serving(app, Receiver()) as served:
        yield served


def _approved_issue(db_session: Session, *segments: Segment) -> Issue:
    issue = IssueFactory(status=IssueStatus.APPROVED, segments=list(segments))
    BlockFactory(
        issue=issue,
        position=0,
        kind="text",
        data={"title": "Édito", "html": "<p>Bonjour à tous.</p>"},
    )
    db_session.commit()
    return issue


def test_snapshot_is_a_deduplicated_union_taken_once(db_session: Session) -> None:
    elus, partenaires = SegmentFactory(slug="elus"), SegmentFactory(slug="partenaires")
    both = SubscriberFactory(email="maire@lens.example.fr")
    MembershipFactory(segment=elus, subscriber=both)
    MembershipFactory(segment=partenaires, subscriber=both)
    MembershipFactory(segment=elus)
    MembershipFactory(segment=elus, status=MembershipStatus.PENDING)
    MembershipFactory(
        segment=elus, subscriber=SubscriberFactory(status=SubscriberStatus.UNSUBSCRIBED)
    )
    rule = Segment(
        slug="hesdin",
        name="Hesdin",
        kind=SegmentKind.RULE,
        rule={"all": [{"field": "commune", "op": "eq", "value": "Hesdin"}]},
    )
    db_session.add(rule)
    SubscriberFactory(email="dgs@hesdin.example.fr", commune="Hesdin")
    issue = _approved_issue(db_session, elus, partenaires, rule)
    assert snapshot(db_session, issue) == 3
    assert snapshot(db_session, issue) == 0  # running it twice adds nothing
    SubscriberFactory(email="nouveau@hesdin.example.fr", commune="Hesdin")
    db_session.commit()
    recipients = set(
        db_session.scalars(
            select(Subscriber.email).join(Delivery, Delivery.subscriber_id == Subscriber.id)
        )
    )
    assert "maire@lens.example.fr" in recipients
    assert "dgs@hesdin.example.fr" in recipients
    assert len(recipients) == 3


def test_variants_follow_block_segments(db_session: Session) -> None:
    elus, commercants = SegmentFactory(slug="elus"), SegmentFactory(slug="commercants")
    elu, commercant = SubscriberFactory(), SubscriberFactory()
    MembershipFactory(segment=elus, subscriber=elu)
    MembershipFactory(segment=commercants, subscriber=commercant)
    issue = _approved_issue(db_session, elus, commercants)
    limited = BlockFactory(
        issue=issue,
        position=1,
        kind="text",
        data={"title": None, "html": "<p>Pour les commerçants</p>"},
        segments=[commercants],
    )
    db_session.commit()
    snapshot(db_session, issue)
    variants = dict(db_session.execute(select(Delivery.subscriber_id, Delivery.variant)).all())
    assert parse_variant(variants[elu.id]) == frozenset()
    assert parse_variant(variants[commercant.id]) == {limited.id}


def test_a_batch_goes_out_and_the_issue_finishes(
    db_session: Session, receiver: tuple[Receiver, Config]
) -> None:
    handler, config = receiver
    segment = SegmentFactory(slug="elus")
    for n in range(5):
        MembershipFactory(
            segment=segment,
            subscriber=SubscriberFactory(email=f"elu{n}@ternois.example.fr", first_name="Élise"),
        )
    issue = _approved_issue(db_session, segment)
    admin = UserFactory(role=Role.PUBLISHER)
    assert services.start_sending(db_session, issue, admin) == 5
    with SmtpSender(config) as sender:
        result = services.send_batch(db_session, issue.id, config, sender, owner="test")
        assert (result.sent, result.failed, result.more) == (5, 0, True)
        assert services.send_batch(db_session, issue.id, config, sender, owner="test").sent == 0
    assert db_session.get(Issue, issue.id).status is IssueStatus.SENT  # type: ignore[union-attr]
    assert len(handler.messages) == 5
    deliveries = list(db_session.scalars(select(Delivery)))
    assert {d.status for d in deliveries} == {DeliveryStatus.SENT}
    for rcpts, raw in handler.messages:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        delivery = next(d for d in deliveries if f"<{d.message_id}>" == parsed["Message-ID"])
        assert db_session.get(Subscriber, delivery.subscriber_id).email == rcpts[0]  # type: ignore[union-attr]
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_outcomes_hard_bounce_deferral(
    db_session: Session, receiver: tuple[Receiver, Config]
) -> None:
    _handler, config = receiver
    segment = SegmentFactory(slug="elus")
    for address in ("inconnu@lens.example.fr", "plein@lens.example.fr", "ok@lens.example.fr"):
        MembershipFactory(segment=segment, subscriber=SubscriberFactory(email=address))
    issue = _approved_issue(db_session, segment)
    services.start_sending(db_session, issue, UserFactory())
    with SmtpSender(config) as sender:
        services.send_batch(db_session, issue.id, config, sender, owner="test")
    outcome = {
        email_: (status, reply, next_at)
        for email_, status, reply, next_at in db_session.execute(
            select(
                Subscriber.email, Delivery.status, Delivery.last_reply, Delivery.next_attempt_at
            ).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        )
    }
    assert outcome["ok@lens.example.fr"][0] is DeliveryStatus.SENT
    assert outcome["inconnu@lens.example.fr"][0] is DeliveryStatus.BOUNCED
    assert "5.1.1" in outcome["inconnu@lens.example.fr"][1]
    assert outcome["plein@lens.example.fr"][0] is DeliveryStatus.DEFERRED
    assert outcome["plein@lens.example.fr"][2] is not None
    bounced = db_session.scalars(
        select(Subscriber).where(Subscriber.email == "inconnu@lens.example.fr")
    ).one()
    assert bounced.status is SubscriberStatus.BOUNCED
    assert db_session.scalars(select(Suppression)).one().reason.value == "hard_bounce"
    assert db_session.get(Issue, issue.id).status is IssueStatus.SENDING  # type: ignore[union-attr]


def test_cancel_and_pause(db_session: Session, receiver: tuple[Receiver, Config]) -> None:
    handler, config = receiver
    segment = SegmentFactory(slug="elus")
    for _ in range(3):
        MembershipFactory(segment=segment)
    issue = _approved_issue(db_session, segment)
    user = UserFactory(role=Role.PUBLISHER)
    services.start_sending(db_session, issue, user)
    services.set_paused(db_session, issue, user, paused=True)
    with SmtpSender(config) as sender:
        assert services.send_batch(db_session, issue.id, config, sender).sent == 0
        services.set_paused(db_session, issue, user, paused=False)
        assert services.cancel(db_session, issue, user) == 3
        assert services.send_batch(db_session, issue.id, config, sender).sent == 0
    assert handler.messages == []
    assert set(db_session.scalars(select(Delivery.status))) == {DeliveryStatus.CANCELLED}


@pytest.mark.postgres_only
def test_two_workers_never_claim_the_same_delivery(db_session: Session, engine: Any) -> None:
    segment = SegmentFactory(slug="elus")
    for _ in range(10):
        MembershipFactory(segment=segment)
    issue = _approved_issue(db_session, segment)
    snapshot(db_session, issue)
    db_session.commit()
    first = services.claim(db_session, issue.id, "a", size=6)
    assert len(first) == 6
    second = services.claim(db_session, issue.id, "b", size=6)
    assert len(second) == 4
    assert not set(first) & set(second)
