import socket

from celery import shared_task
from flask import current_app

from service.audience.gdpr import purge_expired
from service.audience.imports import run as run_subscriber_import
from service.db import Session
from service.delivery import services as delivery
from service.delivery.imap import read_mailbox
from service.delivery.sender import SmtpSender, make_sender
from service.delivery.throttle import Throttle, make_throttle
from service.stats.services import roll_up
from service.system.services import record_heartbeat
from service.tracking.services import flush_buffer


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


# One SMTP connection per worker process, reused from batch to batch.
_SENDER: SmtpSender | None = None


def _sender() -> SmtpSender:
    global _SENDER  # noqa: PLW0603 - per-process connection, on purpose
    if _SENDER is None:
        _SENDER = make_sender(current_app.extensions["lettrine_config"])
    return _SENDER


# Rates shared by all workers (Redis); one client per process.
_THROTTLE: Throttle | None = None


def _throttle() -> Throttle:
    global _THROTTLE  # noqa: PLW0603 - per-process client, on purpose
    if _THROTTLE is None:
        _THROTTLE = make_throttle(current_app.extensions["lettrine_config"])
    return _THROTTLE


@shared_task(name="lettrine.delivery.send_batch")
def send_batch(issue_id: int) -> None:
    """Send one leased batch of an issue, then hand the rest to the next task."""
    config = current_app.extensions["lettrine_config"]
    result = delivery.send_batch(Session(), issue_id, config, _sender(), throttle=_throttle())
    if result.more:
        current_app.extensions["celery"].send_task("lettrine.delivery.send_batch", args=[issue_id])


@shared_task(name="lettrine.delivery.sweep")
def sweep() -> None:
    """Every 30 s: expired leases, lost tasks, finished and due issues."""
    delivery.sweep(Session())


@shared_task(name="lettrine.stats.roll_up")
def roll_up_stats() -> None:
    """Every minute: fold settled events into the statistics rollups (idempotent)."""
    roll_up(Session())


@shared_task(name="lettrine.delivery.read_bounce_mailbox")
def read_bounce_mailbox() -> None:
    """Every minute: apply the reports waiting in the bounce mailbox (IMAP), if configured."""
    read_mailbox(Session(), current_app.extensions["lettrine_config"])


@shared_task(name="lettrine.tracking.flush")
def flush_tracking() -> None:
    """Every second (``FLUSH_EVERY``): write the tracking hits buffered in Redis to the
    events table; during a peak it stays and writes every 0.25 s, up to 20 s."""
    flush_buffer(Session(), current_app.extensions["lettrine_config"])
