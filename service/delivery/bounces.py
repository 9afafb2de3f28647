"""Bounces and complaints coming back: DSNs (RFC 3464) and ARF reports (RFC 5965).

Every message leaves with the envelope sender ``bounces+<signed delivery>@<domain>``
(VERP), so a bounce names its delivery even when the receiver rewrites the rest.
Classification: a failed DSN with a 5.x.x status is hard (the address is suppressed);
4.x.x and "delayed" are soft (counted, an address failing softly too often is
treated as hard); auto-replies are ignored; an ARF report is a complaint; a
delivery-status report without a readable Action and Status is malformed (recorded,
audited, logged once, never applied). Every report is kept as an ``InboundReport``
(page « Retours de messagerie »); its own Message-ID is unique, so a report read twice
(mailbox re-read, webhook retried) is applied once. Reports arrive from the webhook
(views.py) and from the bounce mailbox (imap.py).
"""

import email
import email.policy
import logging
import re
from dataclasses import dataclass, replace
from email.errors import MessageError
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from emails.tokens import TokenSigner, as_local_part, from_local_part
from service.audience.models import Subscriber, SubscriberStatus, SuppressionReason
from service.audience.services import suppress
from service.audit.services import record
from service.delivery.models import Delivery, DeliveryStatus, InboundReport, ReportKind
from service.issues.models import Issue
from service.tracking.models import Event, EventKind

