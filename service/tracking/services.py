"""Tracking use cases: the links stored for an issue, and writing hits as events.

Hits reach ``events`` in one of two ways (see ``service.tracking.ingest``): with
Redis configured they are pushed to a list and written here in batches by a
beat task (``flush``), which also applies the flood limits; without it (embedded
mode) each hit is written at once (``write_hits`` with one hit), under a
per-process limit (``LocalLimit``).
"""

import datetime as dt
import json
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import psycopg
import redis
from flask import current_app
from sqlalchemy import distinct, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from emails import collect_links, resolve
from service.config import Config
from service.db import utcnow
from service.delivery.models import Delivery
from service.issues.models import Issue
from service.issues.rendering import issue_data, render_settings
from service.tracking.classify import BURST_LINKS, BURST_WINDOW, Click, bursts
from service.tracking.models import Event, EventKind, Link, LinkKind, TrackingFlush

log = logging.getLogger(__name__)

# Redis keys of the buffer. One processing list: batches are written one at a time.
EVENTS_KEY = "lettrine:tracking:events"
PROCESSING_KEY = "lettrine:tracking:processing"
BATCH_ID_KEY = "lettrine:tracking:processing:batch"
VERDICTS_KEY = "lettrine:tracking:processing:verdicts"
LOCK_KEY = "lettrine:tracking:flush-lock"
BATCH_SIZE = 2000
LOCK_SECONDS = 60
FLUSH_BUDGET = 20.0  # seconds one flush task may keep writing before it yields
FLUSH_EVERY = 1.0  # seconds between flushes (the beat schedule)
FLUSH_PACE = 0.25  # seconds between batches while a peak lasts
PEAK = 100  # hits in a batch that make the flush stay for the next one

_KINDS = {"o": EventKind.OPEN, "c": EventKind.CLICK}  # the JSON format of earlier versions
BurstHints = list[tuple[int, int, dt.datetime]]  # clicks: issue, delivery, time
WIDE_WINDOW = dt.timedelta(seconds=30)  # beyond, bursts are looked for delivery by delivery


def store_links(session: Session, issue: Issue, config: Config | None = None) -> int:
    """Store one ``Link`` per link of the issue's email, at the positions its tracked
    URLs carry, with the URL the email points to. Idempotent; never commits."""
    config = config or current_app.extensions["lettrine_config"]
    settings = render_settings(config, issue.id)
    stored = set(session.scalars(select(Link.position).where(Link.issue_id == issue.id)))
    added = 0
    for link in collect_links(issue_data(issue, config=config)):
        if link.position in stored:
            continue
        session.add(
            Link(
                issue_id=issue.id,
                block_id=link.block_id,
                url=resolve(link, settings),
                label=link.label[:255] or None,
                kind=LinkKind(link.kind),
                position=link.position,
            )
        )
        added += 1
    session.flush()
    return added


# --- Writing hits ------------------------------------------------------------------------------

# Floods: hits beyond these are answered as usual but not recorded. With Redis they are
# counted when the flush writes the hits (``write_batch``), not on the request; without
# it, per process on the request (``LocalLimit``, the address limit only).
IP_LIMIT = 600  # per truncated address (/24, /48) and minute
DELIVERY_LIMIT = 100  # per delivery and day (opens and clicks)

NULL = "\\N"  # COPY's NULL
# What a hit is in the buffer: the events columns in COPY's text format and the order of
# ``_COPY``, except the time (epoch seconds, formatted by the flush, off the request),
# then the delivery its flood limit counts (set even where the event does not name it).
# Every value is a number, a fixed word, a user agent family (a constant of ``classify``)
# or a truncated IP address: none can hold a tab, a newline or a backslash.
_FIELDS = 9


