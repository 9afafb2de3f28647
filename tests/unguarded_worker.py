"""The Celery app with one guard of DESIGN.md §4 turned off, for negative controls.

Outcomes are no longer committed message by message: they wait for the next
commit (the next claim). A fault test run against this worker must fail, which
proves the test can see the fault it is about.
"""

from typing import Any

from service.delivery import services


def _write_without_commits(session: Any, statement: Any, params: dict[str, Any]) -> int:
    # Each attempt and outcome goes through the session and stays in its open
    # transaction (no autocommit ledger, no commit).
    result = session.execute(statement, params, execution_options={"synchronize_session": False})
    return int(result.rowcount)


services._write = _write_without_commits

from workers.celery_app import celery  # noqa: E402 - after the patch, on purpose

__all__ = ["celery"]
