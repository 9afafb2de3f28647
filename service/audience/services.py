"""Audience use cases and the rules every path shares: how an address is
normalised, and the suppression list (kept as HMACs, honoured everywhere)."""

import hashlib
import hmac

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audience.models import Suppression, SuppressionReason


class InvalidAddressError(ValueError):
    """Not an address we can send to; the message is French."""


def normalise_address(raw: str) -> str:
    """One spelling per mailbox: trimmed, lower-cased, domain in ASCII (IDNA).

    Refuses what cannot receive mail from us (no domain, spaces inside, quoted
    local parts…) with a French message naming the value.
    """
    value = (raw or "").strip()
    if not value:
        raise InvalidAddressError("Adresse vide.")
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        raise InvalidAddressError(f"Adresse invalide : « {value} » ({_reason(value)}).") from None
    domain = checked.ascii_domain or checked.domain
    return f"{checked.local_part}@{domain}".lower()


def _suppression_key(secret: str) -> bytes:
    return hashlib.sha256(b"lettrine-suppression\x00" + secret.encode()).digest()


def address_hmac(secret: str, address: str) -> str:
    """The only form in which a suppressed (or erased) address is kept."""
    return hmac.new(_suppression_key(secret), address.encode(), hashlib.sha256).hexdigest()


def is_suppressed(session: Session, secret: str, address: str) -> bool:
    digest = address_hmac(secret, address)
    return (
        session.scalar(select(Suppression.id).where(Suppression.address_hmac == digest)) is not None
    )


def suppress(
    session: Session, secret: str, address: str, reason: SuppressionReason, note: str | None = None
) -> Suppression:
    """Add ``address`` to the suppression list (idempotent). Does not commit."""
    digest = address_hmac(secret, address)
    existing = session.scalars(
        select(Suppression).where(Suppression.address_hmac == digest)
    ).first()
    if existing is not None:
        return existing
    suppression = Suppression(address_hmac=digest, reason=reason, note=note)
    session.add(suppression)
    return suppression


def _reason(value: str) -> str:
    """Why an address is refused, in words a person can act on."""
    local, _, domain = value.partition("@")
    checks = (
        ("@" not in value, "il manque le @"),
        (value.count("@") > 1, "elle contient plusieurs @"),
        (any(c.isspace() for c in value), "elle contient un espace"),
        (not local, "rien avant le @"),
        ("." not in domain, "le nom de domaine est incomplet"),
        (not local.isascii(), "caractères accentués avant le @"),
    )
    return next((reason for failed, reason in checks if failed), "forme non reconnue")
