"""The subscriber search shared by the list page and the exports: one set of filters."""

from collections.abc import Mapping

from sqlalchemy import ColumnElement, or_
from sqlalchemy.orm import Session

from service.audience.models import Segment, Subscriber, SubscriberStatus
from service.audience.segments import member_clause

FILTERS = ("q", "segment", "statut", "commune", "epci")


def search_clauses(session: Session, args: Mapping[str, str]) -> list[ColumnElement[bool]]:
    """WHERE clauses for the list filters (free text, segment — list or rule —, status, place)."""
    clauses: list[ColumnElement[bool]] = []
    query = (args.get("q") or "").strip()
    if query:
        like = f"%{query}%"
        clauses.append(
            or_(
                Subscriber.email.ilike(like),
                Subscriber.last_name.ilike(like),
                Subscriber.first_name.ilike(like),
                Subscriber.organisation.ilike(like),
            )
        )
    status = args.get("statut") or ""
    if status in SubscriberStatus.__members__.values():
        clauses.append(Subscriber.status == SubscriberStatus(status))
    for name, column in (("commune", Subscriber.commune), ("epci", Subscriber.epci)):
        if args.get(name):
            clauses.append(column == args[name])
    segment_id = args.get("segment") or ""
    if segment_id.isdigit():
        segment = session.get(Segment, int(segment_id))
        if segment is not None:
            clauses.append(member_clause(segment))
    return clauses
