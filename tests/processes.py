"""Real processes for the tests: Celery workers, and the clean-up of data they commit."""

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker
from werkzeug.serving import make_server

from service import create_app
from service.db import Session
from service.models import Base
from service.outbox.server import make_controller
from tests.conftest import free_port, make_config

ROOT = Path(__file__).resolve().parents[1]


def worker_env(instance: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker process: this test's database, nothing of the developer's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SMTP_HOST", "SMTP_PORT"}
    }
    env.update(
        LETTRINE_INSTANCE=str(instance),
        DATABASE_URL=database_url,
        SECRET_KEY="test-secret-key",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def start_worker(
    env: dict[str, str],
    log: Path,
    *,
    concurrency: int = 1,
    queue: str | None = None,
    app_module: str = "workers.celery_app",
) -> subprocess.Popen[bytes]:
    """``celery worker`` in its own process group (so a test can kill it whole)."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app_module,
        "worker",
        f"--concurrency={concurrency}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    if queue:
        command += ["-Q", queue, "--hostname", f"{queue}@%h"]
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def truncate_all(engine: Engine) -> None:
    """Remove what a test committed for real (live servers, workers) on PostgreSQL."""
    tables = ", ".join(f'"{t.name}"' for t in reversed(Base.metadata.sorted_tables))
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@contextmanager
def live_app(engine: Engine, database_url: str, instance: Path) -> Iterator[tuple[str, Flask]]:
    """The app served for real on a free port (own sessions, real commits), with the dev
    outbox receiving its mail; everything committed is removed afterwards."""
    outbox = make_controller(sessionmaker(engine), "127.0.0.1", free_port())
    outbox.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(make_config(instance, database_url, smtp_port=outbox.port, base_url=base))
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield base, app
    finally:
        server.shutdown()
        outbox.stop()
        Session.remove()
        app.extensions["engine"].dispose()
        truncate_all(engine)
