"""Figures for the back-office home page, read straight from the database."""

import datetime as dt
import unicodedata
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from service.audience.models import (
    Membership,
    MembershipStatus,
    Segment,
    SegmentKind,
    Subscriber,
    SubscriberStatus,
)
from service.issues.models import Issue, IssueStatus
from service.newsletters.models import Newsletter
from service.system.services import latest_heartbeat


def french_sort_key(text: str) -> tuple[str, str]:
    """Alphabetical order as a French reader expects it: « Élus » between D and F.

    The database's collation differs between SQLite and PostgreSQL; sorting here
    gives the same order on both.
    """
    plain = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in plain if not unicodedata.combining(c)), text


@dataclass(frozen=True)
class SegmentCount:
    segment_id: int
    name: str
    active: int
    total: int
    # Rule segments have no memberships: their audience is computed at send time.
    is_rule: bool


@dataclass(frozen=True)
class HomeFigures:
    issues_by_status: dict[IssueStatus, int]
    subscribers_by_status: dict[SubscriberStatus, int]
    segments: list[SegmentCount]
    recent_issues: list[tuple[Issue, Newsletter]]
    worker_last_seen: dt.datetime | None

    @property
    def issues_total(self) -> int:
        return sum(self.issues_by_status.values())

    @property
    def subscribers_total(self) -> int:
        return sum(self.subscribers_by_status.values())


def home_figures(session: Session) -> HomeFigures:
    by_status = dict.fromkeys(IssueStatus, 0)
    for status, count in session.execute(select(Issue.status, func.count()).group_by(Issue.status)):
        by_status[status] = count

    subscribers = dict.fromkeys(SubscriberStatus, 0)
    for sub_status, count in session.execute(
        select(Subscriber.status, func.count()).group_by(Subscriber.status)
    ):
        subscribers[sub_status] = count

    # "Active" means both the membership and the subscriber are active: who would
    # receive the next issue sent to that segment (before suppressions).
    active = func.sum(
        case(
            (
                (Membership.status == MembershipStatus.ACTIVE)
                & (Subscriber.status == SubscriberStatus.ACTIVE),
                1,
            ),
            else_=0,
        )
    )
    rows = session.execute(
        select(
            Segment.id,
            Segment.name,
            Segment.kind,
            func.coalesce(active, 0),
            func.count(Subscriber.id),
        )
        .outerjoin(Membership, Membership.segment_id == Segment.id)
        .outerjoin(Subscriber, Subscriber.id == Membership.subscriber_id)
        .group_by(Segment.id, Segment.name, Segment.kind)
    )
    segments = sorted(
        (
            SegmentCount(sid, name, int(act), int(tot), kind == SegmentKind.RULE)
            for sid, name, kind, act, tot in rows
        ),
        key=lambda s: french_sort_key(s.name),
    )

    recent = [
        (issue, newsletter)
        for issue, newsletter in session.execute(
            select(Issue, Newsletter)
            .join(Newsletter, Newsletter.id == Issue.newsletter_id)
            .order_by(Issue.updated_at.desc())
            .limit(5)
        )
    ]
    beat = latest_heartbeat(session)
    return HomeFigures(
        issues_by_status=by_status,
        subscribers_by_status=subscribers,
        segments=segments,
        recent_issues=recent,
        worker_last_seen=beat.last_seen_at if beat else None,
    )
