"""Hits through the Redis buffer: answered at once, written by the flush, exactly
once even when a flush dies half-way."""

import datetime as dt
import threading
import time

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.tracking import classify, ingest, services
from service.tracking.models import Event, EventKind
from service.tracking.services import (
    BATCH_ID_KEY,
    EVENTS_KEY,
    LOCK_KEY,
    PROCESSING_KEY,
    VERDICTS_KEY,
    buffered,
    encode_hit,
    flush,
    take_batch,
    write_batch,
)
from tests.tracking.conftest import Sent, pushed

HUMAN = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}


def _count(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(Event)) or 0


def test_hits_wait_in_the_buffer_until_the_flush(
    buffered_app: Flask, db_session: Session, buffer: "redis.Redis[bytes]", sent: Sent
) -> None:
    client = buffered_app.test_client()
    assert client.get(sent.open_path(), headers=HUMAN).status_code == 200
    response = client.get(sent.click_path(3), headers=HUMAN)
    assert response.headers["Location"] == sent.links[3].url
    assert _count(db_session) == 0
    pushed(buffered_app)
    assert buffered(buffer) == 2
    assert flush(db_session, buffer) == 2
    events = list(db_session.scalars(select(Event).order_by(Event.id)))
    assert [(e.kind, e.delivery_id, e.link_id) for e in events] == [
        (EventKind.OPEN, sent.delivery.id, None),
        (EventKind.CLICK, sent.delivery.id, sent.links[3].id),
    ]
    assert all(not e.is_machine and e.user_agent_family == "Firefox" for e in events)
    assert buffered(buffer) == 0
    assert not buffer.exists(LOCK_KEY)


def test_a_batch_taken_by_a_flush_that_died_is_written_by_the_next(
    buffered_app: Flask, db_session: Session, buffer: "redis.Redis[bytes]", sent: Sent
) -> None:
    client = buffered_app.test_client()
    for _ in range(3):
        client.get(sent.open_path(), headers=HUMAN)
    pushed(buffered_app)
    assert take_batch(buffer) is not None  # moved to processing, then the worker is killed
    client.get(sent.open_path(), headers=HUMAN)  # a hit arriving meanwhile
    pushed(buffered_app)
    assert (buffer.llen(PROCESSING_KEY), buffer.llen(EVENTS_KEY)) == (3, 1)
    assert flush(db_session, buffer) == 4
    assert _count(db_session) == 4
    assert buffered(buffer) == 0


def test_a_batch_committed_just_before_a_crash_is_not_written_twice(
    buffered_app: Flask, db_session: Session, buffer: "redis.Redis[bytes]", sent: Sent
) -> None:
    client = buffered_app.test_client()
    for _ in range(3):
        client.get(sent.open_path(), headers=HUMAN)
    pushed(buffered_app)
    batch = take_batch(buffer)
    assert batch is not None
    items = buffer.lrange(PROCESSING_KEY, 0, -1)
    assert write_batch(db_session, buffer, batch) == 3
    # What a crash between the commit and the clean-up leaves in Redis:
    buffer.rpush(PROCESSING_KEY, *items)
    buffer.set(BATCH_ID_KEY, batch)
    assert flush(db_session, buffer) == 0
    assert _count(db_session) == 3
    assert buffered(buffer) == 0


def test_one_flusher_at_a_time(
    buffered_app: Flask, db_session: Session, buffer: "redis.Redis[bytes]", sent: Sent
) -> None:
    buffered_app.test_client().get(sent.open_path(), headers=HUMAN)
    buffer.set(LOCK_KEY, "another worker", ex=60)
    pushed(buffered_app)
    assert flush(db_session, buffer) == 0
    assert buffered(buffer) == 1
    buffer.delete(LOCK_KEY)
    assert flush(db_session, buffer) == 1


def test_bursts_are_marked_across_batches(
    buffered_app: Flask, db_session: Session, buffer: "redis.Redis[bytes]", sent: Sent
) -> None:
    client = buffered_app.test_client()
    client.get(sent.click_path(0), headers=HUMAN)
    client.get(sent.click_path(1), headers=HUMAN)
    pushed(buffered_app)
    flush(db_session, buffer)
    assert db_session.scalars(select(Event.is_machine)).all() == [False, False]
    client.get(sent.click_path(2), headers=HUMAN)  # the third link in the same second
    pushed(buffered_app)
    flush(db_session, buffer)
    assert db_session.scalars(select(Event.is_machine)).all() == [True, True, True]


