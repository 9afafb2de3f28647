from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import utcnow
from service.system.models import WorkerHeartbeat


def record_heartbeat(session: Session, name: str) -> WorkerHeartbeat:
    """Use case: note that worker ``name`` is alive."""
    beat = session.scalars(select(WorkerHeartbeat).where(WorkerHeartbeat.name == name)).first()
    if beat is None:
        beat = WorkerHeartbeat(name=name)
        session.add(beat)
    beat.last_seen_at = utcnow()
    session.commit()
    return beat


def latest_heartbeat(session: Session) -> WorkerHeartbeat | None:
    return session.scalars(
        select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_seen_at.desc()).limit(1)
    ).first()
