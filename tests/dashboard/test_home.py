import re

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from service.audience.models import MembershipStatus, SubscriberStatus
from service.issues.models import IssueStatus
from service.system.services import record_heartbeat
from tests.factories import (
    IssueFactory,
    MembershipFactory,
    NewsletterFactory,
    SegmentFactory,
    SubscriberFactory,
    UserFactory,
)
from tests.helpers import login


def _row(html: str, attr: str, value: str | int) -> list[str]:
    match = re.search(rf'<tr {attr}="{value}">(.*?)</tr>', html, re.S)
    assert match, f"no row {attr}={value}"
    return re.findall(r'class="num">([^<]*)<', match.group(1))


def test_home_shows_figures_from_the_database(client: FlaskClient, db_session: Session) -> None:
    newsletter = NewsletterFactory()
    for status, count in (
        (IssueStatus.DRAFT, 2),
        (IssueStatus.SENT, 3),
        (IssueStatus.IN_REVIEW, 1),
    ):
        for _ in range(count):
            IssueFactory(newsletter=newsletter, status=status)
    elus, commercants = SegmentFactory(name="Élus"), SegmentFactory(name="Commerçants")
    for _ in range(4):
        MembershipFactory(segment=elus)
    MembershipFactory(segment=elus, status=MembershipStatus.UNSUBSCRIBED)
    MembershipFactory(segment=elus, subscriber=SubscriberFactory(status=SubscriberStatus.BOUNCED))
    both = SubscriberFactory()
    MembershipFactory(segment=elus, subscriber=both)
    MembershipFactory(segment=commercants, subscriber=both)
    UserFactory(email="chef@agence.example.org")
    login(client, "chef@agence.example.org")

    html = client.get("/").get_data(as_text=True)

    assert _row(html, "data-status", "draft") == ["2"]
    assert _row(html, "data-status", "sent") == ["3"]
    assert _row(html, "data-status", "in_review") == ["1"]
    assert _row(html, "data-status", "cancelled") == ["0"]
    assert 'data-figure="issues-total">6<' in html
    # Élus: 4 + the shared one are active; the unsubscribed membership and the
    # bounced address are members but not recipients.
    assert _row(html, "data-segment", elus.id) == ["5", "7"]
    assert _row(html, "data-segment", commercants.id) == ["1", "1"]
    assert 'data-figure="subscribers-total">7<' in html
    assert "Aucun processus d'envoi ne s'est encore manifesté." in html


def test_home_says_when_workers_are_alive(client: FlaskClient, db_session: Session) -> None:
    record_heartbeat(db_session, "worker@test")
    UserFactory(email="chef@agence.example.org")
    login(client, "chef@agence.example.org")
    assert "Les processus d'envoi répondent" in client.get("/").get_data(as_text=True)
