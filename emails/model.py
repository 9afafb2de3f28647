"""Plain data handed to the renderer: no ORM objects, no Flask request."""

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

TrackingMode = Literal["individual", "anonymous", "off"]


@dataclass(frozen=True)
class NewsletterData:
    name: str
    slug: str
    sender_name: str
    sender_email: str
    reply_to: str | None
    legal_footer: str
    postal_address: str
    main_color: str = "#1d4f91"
    logo_url: str | None = None
    website_url: str | None = None
    tracking_mode: TrackingMode = "individual"


@dataclass(frozen=True)
class BlockData:
    id: int
    kind: str
    data: Mapping[str, Any]
    # Slugs of the segments that see this block; empty means everyone.
    segments: frozenset[str] = frozenset()


@dataclass(frozen=True)
class IssueData:
    id: int
    number: int
    title: str
    subject: str
    preheader: str
    newsletter: NewsletterData
    blocks: Sequence[BlockData]
    scheduled_at: dt.datetime | None = None
    # Why the reader receives it, shown in the footer.
    reason: str = ""
    # Slugs of the segments the issue is sent to (pre-send checks).
    audience: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Urls:
    """Where the public endpoints live (``base`` is the public https origin)."""

    base: str
    # Domain for List-Id and Message-ID, e.g. "lettre.aula.example.org".
    list_domain: str
    # Address receiving mailto: unsubscribes; its local part gets "+token".
    unsubscribe_mailbox: str

    def calendar(self, token: str) -> str:
        return f"{self.base}/agenda/{token}.ics"


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    email: str
    first_name: str | None = None
    last_name: str | None = None
    civility: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)
