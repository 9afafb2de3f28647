"""The Celery application: ``celery -A workers.celery_app worker``.

Built from the Flask app (one configuration, one ``Session``), which is why
this module and ``service.wsgi`` are the only ones that build the app at import.
"""

from typing import Any

from celery.signals import worker_process_init

from service import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
celery.autodiscover_tasks(["workers"], related_name="tasks", force=True)


@worker_process_init.connect
def _fresh_connections(**_kwargs: Any) -> None:
    # A forked child must not reuse the parent's pooled connections.
    flask_app.extensions["engine"].dispose(close=False)
