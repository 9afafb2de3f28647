import datetime as dt
import enum

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, Time
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, created_at, enum_column, intpk, str120, str255


class TrackingMode(enum.StrEnum):
    INDIVIDUAL = "individual"  # per-recipient opens and clicks
    ANONYMOUS = "anonymous"  # counted per issue, not tied to a subscriber
    OFF = "off"  # plain links, no pixel


class Newsletter(Base):
    __tablename__ = "newsletters"

    id: Mapped[intpk]
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str120]
    sender_name: Mapped[str120]
    sender_email: Mapped[str] = mapped_column(String(254))
    reply_to: Mapped[str | None] = mapped_column(String(254))
    legal_footer: Mapped[str] = mapped_column(Text, default="")
    postal_address: Mapped[str] = mapped_column(Text, default="")
    logo_asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"))
    main_color: Mapped[str] = mapped_column(String(7), default="#1d4f91")
    tracking_mode: Mapped[TrackingMode] = mapped_column(
        enum_column(TrackingMode, "tracking_mode"), default=TrackingMode.INDIVIDUAL
    )
    # Days per-recipient tracking data is kept before it is anonymised.
    tracking_retention_days: Mapped[int] = mapped_column(Integer, default=365)
    website_url: Mapped[str255 | None]
    # Optional send window (Europe/Paris): messages wait for the next open slot.
    send_window_start: Mapped[dt.time | None] = mapped_column(Time)
    send_window_end: Mapped[dt.time | None] = mapped_column(Time)
    send_weekdays_only: Mapped[bool] = mapped_column(Boolean, default=False)
    send_skip_holidays: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[created_at]
