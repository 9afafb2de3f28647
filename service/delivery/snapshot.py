"""The audience of an issue, frozen into ``deliveries`` by one set-based statement.

Union of the chosen segments' active members (rule segments evaluated now),
minus subscribers who are not active, deduplicated by the unique
(issue_id, subscriber_id) constraint; each row carries its visibility variant:
which segment-limited blocks this recipient sees. Running it twice adds nothing.
"""

from sqlalchemy import ColumnElement, String, case, cast, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.audience.models import Subscriber, SubscriberStatus
from service.audience.segments import member_clause
from service.db import UTCDateTime, utcnow
from service.delivery.models import Delivery, DeliveryStatus
from service.issues.models import Issue

ALL = "all"


def variant_expression(issue: Issue) -> ColumnElement[str]:
    """Per subscriber: "b12,b15," for the limited blocks they see, "all" when none is limited."""
    restricted = [b for b in issue.blocks if b.segments]
    if not restricted:
        return literal(ALL, String)
    parts: list[ColumnElement[str]] = [
        case((or_(*(member_clause(s) for s in block.segments)), f"b{block.id},"), else_="")
        for block in restricted
    ]
    key = parts[0]
    for part in parts[1:]:
        key = key.op("||")(part)
    return func.coalesce(func.nullif(key, ""), literal(ALL, String))


def parse_variant(key: str) -> frozenset[int] | None:
    """The limited blocks shown for a variant key (None: none limited in the issue)."""
    if key == ALL:
        return frozenset()
    return frozenset(int(part[1:]) for part in key.split(",") if part.startswith("b"))


def snapshot(session: Session, issue: Issue) -> int:
    """Insert the issue's deliveries; returns how many were added. Does not commit."""
    if not issue.segments:
        return 0
    audience = or_(*(member_clause(segment) for segment in issue.segments))
    now = utcnow()
    rows = select(
        literal(issue.id),
        Subscriber.id,
        variant_expression(issue),
        cast(literal(DeliveryStatus.QUEUED.value), String),
        literal(0),
        literal(now, UTCDateTime),
        literal(now, UTCDateTime),
    ).where(Subscriber.status == SubscriberStatus.ACTIVE, audience)
    # Deliveries numbered in subscriber order: claims (by id) then follow it.
    rows = rows.order_by(Subscriber.id)
    columns = [
        "issue_id",
        "subscriber_id",
        "variant",
        "status",
        "attempts",
        "created_at",
        "updated_at",
    ]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(Delivery)
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"])
    )
    before = _count(session, issue.id)
    session.execute(statement)
    # rowcount is not reliable for INSERT … SELECT … ON CONFLICT across drivers: count.
    return _count(session, issue.id) - before


def _count(session: Session, issue_id: int) -> int:
    return session.scalar(select(func.count()).where(Delivery.issue_id == issue_id)) or 0
