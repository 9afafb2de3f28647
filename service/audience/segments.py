"""Segments: who is in one (static memberships or a rule), counted the same way
everywhere, and the use cases that edit them."""

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.orm import Session

from service.accounts.models import User
from service.audience.models import (
    Membership,
    MembershipStatus,
    Segment,
    SegmentKind,
    Subscriber,
    SubscriberStatus,
)
from service.audience.rules import RuleError, compile_rule
from service.audit.services import record


class SegmentError(ValueError):
    """The segment cannot be saved; the message is French."""


def member_clause(segment: Segment) -> ColumnElement[bool]:
    """Subscribers who would receive an issue sent to ``segment`` now (before suppressions)."""
    active = Subscriber.status == SubscriberStatus.ACTIVE
    if segment.kind is SegmentKind.RULE:
        return and_(active, compile_rule(segment.rule))
    in_segment = exists().where(
        Membership.subscriber_id == Subscriber.id,
        Membership.segment_id == segment.id,
        Membership.status == MembershipStatus.ACTIVE,
    )
    return and_(active, in_segment)


def count_members(session: Session, segment: Segment) -> int:
    return (
        session.scalar(select(func.count()).select_from(Subscriber).where(member_clause(segment)))
        or 0
    )


def count_rule(session: Session, rule: Mapping[str, Any]) -> int:
    """Live count while a rule is being edited (raises RuleError)."""
    clause = and_(Subscriber.status == SubscriberStatus.ACTIVE, compile_rule(rule))
    return session.scalar(select(func.count()).select_from(Subscriber).where(clause)) or 0


def slugify(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:50] or "segment"


def save_segment(
    session: Session,
    user: User,
    *,
    segment: Segment | None,
    name: str,
    description: str,
    is_public: bool,
    double_opt_in: bool,
    kind: SegmentKind,
    rule: Mapping[str, Any] | None,
) -> Segment:
    """Use case: create or update a segment (the rule is checked by compiling it)."""
    name = name.strip()
    if not name:
        raise SegmentError("Donnez un nom au segment.")
    if kind is SegmentKind.RULE:
        try:
            compile_rule(rule)
        except RuleError as error:
            raise SegmentError(str(error)) from None
    if segment is None:
        base = slugify(name)
        slug, n = base, 2
        while session.scalar(select(Segment.id).where(Segment.slug == slug)) is not None:
            slug, n = f"{base}-{n}", n + 1
        segment = Segment(slug=slug)
        session.add(segment)
        action = "segment.created"
    else:
        action = "segment.saved"
    segment.name = name
    segment.description = description.strip()
    segment.is_public = is_public
    segment.double_opt_in = double_opt_in
    segment.kind = kind
    segment.rule = dict(rule) if kind is SegmentKind.RULE and rule else None
    session.flush()
    record(session, user.id, action, "segment", segment.id, details={"name": name})
    session.commit()
    return segment
