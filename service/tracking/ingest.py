"""The hot path behind ``/c/<token>`` and ``/o/<token>.gif``: a few microseconds of
work per hit, so the endpoints hold a newsletter's peak (bench/tracking.py).

- The token is checked first, without the database: garbage costs one hash.
- What a valid token needs (its delivery's issue and send time, the issue's
  tracking mode and stored links) is cached per process: deliveries by blocks of
  consecutive ids (an issue's deliveries are inserted together), issues for
  ``ISSUE_TTL`` seconds, so a mode changed in the back office applies within it.
- The hit is classified and becomes one line (``services.encode_hit``). With
  Redis, the line is appended to the process's ``Outbox``; a background thread
  pushes the outbox every 50 ms in one round trip to a list that
  ``services.flush`` writes to PostgreSQL in batches, applying the flood limits
  as it goes. A round trip per hit, or any per-hit work in Redis, would cost the
  request more than the rest of its work.
- Without Redis (embedded mode), the event is inserted at once in its own short
  transaction, under a per-process flood limit; so are hits Redis cannot take
  (unreachable, or the buffer full).
"""

import atexit
import base64
import datetime as dt
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

import redis
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.urls import iri_to_uri

from emails.tokens import Token, TokenSigner
from service.config import Config
from service.db import Session
from service.delivery.models import Delivery
from service.issues.models import Issue
from service.newsletters.models import Newsletter, TrackingMode
from service.tracking.classify import Hit, classify, truncate_ip
from service.tracking.models import EventKind, Link
from service.tracking.services import EVENTS_KEY, LocalLimit, encode_hit, parse_hit, write_hits

log = logging.getLogger(__name__)

# The smallest transparent GIF (1×1).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

ISSUE_TTL = 30.0  # seconds an issue's mode and links are trusted
MAX_ISSUES = 256
BLOCK = 512  # deliveries loaded together on a miss
MAX_BLOCKS = 256  # ~130,000 deliveries per process, least recently used dropped
RELOAD_AFTER = 1.0  # a block missing an id (or a send time) is read again at most this often

MAX_BUFFER = 2_000_000  # hits waiting in Redis; beyond, they are written directly
PUSH_INTERVAL = 0.05  # seconds a hit may wait in the web process before Redis has it
PUSH_SIZE = 500  # hits that make the outbox push at once

# One round trip for a batch of hits (ARGV: the buffer's size limit, then the hits): pushed
# to KEYS[1], or, if the buffer is full, refused (0) for the caller to write itself.
_PUSH = """
if redis.call('LLEN', KEYS[1]) + #ARGV - 1 > tonumber(ARGV[1]) then return 0 end
for i = 2, #ARGV, 500 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
return #ARGV - 1
"""


class Outbox:
    """Hits of this process on their way to Redis: a background thread pushes them in
    one round trip every ``PUSH_INTERVAL`` seconds (or sooner past ``PUSH_SIZE``), so
    a request never waits for Redis. They are pushed again at exit (a graceful restart
    of the web worker loses nothing); only a killed web process loses its last
    ``PUSH_INTERVAL`` of hits. If Redis is unreachable or full, they go straight to
    the database, under the per-process flood limit."""

    def __init__(self, client: "redis.Redis[bytes]", limit: LocalLimit) -> None:
        self._script = client.register_script(_PUSH)
        self._limit = limit
        self._items: list[str] = []
        self._lock = threading.Lock()
        self._push_lock = threading.Lock()  # one push at a time, in order
        self._wake = threading.Event()
        self._pid = 0

    def add(self, hit: str) -> None:
        """One hit (``services.encode_hit``)."""
        if self._pid != os.getpid():  # first hit in this (forked) process
            self._start()
        with self._lock:
            self._items.append(hit)
            size = len(self._items)
        if size >= PUSH_SIZE:
            self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._items = []
        threading.Thread(target=self._run, name="tracking-outbox", daemon=True).start()
        atexit.register(self.drain)

    def _run(self) -> None:
        while True:
            self._wake.wait(PUSH_INTERVAL)
            self._wake.clear()
            self.drain()
            Session.remove()  # this thread's, if a direct write opened one

    def drain(self) -> int:
        """Push what is waiting now (after any push in progress); the number of hits."""
        with self._push_lock:
            with self._lock:
                items, self._items = self._items, []
            return self._push(items) if items else 0

    def _push(self, items: list[str]) -> int:
        try:
            pushed = self._script(keys=[EVENTS_KEY], args=[MAX_BUFFER, *items])
        except redis.RedisError:
            log.warning("tracking buffer unreachable: writing %d hits directly", len(items))
            pushed = 0
        if not pushed:
            write_directly([hit for hit in map(parse_hit, items) if self._limit.allows(hit)])
        return len(items)


