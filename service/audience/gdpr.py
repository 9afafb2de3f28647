"""GDPR: everything we hold on one subscriber, erasure, and retention.

Erasure removes the personal data everywhere and keeps only the suppression
HMAC (so the address is never mailed or imported again) and anonymous
statistics (deliveries and events lose their link to the person).
"""

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Enum, String, Text, cast, delete, func, select, update
from sqlalchemy.orm import Session

from service.accounts.models import User
from service.audience.models import Subscriber, SubscriberStatus, SuppressionReason
from service.audience.services import suppress
from service.audit.services import record
from service.db import Base, utcnow
from service.delivery.models import Delivery, InboundReport
from service.issues.models import Issue
from service.newsletters.models import Newsletter
from service.outbox.models import OutboxMessage
from service.stats.services import purge_reach
from service.tracking.models import Event

ERASED = "[effacé]"
PENDING_RETENTION = dt.timedelta(days=30)
# Reports that named no delivery of ours (redacted, but nobody's statistics need them).
UNMATCHED_REPORT_RETENTION = dt.timedelta(days=90)
# Staff accounts are not subscriber data (a colleague may share the address).
KEEP_TABLES = frozenset({"users", "suppressions"})


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def export_subscriber(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything tied to the person, as JSON-ready data (right of access, art. 15)."""
    fields = {}
    for column in Subscriber.__table__.columns:
        value = _iso(getattr(subscriber, column.key))
        fields[column.key] = value.value if hasattr(value, "value") else value
    deliveries = session.execute(
        select(Delivery, Issue.title)
        .join(Issue, Issue.id == Delivery.issue_id)
        .where(Delivery.subscriber_id == subscriber.id)
        .order_by(Delivery.id)
    ).all()
    delivery_ids = [d.id for d, _title in deliveries]
    events: list[Event] = (
        list(
            session.scalars(
                select(Event).where(Event.delivery_id.in_(delivery_ids)).order_by(Event.id)
            )
        )
        if delivery_ids
        else []
    )
    return {
        "subscriber": fields,
        "memberships": [
            {
                "segment": m.segment.name,
                "status": m.status.value,
                "created_at": _iso(m.created_at),
                "confirmed_at": _iso(m.confirmed_at),
                "unsubscribed_at": _iso(m.unsubscribed_at),
            }
            for m in subscriber.memberships
        ],
        "deliveries": [
            {"issue": title, "status": d.status.value, "sent_at": _iso(d.sent_at)}
            for d, title in deliveries
        ],
        "events": [
            {"kind": e.kind.value, "occurred_at": _iso(e.occurred_at), "machine": e.is_machine}
            for e in events
        ],
    }


def erase_subscriber(
    session: Session, secret: str, subscriber: Subscriber, user: User | None
) -> None:
    """Use case: right to erasure (art. 17). Commits."""
    address = subscriber.email
    subscriber_id = subscriber.id
    suppress(session, secret, address, SuppressionReason.ERASED)
    # Statistics stay; the link to the person goes.
    delivery_ids = select(Delivery.id).where(Delivery.subscriber_id == subscriber_id)
    session.execute(
        update(Event)
        .where(Event.delivery_id.in_(delivery_ids))
        .values(ip_truncated=None, user_agent_family=None)
    )
    session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber_id)
        .values(subscriber_id=None, last_reply=None)
    )
    session.delete(subscriber)
    session.flush()
    _scrub_everywhere(session, address)
    record(session, user.id if user else None, "subscriber.erased", "subscriber", subscriber_id)
    session.commit()


def _scrub_everywhere(session: Session, address: str) -> None:
    """Replace the address wherever it may have been copied (audit details, reports…).

    Generic on purpose: a table added later is covered without anyone remembering it.
    """
    pattern = f"%{address}%"
    for table in Base.metadata.sorted_tables:
        if table.name in KEEP_TABLES:
            continue
        for column in table.columns:
            if isinstance(column.type, Enum) or column.primary_key:
                continue
            if isinstance(column.type, String | Text):
                session.execute(
                    update(table)
                    .where(column.ilike(pattern))
                    .values({column.name: func.replace(column, address, ERASED)})
                )
            elif isinstance(column.type, JSON):
                as_text = cast(column, Text)
                session.execute(
                    update(table)
                    .where(as_text.ilike(pattern))
                    .values(
                        {column.name: cast(func.replace(as_text, address, ERASED), column.type)}
                    )
                )
    # Raw messages of the dev outbox (embedded mode only, small): drop those naming the person.
    needle = address.encode()
    doomed = [
        message_id
        for message_id, raw in session.execute(select(OutboxMessage.id, OutboxMessage.raw))
        if needle in raw.lower()
    ]
    if doomed:
        session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(doomed)))


def purge_expired(session: Session, now: dt.datetime | None = None) -> dict[str, int]:
    """Use case (daily): unconfirmed sign-ups after 30 days; per-recipient tracking
    data (events' delivery, address and agent; statistics' reach rows) and the bounce
    and complaint reports of an issue after its newsletter's retention period; reports
    matching no issue after ``UNMATCHED_REPORT_RETENTION``. Commits."""
    now = now or utcnow()
    stale = session.execute(
        delete(Subscriber).where(
            Subscriber.status == SubscriberStatus.PENDING,
            Subscriber.created_at < now - PENDING_RETENTION,
        )
    )
    anonymised = reach_removed = reports_removed = 0
    for newsletter in session.scalars(select(Newsletter)):
        cutoff = now - dt.timedelta(days=newsletter.tracking_retention_days)
        issue_ids = select(Issue.id).where(Issue.newsletter_id == newsletter.id)
        result = session.execute(
            update(Event)
            .where(
                Event.issue_id.in_(issue_ids),
                Event.occurred_at < cutoff,
                Event.delivery_id.is_not(None),
            )
            .values(delivery_id=None, ip_truncated=None, user_agent_family=None)
        )
        anonymised += getattr(result, "rowcount", 0) or 0
        # The statistics' reach rows name deliveries too (unique counts are kept apart).
        reach_removed += purge_reach(session, newsletter, cutoff)
        # A report names its delivery, so its recipient: it goes with the tracking data.
        reports = session.execute(
            delete(InboundReport).where(
                InboundReport.issue_id.in_(issue_ids), InboundReport.received_at < cutoff
            )
        )
        reports_removed += getattr(reports, "rowcount", 0) or 0
    unmatched = session.execute(
        delete(InboundReport).where(
            InboundReport.issue_id.is_(None),
            InboundReport.received_at < now - UNMATCHED_REPORT_RETENTION,
        )
    )
    counts = {
        "pending_removed": getattr(stale, "rowcount", 0) or 0,
        "events_anonymised": anonymised,
        "reach_removed": reach_removed,
        "reports_removed": reports_removed + (getattr(unmatched, "rowcount", 0) or 0),
    }
    record(session, None, "retention.purged", details=counts)
    session.commit()
    return counts