def encode_hit(  # noqa: PLR0917 - one event's columns
    kind: EventKind,
    issue_id: int,
    delivery_id: int | None,
    link_id: int | None,
    at: float,
    is_machine: bool,
    family: str,
    ip: str | None,
    counted_delivery: int | None = None,
) -> str:
    """A hit as it waits in the buffer (one line, read back by ``parse_hit``).
    ``counted_delivery``: the delivery the per-delivery limit counts, if not ``delivery_id``
    (anonymous tracking stores no delivery, but one recipient's hits are still capped)."""
    counted = delivery_id if counted_delivery is None else counted_delivery
    return (
        f"{kind.value}\t{issue_id}\t{NULL if delivery_id is None else delivery_id}\t"
        f"{NULL if link_id is None else link_id}\t{'t' if is_machine else 'f'}\t{family}\t"
        f"{ip or NULL}\t{at!r}\t{'' if counted is None else counted}"
    )


# A buffered hit, field by field: anything else would make COPY refuse the whole batch.
_LINE = re.compile(
    r"(?:open|click)\t\d{1,18}\t(?:\d{1,18}|\\N)\t(?:\d{1,18}|\\N)\t[tf]\t[^\t\n\r\\]{1,40}"
    r"\t(?:[0-9A-Fa-f.:]{1,45}|\\N)\t\d{9,11}(?:\.\d{1,9})?\t\d{0,18}"
)


def parse_hit(raw: bytes | str) -> list[str]:
    """A buffered hit's ``_FIELDS`` fields (ValueError if it is not one). Hits buffered
    by an earlier version (JSON) are read too, so none is lost across an upgrade."""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    if text.startswith("["):
        try:
            code, issue_id, delivery_id, link_id, at, machine, family, ip = json.loads(text)
            text = encode_hit(
                _KINDS[code], issue_id, delivery_id, link_id, at, bool(machine), family, ip
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"not a buffered hit: {text[:80]!r}") from error
    if not _LINE.fullmatch(text):
        raise ValueError(f"not a buffered hit: {text[:80]!r}")
    return text.split("\t")


def _optional(value: str) -> int | None:
    return None if value == NULL else int(value)


def decode_hit(raw: bytes | str | list[str]) -> dict[str, Any]:
    """A buffered hit as an ``events`` row (for ``insert(Event)``)."""
    kind, issue_id, delivery_id, link_id, machine, family, ip, at, _counted = (
        raw if isinstance(raw, list) else parse_hit(raw)
    )
    return {
        "kind": EventKind(kind),
        "issue_id": int(issue_id),
        "delivery_id": _optional(delivery_id),
        "link_id": _optional(link_id),
        "occurred_at": dt.datetime.fromtimestamp(float(at), dt.UTC),
        "is_machine": machine == "t",
        "user_agent_family": family,
        "ip_truncated": None if ip == NULL else ip,
    }


def write_hits(session: Session, hits: Sequence[list[str]]) -> int:
    """Insert parsed hits (``parse_hit``) as events, then mark click bursts (several
    links of one delivery within a second, these hits and earlier ones together) as
    machine. Never commits."""
    if not hits:
        return 0
    try:
        with session.begin_nested():
            _insert(session, hits)
    except (IntegrityError, psycopg.IntegrityError):
        # The issue, delivery or link was deleted since the hit: keep what still exists.
        rows = _still_existing(session, [decode_hit(h) for h in hits])
        if rows:
            session.execute(insert(Event), rows)
        _mark_bursts(
            session,
            [
                (r["issue_id"], r["delivery_id"], r["occurred_at"])
                for r in rows
                if r["kind"] is EventKind.CLICK and r["delivery_id"] is not None
            ],
        )
        return len(rows)
    _mark_bursts(
        session,
        [
            (int(h[1]), int(h[2]), dt.datetime.fromtimestamp(float(h[7]), dt.UTC))
            for h in hits
            if h[0] == "click" and h[2] != NULL
        ],
    )
    return len(hits)


_COPY = (
    "COPY events (kind, issue_id, delivery_id, link_id, is_machine, user_agent_family, "
    "ip_truncated, occurred_at) FROM STDIN"
)


