"""The dev outbox: messages caught by the local SMTP server, for people to read."""

import email
import email.errors
import email.policy
import re
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service.outbox.models import OutboxMessage

PAGE_SIZE = 50


def _header(raw: bytes, name: str) -> str:
    """A header's decoded value; the raw text when the modern parser chokes on it.

    The outbox exists to show what was sent, malformed messages included.
    """
    try:
        return str(email.message_from_bytes(raw, policy=email.policy.default).get(name, ""))
    except (IndexError, ValueError, TypeError, email.errors.MessageError):
        return str(email.message_from_bytes(raw, policy=email.policy.compat32).get(name, ""))


def store_message(session: Session, mail_from: str, recipients: list[str], raw: bytes) -> int:
    """Use case: keep one received message. Returns its id."""
    message = OutboxMessage(
        mail_from=mail_from[:254],
        recipients=", ".join(recipients),
        subject=_header(raw, "Subject")[:1000],
        message_id=_header(raw, "Message-ID")[:255] or None,
        raw=raw,
    )
    session.add(message)
    session.commit()
    return message.id


def list_messages(session: Session, page: int = 1) -> tuple[list[OutboxMessage], int]:
    total = session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
    rows = session.scalars(
        select(OutboxMessage)
        .order_by(OutboxMessage.received_at.desc(), OutboxMessage.id.desc())
        .offset((max(page, 1) - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    return list(rows), total


def clear(session: Session) -> int:
    """Use case: empty the outbox. Returns how many messages were removed."""
    result = session.execute(delete(OutboxMessage))
    removed = getattr(result, "rowcount", 0)
    session.commit()
    return int(removed or 0)


@dataclass(frozen=True)
class ParsedMessage:
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    attachments: list[str]


def parse(raw: bytes) -> ParsedMessage:
    """Split a message into what the detail page shows. Never raises on bad MIME."""
    try:
        return _parse(raw, email.policy.default)
    except (IndexError, ValueError, TypeError, email.errors.MessageError):
        # Headers the modern parser cannot read are shown as they came.
        return _parse(raw, email.policy.compat32)


def _parse(raw: bytes, policy: email.policy.Policy) -> ParsedMessage:
    msg = email.message_from_bytes(raw, policy=policy)
    headers = [(name, str(value)) for name, value in msg.items()]
    text = html = None
    attachments: list[str] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_disposition() == "attachment":
            attachments.append(part.get_filename() or "?")
            continue
        ctype = part.get_content_type()
        payload = part.get_payload(decode=True)
        charset = part.get_content_charset() or "utf-8"
        try:
            content = payload.decode(charset, "replace") if isinstance(payload, bytes) else ""
        except LookupError:  # an unknown charset name
            content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        if ctype == "text/plain" and text is None and isinstance(content, str):
            text = content
        elif ctype == "text/html" and html is None and isinstance(content, str):
            html = content
    return ParsedMessage(headers=headers, text=text, html=html, attachments=attachments)


# Tracking URLs as ``emails.mime`` writes them: ``<base>/o/<token>.gif`` (the open
# pixel) and ``<base>/c/<token>`` (a tracked link). Tokens are URL-safe base64.
_OPEN_PIXEL = re.compile(
    r"""<img\b[^>]*?\bsrc\s*=\s*(["']?)[^"'\s>]*/o/[A-Za-z0-9_=-]+\.gif\1[^>]*>""",
    re.IGNORECASE,
)
_TRACKED_LINK = re.compile(
    r"""<a\b[^>]*?\bhref\s*=\s*(["']?)[^"'\s>]*/c/[A-Za-z0-9_=-]+\1""", re.IGNORECASE
)


def without_open_pixel(html: str) -> str:
    """The HTML part as the outbox shows it: the open pixel removed.

    Reading a caught message is a developer looking at it, not the subscriber
    opening it: loading the pixel would count an open in the issue's statistics.
    Links are left as sent (the detail page says they are tracked), so that a
    developer can still follow one to try click tracking on purpose.
    """
    return _OPEN_PIXEL.sub("", html)


def tracked_links(html: str) -> int:
    """How many links of the HTML part go through click tracking."""
    return len(_TRACKED_LINK.findall(html))
