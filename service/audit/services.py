"""The audit trail: who did what to which object, written in the caller's transaction."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit.models import AuditEntry


def record(  # noqa: PLR0917 - who, what, on which object, details: one call shape everywhere
    session: Session,
    actor_id: int | None,
    action: str,
    target_type: str | None = None,
    target_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry; the use case that owns the transaction commits it."""
    entry = AuditEntry(
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details or {},
    )
    session.add(entry)
    return entry


def history(session: Session, target_type: str, target_id: int) -> list[AuditEntry]:
    """Entries about one object, oldest first."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.target_type == target_type, AuditEntry.target_id == target_id)
            .order_by(AuditEntry.created_at, AuditEntry.id)
        )
    )
