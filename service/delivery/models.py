import datetime as dt
import enum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, bigintpk, created_at, enum_column, utcnow


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"  # in the snapshot, waiting for a worker
    LEASED = "leased"  # claimed by a worker until lease_expires_at
    SENT = "sent"  # 2xx after the final "."
    DEFERRED = "deferred"  # 4xx or connection lost before end of DATA: retried later
    FAILED = "failed"  # 5xx or deadline passed
    BOUNCED = "bounced"  # hard bounce: address suppressed
    UNKNOWN = "unknown"  # connection lost after the final ".": never resent silently
    CANCELLED = "cancelled"  # the issue was cancelled before this one went out

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_DELIVERY_STATUSES


TERMINAL_DELIVERY_STATUSES = frozenset(
    {
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.BOUNCED,
        DeliveryStatus.UNKNOWN,
        DeliveryStatus.CANCELLED,
    }
)


class Delivery(Base):
    """One message of one issue to one subscriber: the unit of work and the ledger."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id"),
        Index("ix_deliveries_claim", "issue_id", "status", "next_attempt_at"),
    )

    id: Mapped[bigintpk]
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    # NULL once the subscriber is erased: the row stays for anonymous statistics.
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL")
    )
    # Which rendering of the issue this recipient gets (depends on their segments).
    variant: Mapped[str] = mapped_column(String(64), default="all")
    status: Mapped[DeliveryStatus] = mapped_column(
        enum_column(DeliveryStatus, "delivery_status"), default=DeliveryStatus.QUEUED
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    lease_expires_at: Mapped[dt.datetime | None]
    leased_by: Mapped[str | None] = mapped_column(String(120))
    message_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    last_reply: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]
    sent_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ReportKind(enum.StrEnum):
    """How an inbound report (bounce mailbox or webhook) was classified."""

    HARD = "hard"  # permanent failure: address suppressed
    SOFT = "soft"  # temporary failure or delay: counted per address
    COMPLAINT = "complaint"  # ARF report: the recipient marked the message as spam
    IGNORE = "ignore"  # auto-reply, success notice, unrelated mail
    MALFORMED = "malformed"  # a report that cannot be read: set aside for a person


class InboundReport(Base):
    """One message that came back (DSN, ARF, auto-reply…), as classified: the page
    « Retours de messagerie » lists them, and the report's own Message-ID keeps a
    second copy (a re-read mailbox, a retried webhook) from being applied twice."""

    __tablename__ = "inbound_reports"
    __table_args__ = (Index("ix_inbound_reports_received_at", "received_at"),)

    id: Mapped[bigintpk]
    source: Mapped[str] = mapped_column(String(10))  # "imap" or "webhook"
    kind: Mapped[ReportKind] = mapped_column(enum_column(ReportKind, "report_kind"))
    status: Mapped[str | None] = mapped_column(String(20))  # enhanced status code, e.g. 5.1.1
    detail: Mapped[str | None] = mapped_column(String(300))  # addresses redacted
    delivery_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("deliveries.id", ondelete="SET NULL"),
    )
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    message_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    received_at: Mapped[created_at]


class MailboxState(Base):
    """The bounce mailbox reader: who holds the run (a lease, so two beat ticks never
    read at once) and how the last run went, for the back office."""

    __tablename__ = "mailbox_states"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    lease_until: Mapped[dt.datetime | None]
    last_run_at: Mapped[dt.datetime | None]
    last_success_at: Mapped[dt.datetime | None]
    last_error_kind: Mapped[str | None] = mapped_column(String(20))  # None: the last run went well
    last_error: Mapped[str | None] = mapped_column(Text)
    last_processed: Mapped[int] = mapped_column(Integer, default=0)
    last_set_aside: Mapped[int] = mapped_column(Integer, default=0)
