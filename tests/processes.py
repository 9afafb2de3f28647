"""Real processes for the tests: Celery workers, and the clean-up of data they commit."""

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, text

from service.models import Base

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
    env: dict[str, str], log: Path, *, concurrency: int = 1, queue: str | None = None
) -> subprocess.Popen[bytes]:
    """``celery worker`` in its own process group (so a test can kill it whole)."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
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
