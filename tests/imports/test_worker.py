"""A real Celery worker (embedded filesystem broker) runs the dry run then the import."""

import subprocess
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from service.audience import imports
from service.audience.models import Import, ImportStatus, Subscriber
from service.audit.models import AuditEntry
from service.taskqueue import celery_settings
from tests.conftest import make_config
from tests.imports.files import csv_bytes
from tests.processes import start_worker, worker_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _wait(
    engine: Engine, import_id: int, status: ImportStatus, worker: subprocess.Popen[bytes], log: Path
) -> Import:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with Session(engine) as session:
            found = session.get_one(Import, import_id)
            if found.status in {status, ImportStatus.FAILED}:
                assert found.status == status, found.error
                return found
        if worker.poll() is not None:
            pytest.fail(f"worker exited with {worker.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)  # polling the database, as the progress page does
    pytest.fail(f"the import never reached {status}; worker log:\n{log.read_text()[-3000:]}")


def test_import_through_a_real_worker(engine: Engine, database_url: str, tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    config = make_config(
        instance, database_url, broker_url="filesystem://", broker_folder=instance / "broker"
    )
    queue = f"test-{uuid.uuid4().hex[:8]}"
    tag = uuid.uuid4().hex[:8]
    addresses = [f"worker-{tag}-{i}@commune.fr" for i in range(1500)]
    upload = tmp_path / "upload.csv"
    upload.write_bytes(
        csv_bytes([[a, "Prénom", "Nom"] for a in addresses], headers=["Courriel", "Prénom", "Nom"])
    )
    # Committed for real: the worker is another process with its own connection.
    with Session(engine) as session:
        record = imports.create_import(session, config, upload, "abonnés.csv", None)
        record.status = ImportStatus.CHECKING
        session.commit()
        import_id = record.id

    env = worker_env(instance, database_url)
    log = tmp_path / "worker.log"
    worker = start_worker(env, log, queue=queue)
    sender = Celery("test-sender")
    sender.config_from_object(celery_settings(config))
    try:
        sender.send_task("lettrine.audience.run_import", args=[import_id], queue=queue)
        checked = _wait(engine, import_id, ImportStatus.CHECKED, worker, log)
        assert checked.dry_run_counts == {"created": 1500}
        with engine.begin() as conn:
            conn.execute(
                update(Import).where(Import.id == import_id).values(status=ImportStatus.IMPORTING)
            )
        sender.send_task("lettrine.audience.run_import", args=[import_id], queue=queue)
        done = _wait(engine, import_id, ImportStatus.DONE, worker, log)
        assert done.counts == {"created": 1500}
        assert done.processed_rows == 1500
        with Session(engine) as session:
            stored = session.scalars(
                select(Subscriber.email).where(Subscriber.email.like(f"worker-{tag}-%"))
            ).all()
        assert sorted(stored) == sorted(addresses)
        assert "lettrine.audience.run_import" in log.read_text()
    finally:
        sender.close()
        worker.terminate()
        worker.wait(timeout=30)
        with engine.begin() as conn:
            conn.execute(delete(Subscriber).where(Subscriber.email.like(f"worker-{tag}-%")))
            conn.execute(
                delete(AuditEntry).where(
                    AuditEntry.target_type == "import", AuditEntry.target_id == import_id
                )
            )
            conn.execute(delete(Import).where(Import.id == import_id))