def _insert(session: Session, hits: Sequence[list[str]]) -> None:
    """COPY on PostgreSQL (the buffered lines are already its text format, but for the
    time), INSERT elsewhere."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(Event), [decode_hit(h) for h in hits])
        return
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)  # noqa: S101 - the only PostgreSQL driver
    utc, stamp, tab = dt.UTC, dt.datetime.fromtimestamp, "\t"
    data = "".join(f"{tab.join(h[:7])}\t{stamp(float(h[7]), utc).isoformat()}\n" for h in hits)
    with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
        copy.write(data)


def _still_existing(session: Session, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    issues = set(
        session.scalars(select(Issue.id).where(Issue.id.in_({r["issue_id"] for r in rows})))
    )
    wanted = {r["delivery_id"] for r in rows if r["delivery_id"] is not None}
    deliveries = set(session.scalars(select(Delivery.id).where(Delivery.id.in_(wanted))))
    wanted = {r["link_id"] for r in rows if r["link_id"] is not None}
    links = set(session.scalars(select(Link.id).where(Link.id.in_(wanted))))
    return [
        {
            **row,
            "delivery_id": row["delivery_id"] if row["delivery_id"] in deliveries else None,
            "link_id": row["link_id"] if row["link_id"] in links else None,
        }
        for row in rows
        if row["issue_id"] in issues
    ]


def _mark_bursts(session: Session, near: BurstHints) -> None:
    """Mark as machine the clicks of bursts around these (issue, delivery, time) clicks.

    The database first names the few deliveries with ``BURST_LINKS`` distinct links
    clicked in the batch's time window (a range of the issue/kind/time index: the
    batch's clicks and their neighbours, whatever their delivery), so only their
    clicks come back to be checked one by one."""
    if not near:
        return
    start = min(at for _i, _d, at in near) - BURST_WINDOW
    end = max(at for _i, _d, at in near) + BURST_WINDOW
    window = (
        Event.issue_id.in_({i for i, _d, _at in near}),
        Event.kind == EventKind.CLICK,
        Event.occurred_at.between(start, end),
        Event.is_machine.is_(False),
    )
    if end - start > WIDE_WINDOW:
        # The batch's clicks are spread out (a backlog, an old buffer): the window would
        # hold many others' clicks; look only at its own deliveries, by their index.
        own = Event.delivery_id.in_({d for _i, d, _at in near})
    else:
        own = Event.delivery_id.is_not(None)
    candidates = session.scalars(
        select(Event.delivery_id)
        .where(*window, own)
        .group_by(Event.delivery_id)
        .having(func.count(distinct(Event.link_id)) >= BURST_LINKS)
    ).all()
    if not candidates:
        return
    nearby = session.execute(
        select(Event.id, Event.delivery_id, Event.link_id, Event.occurred_at).where(
            *window, Event.delivery_id.in_(candidates)
        )
    ).all()
    found = bursts(Click(i, d, link, at) for i, d, link, at in nearby if d is not None)
    if found:
        session.execute(update(Event).where(Event.id.in_(found)).values(is_machine=True))


class LocalLimit:
    """The per-address limit where Redis is not (or cannot take the hits): per process,
    bounded (the counts are forgotten each minute, or past 10,000 addresses)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minute = 0
        self._counts: OrderedDict[str, int] = OrderedDict()

    def allows(self, hit: list[str]) -> bool:
        minute = int(float(hit[7]) // 60)
        with self._lock:
            if minute != self._minute:
                self._minute, self._counts = minute, OrderedDict()
            count = self._counts[hit[6]] = self._counts.get(hit[6], 0) + 1
            if len(self._counts) > 10_000:  # the address seen least recently is forgotten,
                self._counts.popitem(last=False)  # not all counts (sprayed addresses)
        return count <= IP_LIMIT


# --- The Redis buffer --------------------------------------------------------------------------

# Atomically move up to ARGV[1] hits to the processing list and name the batch; or,
# if a batch is already there (its flush died), give its name back to finish it.
_MOVE = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  local id = redis.call('GET', KEYS[3])
  if not id then  -- its id was lost: name it now, so every retry uses the same one
    redis.call('SET', KEYS[3], ARGV[2])
    id = ARGV[2]
  end
  return id
end
local waiting = redis.call('LLEN', KEYS[1])
if waiting == 0 then return false end
if waiting <= tonumber(ARGV[1]) then
  redis.call('RENAME', KEYS[1], KEYS[2])  -- the usual case: the whole list, in O(1)
else
  local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
  redis.call('LTRIM', KEYS[1], #items, -1)
  for i = 1, #items, 500 do
    redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 499, #items)))
  end
end
redis.call('SET', KEYS[3], ARGV[2])
return ARGV[2]
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# The processing list, only while it is still batch ARGV[1] (a flusher whose lock expired
# must not read, or clear, the batch a newer flusher has taken since).
_READ = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
return redis.call('LRANGE', KEYS[1], 0, -1)
"""
_CLEAR = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
"""


def take_batch(client: "redis.Redis[bytes]", size: int = BATCH_SIZE) -> str | None:
    """Move a batch from the buffer to the processing list (or find the one left
    there by a flush that died); its id, or None when there is nothing to write."""
    batch = client.register_script(_MOVE)(
        keys=[EVENTS_KEY, PROCESSING_KEY, BATCH_ID_KEY], args=[size, secrets.token_hex(16)]
    )
    if batch is None:
        return None
    return batch.decode() if isinstance(batch, bytes) else str(batch)


# Flood limits over a batch, once: KEYS[1] keeps the batch's verdicts, so a flush that
# died after counting finds them again rather than counting the batch twice. ARGV: address
# limit, address window, delivery limit, delivery window, then per hit its address key
# ("<address>:<minute>") and counted delivery (or ''). Returns one '1' (kept) or '0' per hit.
_LIMIT = """
local done = redis.call('GET', KEYS[1])
if done then return done end
local ip_limit, delivery_limit = tonumber(ARGV[1]), tonumber(ARGV[3])
local verdicts = {}
for i = 5, #ARGV, 2 do
  local key = 'lettrine:tracking:ip:' .. ARGV[i]
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[2]) end
  local ok = n <= ip_limit
  if ok and ARGV[i + 1] ~= '' then
    key = 'lettrine:tracking:delivery:' .. ARGV[i + 1]
    local d = redis.call('INCR', key)
    if d == 1 then redis.call('EXPIRE', key, ARGV[4]) end
    ok = d <= delivery_limit
  end
  verdicts[#verdicts + 1] = ok and '1' or '0'
end
local result = table.concat(verdicts)
redis.call('SET', KEYS[1], result, 'EX', 86400)  -- as long as a counter
return result
"""


def _within_limits(
    client: "redis.Redis[bytes]", hits: Sequence[list[str]], batch_id: str
) -> list[list[str]]:
    """The hits of a batch that the flood limits keep (``IP_LIMIT``, ``DELIVERY_LIMIT``)."""
    if not hits:
        return []
    args: list[Any] = [IP_LIMIT, 120, DELIVERY_LIMIT, 86400]
    for h in hits:
        args += (f"{h[6]}:{int(float(h[7]) // 60)}", h[8])
    verdicts = client.register_script(_LIMIT)(keys=[f"{VERDICTS_KEY}:{batch_id}"], args=args)
    return [h for h, kept in zip(hits, bytes(verdicts), strict=True) if kept == ord("1")]


def write_batch(session: Session, client: "redis.Redis[bytes]", batch_id: str) -> int:
    """Write the processing list to ``events`` once, within the flood limits, and commit
    (the batch id is committed with the events: a batch found again after a crash is not
    rewritten)."""
    items = client.register_script(_READ)(keys=[PROCESSING_KEY, BATCH_ID_KEY], args=[batch_id])
    if items is None:
        return 0  # no longer this batch: another flusher has written it
    if session.get_bind().dialect.name == "postgresql":
        # Losing the last few batches in a PostgreSQL crash is acceptable; waiting for
        # the disk on each is not needed (the same trade-off as delivery outcomes).
        session.connection().exec_driver_sql("SET LOCAL synchronous_commit = off")
    # Take the bookkeeping row first: a second flusher (lock expired) waits here, then
    # sees the batch already recorded and writes nothing.
    claimed = session.execute(
        update(TrackingFlush)
        .where(TrackingFlush.id == 1, TrackingFlush.batch_id.is_distinct_from(batch_id))
        .values(batch_id=batch_id, flushed_at=utcnow())
    )
    if not getattr(claimed, "rowcount", 0):
        if session.get(TrackingFlush, 1) is not None:
            session.rollback()  # already written by an earlier flush
            _clear(client, batch_id)
            return 0
        session.add(TrackingFlush(id=1, batch_id=batch_id))
        session.flush()
    hits: list[list[str]] = []
    earlier: list[list[str]] = []
    for item in items:
        if item.startswith(b'["b",'):  # a burst hint of an earlier version: bursts are
            continue  # now looked for among all the clicks written
        try:
            hit = parse_hit(item)
        except ValueError:
            log.warning("tracking buffer: an unreadable hit was dropped: %r", item[:80])
            continue
        # An earlier version counted its hits against the limits when it pushed them.
        (earlier if item.startswith(b"[") else hits).append(hit)
    written = write_hits(session, earlier + _within_limits(client, hits, batch_id))
    session.commit()
    _clear(client, batch_id)
    return written


def _clear(client: "redis.Redis[bytes]", batch_id: str) -> None:
    client.register_script(_CLEAR)(
        keys=[PROCESSING_KEY, BATCH_ID_KEY, f"{VERDICTS_KEY}:{batch_id}"], args=[batch_id]
    )


_pause = time.sleep  # between the batches of a peak (tests replace it)


def flush(
    session: Session,
    client: "redis.Redis[bytes]",
    budget: float = FLUSH_BUDGET,
    pace: float = FLUSH_PACE,
) -> int:
    """Use case (beat): write buffered hits in batches until the buffer is empty or
    ``budget`` seconds have passed. One flusher at a time (a Redis lock).

    During a peak (batches of ``PEAK`` hits or more) the flush stays and writes what
    arrived every ``pace`` seconds: small, regular batches spread the database work,
    which in bursts would slow the web processes sharing the machine (their p99, in
    bench/tracking.py). Otherwise it writes what is waiting and returns; a backlog
    (full batches) is written without pause."""
    owner = secrets.token_hex(8)
    if not client.set(LOCK_KEY, owner, nx=True, ex=LOCK_SECONDS):
        return 0
    written = 0
    started = time.monotonic()
    try:
        renew = client.register_script(_RENEW)
        while time.monotonic() - started < budget:
            if not renew(keys=[LOCK_KEY], args=[owner, LOCK_SECONDS]):
                log.warning("tracking flush: the lock expired; another flush carries on")
                break
            taken = time.monotonic()
            batch_id = take_batch(client)
            if batch_id is None:
                break
            count = write_batch(session, client, batch_id)
            written += count
            waiting = client.llen(EVENTS_KEY)
            if waiting >= BATCH_SIZE or (waiting and count < PEAK):
                continue  # a backlog, or what a quiet moment left: no pause
            if count < PEAK:
                break
            _pause(max(0.0, pace - (time.monotonic() - taken)))
    finally:
        client.register_script(_RELEASE)(keys=[LOCK_KEY], args=[owner])
    return written


def buffered(client: "redis.Redis[bytes]") -> int:
    """Hits waiting to be written (buffer and processing list)."""
    with client.pipeline(transaction=False) as pipe:
        pipe.llen(EVENTS_KEY)
        pipe.llen(PROCESSING_KEY)
        waiting, processing = pipe.execute()
    return int(waiting) + int(processing)


_CLIENTS: dict[str, "redis.Redis[bytes]"] = {}


def flush_buffer(session: Session, config: Config) -> int:
    """Use case (beat, every ``FLUSH_EVERY`` seconds): ``flush`` with the configured Redis; a no-op
    in embedded mode, where hits are written as they come."""
    if not config.redis_url:
        return 0
    client = _CLIENTS.get(config.redis_url)
    if client is None:
        client = _CLIENTS[config.redis_url] = redis.Redis.from_url(config.redis_url)
    return flush(session, client)
