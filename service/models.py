"""Imports every model so that ``Base.metadata`` is complete (Alembic, tests)."""

from service.accounts.models import Role, User
from service.assets.models import Asset
from service.audience.models import (
    Membership,
    MembershipStatus,
    Segment,
    SegmentKind,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
)
from service.audit.models import AuditEntry
from service.db import Base
from service.delivery.models import Delivery, DeliveryStatus
from service.issues.models import Block, Issue, IssueStatus
from service.newsletters.models import Newsletter, TrackingMode
from service.outbox.models import OutboxMessage
from service.stats.models import HourlyCount, Reach, RollupState, UniqueCount
from service.system.models import WorkerHeartbeat
from service.tracking.models import Event, EventKind, Link, LinkKind

__all__ = [
    "Asset",
    "AuditEntry",
    "Base",
    "Block",
    "Delivery",
    "DeliveryStatus",
    "Event",
    "EventKind",
    "HourlyCount",
    "Issue",
    "IssueStatus",
    "Link",
    "LinkKind",
    "Membership",
    "MembershipStatus",
    "Newsletter",
    "OutboxMessage",
    "Reach",
    "Role",
    "RollupState",
    "Segment",
    "SegmentKind",
    "Subscriber",
    "SubscriberStatus",
    "Suppression",
    "SuppressionReason",
    "TrackingMode",
    "UniqueCount",
    "User",
    "WorkerHeartbeat",
]
