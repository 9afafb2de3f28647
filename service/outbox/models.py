import datetime as dt

from sqlalchemy import LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, bigintpk, utcnow


class OutboxMessage(Base):
    """A message caught by the dev outbox SMTP server (embedded mode only)."""

    __tablename__ = "outbox_messages"

    id: Mapped[bigintpk]
    mail_from: Mapped[str] = mapped_column(String(254))
    recipients: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