def test_floods_are_capped_per_address_and_per_delivery(
    buffered_app: Flask,
    db_session: Session,
    buffer: "redis.Redis[bytes]",
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every hit is answered and buffered; the flush writes those within the limits."""
    monkeypatch.setattr(services, "IP_LIMIT", 4)
    monkeypatch.setattr(services, "DELIVERY_LIMIT", 6)
    client = buffered_app.test_client()
    for _ in range(10):
        response = client.get(sent.open_path(), headers=HUMAN)
        assert response.status_code == 200
    pushed(buffered_app)
    assert buffered(buffer) == 10
    assert flush(db_session, buffer) == 4  # one address
    for n in range(10):
        client.get(sent.open_path(), headers=HUMAN, environ_base={"REMOTE_ADDR": f"10.0.{n}.1"})
    pushed(buffered_app)
    assert flush(db_session, buffer) == 2  # one delivery: 6 in all
    assert _count(db_session) == 6
    # The counters expire, the batches' verdicts are gone: nothing grows without bound.
    keys = list(buffer.scan_iter("lettrine:tracking:*"))
    assert keys
    assert all(buffer.ttl(key) > 0 for key in keys)
    assert not any(key.startswith(VERDICTS_KEY.encode()) for key in keys)


def test_a_batch_counted_by_a_flush_that_died_is_not_counted_again(
    buffered_app: Flask,
    db_session: Session,
    buffer: "redis.Redis[bytes]",
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(services, "IP_LIMIT", 4)
    client = buffered_app.test_client()
    for _ in range(10):
        client.get(sent.open_path(), headers=HUMAN)
    pushed(buffered_app)

    def die(*_args: object) -> int:
        raise SystemExit("the worker died after counting the batch, before writing it")

    with monkeypatch.context() as dying:
        dying.setattr(services, "write_hits", die)
        with pytest.raises(SystemExit):
            flush(db_session, buffer)
    db_session.rollback()
    assert buffer.llen(PROCESSING_KEY) == 10
    assert flush(db_session, buffer) == 4  # counted twice, it would write none
    (counter,) = buffer.scan_iter("lettrine:tracking:ip:*")
    assert buffer.get(counter) == b"10"


def test_hits_buffered_by_the_previous_version_are_written(
    db_session: Session, buffer: "redis.Redis[bytes]", sent: Sent
) -> None:
    """The JSON lines (and burst hints) an upgrade may find in the buffer."""
    now = dt.datetime.now(dt.UTC).timestamp()
    issue, delivery, link = sent.issue.id, sent.delivery.id, sent.links[1].id
    # The earlier version counted them when it pushed them: they are not counted again.
    buffer.set(f"lettrine:tracking:delivery:{delivery}", services.DELIVERY_LIMIT)
    buffer.rpush(
        EVENTS_KEY,
        f'["o",{issue},{delivery},null,{now},0,"Firefox","10.1.2.0"]',
        f'["c",{issue},{delivery},{link},{now},1,"Mimecast",null]',
        f'["b",{delivery},{now}]',
    )
    assert flush(db_session, buffer) == 2
    events = db_session.scalars(select(Event).order_by(Event.id)).all()
    assert [
        (e.kind, e.delivery_id, e.link_id, e.is_machine, e.user_agent_family, e.ip_truncated)
        for e in events
    ] == [
        (EventKind.OPEN, delivery, None, False, "Firefox", "10.1.2.0"),
        (EventKind.CLICK, delivery, link, True, "Mimecast", None),
    ]
    assert events[0].occurred_at.timestamp() == pytest.approx(now)


def test_an_unreadable_item_is_dropped_and_the_batch_written(
    db_session: Session,
    buffer: "redis.Redis[bytes]",
    sent: Sent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = dt.datetime.now(dt.UTC).timestamp()
    good = encode_hit(EventKind.OPEN, sent.issue.id, None, None, now, False, "Firefox", None)
    nine_fields = good.replace("\tFirefox\t", "\tFire\\fox\t")  # COPY would refuse it
    buffer.rpush(EVENTS_KEY, good, "garbage\tfrom\tsomewhere", nine_fields, good)
    assert flush(db_session, buffer) == 2
    assert "unreadable hit" in caplog.text


def test_a_full_buffer_sends_hits_to_the_database_within_the_address_limit(
    buffered_app: Flask,
    db_session: Session,
    buffer: "redis.Redis[bytes]",
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest, "MAX_BUFFER", 2)
    monkeypatch.setattr(services, "IP_LIMIT", 3)
    client = buffered_app.test_client()
    for _ in range(2):
        client.get(sent.open_path(), headers=HUMAN)
    pushed(buffered_app)
    assert (buffered(buffer), _count(db_session)) == (2, 0)
    for _ in range(4):
        client.get(sent.open_path(), headers=HUMAN)
    pushed(buffered_app)  # the buffer cannot take 4 more: they are written at once
    assert (buffered(buffer), _count(db_session)) == (2, 3)


def test_families_fit_a_buffered_line() -> None:
    """A family is a field of a tab-separated line and of COPY's text format."""
    families = {family for _pattern, family in classify._MACHINES + classify._FAMILIES}
    families |= {f for _p, f in classify._WEBMAIL_PROXIES} | {classify.APPLE_PRIVACY}
    families |= {"Autre", "Inconnu"}
    assert all(not set(f) & set("\t\n\r\\") and len(f) <= 40 for f in families)


def test_without_redis_hits_are_written_at_once(
    app: Flask, db_session: Session, sent: Sent
) -> None:
    app.test_client().get(sent.open_path(), headers=HUMAN)
    (event,) = db_session.scalars(select(Event))
    assert event.occurred_at > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)


