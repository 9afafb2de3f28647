"""An issue sent for real: a Celery worker process on Redis claims the deliveries,
renders and sends them to an SMTP server, and the issue finishes by itself."""

import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession

from service import create_app
from service.accounts.models import User
from service.db import Session
from service.delivery import services
from service.delivery.models import Delivery, DeliveryStatus
from service.issues.models import Issue, IssueStatus
from tests.conftest import TEST_REDIS_URL, _Collect, free_port, make_config
from tests.delivery.faults import seed
from tests.processes import start_worker, truncate_all, worker_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]
RECIPIENTS = 30


def test_a_worker_sends_the_whole_issue(engine: Engine, database_url: str, tmp_path: Path) -> None:
    issue_id = seed(engine, RECIPIENTS)
    sink = _Collect()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    env = worker_env(
        tmp_path / "instance",
        database_url,
        REDIS_URL=TEST_REDIS_URL,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp.port),
        BASE_URL="https://lettre.aula.example.org",
    )
    log = tmp_path / "worker.log"
    worker = start_worker(env, log, concurrency=2)
    app = create_app(
        make_config(
            tmp_path / "app", database_url, broker_url=TEST_REDIS_URL, redis_url=TEST_REDIS_URL
        )
    )
    try:
        with app.app_context():
            session = Session()
            issue = session.get(Issue, issue_id)
            publisher = session.scalars(select(User)).one()
            assert services.start_sending(session, issue, publisher) == RECIPIENTS
            Session.remove()
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline:
            with OrmSession(engine) as check:
                status = check.scalar(select(Issue.status).where(Issue.id == issue_id))
            if status is IssueStatus.SENT:
                break
            if worker.poll() is not None:
                pytest.fail(f"worker died:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)  # polling the ledger: the issue's status is the event awaited
        assert status is IssueStatus.SENT, log.read_text()[-3000:]
        with OrmSession(engine) as check:
            statuses = list(check.scalars(select(Delivery.status)))
        assert statuses == [DeliveryStatus.SENT] * RECIPIENTS
        received = sorted(rcpt[0] for _from, rcpt, _raw in sink.messages)
        assert received == sorted(f"r{n}@commune{n % 50}.example.fr" for n in range(RECIPIENTS))
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        smtp.stop()
        app.extensions["engine"].dispose()
        truncate_all(engine)
