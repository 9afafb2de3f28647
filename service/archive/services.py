"""The public archive: which issues anyone may read, and what of them.

What is public, decided here once:

- **Issues** whose sending has begun: ``sending``, ``paused`` and ``sent``. Readers
  already hold the « Voir en ligne » link of a paused issue, so it stays readable.
  Drafts, issues under review, approved, scheduled and cancelled ones are not
  public: asking for them gets the same 404 as an id that does not exist.
- **Blocks** visible to everyone only. A block limited to some segments was written
  for those readers (an invitation for elected officials, a note to partners); it
  is left out of the page, the feeds and the agenda, whoever asks.
- **Nothing personal**: the page is the email rendered for nobody (``emails.web``):
  no greeting name, no tracking pixel, no tokens, the real link targets, and the
  subscription page where the email has its preferences and unsubscribe links.

These are read-only use cases: nothing here writes to the database.
"""

import datetime as dt
import hashlib
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from emails.render import WebPage
from emails.web import web_html
from service.config import Config
from service.issues.models import Block, Issue, IssueStatus
from service.issues.rendering import issue_data, render_settings
from service.newsletters.models import Newsletter

T = TypeVar("T", str, bytes)

PUBLIC_STATUSES = frozenset({IssueStatus.SENDING, IssueStatus.PAUSED, IssueStatus.SENT})
PAGE_SIZE = 20
FEED_SIZE = 50
# Ids are 32-bit integers: anything larger cannot exist and is refused before a query.
MAX_ID = 2**31 - 1

# When the issue went out to its readers: the start of its sending.
_published = func.coalesce(Issue.send_started_at, Issue.sent_at, Issue.created_at)


def is_public(issue: Issue) -> bool:
    return issue.status in PUBLIC_STATUSES


def published_at(issue: Issue) -> dt.datetime:
    return issue.send_started_at or issue.sent_at or issue.created_at


def public_issue(session: Session, issue_id: int) -> Issue | None:
    """The issue if it is public, else None (whether it does not exist or is not public)."""
    if not 0 < issue_id <= MAX_ID:
        return None
    issue = session.get(Issue, issue_id)
    return issue if issue is not None and is_public(issue) else None


@dataclass(frozen=True)
class ArchivedNewsletter:
    newsletter: Newsletter
    count: int
    latest: dt.datetime


def archived_newsletters(session: Session) -> list[ArchivedNewsletter]:
    """Newsletters with at least one public issue, the most recently published first."""
    rows = session.execute(
        select(Newsletter, func.count(Issue.id), func.max(_published))
        .join(Issue, Issue.newsletter_id == Newsletter.id)
        .where(Issue.status.in_(PUBLIC_STATUSES))
        .group_by(Newsletter.id)
        .order_by(func.max(_published).desc(), Newsletter.id)
    ).all()
    return [ArchivedNewsletter(newsletter, count, latest) for newsletter, count, latest in rows]


def newsletter_by_slug(session: Session, slug: str) -> Newsletter | None:
    if len(slug) > 60:  # the column's length: no query for what cannot exist
        return None
    return session.scalars(select(Newsletter).where(Newsletter.slug == slug)).first()


@dataclass(frozen=True)
class IssuePage:
    issues: Sequence[Issue]
    page: int
    pages: int
    total: int


