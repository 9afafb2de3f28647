from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.accounts.models import Role, User
from service.accounts.services import authenticate
from service.audience.models import Membership, Segment, Subscriber, SubscriberStatus
from service.demo.content import DEMO_PASSWORD
from service.demo.services import load_demo
from service.issues.models import Issue
from service.newsletters.models import Newsletter

AUDIENCES = {"elus", "techniciens", "commercants", "chambres-consulaires", "partenaires"}


def test_demo_content_is_complete(db_session: Session) -> None:
    assert load_demo(db_session) is True
    db_session.commit()

    newsletter = db_session.scalars(select(Newsletter)).one()
    issue = db_session.scalars(select(Issue).where(Issue.newsletter_id == newsletter.id)).one()
    kinds = Counter(block.kind for block in issue.blocks)
    assert kinds["news"] >= 3
    assert kinds["agenda"] == 1
    assert kinds["resources"] == 1
    agenda = next(block for block in issue.blocks if block.kind == "agenda")
    events = agenda.data["events"]
    assert len(events) >= 4
    places = " ".join(event["place"] for event in events)
    for commune in ("Liévin", "Saint-Pol-sur-Ternoise", "Bruay-la-Buissière", "Lens"):
        assert commune in places
    assert all(event["start"] < event["end"] for event in events)
    assert len({event["uid"] for event in events}) == len(events)
    resources = next(block for block in issue.blocks if block.kind == "resources")
    assert len(resources.data["items"]) >= 3
    assert [block.position for block in issue.blocks] == sorted(b.position for b in issue.blocks)
    assert {segment.slug for segment in issue.segments} == AUDIENCES

    assert set(db_session.scalars(select(Segment.slug))) >= AUDIENCES
    assert (db_session.scalar(select(func.count()).select_from(Subscriber)) or 0) >= 300
    active = db_session.scalar(
        select(func.count()).where(Subscriber.status == SubscriberStatus.ACTIVE)
    )
    assert (active or 0) >= 280
    per_subscriber = Counter(db_session.scalars(select(Membership.subscriber_id)))
    assert sum(1 for n in per_subscriber.values() if n > 1) >= 10
    segment_sizes = Counter(db_session.scalars(select(Membership.segment_id)))
    assert len(segment_sizes) == len(AUDIENCES)
    assert min(segment_sizes.values()) >= 10
    assert all(s.commune and s.epci for s in db_session.scalars(select(Subscriber)))

    roles = {user.role for user in db_session.scalars(select(User))}
    assert roles == set(Role)
    admin = authenticate(db_session, "admin@lettrine.example", DEMO_PASSWORD)
    assert admin is not None
    assert admin.role is Role.ADMIN


def test_demo_loads_once(db_session: Session) -> None:
    assert load_demo(db_session) is True
    db_session.commit()
    counts = (
        db_session.scalar(select(func.count()).select_from(Subscriber)),
        db_session.scalar(select(func.count()).select_from(Issue)),
        db_session.scalar(select(func.count()).select_from(User)),
    )
    assert load_demo(db_session) is False
    db_session.commit()
    assert counts == (
        db_session.scalar(select(func.count()).select_from(Subscriber)),
        db_session.scalar(select(func.count()).select_from(Issue)),
        db_session.scalar(select(func.count()).select_from(User)),
    )
