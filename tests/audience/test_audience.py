"""Subscribers, rule segments, GDPR export and erasure, retention."""

import datetime as dt
import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import JSON, LargeBinary, String, Text, select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.audience import gdpr
from service.audience.models import (
    MembershipStatus,
    Segment,
    SegmentKind,
    Subscriber,
    SubscriberStatus,
    Suppression,
)
from service.audience.rules import RuleError, compile_rule
from service.audience.segments import count_members, count_rule
from service.audience.services import address_hmac, normalise_address
from service.audit.services import record
from service.db import Base, utcnow
from service.delivery.models import Delivery, DeliveryStatus, InboundReport, ReportKind
from service.outbox.services import store_message
from service.tracking.models import Event, EventKind
from tests.factories import (
    DeliveryFactory,
    IssueFactory,
    MembershipFactory,
    SegmentFactory,
    SubscriberFactory,
    UserFactory,
)
from tests.helpers import csrf_token, login

SECRET = "test-secret-key"


@pytest.fixture
def admin(client: FlaskClient, db_session: Session) -> FlaskClient:
    UserFactory(email="admin@agence.example.org", role=Role.ADMIN)
    login(client, "admin@agence.example.org")
    return client


def _people(db_session: Session) -> None:
    SubscriberFactory(
        email="maire@lens.example.fr",
        function="Élu",
        epci="CALL",
        commune="Lens",
        attributes={"mandat": "Maire"},
    )
    SubscriberFactory(
        email="adjointe@lievin.example.fr", function="Élue", epci="CALL", commune="Liévin"
    )
    SubscriberFactory(
        email="dgs@hesdin.example.fr", function="Technicien", epci="7 Vallées", commune="Hesdin"
    )
    SubscriberFactory(
        email="parti@lens.example.fr",
        function="Élu",
        epci="CALL",
        commune="Lens",
        status=SubscriberStatus.UNSUBSCRIBED,
    )
    SubscriberFactory(
        email="sans-fonction@lens.example.fr", function=None, epci="CALL", commune="Lens"
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {
                "all": [
                    {"field": "function", "op": "in", "value": "Élu, Élue"},
                    {"field": "epci", "op": "eq", "value": "call"},
                ]
            },
            2,
        ),
        (
            {
                "any": [
                    {"field": "commune", "op": "eq", "value": "Hesdin"},
                    {"field": "commune", "op": "eq", "value": "Liévin"},
                ]
            },
            2,
        ),
        ({"all": [{"field": "function", "op": "ne", "value": "Élu"}]}, 3),
        ({"all": [{"field": "function", "op": "empty"}]}, 1),
        ({"all": [{"field": "commune", "op": "starts", "value": "li"}]}, 1),
        ({"all": [{"field": "attributes.mandat", "op": "eq", "value": "maire"}]}, 1),
        ({"all": [{"field": "organisation", "op": "contains", "value": "100%_"}]}, 0),
    ],
)
def test_rules_count_active_subscribers(db_session: Session, rule: dict, expected: int) -> None:  # type: ignore[type-arg]
    _people(db_session)
    assert count_rule(db_session, rule) == expected


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({}, "La règle est vide"),
        ({"all": []}, "La règle est vide"),
        ({"all": [{"field": "password_hash", "op": "eq", "value": "x"}]}, "Champ inconnu"),
        ({"all": [{"field": "commune", "op": "regex", "value": "x"}]}, "Opérateur inconnu"),
        ({"all": [{"field": "commune", "op": "eq", "value": " "}]}, "Indiquez une valeur"),
    ],
)
def test_bad_rules_are_refused_in_french(rule: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(RuleError, match=message):
        compile_rule(rule)


def test_static_segment_counts_active_memberships(db_session: Session) -> None:
    segment = SegmentFactory()
    for _ in range(3):
        MembershipFactory(segment=segment)
    MembershipFactory(segment=segment, status=MembershipStatus.PENDING)
    MembershipFactory(
        segment=segment, subscriber=SubscriberFactory(status=SubscriberStatus.BOUNCED)
    )
    assert count_members(db_session, segment) == 3


def test_list_search_filter_and_pages(admin: FlaskClient, db_session: Session) -> None:
    segment = SegmentFactory(name="Élus")
    for n in range(60):
        MembershipFactory(
            segment=segment,
            subscriber=SubscriberFactory(email=f"elu{n:02d}@ternois.example.fr", commune="Frévent"),
        )
    SubscriberFactory(email="commercant@hesdin.example.fr", commune="Hesdin")
    first = admin.get(f"/abonnes/?segment={segment.id}").get_data(as_text=True)
    assert '<small data-figure="total">60</small>' in first
    assert first.count("data-subscriber=") == 50
    assert "elu59@ternois.example.fr" in first
    next_link = (
        first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    )
    second = admin.get(next_link).get_data(as_text=True)
    assert second.count("data-subscriber=") == 10
    assert "elu00@ternois.example.fr" in second
    assert "elu59@ternois.example.fr" not in second
    only = admin.get("/abonnes/?q=commercant").get_data(as_text=True)
    assert only.count("data-subscriber=") == 1
    assert (
        admin.get("/abonnes/?commune=Hesdin").get_data(as_text=True).count("data-subscriber=") == 1
    )


def test_rule_segment_editor_and_live_count(admin: FlaskClient, db_session: Session) -> None:
    _people(db_session)
    token = csrf_token(admin, "/abonnes/segments/nouveau")
    fields = {
        "csrf_token": token,
        "name": "Élus de la CALL",
        "kind": "rule",
        "mode": "all",
        "cond-0-field": "function",
        "cond-0-op": "in",
        "cond-0-value": "Élu, Élue",
        "cond-1-field": "epci",
        "cond-1-op": "eq",
        "cond-1-value": "CALL",
    }
    count = admin.post("/abonnes/segments/compter", data=fields, headers={"HX-Request": "true"})
    assert '<strong data-figure="count">2</strong>' in count.get_data(as_text=True)
    bad = admin.post("/abonnes/segments/compter", data={**fields, "cond-1-value": ""})
    assert "Indiquez une valeur" in bad.get_data(as_text=True)
    response = admin.post("/abonnes/segments/nouveau", data={**fields, "action": "save"})
    assert response.status_code == 302
    segment = db_session.scalars(select(Segment).where(Segment.name == "Élus de la CALL")).one()
    assert segment.kind is SegmentKind.RULE
    assert segment.slug == "elus-de-la-call"
    assert count_members(db_session, segment) == 2
    refused = admin.post(
        "/abonnes/segments/nouveau", data={**fields, "action": "save", "cond-0-op": "??"}
    )
    assert refused.status_code == 400
    assert "Opérateur inconnu" in refused.get_data(as_text=True)


def test_gdpr_export(admin: FlaskClient, db_session: Session) -> None:
    subscriber = SubscriberFactory(
        email="claire.dumont@mairie-lievin.example.fr", first_name="Claire"
    )
    MembershipFactory(subscriber=subscriber, segment=SegmentFactory(name="Élus"))
    response = admin.get(f"/abonnes/{subscriber.id}/donnees.json")
    data = json.loads(response.data)
    assert data["subscriber"]["email"] == "claire.dumont@mairie-lievin.example.fr"
    assert data["subscriber"]["status"] == "active"
    assert data["memberships"][0]["segment"] == "Élus"


def _columns_containing(db_session: Session, needle: str) -> list[str]:
    """Every text, JSON or binary column of every table that still holds ``needle``."""
    found = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if not isinstance(column.type, String | Text | JSON | LargeBinary):
                continue
            for value in db_session.execute(select(column)).scalars():
                raw = (
                    value
                    if isinstance(value, bytes)
                    else json.dumps(value, ensure_ascii=False)
                    if isinstance(value, dict | list)
                    else str(value or "")
                )
                if (needle.encode() in raw) if isinstance(raw, bytes) else (needle in raw.lower()):
                    found.append(f"{table.name}.{column.name}")
    return found


def test_erasure_leaves_the_address_nowhere(
    admin: FlaskClient, db_session: Session, app: Flask
) -> None:
    address = "claire.dumont@mairie-lievin.example.fr"
    subscriber = SubscriberFactory(
        email=address,
        first_name="Claire",
        last_name="Dumont",
        consent_ip="192.0.2.0",
        attributes={"note": f"écrire à {address}"},
    )
    MembershipFactory(subscriber=subscriber)
    issue = IssueFactory()
    delivery = Delivery(
        issue_id=issue.id, subscriber_id=subscriber.id, last_reply=f"250 ok <{address}>"
    )
    db_session.add(delivery)
    db_session.flush()
    db_session.add(
        Event(
            kind=EventKind.OPEN,
            issue_id=issue.id,
            delivery_id=delivery.id,
            ip_truncated="192.0.2.0",
        )
    )
    record(db_session, None, "issue.test_sent", "issue", issue.id, {"to": [address]})
    db_session.commit()
    store_message(
        db_session, "lettre@aula.example.org", [address], f"To: {address}\r\n\r\nx".encode()
    )
    assert _columns_containing(db_session, address)

    token = csrf_token(admin, f"/abonnes/{subscriber.id}/effacer")
    assert (
        admin.post(f"/abonnes/{subscriber.id}/effacer", data={"csrf_token": token}).status_code
        == 302
    )
    db_session.expire_all()
    assert _columns_containing(db_session, address) == []
    assert _columns_containing(db_session, "claire") == []
    suppression = db_session.scalars(select(Suppression)).one()
    assert suppression.address_hmac == address_hmac(SECRET, normalise_address(address))
    kept = db_session.get(Delivery, delivery.id)
    assert kept is not None
    assert kept.subscriber_id is None  # the statistics stay, anonymous
    assert db_session.scalars(select(Event.issue_id)).one() == issue.id


def test_only_admins_handle_personal_data_requests(
    client: FlaskClient, db_session: Session
) -> None:
    subscriber = SubscriberFactory()
    UserFactory(email="redaction@agence.example.org", role=Role.EDITOR)
    login(client, "redaction@agence.example.org")
    assert client.get(f"/abonnes/{subscriber.id}").status_code == 200
    assert client.get(f"/abonnes/{subscriber.id}/effacer").status_code == 403
    assert client.get(f"/abonnes/{subscriber.id}/donnees.json").status_code == 403


def test_retention(db_session: Session) -> None:
    now = utcnow()
    old = SubscriberFactory(status=SubscriberStatus.PENDING)
    old.created_at = now - dt.timedelta(days=31)
    recent = SubscriberFactory(status=SubscriberStatus.PENDING)
    active = SubscriberFactory()
    active.created_at = now - dt.timedelta(days=400)
    issue = IssueFactory()
    issue.newsletter.tracking_retention_days = 90
    delivery = Delivery(issue_id=issue.id, subscriber_id=active.id)
    db_session.add(delivery)
    db_session.flush()
    stale = Event(
        kind=EventKind.CLICK,
        issue_id=issue.id,
        delivery_id=delivery.id,
        occurred_at=now - dt.timedelta(days=91),
        ip_truncated="192.0.2.0",
    )
    fresh = Event(
        kind=EventKind.CLICK,
        issue_id=issue.id,
        delivery_id=delivery.id,
        occurred_at=now - dt.timedelta(days=10),
    )
    db_session.add_all([stale, fresh])
    reports = [
        InboundReport(
            source="imap",
            kind=ReportKind.HARD,
            delivery_id=delivery.id,
            issue_id=issue.id,
            received_at=now - dt.timedelta(days=days),
        )
        for days in (91, 10)
    ] + [
        InboundReport(
            source="imap", kind=ReportKind.IGNORE, received_at=now - dt.timedelta(days=days)
        )
        for days in (91, 10)
    ]
    db_session.add_all(reports)
    db_session.commit()
    report_ids = [r.id for r in reports]
    counts = gdpr.purge_expired(db_session, now)
    assert counts == {
        "pending_removed": 1,
        "events_anonymised": 1,
        "reach_removed": 0,
        "reports_removed": 2,
    }
    left = db_session.scalars(select(InboundReport.id).order_by(InboundReport.id)).all()
    assert left == [report_ids[1], report_ids[3]]
    db_session.expire_all()
    assert db_session.get(Subscriber, old.id) is None
    assert db_session.get(Subscriber, recent.id) is not None
    assert db_session.get(Subscriber, active.id) is not None
    assert (
        db_session.get(Event, stale.id).delivery_id,
        db_session.get(Event, stale.id).ip_truncated,
    ) == (None, None)  # type: ignore[union-attr]
    assert db_session.get(Event, fresh.id).delivery_id == delivery.id  # type: ignore[union-attr]


def test_export_of_a_search_and_of_a_rule_segment(admin: FlaskClient, db_session: Session) -> None:
    _people(db_session)
    rule = Segment(
        slug="call",
        name="CALL",
        kind=SegmentKind.RULE,
        rule={"all": [{"field": "epci", "op": "eq", "value": "CALL"}]},
    )
    db_session.add(rule)
    db_session.commit()
    by_search = admin.get("/abonnes/import/export/abonnes.csv?commune=Lens&statut=active")
    lines = by_search.data.decode("utf-8-sig").strip().splitlines()
    assert sorted(line.split(";")[0] for line in lines[1:]) == [
        "maire@lens.example.fr",
        "sans-fonction@lens.example.fr",
    ]
    by_rule = admin.get(f"/abonnes/import/export/abonnes.csv?segment={rule.id}").data.decode(
        "utf-8-sig"
    )
    assert len(by_rule.strip().splitlines()) == 1 + 3  # active members of the CALL
    page = admin.get("/abonnes/?commune=Lens").get_data(as_text=True)
    assert "/abonnes/import/export/abonnes.csv?" in page
    assert "commune=Lens" in page


def test_subscriber_page_shows_deliveries_and_activity_in_french(
    admin: FlaskClient, db_session: Session
) -> None:
    subscriber = SubscriberFactory(email="claire@lievin.example.fr")
    sent = DeliveryFactory(
        subscriber=subscriber, issue=IssueFactory(title="Numéro envoyé"), status=DeliveryStatus.SENT
    )
    DeliveryFactory(
        subscriber=subscriber,
        issue=IssueFactory(title="Numéro différé"),
        status=DeliveryStatus.DEFERRED,
    )
    for kind in (EventKind.OPEN, EventKind.CLICK, EventKind.UNSUBSCRIBE):
        db_session.add(Event(kind=kind, issue_id=sent.issue_id, delivery_id=sent.id))
    db_session.commit()
    page = admin.get(f"/abonnes/{subscriber.id}").get_data(as_text=True)
    assert "Numéro envoyé — envoyé" in page
    assert "Numéro différé — différé (nouvel essai prévu)" in page
    for label in ("— ouverture<", "— clic<", "— désinscription<"):
        assert label in page
    for raw in ("— sent", "— deferred", "— open", "— click", "— unsubscribe"):
        assert raw not in page
