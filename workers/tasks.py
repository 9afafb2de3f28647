import socket

from celery import shared_task
from flask import current_app

from service.audience.gdpr import purge_expired
from service.audience.imports import run as run_subscriber_import
from service.db import Session
from service.system.services import record_heartbeat


@shared_task(name="lettrine.system.heartbeat")
def heartbeat(name: str | None = None) -> None:
    """Record that a worker is alive (beat sends it every 30 s)."""
    record_heartbeat(Session(), name or socket.gethostname())


@shared_task(name="lettrine.audience.retention")
def retention() -> None:
    """Daily: purge unconfirmed sign-ups and expired per-recipient tracking data."""
    purge_expired(Session())


@shared_task(name="lettrine.audience.run_import")
def run_import(import_id: int) -> None:
    """Run the dry run or the subscriber import that ``import_id`` waits for (idempotent)."""
    run_subscriber_import(Session(), current_app.extensions["lettrine_config"], import_id)
