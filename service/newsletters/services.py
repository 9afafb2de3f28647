"""Newsletter settings use cases: create and update, each with its audit entry."""

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit.services import record
from service.newsletters.models import Newsletter, TrackingMode

COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
# WCAG 2.x level AA for normal text.
AA_CONTRAST = 4.5
WHITE = "#ffffff"
SLUG_LENGTH = 60
# Long texts are noted as changed in the audit trail, not copied into it.
AUDIT_VALUE_LENGTH = 200


@dataclass(frozen=True)
class NewsletterSettings:
    """Validated settings, as the form gives them (the form checks each field)."""

    name: str
    sender_name: str
    sender_email: str
    reply_to: str | None
    legal_footer: str
    postal_address: str
    main_color: str
    tracking_mode: TrackingMode
    tracking_retention_days: int
    logo_asset_id: int | None
    # Optional send window (Paris time): both hours or neither.
    send_window_start: dt.time | None = None
    send_window_end: dt.time | None = None
    send_weekdays_only: bool = False
    send_skip_holidays: bool = False


def list_newsletters(session: Session) -> list[Newsletter]:
    return list(session.scalars(select(Newsletter).order_by(Newsletter.name, Newsletter.id)))


# ---------------------------------------------------------------- colour


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(color: str) -> float:
    """WCAG relative luminance of a #rrggbb colour."""
    if not COLOR_RE.match(color):
        raise ValueError(f"not a #rrggbb colour: {color!r}")
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(first: str, second: str) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def white_text_contrast(color: str) -> float:
    """Contrast of white text on ``color`` (buttons and headings in the e-mail)."""
    return contrast_ratio(WHITE, color)


# ---------------------------------------------------------------- use cases


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:SLUG_LENGTH].rstrip("-") or "lettre"


def _unique_slug(session: Session, name: str) -> str:
    base = slugify(name)
    taken = set(
        session.scalars(select(Newsletter.slug).where(Newsletter.slug.startswith(base[:50])))
    )
    slug, n = base, 1
    while slug in taken:
        n += 1
        suffix = f"-{n}"
        slug = base[: SLUG_LENGTH - len(suffix)] + suffix
    return slug


def _apply(newsletter: Newsletter, settings: NewsletterSettings) -> dict[str, Any]:
    """Copy the settings onto the row; return what changed, for the audit trail."""
    changes: dict[str, Any] = {}
    for field in fields(settings):
        old, new = getattr(newsletter, field.name), getattr(settings, field.name)
        if old == new:
            continue
        setattr(newsletter, field.name, new)
        values = [None if v is None else str(v) for v in (old, new)]
        if any(v is not None and len(v) > AUDIT_VALUE_LENGTH for v in values):
            changes[field.name] = "modifié"
        else:
            changes[field.name] = values
    return changes


def create_newsletter(
    session: Session, settings: NewsletterSettings, *, actor_id: int | None
) -> Newsletter:
    """Use case: a new newsletter. Commits."""
    newsletter = Newsletter(slug=_unique_slug(session, settings.name))
    _apply(newsletter, settings)
    session.add(newsletter)
    session.flush()
    record(
        session,
        actor_id,
        "newsletter.created",
        "newsletter",
        newsletter.id,
        {"name": newsletter.name, "slug": newsletter.slug},
    )
    session.commit()
    return newsletter


def update_newsletter(
    session: Session, newsletter: Newsletter, settings: NewsletterSettings, *, actor_id: int | None
) -> list[str]:
    """Use case: save a newsletter's settings. Commits; returns the fields changed.

    Every save is audited, even one that changed nothing: who looked and confirmed
    the sender identity is worth knowing too.
    """
    changes = _apply(newsletter, settings)
    record(
        session, actor_id, "newsletter.updated", "newsletter", newsletter.id, {"changes": changes}
    )
    session.commit()
    return sorted(changes)
