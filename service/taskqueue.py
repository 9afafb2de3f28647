"""Celery wiring (the Flask pattern ``celery_init_app``) and after-commit enqueueing.

Tasks run inside an application context, so they use the same ``Session``
as the web app. Services never import ``workers``: they enqueue by task name
once their transaction has committed (a task must never see uncommitted data,
and a rolled-back use case must not leave a task behind).
"""

from typing import Any

from celery import Celery, Task
from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import scoped_session

from service.config import Config


def celery_settings(config: Config) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "broker_url": config.broker_url,
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        # DESIGN §4: acknowledge after the work, give the task back if the
        # worker process dies, take one message at a time.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "timezone": "Europe/Paris",
        "enable_utc": True,
        "beat_schedule": {
            "heartbeat": {"task": "lettrine.system.heartbeat", "schedule": 30.0},
            "retention": {"task": "lettrine.audience.retention", "schedule": 6 * 3600.0},
            "sweep": {"task": "lettrine.delivery.sweep", "schedule": 30.0},
            "stats": {"task": "lettrine.stats.roll_up", "schedule": 60.0},
            # A no-op without BOUNCE_IMAP_HOST; a tick older than a minute is dropped.
            "bounce_mailbox": {
                "task": "lettrine.delivery.read_bounce_mailbox",
                "schedule": 60.0,
                "options": {"expires": 55},
            },
        },
    }
    if config.redis_url:
        # Tracking hits buffered in Redis to the events table (without Redis they are
        # written as they come); a late tick is useless: dropped.
        from service.tracking.services import FLUSH_EVERY  # noqa: PLC0415 - models load late

        settings["beat_schedule"]["tracking"] = {
            "task": "lettrine.tracking.flush",
            "schedule": FLUSH_EVERY,
            "options": {"expires": 10},
        }
    if config.broker_folder is not None:
        queue = config.broker_folder / "queue"
        processed = config.broker_folder / "processed"
        # kombu's default control folder is ./control, in whatever directory we run from.
        control = config.broker_folder / "control"
        for folder in (queue, processed, control):
            folder.mkdir(parents=True, exist_ok=True)
        settings["broker_transport_options"] = {
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "processed_folder": str(processed),
            "control_folder": str(control),
            "store_processed": False,
        }
    return settings


def celery_init_app(app: Flask, config: Config) -> Celery:
    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_settings(config))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


PENDING = "lettrine.pending_tasks"


def enqueue_after_commit(session: OrmSession, task_name: str, *args: Any, **kwargs: Any) -> None:
    """Send ``task_name`` once ``session`` commits; drop it if the transaction rolls back."""
    if isinstance(session, scoped_session):
        session = session()  # the session itself: events and ``info`` live there
    if not session.in_transaction():
        session.begin()  # the task belongs to this transaction, whatever happens to it
    pending: list[tuple[Celery, str, tuple[Any, ...], dict[str, Any]]] = session.info.setdefault(
        PENDING, []
    )
    pending.append((current_app.extensions["celery"], task_name, args, kwargs))


@event.listens_for(OrmSession, "after_commit")
def _send_pending(session: OrmSession) -> None:
    for celery_app, task_name, args, kwargs in session.info.pop(PENDING, []):
        celery_app.send_task(task_name, args=args, kwargs=kwargs)


@event.listens_for(OrmSession, "after_soft_rollback")
def _drop_pending(session: OrmSession, _previous: Any) -> None:
    session.info.pop(PENDING, None)