def issues_page(session: Session, newsletter_id: int, page: int) -> IssuePage | None:
    """One page of a newsletter's public issues, newest first; None past the last page."""
    where = (Issue.newsletter_id == newsletter_id, Issue.status.in_(PUBLIC_STATUSES))
    total = session.scalar(select(func.count(Issue.id)).where(*where)) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    if not 1 <= page <= pages:
        return None
    issues = session.scalars(
        select(Issue)
        .where(*where)
        .order_by(_published.desc(), Issue.number.desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    return IssuePage(issues, page, pages, total)


def latest_issues(session: Session, newsletter_id: int, limit: int = FEED_SIZE) -> list[Issue]:
    return list(
        session.scalars(
            select(Issue)
            .where(Issue.newsletter_id == newsletter_id, Issue.status.in_(PUBLIC_STATUSES))
            .order_by(_published.desc(), Issue.number.desc())
            .limit(limit)
        )
    )


def page_version(config: Config, issue: Issue, *urls: str) -> str:
    """A digest of everything an issue's public page is made from: its ETag and cache key.

    Every edit of an issue goes through its row and bumps its version (see
    ``service.issues.services``), so blocks need not be read; the newsletter's
    identity and footer are in the page, so they are in the digest too.
    """
    n = issue.newsletter
    parts = (
        config.base_url,
        issue.id,
        issue.created_at.isoformat(),  # an id SQLite gave again after a deletion
        issue.version,
        issue.status.value,
        *(n.slug, n.name, n.sender_name, n.sender_email, n.reply_to, n.main_color),
        *(n.legal_footer, n.postal_address, n.website_url, n.logo_asset_id),
        *urls,
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


class RenderCache(Generic[T]):
    """Rendered pages and feeds by version, per app: a burst of « Voir en ligne » after
    a send renders each page once per process. Bounded, so old issues fall out; an
    edited issue or newsletter is a new version, hence a new key."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version: str) -> T | None:
        with self._lock:
            item = self._items.get(version)
            if item is not None:
                self._items.move_to_end(version)
            return item

    def put(self, version: str, item: T) -> None:
        with self._lock:
            self._items[version] = item
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def issue_html(
    config: Config,
    issue: Issue,
    cache: RenderCache[str],
    *,
    archive_url: str,
    subscribe_url: str,
    icon_url: str,
) -> tuple[str, str]:
    """(version, HTML) of the public page of an issue: its email rendered for nobody."""
    version = page_version(config, issue, archive_url, subscribe_url, icon_url)
    cached = cache.get(version)
    if cached is not None:
        return version, cached
    data = issue_data(issue, config=config)
    # The date readers see: when it was sent, if it was not scheduled for a given day.
    if data.scheduled_at is None:
        data = replace(data, scheduled_at=published_at(issue))
    page = WebPage(archive_url=archive_url, subscribe_url=subscribe_url, icon_url=icon_url)
    document = web_html(data, render_settings(config, issue.id), page)
    cache.put(version, document)
    return version, document


def feed_version(session: Session, config: Config, newsletter: Newsletter, kind: str) -> str:
    """A digest of what a newsletter's feeds are made from: its public issues (ids,
    versions, statuses) and the newsletter's names. One small query, no rendering."""
    issues = session.execute(
        select(Issue.id, Issue.version, Issue.status)
        .where(Issue.newsletter_id == newsletter.id, Issue.status.in_(PUBLIC_STATUSES))
        .order_by(Issue.id)
    ).all()
    parts = (
        kind,
        config.base_url,
        newsletter.id,
        newsletter.created_at.isoformat(),
        *(newsletter.slug, newsletter.name, newsletter.sender_name),
        [(issue_id, version, status.value) for issue_id, version, status in issues],
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def agenda_events(session: Session, newsletter_id: int) -> list[Mapping[str, Any]]:
    """Every event of the newsletter's public agenda blocks, each real event once.

    An event carried over into a later issue by editing keeps its UID; the feed then
    gives its latest version (highest SEQUENCE, then the most recently published
    issue), so a calendar subscribed to the feed updates the event instead of doubling it.

    A *duplicated* issue gives its events fresh UIDs (``AgendaBlock.duplicated``), and
    that stays: a copy is most often the template of the next issue, whose rows get
    edited into other events (next month's workshop). Had the copy kept the UIDs,
    moving such a row to a new date would move the earlier, real event in every
    calendar that holds it (an update with the same UID), and the feed would lose it.
    So the feed also merges by what an attendee sees: events with the same start and
    the same title and place (compared case-, accent- and spacing-insensitively) are
    one event, given in the version of the most recently published issue, with that
    issue's UID and SEQUENCE (a feed is re-read whole, so the calendar swaps the UID).
    """
    blocks = session.execute(
        select(Block, _published)
        .join(Issue, Block.issue_id == Issue.id)
        .where(
            Issue.newsletter_id == newsletter_id,
            Issue.status.in_(PUBLIC_STATUSES),
            Block.kind == "agenda",
            ~Block.segments.any(),
        )
        .order_by(_published, Block.position)
    ).all()
    by_uid: dict[str, tuple[tuple[int, dt.datetime], Mapping[str, Any]]] = {}
    for block, published in blocks:
        for event in block.data.get("events", []):
            uid = event.get("uid")
            if not uid:
                continue
            rank = (int(event.get("sequence") or 0), published)
            if uid not in by_uid or rank >= by_uid[uid][0]:
                by_uid[uid] = (rank, event)
    by_sight: dict[tuple[str, str, str], tuple[tuple[dt.datetime, int], Mapping[str, Any]]] = {}
    for (sequence, published), event in by_uid.values():
        key = (str(event["start"]), _same(event.get("title")), _same(event.get("place")))
        latest = (published, sequence)
        if key not in by_sight or latest >= by_sight[key][0]:
            by_sight[key] = (latest, event)
    return sorted(
        (event for _rank, event in by_sight.values()), key=lambda e: (str(e["start"]), e["uid"])
    )


def _same(text: object) -> str:
    """A title or place as compared: no case, accents, punctuation or extra spaces."""
    decomposed = unicodedata.normalize("NFKD", str(text or "")).casefold()
    letters = "".join(c if c.isalnum() else " " for c in decomposed if not unicodedata.combining(c))
    return " ".join(letters.split())


def latest_publication(session: Session, newsletter_id: int) -> dt.datetime | None:
    """When the newsletter last published an issue: the feeds' « updated » time."""
    return session.scalar(
        select(func.max(_published)).where(
            Issue.newsletter_id == newsletter_id, Issue.status.in_(PUBLIC_STATUSES)
        )
    )


def etag(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]
