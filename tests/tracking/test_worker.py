"""The flush as Celery runs it: a real worker writes buffered hits, including a
batch left half-done by a worker that died; beat ticks only where Redis buffers."""

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session as OrmSession

from emails.tokens import TokenSigner
from service.delivery.models import Delivery, DeliveryStatus
from service.newsletters.models import TrackingMode
from service.taskqueue import celery_settings
from service.tracking.models import Event, EventKind
from service.tracking.services import EVENTS_KEY, buffered, encode_hit, flush, take_batch
from tests.conftest import TEST_REDIS_URL, free_port, make_config
from tests.processes import ROOT, start_worker, truncate_all, worker_env
from tests.tracking.conftest import demo_issue


def test_beat_flushes_only_where_hits_are_buffered(tmp_path: Path) -> None:
    with_redis = make_config(tmp_path, "sqlite://", redis_url=TEST_REDIS_URL)
    embedded = make_config(tmp_path, "sqlite://")
    assert celery_settings(with_redis)["beat_schedule"]["tracking"]["task"] == (
        "lettrine.tracking.flush"
    )
    assert "tracking" not in celery_settings(embedded)["beat_schedule"]


@pytest.mark.postgres_only
@pytest.mark.slow
def test_a_worker_writes_the_buffer_and_finishes_a_dead_flush(
    engine: Engine, database_url: str, tmp_path: Path, buffer: "redis.Redis[bytes]"
) -> None:
    with OrmSession(engine) as session:
        issue = demo_issue(session, TrackingMode.INDIVIDUAL)
        delivery = Delivery(
            issue_id=issue.id, status=DeliveryStatus.SENT, sent_at=dt.datetime.now(dt.UTC)
        )
        session.add(delivery)
        session.commit()
        issue_id, delivery_id = issue.id, delivery.id
    now = time.time()
    hits = [
        encode_hit(EventKind.OPEN, issue_id, delivery_id, None, now + n, False, "Firefox", None)
        for n in range(5)
    ]
    buffer.rpush(EVENTS_KEY, *hits[:3])
    assert take_batch(buffer) is not None  # a flush took these three, then its worker died
    buffer.rpush(EVENTS_KEY, *hits[3:])
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = worker_env(tmp_path / "instance", database_url, REDIS_URL=TEST_REDIS_URL)
    log = tmp_path / "worker.log"
    worker = start_worker(env, log, queue=queue)
    sender = Celery("test-sender")
    sender.config_from_object(
        celery_settings(make_config(tmp_path, database_url, redis_url=TEST_REDIS_URL))
    )
    sender.conf.broker_url = TEST_REDIS_URL
    try:
        sender.send_task("lettrine.tracking.flush", queue=queue)
        deadline = time.monotonic() + 60
        while buffered(buffer) and time.monotonic() < deadline:
            if worker.poll() is not None:
                pytest.fail(f"worker exited:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)  # polling Redis: the worker's commit is the event awaited
        with OrmSession(engine) as session:
            times = session.scalars(select(Event.occurred_at).order_by(Event.occurred_at)).all()
            assert session.scalar(select(func.count()).select_from(Event)) == 5
        assert [t.timestamp() for t in times] == pytest.approx([now + n for n in range(5)])
        assert "lettrine.tracking.flush" in log.read_text()
    finally:
        sender.close()
        worker.terminate()
        worker.wait(timeout=30)
        truncate_all(engine)


@pytest.mark.postgres_only
@pytest.mark.slow
def test_a_web_worker_stopped_for_a_restart_hands_its_hits_over(
    engine: Engine, database_url: str, tmp_path: Path, buffer: "redis.Redis[bytes]"
) -> None:
    """gunicorn stops its workers with SIGTERM on a restart or a deploy: the hits still in
    a worker's outbox reach Redis before it exits (here nothing else would push them)."""
    with OrmSession(engine) as session:
        issue = demo_issue(session, TrackingMode.INDIVIDUAL)
        delivery = Delivery(
            issue_id=issue.id,
            status=DeliveryStatus.SENT,
            sent_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
        )
        session.add(delivery)
        session.commit()
        delivery_id = delivery.id
    env = worker_env(tmp_path / "instance", database_url, REDIS_URL=TEST_REDIS_URL)
    port = free_port()
    log = tmp_path / "web.log"
    command = [
        sys.executable,
        *("-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2"),
        "tests.tracking.held_outbox:app()",
    ]
    with log.open("ab") as out:
        web = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )
    token = TokenSigner("test-secret-key").system_tokens(delivery_id)[0]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/o/{token}.gif",
        headers={"User-Agent": "Mozilla/5.0 (X11) Firefox/128.0"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # until gunicorn answers
            try:
                urllib.request.urlopen(request, timeout=5).close()  # noqa: S310
                break
            except OSError:
                if web.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        for _ in range(19):
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                assert response.status == 200
        assert buffered(buffer) == 0  # all 20 still in the workers' outboxes
        os.killpg(web.pid, signal.SIGTERM)
        assert web.wait(timeout=30) == 0
        assert buffered(buffer) == 20
        with OrmSession(engine) as session:
            assert flush(session, buffer) == 20
    finally:
        if web.poll() is None:
            os.killpg(web.pid, signal.SIGKILL)
            web.wait()
        truncate_all(engine)
