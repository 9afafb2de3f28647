import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, utcnow


class WorkerHeartbeat(Base):
    """Last sign of life of each worker, shown on the home page."""

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
