"""Rollups of the events table, kept up to date by a beat task (see services.roll_up).

The dashboard reads these plus the few events not rolled up yet, so its figures are
exact at any moment while the cost stays flat however many events an issue has.
"""

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow

# ``link_key`` for rows that name no link (opens, unsubscribes, "any link").
NO_LINK = 0


class RollupState(Base):
    """One row: how far the events table has been folded into the rollups.

    Events with ``id <= rolled_up_to`` are counted in the rollups, the others are read live.
    ``pending_to`` is the highest id seen at the previous run: a run only folds ids up to
    it, so a writer that took an id just before a run has a whole beat interval to commit
    before its id can fall behind the watermark.
    """

    __tablename__ = "stats_rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rolled_up_to: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_to: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class HourlyCount(Base):
    """Events per issue, hour (hours since the Unix epoch, UTC), kind, machine flag, link."""

    __tablename__ = "stats_hourly"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    is_machine: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    link_key: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class Reach(Base):
    """Who was reached, once per delivery: the source of every unique count.

    ``kind`` is ``open`` (a human open, or a human click, since a click implies an open;
    ``link_key`` 0) or ``click`` (a human click: ``link_key`` 0 for "any link", and one row
    per link clicked). Unique openers of an issue are then a plain count of its rows.
    """

    __tablename__ = "stats_reach"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    link_key: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    first_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class UniqueCount(Base):
    """How many ``Reach`` rows each (issue, kind, key) has: kept by the rollup as it inserts
    them, so unique counts are read, not counted."""

    __tablename__ = "stats_uniques"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    link_key: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class SegmentSnapshot(Base):
    """When the per-segment figures of an issue (``SegmentCount``) were computed, and from what.

    The segment table joins every delivery of the issue with the segments, too slow for each
    page view; the rollup computes it instead and the dashboard adds the openers and clickers
    not rolled up yet. ``openers``/``clickers`` are the issue's rolled-up unique counts and
    ``statuses`` its delivery status histogram at that time: when they no longer match, the
    figures are stale (the rollup refreshes them; the page says what they stand for).
    """

    __tablename__ = "stats_segment_snapshots"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    statuses: Mapped[str] = mapped_column(String(400), default="")
    openers: Mapped[int] = mapped_column(BigInteger, default=0)
    clickers: Mapped[int] = mapped_column(BigInteger, default=0)


class SegmentCount(Base):
    """Per-segment figures of an issue at ``SegmentSnapshot.computed_at`` (counts only)."""

    __tablename__ = "stats_segments"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    recipients: Mapped[int] = mapped_column(BigInteger, default=0)
    delivered: Mapped[int] = mapped_column(BigInteger, default=0)
    openers: Mapped[int | None] = mapped_column(BigInteger)
    clickers: Mapped[int | None] = mapped_column(BigInteger)
