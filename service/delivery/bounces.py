"""Bounces and complaints coming back: DSNs (RFC 3464) and ARF reports (RFC 5965).

Every message leaves with the envelope sender ``bounces+<signed delivery>@<domain>``
(VERP), so a bounce names its delivery even when the receiver rewrites the rest.
Classification: a failed DSN with a 5.x.x status is hard (the address is suppressed);
4.x.x and "delayed" are soft (counted, an address failing softly too often is
treated as hard); auto-replies are ignored; an ARF report is a complaint.
"""

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import Message
from typing import Literal

from sqlalchemy.orm import Session

from emails.tokens import TokenSigner, as_local_part, from_local_part
from service.audience.models import Subscriber, SubscriberStatus, SuppressionReason
from service.audience.services import suppress
from service.audit.services import record
from service.delivery.models import Delivery, DeliveryStatus
from service.tracking.models import Event, EventKind

Kind = Literal["hard", "soft", "complaint", "ignore"]
SOFT_LIMIT = 5  # soft bounces in a row before the address is treated as dead
_VERP = re.compile(r"bounces\+([0-9a-f]{30})@", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<(\d+)\.(\d+)@")


@dataclass(frozen=True)
class Report:
    kind: Kind
    delivery_id: int | None
    status: str
    detail: str


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
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    delivery_id = _delivery_from(message, raw, signer)
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
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            blocks = payload if isinstance(payload, list) else [part]
            for block in blocks:
                if isinstance(block, Message):
                    for key, value in block.items():
                        fields[key.lower()] = str(value).strip()
    action = fields.get("action", "").lower()
    status = fields.get("status", "").split()[0] if fields.get("status") else ""
    detail = fields.get("diagnostic-code", "")[:300]
    if action == "delayed" or status.startswith("4"):
        return Report("soft", delivery_id, status, detail)
    if action == "failed" and status.startswith("5"):
        return Report("hard", delivery_id, status, detail)
    return Report("ignore", delivery_id, status, detail)


def process(session: Session, secret: str, raw: bytes) -> Report:
    """Use case: apply a returned report to the delivery, the subscriber and the
    suppression list. Idempotent enough: a second copy finds things already done."""
    signer = TokenSigner(secret)
    report = classify(raw, signer)
    delivery = session.get(Delivery, report.delivery_id) if report.delivery_id else None
    subscriber = (
        session.get(Subscriber, delivery.subscriber_id)
        if delivery is not None and delivery.subscriber_id
        else None
    )
    if delivery is None or subscriber is None or report.kind == "ignore":
        return report
    if report.kind == "soft":
        count = int(subscriber.attributes.get("soft_bounces", 0)) + 1
        subscriber.attributes = {**subscriber.attributes, "soft_bounces": count}
        if count < SOFT_LIMIT:
            session.commit()
            return report
    kind = EventKind.COMPLAINT if report.kind == "complaint" else EventKind.BOUNCE
    if report.kind == "complaint":
        subscriber.status = SubscriberStatus.COMPLAINED
        suppress(session, secret, subscriber.email, SuppressionReason.COMPLAINT)
    else:
        subscriber.status = SubscriberStatus.BOUNCED
        delivery.status = DeliveryStatus.BOUNCED
        delivery.last_reply = f"{report.status} {report.detail}".strip()[:500]
        suppress(session, secret, subscriber.email, SuppressionReason.HARD_BOUNCE)
    session.add(Event(kind=kind, issue_id=delivery.issue_id, delivery_id=delivery.id))
    record(
        session,
        None,
        f"subscriber.{report.kind}",
        "subscriber",
        subscriber.id,
        {"status": report.status},
    )
    session.commit()
    return report