def write_directly(hits: list[list[str]]) -> None:
    """Insert hits at once in their own short transaction: without Redis, or when it
    cannot take them."""
    if not hits:
        return
    session = Session()
    try:
        if session.get_bind().dialect.name == "postgresql":
            session.connection().exec_driver_sql("SET LOCAL synchronous_commit = off")
        write_hits(session, hits)
        session.commit()
    except SQLAlchemyError:
        session.rollback()
        log.exception("%d tracking hits lost: the database refused them", len(hits))


@dataclass(frozen=True)
class IssueInfo:
    mode: TrackingMode
    started_at: dt.datetime | None
    links: dict[int, tuple[int, str]]  # position → (link id, Location header)


class Request(NamedTuple):
    """What the classification needs from the HTTP request."""

    method: str
    user_agent: str | None
    address: str | None


class Tracker:
    """One per application and process (``tracker(app)``); thread-safe."""

    def __init__(self, config: Config) -> None:
        self.signer = TokenSigner(config.secret_key)
        self.client: redis.Redis[bytes] | None = (
            redis.Redis.from_url(config.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
            if config.redis_url
            else None
        )
        self.limit = LocalLimit()
        self.outbox = Outbox(self.client, self.limit) if self.client is not None else None
        self._issues: OrderedDict[int, IssueInfo | None] = OrderedDict()
        self._issue_loaded: dict[int, float] = {}
        self._blocks: OrderedDict[int, tuple[float, dict[int, tuple[int, float | None]]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    # --- The two endpoints --------------------------------------------------------------------

    def click(self, token: str, request: Request) -> str | None:
        """Where a click token leads: the URL stored for its issue and position, as a
        Location header (recording the click); None for anything else."""
        parsed = self.signer.verify(token)
        found = self._resolve(parsed, "delivery_link", "issue_link")
        if parsed is None or found is None:
            return None
        issue_id, issue, delivery_id, sent_at = found
        link = issue.links.get(parsed.position)
        if link is None:
            return None
        self._record(EventKind.CLICK, issue_id, issue, delivery_id, sent_at, link[0], request)
        return link[1]

    def open(self, token: str, request: Request) -> bool:
        """Record an open if the pixel's token is ours; False otherwise."""
        found = self._resolve(self.signer.verify(token), "open", "issue_open")
        if found is None:
            return False
        issue_id, issue, delivery_id, sent_at = found
        self._record(EventKind.OPEN, issue_id, issue, delivery_id, sent_at, None, request)
        return True

    def _resolve(
        self, parsed: Token | None, per_delivery: str, per_issue: str
    ) -> tuple[int, IssueInfo, int | None, float | None] | None:
        """A verified token's issue, delivery and send time (None: not one of ours)."""
        if parsed is None:
            return None
        delivery_id: int | None = None
        sent_at: float | None = None
        if parsed.kind == per_delivery:
            found = self._delivery(parsed.id)
            if found is None:
                return None
            issue_id, sent_at = found
            delivery_id = parsed.id
        elif parsed.kind == per_issue:
            issue_id = parsed.id
        else:
            return None
        issue = self._issue(issue_id)
        if issue is None:
            return None
        return issue_id, issue, delivery_id, sent_at

    # --- Recording ----------------------------------------------------------------------------

    def _record(  # noqa: PLR0917 - one hit's facts
        self,
        kind: EventKind,
        issue_id: int,
        issue: IssueInfo,
        delivery_id: int | None,
        sent_at: float | None,
        link_id: int | None,
        request: Request,
    ) -> None:
        if issue.mode is TrackingMode.OFF:
            return
        now = time.time()
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        if delivery_id is not None:
            sent = dt.datetime.fromtimestamp(sent_at, dt.UTC) if sent_at is not None else None
        else:  # a per-issue token: the issue's start is the earliest any copy left
            sent = issue.started_at
        verdict = classify(
            Hit(kind.value, request.method, request.user_agent, at, sent_at=sent, timed=True)
        )
        stored = delivery_id if issue.mode is TrackingMode.INDIVIDUAL else None
        hit = encode_hit(
            kind,
            issue_id,
            stored,
            link_id,
            now,
            verdict.is_machine,
            verdict.family,
            truncate_ip(request.address),
            delivery_id,
        )
        if self.outbox is not None:
            self.outbox.add(hit)
        elif self.limit.allows(fields := parse_hit(hit)):
            write_directly([fields])

    # --- Per-process caches -------------------------------------------------------------------

    def _issue(self, issue_id: int) -> IssueInfo | None:
        now = time.monotonic()
        with self._lock:
            cached = self._issues.get(issue_id, False)
            fresh = now - self._issue_loaded.get(issue_id, -ISSUE_TTL) < ISSUE_TTL
        if cached is not False and fresh:
            return cached  # type: ignore[return-value]
        session = Session()
        row = session.execute(
            select(Issue.send_started_at, Newsletter.tracking_mode)
            .join(Newsletter, Newsletter.id == Issue.newsletter_id)
            .where(Issue.id == issue_id)
        ).first()
        info = None
        if row is not None:
            links = {
                position: (link_id, location)
                for position, link_id, url in session.execute(
                    select(Link.position, Link.id, Link.url).where(Link.issue_id == issue_id)
                )
                if (location := _location(url)) is not None
            }
            info = IssueInfo(row.tracking_mode, row.send_started_at, links)
        with self._lock:
            self._issues[issue_id] = info
            self._issue_loaded[issue_id] = now
            self._issues.move_to_end(issue_id)
            while len(self._issues) > MAX_ISSUES:
                dropped, _ = self._issues.popitem(last=False)
                self._issue_loaded.pop(dropped, None)
        return info

    def _delivery(self, delivery_id: int) -> tuple[int, float | None] | None:
        """(issue id, sent at as a timestamp or None) of a delivery, or None if unknown."""
        number = delivery_id // BLOCK
        now = time.monotonic()
        with self._lock:
            block = self._blocks.get(number)
            if block is not None:
                self._blocks.move_to_end(number)
        if block is not None:
            found = block[1].get(delivery_id)
            if (found is not None and found[1] is not None) or now - block[0] < RELOAD_AFTER:
                return found
        rows = Session().execute(
            select(Delivery.id, Delivery.issue_id, Delivery.sent_at).where(
                Delivery.id >= number * BLOCK, Delivery.id < (number + 1) * BLOCK
            )
        )
        entries = {
            ident: (issue_id, sent.timestamp() if sent is not None else None)
            for ident, issue_id, sent in rows
        }
        with self._lock:
            self._blocks[number] = (now, entries)
            self._blocks.move_to_end(number)
            while len(self._blocks) > MAX_BLOCKS:
                self._blocks.popitem(last=False)
        return entries.get(delivery_id)


# Schemes a tracked link may lead to (what the editor lets authors write).
_SCHEMES = ("https://", "http://", "mailto:", "tel:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _location(url: str) -> str | None:
    """The Location header for a stored URL: exactly the URL (non-ASCII characters
    percent-encoded, as HTTP needs); None if it is not a place a link may lead to."""
    if not url.lower().startswith(_SCHEMES) or _CONTROL.search(url):
        return None
    return url if url.isascii() and " " not in url else iri_to_uri(url)
