"""A harness for the fault tests: a 5,000-recipient issue sent by real Celery workers to
a real SMTP server, while the test kills workers or restarts Redis or PostgreSQL.

The sweeper runs in a thread of the test, calling the same use case beat runs every
30 s, but every half second (the tests would otherwise wait for beat's period).
"""

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session as OrmSession

from service import create_app
from service.accounts.models import Role, User
from service.audience.models import Segment
from service.db import Session, make_engine
from service.delivery import services
from service.delivery.models import Delivery
from service.issues.models import Block, Issue, IssueStatus
from service.newsletters.models import Newsletter
from tests.conftest import free_port, make_config
from tests.processes import ROOT, start_worker, worker_env

RECIPIENTS = 5000
WORKER_PROCESSES = 2


class Counting:
    """The receiving SMTP server: counts each recipient's messages; lets a test wait
    until a number of messages has arrived (a condition, not a sleep)."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.total = 0
        self.changed = threading.Condition()
        self.delay = 0.0
        self.last_at = 0.0  # time.monotonic() of the last message received

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.changed:
            self.received.update(envelope.rcpt_tos)
            self.total += 1
            self.last_at = time.monotonic()
            self.changed.notify_all()
        return "250 2.0.0 OK"

    def wait_for(self, count: int, seconds: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.total >= count, seconds)

    def verdict(self) -> tuple[set[str], int]:
        """(addresses never received, number of extra copies)."""
        expected = {f"r{n}@commune{n % 50}.example.fr" for n in range(RECIPIENTS)}
        missing = expected - set(self.received)
        return missing, sum(n - 1 for n in self.received.values())


def seed(engine: Engine, recipients: int = RECIPIENTS) -> int:
    """An approved issue to a segment of ``recipients`` subscribers (set-based insert)."""
    with OrmSession(engine) as session:
        newsletter = Newsletter(
            slug="lettre",
            name="La Lettre",
            sender_name="AULA",
            sender_email="lettre@aula.example.org",
            postal_address="Béthune",
        )
        segment = Segment(slug="elus", name="Élus")
        user = User(email="pub@aula.example.org", name="P", role=Role.PUBLISHER, password_hash="!")
        issue = Issue(
            newsletter=newsletter,
            number=1,
            title="Numéro 1",
            subject="Numéro 1",
            status=IssueStatus.APPROVED,
            segments=[segment],
        )
        issue.blocks.append(
            Block(position=0, kind="text", data={"title": None, "html": "<p>Bonjour</p>"})
        )
        session.add_all([newsletter, segment, user, issue])
        session.flush()
        session.execute(
            text(
                "INSERT INTO subscribers (email, status, language, attributes, created_at, "
                "updated_at) SELECT 'r' || n || '@commune' || (n % 50) || '.example.fr', "
                "'active', 'fr', '{}', now(), now() FROM generate_series(0, :last) AS n"
            ),
            {"last": recipients - 1},
        )
        session.execute(
            text(
                "INSERT INTO memberships (subscriber_id, segment_id, status, created_at) "
                "SELECT id, :segment, 'active', now() FROM subscribers"
            ),
            {"segment": segment.id},
        )
        session.commit()
        return issue.id


@dataclass
class Run:
    """One sending under test: workers, the sweeper thread, the SMTP receiver."""

    engine: Engine
    database_url: str
    redis_url: str
    tmp: Path
    receiver: Counting = field(default_factory=Counting)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    killed: int = 0
    app_module: str = "workers.celery_app"
    sweep: Callable[[], object] | None = None
    issue_id: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def log(self) -> Path:
        return self.tmp / "workers.log"

    def env(self) -> dict[str, str]:
        return worker_env(
            self.tmp / "instance",
            self.database_url,
            REDIS_URL=self.redis_url,
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(self.smtp.port),
            DELIVERY_LEASE_SECONDS="2",
            SMTP_TIMEOUT="0.5",  # the test's receiver answers in milliseconds
        )

    def start_worker(self) -> None:
        self.workers.append(
            start_worker(
                self.env(), self.log, concurrency=WORKER_PROCESSES, app_module=self.app_module
            )
        )

    def kill_worker(self) -> None:
        """kill -9 of the worker and its pool (their sockets and leases left as they are)."""
        worker = self.workers.pop()
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        self.killed += WORKER_PROCESSES  # the pool processes were the ones sending

    def start(self) -> None:
        with self.app.app_context():
            session = Session()
            issue = session.get(Issue, self.issue_id)
            publisher = session.scalars(select(User)).one()
            assert services.start_sending(session, issue, publisher) == RECIPIENTS
            Session.remove()

    def _sweeper(self) -> None:
        while not self._stop.wait(0.5):
            with self.app.app_context():
                try:
                    (self.sweep or (lambda: services.sweep(Session())))()
                except Exception:  # noqa: BLE001, S110 - Redis or PostgreSQL down: next tick
                    pass
                finally:
                    Session.remove()

    def finished(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with OrmSession(self.engine) as check:
                    status = check.scalar(select(Issue.status).where(Issue.id == self.issue_id))
            except Exception:  # noqa: BLE001 - PostgreSQL restarting
                status = None
            if status is IssueStatus.SENT:
                return True
            time.sleep(0.2)  # polling the ledger: the issue's status is the event awaited
        return False

    def open_deliveries(self) -> int:
        with OrmSession(self.engine) as check:
            return (
                check.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.status.in_(["queued", "leased", "deferred"]))
                )
                or 0
            )

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    smtp: Controller = field(init=False)
    app: Flask = field(init=False)


@contextmanager
def sending(
    engine: Engine, database_url: str, redis_url: str, tmp: Path, **options: Any
) -> Iterator[Run]:
    run = Run(engine, database_url, redis_url, tmp, **options)
    run.issue_id = seed(engine)
    run.smtp = Controller(run.receiver, hostname="127.0.0.1", port=free_port())
    run.smtp.start()
    run.app = create_app(
        make_config(
            tmp / "app",
            database_url,
            broker_url=redis_url,
            redis_url=redis_url,
            delivery_lease_seconds=2,
        )
    )
    sweeper = threading.Thread(target=run._sweeper, daemon=True)
    try:
        run.start_worker()
        run.start()
        sweeper.start()
        yield run
    finally:
        run._stop.set()
        if sweeper.is_alive():
            sweeper.join(timeout=10)
        for worker in run.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=30)
        run.smtp.stop()
        run.app.extensions["engine"].dispose()


class PrivateRedis:
    """A Redis server of the test's own, so that it can be stopped and restarted empty."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis  # noqa: PLC0415

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # the server is starting: nothing to await but its port

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # everything in memory is gone
            self.process.wait(timeout=10)
            self.process = None


