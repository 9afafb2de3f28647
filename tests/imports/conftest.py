import csv
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from service.audience import imports
from service.audience.models import Import, ImportStatus
from service.config import Config
from service.db import Session as ScopedSession

MakeImport = Callable[..., Import]


@pytest.fixture
def config(app: Flask) -> Config:
    config: Config = app.extensions["lettrine_config"]
    return config


@pytest.fixture
def make_import(
    db_session: Session, config: Config, tmp_path: Path, app_context: None
) -> MakeImport:
    """Upload ``data``, choose the options, and run the dry run as the worker would."""
    counter = iter(range(1000))

    def make(
        data: bytes, *, check: bool = True, mapping: dict[str, str] | None = None, **options: object
    ) -> Import:
        upload = tmp_path / f"upload-{next(counter)}"
        upload.write_bytes(data)
        session = db_session()  # the use cases take a session, not the scoped proxy
        record = imports.create_import(session, config, upload, "abonnes.csv", None)
        if check:
            imports.start_check(session, record, mapping or dict(record.mapping), options, None)
            imports.run(session, config, record.id)
            session.refresh(record)
        return record

    return make


def launch(session: Session, config: Config, record: Import) -> Import:
    assert record.status == ImportStatus.CHECKED, record.error
    session = ScopedSession()
    imports.start_import(session, record, None)
    imports.run(session, config, record.id)
    session.refresh(record)
    return record


def report_lines(config: Config, record: Import) -> list[list[str]]:
    with imports.report_path(config, record).open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle, delimiter=";"))[1:]


@pytest.fixture
def app_context(app: Flask) -> Iterator[None]:
    """Use cases enqueue tasks after commit, which needs the app (as in a request).

    Not for tests that make requests: they would share this context's ``g``.
    """
    with app.app_context():
        yield
