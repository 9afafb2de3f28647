"""A sent issue with deliveries, links and events of every sort, built with factories."""

import datetime as dt
from dataclasses import dataclass

import factory
import pytest
from sqlalchemy.orm import Session

from service.audience.models import MembershipStatus, SegmentKind
from service.delivery.models import Delivery, DeliveryStatus
from service.issues.models import Issue, IssueStatus
from service.newsletters.models import TrackingMode
from service.tracking.models import Event, EventKind, Link, LinkKind
from tests.factories import (
    BaseFactory,
    BlockFactory,
    DeliveryFactory,
    IssueFactory,
    MembershipFactory,
    NewsletterFactory,
    SegmentFactory,
    SubscriberFactory,
)

START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


class LinkFactory(BaseFactory):
    class Meta:
        model = Link

    url = factory.Sequence(lambda n: f"https://www.agence.example.org/page-{n}")
    label = factory.Sequence(lambda n: f"Lien {n}")
    kind = LinkKind.LINK
    position = factory.Sequence(lambda n: n)


class EventFactory(BaseFactory):
    class Meta:
        model = Event

    kind = EventKind.OPEN
    is_machine = False
    occurred_at = START + dt.timedelta(hours=1)


@dataclass
class Scenario:
    issue: Issue
    other: Issue
    deliveries: list[Delivery]
    links: list[Link]
    segments: list


def hit(
    issue: Issue,
    kind: EventKind,
    delivery: Delivery | None = None,
    link: Link | None = None,
    *,
    machine: bool = False,
    hours: float = 1,
) -> Event:
    return EventFactory(
        issue_id=issue.id,
        kind=kind,
        delivery_id=delivery.id if delivery else None,
        link_id=link.id if link else None,
        is_machine=machine,
        occurred_at=START + dt.timedelta(hours=hours),
    )


def build(mode: TrackingMode = TrackingMode.INDIVIDUAL) -> Scenario:
    newsletter = NewsletterFactory(tracking_mode=mode)
    elus, techniciens = SegmentFactory(name="Élus"), SegmentFactory(name="Techniciens")
    rule = SegmentFactory(
        name="Lens", kind=SegmentKind.RULE, rule={"field": "commune", "op": "eq", "value": "Lens"}
    )
    issue = IssueFactory(
        newsletter=newsletter,
        status=IssueStatus.SENT,
        send_started_at=START,
        sent_at=START + dt.timedelta(minutes=20),
    )
    issue.segments = [elus, techniciens, rule]
    other = IssueFactory(newsletter=newsletter, status=IssueStatus.SENT, send_started_at=START)
    news = BlockFactory(issue=issue, kind="text", position=0)
    resources = BlockFactory(issue=issue, kind="text", position=1)
    links = [
        LinkFactory(issue_id=issue.id, block_id=news.id, position=0),
        LinkFactory(issue_id=issue.id, block_id=news.id, position=1),
        LinkFactory(issue_id=issue.id, block_id=resources.id, kind=LinkKind.RESOURCE, position=2),
    ]
    statuses = [DeliveryStatus.SENT] * 6 + [
        DeliveryStatus.BOUNCED,
        DeliveryStatus.DEFERRED,
        DeliveryStatus.FAILED,
        DeliveryStatus.QUEUED,
    ]
    deliveries = []
    for n, status in enumerate(statuses):
        subscriber = SubscriberFactory(commune="Lens" if n % 3 == 0 else "Liévin")
        segment = elus if n < 4 else techniciens
        MembershipFactory(
            subscriber=subscriber,
            segment=segment,
            status=MembershipStatus.ACTIVE if n != 2 else MembershipStatus.UNSUBSCRIBED,
        )
        deliveries.append(DeliveryFactory(issue=issue, subscriber=subscriber, status=status))
    other_delivery = DeliveryFactory(issue=other, subscriber=SubscriberFactory())
    d = deliveries if mode is TrackingMode.INDIVIDUAL else [None] * len(deliveries)
    # d0: opens twice, clicks link 0; d1: machine open only, then a human click without
    # an open (click implies open); d2: human open, machine click; d3: clicks two links and
    # the resource, unsubscribes; d4: complaint; scanners hit at minute 0.
    hit(issue, EventKind.OPEN, d[0], hours=0.5)
    hit(issue, EventKind.OPEN, d[0], hours=30)
    hit(issue, EventKind.CLICK, d[0], links[0], hours=0.6)
    hit(issue, EventKind.OPEN, d[1], machine=True, hours=0.01)
    hit(issue, EventKind.CLICK, d[1], links[1], hours=80)
    hit(issue, EventKind.OPEN, d[2], hours=2)
    hit(issue, EventKind.CLICK, d[2], links[0], machine=True, hours=0.02)
    hit(issue, EventKind.CLICK, d[3], links[0], hours=100)
    hit(issue, EventKind.CLICK, d[3], links[1], hours=100.1)
    hit(issue, EventKind.CLICK, d[3], links[2], hours=101)
    hit(issue, EventKind.CLICK, d[3], links[2], hours=150)
    hit(issue, EventKind.UNSUBSCRIBE, d[3], hours=101.5)
    hit(issue, EventKind.COMPLAINT, d[4], hours=5)
    hit(issue, EventKind.CLICK, None, None, hours=3)  # a click with no link left
    # Another issue's events must not count.
    od = other_delivery if mode is TrackingMode.INDIVIDUAL else None
    hit(other, EventKind.OPEN, od)
    hit(other, EventKind.CLICK, od, hours=2)
    hit(other, EventKind.UNSUBSCRIBE, od, hours=2)
    return Scenario(issue, other, deliveries, links, [elus, techniciens, rule])


@pytest.fixture
def scenario(db_session: Session) -> Scenario:
    return build()


@pytest.fixture
def anonymous(db_session: Session) -> Scenario:
    return build(TrackingMode.ANONYMOUS)