Kind = Literal["hard", "soft", "complaint", "ignore", "malformed"]
SOFT_LIMIT = 5  # soft bounces in a row before the address is treated as dead
_VERP = re.compile(r"bounces\+([0-9a-f]{30})@", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<(\d+)\.(\d+)@")
_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
# The local part of any address quoted by a remote server: kept out of the database.
_LOCAL_PART = re.compile(r"[^\s<>\"'(),;:\[\]]+@")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    kind: Kind
    delivery_id: int | None
    status: str
    detail: str
    # A copy of a report already applied (same Message-ID): nothing was done again.
    duplicate: bool = False


def bounce_address(signer: TokenSigner, delivery_id: int, domain: str) -> str:
    return f"bounces+{as_local_part(signer.bounce_token(delivery_id))}@{domain}"


def _delivery_from(message: Message, raw: bytes, signer: TokenSigner) -> int | None:
    for verp in _VERP.finditer(raw.decode("latin-1")):
        token = from_local_part(verp.group(1).lower())
        verified = signer.verify(token) if token else None
        if verified is not None and verified.kind == "bounce":
            return verified.id
    # Complaint reports quote the original message: its Message-ID names the delivery.
    for part in message.walk():
        if part.get_content_type() in {"message/rfc822", "text/rfc822-headers"}:
            quoted = _MESSAGE_ID.search(part.as_string())
            if quoted:
                return int(quoted.group(2))
    return None


def classify(raw: bytes, signer: TokenSigner) -> Report:
    try:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        delivery_id = _delivery_from(message, raw, signer)
    except (MessageError, LookupError, ValueError) as error:  # the parser's own failures
        return Report("malformed", None, "", f"message illisible ({type(error).__name__})")
    if message.get_content_type() == "multipart/report":
        report_type = str(message.get_param("report-type") or "").lower()
        if report_type == "feedback-report":
            return Report("complaint", delivery_id, "", "plainte (ARF)")
        if report_type == "delivery-status":
            return _dsn(message, delivery_id)
    auto = (message.get("Auto-Submitted") or "").lower()
    if auto.startswith("auto-replied") or message.get("X-Autoreply"):
        return Report("ignore", delivery_id, "", "réponse automatique")
    return Report("ignore", delivery_id, "", "message non reconnu")


def _dsn(message: Message, delivery_id: int | None) -> Report:
    fields: dict[str, str] = {}
    parts = [p for p in message.walk() if p.get_content_type() == "message/delivery-status"]
    for part in parts:
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else [part]
        for block in blocks:
            if isinstance(block, Message):
                for key, value in block.items():
                    fields[key.lower()] = str(value).strip()
    if not parts:
        return Report("malformed", delivery_id, "", "rapport de non-remise sans partie d'état")
    action = fields.get("action", "").lower()
    status = fields.get("status", "").split()[0] if fields.get("status") else ""
    detail = _redact(fields.get("diagnostic-code", ""))
    if not action or not _STATUS.match(status):
        missing = "Action" if not action else "Status"
        return Report("malformed", delivery_id, status[:20], f"champ {missing} absent ou illisible")
    if action == "delayed" or status.startswith("4"):
        return Report("soft", delivery_id, status, detail)
    if action == "failed" and status.startswith("5"):
        return Report("hard", delivery_id, status, detail)
    return Report("ignore", delivery_id, status, detail or f"action {action[:40]}")


def _redact(text: str) -> str:
    return _LOCAL_PART.sub("…@", text)[:300]


def _own_message_id(raw: bytes) -> str | None:
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    value = " ".join(str(headers.get("Message-ID", "")).split())
    return value[:255] or None


def process(session: Session, secret: str, raw: bytes, source: str = "webhook") -> Report:
    """Use case: record a returned message and apply it to the delivery, the subscriber
    and the suppression list. A second copy (same Message-ID) changes nothing."""
    message_id = _own_message_id(raw)
    if message_id is not None:
        known = session.scalars(
            select(InboundReport).where(InboundReport.message_id == message_id)
        ).first()
        if known is not None:
            return Report(
                known.kind.value,
                known.delivery_id,
                known.status or "",
                known.detail or "",
                duplicate=True,
            )
    report = classify(raw, TokenSigner(secret))
    issue_id = _apply(session, secret, report)
    _record(session, source, report, issue_id, message_id)
    try:
        session.commit()
    except IntegrityError:  # the same report, applied meanwhile by another reader
        session.rollback()
        return replace(report, duplicate=True)
    return report


def set_aside(session: Session, source: str, reason: str, message_id: str | None = None) -> None:
    """Use case: a message that could not be processed at all is recorded as malformed."""
    _record(session, source, Report("malformed", None, "", reason[:300]), None, message_id)
    session.commit()


def _apply(session: Session, secret: str, report: Report) -> int | None:
    """Change the delivery, the subscriber and the suppressions; give the issue matched."""
    delivery = session.get(Delivery, report.delivery_id) if report.delivery_id else None
    if delivery is None:
        return None
    if report.kind in {"ignore", "malformed"}:
        return delivery.issue_id
    subscriber = session.get(Subscriber, delivery.subscriber_id) if delivery.subscriber_id else None
    if report.kind == "soft":
        if subscriber is None:
            return delivery.issue_id
        count = int(subscriber.attributes.get("soft_bounces", 0)) + 1
        subscriber.attributes = {**subscriber.attributes, "soft_bounces": count}
        if count < SOFT_LIMIT:
            return delivery.issue_id
    if report.kind == "complaint":
        _event_once(session, EventKind.COMPLAINT, delivery)
        if subscriber is not None:
            subscriber.status = SubscriberStatus.COMPLAINED
            suppress(session, secret, subscriber.email, SuppressionReason.COMPLAINT)
    else:  # hard, or soft once too often
        _event_once(session, EventKind.BOUNCE, delivery)
        delivery.status = DeliveryStatus.BOUNCED
        delivery.last_reply = f"{report.status} {report.detail}".strip()[:500]
        if subscriber is not None:
            subscriber.status = SubscriberStatus.BOUNCED
            suppress(session, secret, subscriber.email, SuppressionReason.HARD_BOUNCE)
    if subscriber is not None:
        record(
            session,
            None,
            f"subscriber.{report.kind}",
            "subscriber",
            subscriber.id,
            {"status": report.status},
        )
    return delivery.issue_id


def _event_once(session: Session, kind: EventKind, delivery: Delivery) -> None:
    """Statistics count one bounce (or complaint) per message, however many reports."""
    known = session.scalar(
        select(Event.id).where(Event.delivery_id == delivery.id, Event.kind == kind).limit(1)
    )
    if known is None:
        session.add(Event(kind=kind, issue_id=delivery.issue_id, delivery_id=delivery.id))


def _record(
    session: Session, source: str, report: Report, issue_id: int | None, message_id: str | None
) -> None:
    entry = InboundReport(
        source=source,
        kind=ReportKind(report.kind),
        status=report.status or None,
        detail=report.detail or None,
        delivery_id=report.delivery_id if issue_id is not None else None,
        issue_id=issue_id,
        message_id=message_id,
    )
    session.add(entry)
    if report.kind == "malformed":
        session.flush()  # the audit entry names it
        record(
            session,
            None,
            "bounce.malformed",
            "inbound_report",
            entry.id,
            {"source": source, "reason": report.detail, "message_id": message_id},
        )
        log.warning(
            "Malformed bounce report set aside (%s, Message-ID %s): %s",
            source,
            message_id or "none",
            report.detail,
        )


def recent_reports(
    session: Session, limit: int = 100
) -> list[tuple[InboundReport, Issue | None, Subscriber | None]]:
    """The last reports received, with the issue and the subscriber they matched."""
    rows = session.execute(
        select(InboundReport, Issue, Subscriber)
        .outerjoin(Issue, Issue.id == InboundReport.issue_id)
        .outerjoin(Delivery, Delivery.id == InboundReport.delivery_id)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .order_by(InboundReport.received_at.desc(), InboundReport.id.desc())
        .limit(limit)
    )
    return [(report, issue, subscriber) for report, issue, subscriber in rows]
