"""The hot path behind ``/c/<token>`` and ``/o/<token>.gif``: a few microseconds of
work per hit, so the endpoints hold a newsletter's peak (bench/tracking.py).

- The token is checked first, without the database: garbage costs one hash.
- What a valid token needs (its delivery's issue and send time, the issue's
  tracking mode and stored links) is cached per process: deliveries by blocks of
  consecutive ids (an issue's deliveries are inserted together), issues for
  ``ISSUE_TTL`` seconds, so a mode changed in the back office applies within it.
- With Redis, a hit is appended to the process's ``Outbox``; a background thread
  pushes the outbox every 50 ms in one round trip (a script applying the flood
  limits), to a list that ``services.flush`` writes to PostgreSQL in batches. A
  round trip per hit would cost the request more than the rest of its work.
- Without Redis (embedded mode), the event is inserted at once in its own short
  transaction; so are hits Redis cannot take (unreachable, or the buffer full).
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
from typing import Any

import redis
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker
from werkzeug.urls import iri_to_uri

from emails.tokens import Token, TokenSigner
from service.config import Config
from service.db import Session
from service.delivery.models import Delivery
from service.issues.models import Issue
from service.newsletters.models import Newsletter, TrackingMode
from service.tracking.classify import BURST_LINKS, Hit, classify, truncate_ip
from service.tracking.models import EventKind, Link
from service.tracking.services import (
    BURST_PREFIX,
    EVENTS_KEY,
    decode_hit,
    encode_hit,
    write_events,
)

log = logging.getLogger(__name__)

# The smallest transparent GIF (1×1).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

ISSUE_TTL = 30.0  # seconds an issue's mode and links are trusted
MAX_ISSUES = 256
BLOCK = 512  # deliveries loaded together on a miss
MAX_BLOCKS = 256  # ~130,000 deliveries per process, least recently used dropped
RELOAD_AFTER = 1.0  # a block missing an id (or a send time) is read again at most this often

# Floods: hits beyond these are answered as usual but not recorded.
IP_LIMIT = 600  # per truncated address (/24, /48) and minute
DELIVERY_LIMIT = 100  # per delivery and day (opens and clicks)
MAX_BUFFER = 2_000_000  # hits waiting in Redis; beyond, they are written directly
PUSH_INTERVAL = 0.05  # seconds a hit may wait in the web process before Redis has it
PUSH_SIZE = 500  # hits that make the outbox push at once

# One round trip for a batch of hits. ARGV: address limit, address window, delivery
# limit, delivery window, buffer size, burst size, then ``STRIDE`` values per hit:
# event, address key, delivery key (or ''), clicks key (or ''), link, time, burst marker.
# Hits over a limit are dropped; the others are pushed to KEYS[1] — or, if the buffer
# is full, returned for the caller to write itself. A click is also kept for two
# seconds in its delivery's sorted set; when clicks on BURST_LINKS distinct links of
# one delivery fall within a second of each other, the marker is pushed too, and the
# flush checks that delivery (``services._mark_bursts``).
_PUSH = """
local accepted = {}
for i = 7, #ARGV, 7 do
  local n = redis.call('INCR', ARGV[i + 1])
  if n == 1 then redis.call('EXPIRE', ARGV[i + 1], ARGV[2]) end
  local ok = n <= tonumber(ARGV[1])
  if ok and ARGV[i + 2] ~= '' then
    local d = redis.call('INCR', ARGV[i + 2])
    if d == 1 then redis.call('EXPIRE', ARGV[i + 2], ARGV[4]) end
    ok = d <= tonumber(ARGV[3])
  end
  if ok then
    accepted[#accepted + 1] = ARGV[i]
    local clicks = ARGV[i + 3]
    if clicks ~= '' then
      local at = tonumber(ARGV[i + 5])
      redis.call('ZADD', clicks, at, ARGV[i + 4] .. ':' .. ARGV[i + 5])
      redis.call('ZREMRANGEBYSCORE', clicks, '-inf', at - 2)
      redis.call('EXPIRE', clicks, 5)
      local links, count = {}, 0
      for _, member in ipairs(redis.call('ZRANGEBYSCORE', clicks, at - 1, at + 1)) do
        local link = string.match(member, '^([^:]*):')
        if not links[link] then links[link] = true; count = count + 1 end
      end
      if count >= tonumber(ARGV[6]) then accepted[#accepted + 1] = ARGV[i + 6] end
    end
  end
end
if #accepted == 0 then return 0 end
if redis.call('LLEN', KEYS[1]) + #accepted > tonumber(ARGV[5]) then return accepted end
for i = 1, #accepted, 500 do
  redis.call('RPUSH', KEYS[1], unpack(accepted, i, math.min(i + 499, #accepted)))
end
return #accepted
"""
STRIDE = 7


class Outbox:
    """Hits of this process on their way to Redis: a background thread pushes them in
    one round trip every ``PUSH_INTERVAL`` seconds (or sooner past ``PUSH_SIZE``), so
    a request never waits for Redis. They are pushed again at exit (a graceful restart
    of the web worker loses nothing); only a killed web process loses its last
    ``PUSH_INTERVAL`` of hits. If Redis is unreachable or full, they go straight to
    the database."""

    def __init__(self, client: "redis.Redis[bytes]", engine: Engine) -> None:
        self._client = client
        self._script = client.register_script(_PUSH)
        self._sessions = sessionmaker(engine)
        self._items: list[str] = []
        self._lock = threading.Lock()
        self._push_lock = threading.Lock()  # one push at a time, in order
        self._wake = threading.Event()
        self._pid = 0

    def add(self, *hit: str) -> None:
        """One hit's ``STRIDE`` values (see ``_PUSH``)."""
        if self._pid != os.getpid():  # first hit in this (forked) process
            self._start()
        with self._lock:
            self._items += hit
            size = len(self._items)
        if size >= PUSH_SIZE * STRIDE:
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

    def drain(self) -> int:
        """Push what is waiting now (after any push in progress); the number of hits."""
        with self._push_lock:
            with self._lock:
                items, self._items = self._items, []
            return self._push(items) if items else 0

    def _push(self, items: list[str]) -> int:
        args: list[Any] = [IP_LIMIT, 120, DELIVERY_LIMIT, 86400, MAX_BUFFER, BURST_LINKS, *items]
        try:
            result = self._script(keys=[EVENTS_KEY], args=args)
        except redis.RedisError:
            hits = len(items) // STRIDE
            log.warning("tracking buffer unreachable: writing %d hits directly", hits)
            self._write(items[::STRIDE])
            return hits
        if isinstance(result, list):  # the buffer is full
            self._write([item.decode() for item in result])
        return len(items) // STRIDE

    def _write(self, events: list[str]) -> None:
        with self._sessions() as session:
            try:
                rows = [decode_hit(e) for e in events if not e.startswith(BURST_PREFIX.decode())]
                write_events(session, rows)
                session.commit()
            except SQLAlchemyError:
                log.exception("%d tracking hits lost: the database refused them", len(events))


@dataclass(frozen=True)
class IssueInfo:
    mode: TrackingMode
    started_at: dt.datetime | None
    links: dict[int, tuple[int, str]]  # position → (link id, Location header)
    loaded: float


@dataclass(frozen=True)
class Request:
    """What the classification needs from the HTTP request."""

    method: str
    user_agent: str | None
    address: str | None


class Tracker:
    """One per application and process (``tracker(app)``); thread-safe."""

    def __init__(self, config: Config, engine: Engine) -> None:
        self.signer = TokenSigner(config.secret_key)
        self.client: redis.Redis[bytes] | None = (
            redis.Redis.from_url(config.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
            if config.redis_url
            else None
        )
        self.outbox = Outbox(self.client, engine) if self.client is not None else None
        self._issues: OrderedDict[int, IssueInfo | None] = OrderedDict()
        self._issue_loaded: dict[int, float] = {}
        self._blocks: OrderedDict[int, tuple[float, dict[int, tuple[int, float | None]]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        self._minute = 0
        self._local_counts: dict[str, int] = {}

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
        ip = truncate_ip(request.address)
        stored_delivery = delivery_id if issue.mode is TrackingMode.INDIVIDUAL else None
        event = encode_hit(
            kind, issue_id, stored_delivery, link_id, now, verdict.is_machine, verdict.family, ip
        )
        if self._buffer(event, ip, delivery_id, stored_delivery, link_id, now):
            return
        if self._allowed_locally(ip or "-", now):
            self._write_now(event)

    def _buffer(  # noqa: PLR0917 - one hit's facts
        self,
        event: str,
        ip: str | None,
        delivery_id: int | None,
        stored_delivery: int | None,
        link_id: int | None,
        now: float,
    ) -> bool:
        """Hand the hit to the outbox (Redis, with the flood limits); False without Redis.
        Bursts are watched only where events name their delivery (individual mode)."""
        if self.outbox is None:
            return False
        clicks = stored_delivery is not None and link_id is not None
        self.outbox.add(
            event,
            f"lettrine:tracking:ip:{ip or '-'}:{int(now // 60)}",
            f"lettrine:tracking:delivery:{delivery_id}" if delivery_id is not None else "",
            f"lettrine:tracking:clicks:{stored_delivery}" if clicks else "",
            str(link_id),
            repr(now),
            f'["b",{stored_delivery},{now!r}]' if clicks else "",
        )
        return True

    def _allowed_locally(self, ip: str, now: float) -> bool:
        """The per-address limit when Redis is not there (per process, bounded)."""
        minute = int(now // 60)
        with self._lock:
            if minute != self._minute or len(self._local_counts) > 10_000:
                self._minute, self._local_counts = minute, {}
            count = self._local_counts.get(ip, 0) + 1
            self._local_counts[ip] = count
        return count <= IP_LIMIT

    def _write_now(self, event: str) -> None:
        session = Session()
        try:
            if session.get_bind().dialect.name == "postgresql":
                session.connection().exec_driver_sql("SET LOCAL synchronous_commit = off")
            write_events(session, [decode_hit(event)])
            session.commit()
        except SQLAlchemyError:
            session.rollback()
            log.exception("tracking hit lost: the database refused it")

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
            info = IssueInfo(row.tracking_mode, row.send_started_at, links, now)
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
