"""DESIGN.md §4, tested by killing: a worker is SIGKILLed in the middle of an issue;
the sweeper returns its leases, another worker finishes. Nothing is lost, and each
killed worker process duplicates at most the one message it was sending."""

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session as OrmSession

from service import create_app
from service.accounts.models import User
from service.db import Session, utcnow
from service.delivery import services
from service.delivery.models import Delivery, DeliveryStatus
from service.issues.models import Issue, IssueStatus
from tests.conftest import TEST_REDIS_URL, free_port, make_config
from tests.delivery.test_worker_sending import _seed
from tests.processes import start_worker, truncate_all, worker_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]
WORKER_PROCESSES = 2


class SlowReceiver:
    """A receiver taking 50 ms per message, so the kill lands mid-issue."""

    def __init__(self, kill_after: int) -> None:
        self.received: list[str] = []
        self.kill_after = kill_after
        self.ready = threading.Event()

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(0.05)
        self.received.extend(envelope.rcpt_tos)
        if len(self.received) >= self.kill_after:
            self.ready.set()
        return "250 OK"


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return start_worker(env, log, concurrency=WORKER_PROCESSES)


def _wait(condition: Any, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)  # polling the ledger: the awaited event is a row changing state
    pytest.fail(f"{what} did not happen in time:\n{log.read_text()[-3000:]}")


def test_killed_worker_loses_nothing(engine: Engine, database_url: str, tmp_path: Path) -> None:
    issue_id = _seed(engine)
    receiver = SlowReceiver(kill_after=8)
    smtp = Controller(receiver, hostname="127.0.0.1", port=free_port())
    smtp.start()
    env = worker_env(
        tmp_path / "instance",
        database_url,
        REDIS_URL=TEST_REDIS_URL,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp.port),
        DELIVERY_LEASE_SECONDS="2",
    )
    log = tmp_path / "workers.log"
    app = create_app(
        make_config(
            tmp_path / "app",
            database_url,
            broker_url=TEST_REDIS_URL,
            redis_url=TEST_REDIS_URL,
            delivery_lease_seconds=2,
        )
    )
    first = _worker(env, log)
    second = None
    try:
        with app.app_context():
            session = Session()
            services.start_sending(
                session, session.get(Issue, issue_id), session.scalars(select(User)).one()
            )
            Session.remove()
        assert receiver.ready.wait(60), log.read_text()[-3000:]
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool, without warning
        first.wait(timeout=10)
        sent_before = len(receiver.received)

        def leases_expired() -> bool:
            with OrmSession(engine) as check:
                live = check.scalar(
                    select(func.count()).where(
                        Delivery.status == DeliveryStatus.LEASED,
                        Delivery.lease_expires_at > utcnow(),
                    )
                )
            return live == 0

        _wait(leases_expired, 30, "lease expiry", log)
        with app.app_context():
            services.sweep(Session())  # what beat runs every 30 s
            Session.remove()
        second = _worker(env, log)

        def finished() -> bool:
            with OrmSession(engine) as check:
                return (
                    check.scalar(select(Issue.status).where(Issue.id == issue_id))
                    is IssueStatus.SENT
                )

        _wait(finished, 90, "the issue finishing", log)
        assert sent_before < 30  # the kill did land in the middle
        counts = Counter(receiver.received)
        assert set(counts) == {f"elu{n}@ternois.example.fr" for n in range(30)}  # none lost
        duplicates = sum(n - 1 for n in counts.values())
        assert duplicates <= WORKER_PROCESSES, counts
        with OrmSession(engine) as check:
            assert set(check.scalars(select(Delivery.status))) == {DeliveryStatus.SENT}
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=30)
        smtp.stop()
        app.extensions["engine"].dispose()
        truncate_all(engine)
