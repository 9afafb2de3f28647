import datetime as dt
import enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, bigintpk, created_at, enum_column, intpk, utcnow


class LinkKind(enum.StrEnum):
    LINK = "link"
    RESOURCE = "resource"  # a file or document offered by a resources block
    CALENDAR = "calendar"  # "add to my calendar" (.ics)
    SYSTEM = "system"  # view in browser, preferences


class EventKind(enum.StrEnum):
    OPEN = "open"
    CLICK = "click"
    UNSUBSCRIBE = "unsubscribe"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"


class Link(Base):
    """A URL stored for an issue: tracked redirects may only go to these."""

    __tablename__ = "links"
    __table_args__ = (
        Index("ix_links_issue_id", "issue_id"),
        # Position as in the email's tracked URLs: stored once per issue (idempotent).
        UniqueConstraint("issue_id", "position"),
    )

    id: Mapped[intpk]
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    block_id: Mapped[int | None] = mapped_column(ForeignKey("blocks.id", ondelete="SET NULL"))
    url: Mapped[str] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[LinkKind] = mapped_column(
        enum_column(LinkKind, "link_kind"), default=LinkKind.LINK
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[created_at]


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_issue_kind_time", "issue_id", "kind", "occurred_at"),
        Index("ix_events_delivery_id", "delivery_id"),
    )

    id: Mapped[bigintpk]
    kind: Mapped[EventKind] = mapped_column(enum_column(EventKind, "event_kind"))
    # Denormalised so statistics never need to join deliveries.
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    # NULL in anonymous tracking mode, or after retention/erasure.
    delivery_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("deliveries.id", ondelete="SET NULL"),
    )
    link_id: Mapped[int | None] = mapped_column(ForeignKey("links.id", ondelete="SET NULL"))
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Mail privacy proxies and link scanners: kept, but never counted as human.
    is_machine: Mapped[bool] = mapped_column(Boolean, default=False)
    user_agent_family: Mapped[str | None] = mapped_column(String(40))
    ip_truncated: Mapped[str | None] = mapped_column(String(45))


class TrackingFlush(Base):
    """The last batch of buffered hits written to ``events`` (one row).

    Hits wait in a Redis list; a flush moves a batch to a processing list, writes
    it, and records the batch id in the same transaction. A flush that died after
    its commit but before clearing the processing list is recognised by the id,
    so a batch is written exactly once.
    """

    __tablename__ = "tracking_flushes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    batch_id: Mapped[str] = mapped_column(String(40))
    flushed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
