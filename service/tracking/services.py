"""Tracking use cases: the links stored for an issue, and writing hits as events.

Hits reach ``events`` in one of two ways (see ``service.tracking.ingest``): with
Redis configured they are pushed to a list and written here in batches by a
beat task (``flush``); without it (embedded mode) each hit is written at once
(``write_events`` with one row).
"""

import datetime as dt
import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

import psycopg
import redis
from flask import current_app
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from emails import collect_links, resolve
from service.config import Config
from service.db import utcnow
from service.delivery.models import Delivery
from service.issues.models import Issue
from service.issues.rendering import issue_data, render_settings
from service.tracking.classify import BURST_WINDOW, Click, bursts
from service.tracking.models import Event, EventKind, Link, LinkKind, TrackingFlush

# Redis keys of the buffer. One processing list: batches are written one at a time.
EVENTS_KEY = "lettrine:tracking:events"
PROCESSING_KEY = "lettrine:tracking:processing"
BATCH_ID_KEY = "lettrine:tracking:processing:batch"
LOCK_KEY = "lettrine:tracking:flush-lock"
BATCH_SIZE = 2000
LOCK_SECONDS = 60
FLUSH_BUDGET = 20.0  # seconds one flush task may keep writing before it yields

_KINDS = {"o": EventKind.OPEN, "c": EventKind.CLICK}
# In the buffer, among the events: ["b", delivery id, time], where a burst may be forming.
BURST_PREFIX = b'["b",'
BurstHints = list[tuple[int, dt.datetime]]
_CODES = {kind: code for code, kind in _KINDS.items()}


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


def encode_hit(  # noqa: PLR0917 - one event's columns
    kind: EventKind,
    issue_id: int,
    delivery_id: int | None,
    link_id: int | None,
    at: float,
    is_machine: bool,
    family: str,
    ip: str | None,
) -> str:
    """A hit as it waits in the buffer: compact JSON, decoded by ``decode_hit``."""
    return json.dumps(
        [_CODES[kind], issue_id, delivery_id, link_id, at, int(is_machine), family, ip],
        separators=(",", ":"),
    )


def decode_hit(raw: bytes | str) -> dict[str, Any]:
    code, issue_id, delivery_id, link_id, at, machine, family, ip = json.loads(raw)
    return {
        "kind": _KINDS[code],
        "issue_id": issue_id,
        "delivery_id": delivery_id,
        "link_id": link_id,
        "occurred_at": dt.datetime.fromtimestamp(at, dt.UTC),
        "is_machine": bool(machine),
        "user_agent_family": family,
        "ip_truncated": ip,
    }


def write_events(
    session: Session, rows: Sequence[dict[str, Any]], *, bursts_near: BurstHints | None = None
) -> int:
    """Insert events, then mark click bursts (several links of one delivery within a
    second, this batch and earlier ones together) as machine. Never commits.

    ``bursts_near`` (the Redis path): only the (delivery, time) pairs where Redis saw
    a burst forming are checked; without it, every click written is."""
    if not rows:
        return 0
    try:
        with session.begin_nested():
            _insert(session, rows)
    except (IntegrityError, psycopg.IntegrityError):
        # The issue, delivery or link was deleted since the hit: keep what still exists.
        rows = _still_existing(session, rows)
        if rows:
            _insert(session, rows)
    if bursts_near is None:
        bursts_near = [
            (r["delivery_id"], r["occurred_at"])
            for r in rows
            if r["kind"] is EventKind.CLICK and r["delivery_id"] is not None
        ]
    _mark_bursts(session, bursts_near)
    return len(rows)


_COPY = (
    "COPY events (kind, issue_id, delivery_id, link_id, occurred_at, is_machine, "
    "user_agent_family, ip_truncated) FROM STDIN"
)


def _insert(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """COPY on PostgreSQL (a fraction of the cost of INSERT … VALUES), INSERT elsewhere."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(Event), list(rows))
        return
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)  # noqa: S101 - the only PostgreSQL driver
    with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
        for r in rows:
            copy.write_row(
                (
                    r["kind"].value,
                    r["issue_id"],
                    r["delivery_id"],
                    r["link_id"],
                    r["occurred_at"],
                    r["is_machine"],
                    r["user_agent_family"],
                    r["ip_truncated"],
                )
            )


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
    if not near:
        return
    start = min(at for _d, at in near) - BURST_WINDOW
    end = max(at for _d, at in near) + BURST_WINDOW
    nearby = session.execute(
        select(Event.id, Event.delivery_id, Event.link_id, Event.occurred_at).where(
            Event.delivery_id.in_({d for d, _at in near}),
            Event.kind == EventKind.CLICK,
            Event.occurred_at.between(start, end),
            Event.is_machine.is_(False),
        )
    ).all()
    found = bursts(Click(i, d, link, at) for i, d, link, at in nearby if d is not None)
    if found:
        session.execute(update(Event).where(Event.id.in_(found)).values(is_machine=True))


# --- The Redis buffer --------------------------------------------------------------------------

# Atomically move up to ARGV[1] hits to the processing list and name the batch; or,
# if a batch is already there (its flush died), give its name back to finish it.
_MOVE = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.call('GET', KEYS[3]) or ARGV[2]
end
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items == 0 then return false end
redis.call('LTRIM', KEYS[1], #items, -1)
for i = 1, #items, 500 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 499, #items)))
end
redis.call('SET', KEYS[3], ARGV[2])
return ARGV[2]
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
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


def write_batch(session: Session, client: "redis.Redis[bytes]", batch_id: str) -> int:
    """Write the processing list to ``events`` once, and commit (the batch id is
    committed with the events: a batch found again after a crash is not rewritten)."""
    items = client.lrange(PROCESSING_KEY, 0, -1)
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
    rows: list[dict[str, Any]] = []
    hints: BurstHints = []
    for item in items:
        if item.startswith(BURST_PREFIX):  # Redis saw links of one delivery pile up
            _code, delivery_id, at = json.loads(item)
            hints.append((delivery_id, dt.datetime.fromtimestamp(at, dt.UTC)))
        else:
            rows.append(decode_hit(item))
    written = write_events(session, rows, bursts_near=hints)
    session.commit()
    _clear(client, batch_id)
    return written


def _clear(client: "redis.Redis[bytes]", batch_id: str) -> None:
    with client.pipeline() as pipe:  # MULTI: both go, or neither
        pipe.delete(PROCESSING_KEY)
        pipe.register_script(_RELEASE)(keys=[BATCH_ID_KEY], args=[batch_id], client=pipe)
        pipe.execute()


def flush(session: Session, client: "redis.Redis[bytes]", budget: float = FLUSH_BUDGET) -> int:
    """Use case (beat): write buffered hits in batches until the buffer is empty or
    ``budget`` seconds have passed. One flusher at a time (a Redis lock)."""
    owner = secrets.token_hex(8)
    if not client.set(LOCK_KEY, owner, nx=True, ex=LOCK_SECONDS):
        return 0
    written = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < budget:
            batch_id = take_batch(client)
            if batch_id is None:
                break
            written += write_batch(session, client, batch_id)
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
    """Use case (beat, every few seconds): ``flush`` with the configured Redis; a no-op
    in embedded mode, where hits are written as they come."""
    if not config.redis_url:
        return 0
    client = _CLIENTS.get(config.redis_url)
    if client is None:
        client = _CLIENTS[config.redis_url] = redis.Redis.from_url(config.redis_url)
    return flush(session, client)
