import datetime as dt
import enum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, UTCDateTime, created_at, enum_column, intpk, str120, utcnow


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"  # signed up, double opt-in not confirmed yet
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class SegmentKind(enum.StrEnum):
    STATIC = "static"  # explicit memberships
    RULE = "rule"  # conditions over subscriber fields, evaluated at send time


class MembershipStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"


class SuppressionReason(enum.StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    ERASED = "erased"
    MANUAL = "manual"


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[intpk]
    # Normalised (trimmed, domain lower-cased) before it is stored.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    civility: Mapped[str | None] = mapped_column(String(10))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    organisation: Mapped[str | None] = mapped_column(String(200))
    function: Mapped[str | None] = mapped_column(String(120))
    commune: Mapped[str | None] = mapped_column(String(120), index=True)
    epci: Mapped[str | None] = mapped_column(String(120), index=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[SubscriberStatus] = mapped_column(
        enum_column(SubscriberStatus, "subscriber_status"),
        default=SubscriberStatus.PENDING,
        index=True,
    )
    language: Mapped[str] = mapped_column(String(5), default="fr")
    # Consent evidence: where, when, from which (truncated) address, which text.
    consent_source: Mapped[str | None] = mapped_column(String(60))
    consent_at: Mapped[dt.datetime | None]
    consent_ip: Mapped[str | None] = mapped_column(String(45))
    consent_text_version: Mapped[str | None] = mapped_column(String(40))
    confirmed_at: Mapped[dt.datetime | None]
    created_at: Mapped[created_at]
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    memberships: Mapped[list["Membership"]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan"
    )

    @property
    def display_name(self) -> str:
        full = " ".join(part for part in (self.first_name, self.last_name) if part)
        return full or self.email


class Segment(Base):
    __tablename__ = "segments"

    id: Mapped[intpk]
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str120]
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[SegmentKind] = mapped_column(
        enum_column(SegmentKind, "segment_kind"), default=SegmentKind.STATIC
    )
    # For rule segments: {"all": [{"field": "function", "op": "eq", "value": "élu"}, ...]}
    rule: Mapped[dict[str, Any] | None]
    # Offered on the public subscription form.
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[created_at]

    memberships: Mapped[list["Membership"]] = relationship(back_populates="segment")


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_segment_status", "segment_id", "status"),)

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[MembershipStatus] = mapped_column(
        enum_column(MembershipStatus, "membership_status"), default=MembershipStatus.ACTIVE
    )
    created_at: Mapped[created_at]
    confirmed_at: Mapped[dt.datetime | None]
    unsubscribed_at: Mapped[dt.datetime | None]

    subscriber: Mapped[Subscriber] = relationship(back_populates="memberships")
    segment: Mapped[Segment] = relationship(back_populates="memberships")


class Suppression(Base):
    """An address that must never be mailed again, kept as an HMAC only.

    Survives erasure: the HMAC lets us refuse the address without keeping it.
    """

    __tablename__ = "suppressions"

    id: Mapped[intpk]
    address_hmac: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[SuppressionReason] = mapped_column(
        enum_column(SuppressionReason, "suppression_reason")
    )
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]


class ImportStatus(enum.StrEnum):
    UPLOADED = "uploaded"  # file read and stored; columns to map, options to choose
    CHECKING = "checking"  # dry run queued or running
    CHECKED = "checked"  # dry run done: report ready, nothing written
    IMPORTING = "importing"  # import queued or running
    DONE = "done"
    FAILED = "failed"  # unreadable file, or all-or-nothing refused: nothing written


class Import(Base):
    """One subscriber file, from upload to report: the row the progress page polls.

    The file and the per-line report live under ``{instance}/imports/{id}/`` (the
    same shared volume as media); the declared consent basis is kept here, so
    ``Subscriber.consent_source = "import:{id}"`` leads back to who declared what.
    """

    __tablename__ = "imports"

    id: Mapped[intpk]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))
    file_format: Mapped[str] = mapped_column(String(10))  # csv | xlsx | ods
    encoding: Mapped[str | None] = mapped_column(String(20))
    delimiter: Mapped[str | None] = mapped_column(String(1))
    headers: Mapped[list[Any]] = mapped_column(default=list)
    # Column index (as a string) → field name, "attribute" or "ignore".
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # segment_ids, existing ("update" | "skip"), consent_basis, all_or_nothing.
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[ImportStatus] = mapped_column(
        enum_column(ImportStatus, "import_status"), default=ImportStatus.UPLOADED, index=True
    )
    total_rows: Mapped[int] = mapped_column(default=0)
    processed_rows: Mapped[int] = mapped_column(default=0)
    # Outcome → number of lines, for the phase in progress (dry run, then import).
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dry_run_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
