"""A newsletter with sent issues, segment-limited blocks, issues that are not public,
and a reader who received the first issue (whose data must never reach the archive)."""

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from service.audience.models import Segment, Subscriber
from service.delivery.models import Delivery
from service.issues.models import Issue, IssueStatus
from service.newsletters.models import Newsletter, TrackingMode
from tests.factories import (
    BlockFactory,
    DeliveryFactory,
    IssueFactory,
    MembershipFactory,
    NewsletterFactory,
    SegmentFactory,
    SubscriberFactory,
)

SENT_AT = dt.datetime(2027, 1, 12, 8, 30, tzinfo=dt.UTC)
PUBLIC_URL = "https://www.exemple.fr/ateliers?ville=lievin&jour=2"
RESTRICTED_URL = "https://www.exemple.fr/reserve-aux-elus"
SECOND_TITLE = 'Urbanisme & <commerce> « demain » "vraiment"'


def event(uid: str, title: str, start: str, sequence: int = 0) -> dict[str, object]:
    return {
        "uid": uid,
        "sequence": sequence,
        "title": title,
        "start": start,
        "end": None,
        "place": "Salle des fêtes",
        "address": "Place de la mairie, Liévin",
        "description": "",
        "registration_url": None,
    }


@dataclass
class Archive:
    newsletter: Newsletter
    elus: Segment
    first: Issue  # sent on SENT_AT
    second: Issue  # sent a week later, carries an updated event of the first
    hidden: dict[IssueStatus, Issue]  # one issue per non-public status
    reader: Subscriber
    delivery: Delivery


@pytest.fixture
def archive(db_session: Session) -> Archive:
    newsletter = NewsletterFactory(
        slug="lettre-agence",
        name="La Lettre de l'Agence",
        tracking_mode=TrackingMode.INDIVIDUAL,
        website_url="https://www.agence.example.org",
    )
    elus = SegmentFactory(slug="elus", name="Élus")
    first = IssueFactory(
        newsletter=newsletter,
        number=1,
        title="Le commerce de demain",
        preheader="Quatre ateliers en 2027",
        status=IssueStatus.SENT,
        send_started_at=SENT_AT,
        sent_at=SENT_AT + dt.timedelta(minutes=20),
        segments=[elus],
    )
    BlockFactory(
        issue=first,
        position=0,
        kind="text",
        data={
            "title": "Édito",
            "html": f'<p>Lisez <a href="{PUBLIC_URL.replace("&", "&amp;")}">le programme</a>.</p>',
        },
    )
    BlockFactory(
        issue=first,
        position=1,
        kind="news",
        segments=[elus],
        data={
            "title": "Séminaire réservé aux élus",
            "html": f'<p>Inscrivez-vous <a href="{RESTRICTED_URL}">ici</a>.</p>',
            "image": None,
            "link": None,
        },
    )
    BlockFactory(
        issue=first,
        position=2,
        kind="agenda",
        data={
            "title": "Agenda",
            "events": [
                event("atelier-lievin@test", "Atelier à Liévin", "2027-02-03T09:30"),
                event("pleniere-lens@test", "Plénière à Lens", "2027-03-10T14:00"),
            ],
        },
    )
    BlockFactory(
        issue=first,
        position=3,
        kind="agenda",
        segments=[elus],
        data={
            "title": "Agenda des élus",
            "events": [event("huis-clos@test", "Réunion à huis clos", "2027-02-20T18:00")],
        },
    )
    second = IssueFactory(
        newsletter=newsletter,
        number=2,
        title=SECOND_TITLE,
        preheader="",
        subject="Le numéro 2",
        status=IssueStatus.SENT,
        send_started_at=SENT_AT + dt.timedelta(days=7),
        sent_at=SENT_AT + dt.timedelta(days=7, minutes=5),
    )
    BlockFactory(
        issue=second,
        position=0,
        kind="agenda",
        data={
            "title": "Agenda",
            "events": [
                event(
                    "atelier-lievin@test",
                    "Atelier à Liévin (nouvelle date)",
                    "2027-02-10T09:30",
                    sequence=1,
                )
            ],
        },
    )
    hidden = {}
    for number, status in enumerate(
        (
            IssueStatus.DRAFT,
            IssueStatus.IN_REVIEW,
            IssueStatus.APPROVED,
            IssueStatus.SCHEDULED,
            IssueStatus.CANCELLED,
        ),
        start=10,
    ):
        hidden[status] = IssueFactory(
            newsletter=newsletter, number=number, title=f"Pas encore public {number}", status=status
        )
        BlockFactory(
            issue=hidden[status],
            kind="agenda",
            data={
                "title": "Agenda",
                "events": [event(f"brouillon-{number}@test", "Secret", "2027-05-01T10:00")],
            },
        )
    reader = SubscriberFactory(
        email="albertine.zyxwvut@commune-lievin.example.fr",
        first_name="Albertine",
        last_name="Zyxwvut",
    )
    MembershipFactory(subscriber=reader, segment=elus)
    delivery = DeliveryFactory(issue=first, subscriber=reader)
    return Archive(newsletter, elus, first, second, hidden, reader, delivery)