def test_hits_of_deleted_deliveries_are_kept_without_them(
    db_session: Session, buffer: "redis.Redis[bytes]", sent: Sent
) -> None:
    """A delivery erased between the hit and the flush must not cost the whole batch."""
    now = dt.datetime.now(dt.UTC).timestamp()
    gone, kept = 10**9, sent.delivery.id
    buffer.rpush(
        EVENTS_KEY,
        *(
            encode_hit(EventKind.OPEN, sent.issue.id, d, None, now, False, "Firefox", None)
            for d in (kept, gone, kept)
        ),
    )
    assert flush(db_session, buffer) == 3
    rows = db_session.execute(select(Event.delivery_id).order_by(Event.id)).scalars().all()
    assert rows == [kept, None, kept]


def _hits(sent: Sent, count: int) -> list[str]:
    now = dt.datetime.now(dt.UTC).timestamp()
    return [
        encode_hit(EventKind.OPEN, sent.issue.id, None, None, now, False, "Firefox", f"10.{n}.0.0")
        for n in range(count)
    ]


def _push_when_taken(buffer: "redis.Redis[bytes]", hits: list[str]) -> threading.Thread:
    """Push ``hits`` as soon as a flush has taken what was waiting (hits arriving meanwhile)."""

    def push() -> None:
        while buffer.llen(EVENTS_KEY):
            time.sleep(0.001)  # polling Redis: the flush taking the batch is the event
        buffer.rpush(EVENTS_KEY, *hits)

    thread = threading.Thread(target=push)
    thread.start()
    return thread


def test_during_a_peak_the_flush_stays_for_the_next_batch(
    db_session: Session, buffer: "redis.Redis[bytes]", sent: Sent
) -> None:
    buffer.rpush(EVENTS_KEY, *_hits(sent, services.PEAK))
    arriving = _push_when_taken(buffer, _hits(sent, services.PEAK))
    assert flush(db_session, buffer, pace=0.2) == 2 * services.PEAK
    arriving.join()
    assert buffered(buffer) == 0


def test_out_of_a_peak_the_flush_writes_what_waits_and_returns(
    db_session: Session,
    buffer: "redis.Redis[bytes]",
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(services, "_pause", pauses.append)
    buffer.rpush(EVENTS_KEY, *_hits(sent, 5))
    assert flush(db_session, buffer, pace=60) == 5
    assert pauses == []
    buffer.rpush(EVENTS_KEY, *_hits(sent, services.PEAK))
    assert flush(db_session, buffer, pace=60) == services.PEAK
    assert len(pauses) == 1  # a peak's batch: it waited once for more, and none came
    assert 59 < pauses[0] <= 60


def test_a_backlog_is_taken_a_batch_at_a_time(
    db_session: Session, buffer: "redis.Redis[bytes]", sent: Sent
) -> None:
    buffer.rpush(EVENTS_KEY, *_hits(sent, 5))
    assert take_batch(buffer, size=2) is not None
    assert (buffer.llen(PROCESSING_KEY), buffer.llen(EVENTS_KEY)) == (2, 3)
    assert flush(db_session, buffer) == 5
    assert _count(db_session) == 5


def test_a_flush_whose_lock_expired_neither_reads_nor_clears_the_next_batch(
    db_session: Session, buffer: "redis.Redis[bytes]", sent: Sent
) -> None:
    """Flush X took batch 1 and stalled past its lock; flush Y wrote batch 1 and took
    batch 2. X, waking up, must leave batch 2 alone."""
    buffer.rpush(EVENTS_KEY, *_hits(sent, 3))
    first = take_batch(buffer)
    assert first is not None
    assert write_batch(db_session, buffer, first) == 3  # by Y
    buffer.rpush(EVENTS_KEY, *_hits(sent, 4))
    assert take_batch(buffer) not in (None, first)  # Y's next batch
    assert write_batch(db_session, buffer, first) == 0  # X
    services._clear(buffer, first)  # X again, on its way out
    assert buffer.llen(PROCESSING_KEY) == 4
    assert flush(db_session, buffer) == 4
    assert _count(db_session) == 7


def test_a_flush_that_lost_its_lock_stops(
    db_session: Session,
    buffer: "redis.Redis[bytes]",
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def stalled(_seconds: float) -> None:  # meanwhile the lock expired and another took it
        buffer.set(LOCK_KEY, "another flush", ex=60)
        buffer.rpush(EVENTS_KEY, *_hits(sent, 3))

    monkeypatch.setattr(services, "_pause", stalled)
    buffer.rpush(EVENTS_KEY, *_hits(sent, services.PEAK))
    assert flush(db_session, buffer) == services.PEAK
    assert buffered(buffer) == 3  # left to the flush that holds the lock
    assert buffer.get(LOCK_KEY) == b"another flush"