_PG = Path("/usr/lib/postgresql")
PG_BIN = (max(_PG.iterdir()) if _PG.exists() else _PG / "15") / "bin"


class PrivateCluster:
    """A PostgreSQL cluster of the test's own (initdb in a temp folder), restartable
    without disturbing the shared server other tests use."""

    def __init__(self) -> None:
        self.port = free_port()
        # Not under pytest's tmp_path: the server runs as "postgres", which must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="lettrine-pg-"))
        self.root.chmod(0o777)
        self.data = self.root / "pgdata"
        self.socket_dir = self.root
        self.run_as = ["su", "postgres", "-c"] if os.geteuid() == 0 else None

    def _command(self, *args: str) -> None:
        line = " ".join(args)
        command = [*self.run_as, line] if self.run_as else ["sh", "-c", line]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/test_faults"

    def create(self) -> None:
        self._command(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        self.start()
        admin = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres")
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("CREATE DATABASE test_faults"))
        admin.dispose()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        self._command(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-o",
            f"'{options}'",
            "-l",
            str(self.data.parent / "pg.log"),
            "start",
        )

    def restart(self) -> None:
        """A restart as an operator does it (``pg_ctlcluster restart``: fast mode, every
        connection cut, committed work flushed first)."""
        self._command(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.start()

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._command(
                str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )
        shutil.rmtree(self.root, ignore_errors=True)


def require_postgres_tools() -> None:
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL server binaries not found")


__all__ = ["ROOT"]
