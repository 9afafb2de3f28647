import datetime as dt
import enum
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.audience.models import Segment
from service.db import Base, UTCDateTime, created_at, enum_column, intpk, str255, utcnow
from service.newsletters.models import Newsletter


class IssueStatus(enum.StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


issue_segments = Table(
    "issue_segments",
    Base.metadata,
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("segment_id", ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True),
)

block_segments = Table(
    "block_segments",
    Base.metadata,
    Column("block_id", ForeignKey("blocks.id", ondelete="CASCADE"), primary_key=True),
    Column("segment_id", ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True),
)


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (UniqueConstraint("newsletter_id", "number"),)

    id: Mapped[intpk]
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletters.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str255]
    subject: Mapped[str255] = mapped_column(default="")
    preheader: Mapped[str255] = mapped_column(default="")
    status: Mapped[IssueStatus] = mapped_column(
        enum_column(IssueStatus, "issue_status"), default=IssueStatus.DRAFT, index=True
    )
    scheduled_at: Mapped[dt.datetime | None]
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    approved_at: Mapped[dt.datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    send_started_at: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
    # The last problem that stopped or held the sending (relay refused, window closed…),
    # shown to the publisher; cleared when messages flow again.
    send_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Optimistic locking: a save based on a stale version fails instead of
    # silently overwriting a colleague's edit.
    version: Mapped[int] = mapped_column(Integer, default=1)

    newsletter: Mapped[Newsletter] = relationship()
    segments: Mapped[list[Segment]] = relationship(secondary=issue_segments)
    blocks: Mapped[list["Block"]] = relationship(
        back_populates="issue", order_by="Block.position", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Block(Base):
    __tablename__ = "blocks"
    __table_args__ = (Index("ix_blocks_issue_position", "issue_id", "position"),)

    id: Mapped[intpk]
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    # A key of the block-kind registry (text, news, agenda, resources...).
    kind: Mapped[str] = mapped_column(String(30))
    # Validated per kind by the registry before it is stored.
    data: Mapped[dict[str, Any]]
    note: Mapped[str | None] = mapped_column(Text)

    issue: Mapped[Issue] = relationship(back_populates="blocks")
    # Empty means visible to every segment.
    segments: Mapped[list[Segment]] = relationship(secondary=block_segments)
