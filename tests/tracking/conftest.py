"""A sent issue with its stored links and one delivery, and the tracked URLs of the
message that delivery really received."""

import datetime as dt
import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.message import EmailMessage

import pytest
import redis
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from emails import Personaliser, Recipient, TokenSigner, build_template, compile_variant
from service.config import Config
from service.delivery.models import Delivery, DeliveryStatus
from service.demo.services import load_demo
from service.issues.models import Issue, IssueStatus
from service.issues.rendering import issue_data, render_settings
from service.newsletters.models import TrackingMode
from service.tracking.ingest import Tracker
from service.tracking.models import Link
from service.tracking.services import store_links
from service.tracking.views import tracker
from tests.conftest import TEST_REDIS_URL
from tests.factories import BlockFactory, DeliveryFactory, IssueFactory, SubscriberFactory

TRACKED = re.compile(r"http://lettrine\.test/(?:c/[A-Za-z0-9_-]{20}|o/[A-Za-z0-9_-]{20}\.gif)")


@dataclass
class Sent:
    issue: Issue
    delivery: Delivery
    links: list[Link]  # by position
    signer: TokenSigner
    message: bytes  # what the delivery's recipient received

    def click_path(self, position: int) -> str:
        return f"/c/{self.signer.link_tokens(self.delivery.id, position + 1)[position]}"

    def open_path(self) -> str:
        return f"/o/{self.signer.system_tokens(self.delivery.id)[0]}.gif"

    def tracked_urls(self) -> list[str]:
        """Tracked URLs in the HTML part, in order of first appearance."""
        parsed = email.message_from_bytes(self.message, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        body = parsed.get_body(("html",))
        assert body is not None
        return list(dict.fromkeys(TRACKED.findall(body.get_content())))


def config_of(app: Flask) -> Config:
    config: Config = app.extensions["lettrine_config"]
    return config


def send_issue(
    db_session: Session, config: Config, issue: Issue, *, sent_ago: dt.timedelta | None
) -> Sent:
    """Mark ``issue`` as sent to one new subscriber (``sent_ago`` None: not yet sent)."""
    issue.status = IssueStatus.SENT
    issue.send_started_at = dt.datetime.now(dt.UTC) - (sent_ago or dt.timedelta(0))
    subscriber = SubscriberFactory()
    delivery = DeliveryFactory(
        issue=issue,
        subscriber=subscriber,
        status=DeliveryStatus.SENT if sent_ago is not None else DeliveryStatus.QUEUED,
        sent_at=dt.datetime.now(dt.UTC) - sent_ago if sent_ago is not None else None,
    )
    store_links(db_session, issue, config)
    db_session.commit()
    data = issue_data(issue, config=config)
    settings = render_settings(config, issue.id)
    template = build_template(data, compile_variant(data, None), settings)
    message = Personaliser(data, template, settings).render(
        Recipient(delivery.id, subscriber.email, subscriber.first_name, subscriber.last_name)
    )
    links = list(
        db_session.scalars(select(Link).where(Link.issue_id == issue.id).order_by(Link.position))
    )
    return Sent(issue, delivery, links, TokenSigner(config.secret_key), message)


def demo_issue(db_session: Session, mode: TrackingMode) -> Issue:
    load_demo(db_session)
    db_session.commit()
    issue = db_session.scalars(select(Issue)).one()
    issue.newsletter.tracking_mode = mode
    db_session.commit()
    return issue


@pytest.fixture
def sent(app: Flask, db_session: Session) -> Sent:
    """The demo issue, tracked per recipient, sent an hour ago."""
    issue = demo_issue(db_session, TrackingMode.INDIVIDUAL)
    return send_issue(db_session, config_of(app), issue, sent_ago=dt.timedelta(hours=1))


@pytest.fixture
def other(app: Flask, db_session: Session, sent: Sent) -> Sent:
    """Another sent issue of the same newsletter, with a single link."""
    issue = IssueFactory(newsletter=sent.issue.newsletter, number=99, status=IssueStatus.SENT)
    BlockFactory(
        issue=issue,
        position=0,
        kind="text",
        data={"title": None, "html": '<p><a href="https://autre.example.org/">Autre</a></p>'},
    )
    db_session.commit()
    return send_issue(db_session, config_of(app), issue, sent_ago=dt.timedelta(hours=1))


@pytest.fixture
def buffer() -> Iterator["redis.Redis[bytes]"]:
    """The test Redis database, empty."""
    client: redis.Redis[bytes] = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def pushed(app: Flask) -> None:
    """Wait until this process's waiting hits are in Redis (the outbox pushes every 50 ms)."""
    outbox = tracker(app).outbox
    assert outbox is not None
    outbox.drain()


@pytest.fixture
def buffered_app(app: Flask, buffer: "redis.Redis[bytes]") -> Flask:
    """The test app with its tracking hits going through the Redis buffer."""
    config = replace(config_of(app), redis_url=TEST_REDIS_URL)
    app.extensions["tracking"] = Tracker(config)
    return app
