"""The Celery app with one guard of DESIGN.md §4 turned off, for negative controls.

Outcomes are no longer committed message by message: they wait for the next
commit (the next claim). A fault test run against this worker must fail, which
proves the test can see the fault it is about.
"""

from typing import Any

from service.delivery import services

_deliver = services._deliver


def _deliver_without_commits(session: Any, *args: Any) -> Any:
    real = session.commit
    session.commit = session.flush  # the outcome stays in the open transaction
    try:
        return _deliver(session, *args)
    finally:
        session.commit = real


services._deliver = _deliver_without_commits

from workers.celery_app import celery  # noqa: E402 - after the patch, on purpose

__all__ = ["celery"]
