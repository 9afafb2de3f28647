"""The identity public pages and subscription emails wear: the first newsletter's."""

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.assets.models import Asset
from service.assets.services import public_path
from service.newsletters.models import Newsletter

DEFAULT_COLOR = "#1d4f91"
_HEX = re.compile(r"#[0-9a-fA-F]{6}\Z")


@dataclass(frozen=True)
class Brand:
    name: str
    controller: str  # the data controller named in the consent text: the sender
    color: str  # "#rrggbb", safe to write into CSS
    on_color: str  # text colour readable on ``color``
    link_color: str  # ``color`` when it reads on white, else the default blue
    logo_path: str | None
    contact: str | None = None  # where readers write: the reply-to, else the sender address


def _luminance(color: str) -> float:
    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(color[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two "#rrggbb" colours."""
    light, dark = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def current_brand(session: Session) -> Brand:
    newsletter = session.scalars(select(Newsletter).order_by(Newsletter.id).limit(1)).first()
    if newsletter is None:
        return Brand(
            "Lettrine", "l'éditeur de ces lettres", DEFAULT_COLOR, "#ffffff", DEFAULT_COLOR, None
        )
    color = newsletter.main_color if _HEX.match(newsletter.main_color or "") else DEFAULT_COLOR
    logo = session.get(Asset, newsletter.logo_asset_id) if newsletter.logo_asset_id else None
    on_color = "#ffffff" if contrast(color, "#ffffff") >= contrast(color, "#000000") else "#000000"
    return Brand(
        name=newsletter.name,
        controller=newsletter.sender_name,
        color=color.lower(),
        on_color=on_color,
        link_color=color.lower() if contrast(color, "#ffffff") >= 4.5 else DEFAULT_COLOR,
        logo_path=public_path(logo) if logo is not None else None,
        contact=newsletter.reply_to or newsletter.sender_email or None,
    )
