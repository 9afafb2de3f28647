"""A real Celery worker process, on Redis and on the embedded filesystem broker,
runs a task that writes to the test database."""

import subprocess
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import Engine, delete, select

from service.system.models import WorkerHeartbeat
from service.taskqueue import celery_settings
from tests.conftest import TEST_REDIS_URL, make_config
from tests.processes import start_worker, worker_env

ROOT = Path(__file__).resolve().parents[2]


def _wait_for_row(engine: Engine, name: str, worker: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.scalar(select(WorkerHeartbeat.name).where(WorkerHeartbeat.name == name)):
                return
        if worker.poll() is not None:
            pytest.fail(f"worker exited with {worker.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)  # polling the database: the task's write is the event we await
    pytest.fail(f"the task never wrote its row; worker log:\n{log.read_text()[-3000:]}")


@pytest.fixture(params=["redis", "filesystem"])
def broker_env(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> dict[str, str]:
    env = worker_env(tmp_path / "instance", database_url)
    if request.param == "redis":
        env["REDIS_URL"] = TEST_REDIS_URL
    return env


def test_worker_round_trip(broker_env: dict[str, str], engine: Engine, tmp_path: Path) -> None:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    name = f"probe-{uuid.uuid4().hex}"
    log = tmp_path / "worker.log"
    worker = start_worker(broker_env, log, queue=queue)
    try:
        config = make_config(
            Path(broker_env["LETTRINE_INSTANCE"]),
            broker_env["DATABASE_URL"],
            **(
                {"broker_url": broker_env["REDIS_URL"], "broker_folder": None}
                if "REDIS_URL" in broker_env
                else {
                    "broker_url": "filesystem://",
                    "broker_folder": Path(broker_env["LETTRINE_INSTANCE"]) / "broker",
                }
            ),
        )
        sender = Celery("test-sender")
        sender.config_from_object(celery_settings(config))
        # Sent before the worker is up on purpose: the broker must keep it.
        sender.send_task("lettrine.system.heartbeat", args=[name], queue=queue)
        _wait_for_row(engine, name, worker, log)
        assert "lettrine.system.heartbeat" in log.read_text()
        sender.close()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        with engine.begin() as conn:
            conn.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == name))
