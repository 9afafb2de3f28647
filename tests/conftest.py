"""Test fixtures: a real database (PostgreSQL, or SQLite on the second pass),
migrated once per session; each test runs in a transaction rolled back at the end.

TEST_DATABASE_URL picks the database; the special value "sqlite" uses a fresh
SQLite file. TEST_REDIS_URL is the Redis used by the worker tests.
"""

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session as OrmSession

from service import create_app
from service.cli import upgrade_database
from service.config import Config, load_config
from service.db import Session, make_engine

TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
if TEST_DATABASE_URL.startswith(("postgres://", "postgresql://")):
    TEST_DATABASE_URL = "postgresql+psycopg://" + TEST_DATABASE_URL.split("://", 1)[1]
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ON_SQLITE = TEST_DATABASE_URL == "sqlite"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if ON_SQLITE:
        skip = pytest.mark.skip(reason="PostgreSQL-only feature, checked on the PostgreSQL pass")
        for item in items:
            if "postgres_only" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if ON_SQLITE:
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    return TEST_DATABASE_URL


def reset_database(engine: Engine) -> None:
    """Start from an empty database (left-overs of an aborted run included)."""
    if engine.dialect.name == "postgresql":
        # The tests wipe their database: refuse anything not obviously a test database.
        name = engine.url.database or ""
        if "test" not in name:
            pytest.exit(f"TEST_DATABASE_URL names {name!r}: use a database whose name has 'test'")
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(scope="session")
def engine(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine(database_url)
    reset_database(engine)
    upgrade_database(make_config(tmp_path_factory.mktemp("migrate"), database_url))
    yield engine
    engine.dispose()


def make_config(instance: Path, database_url: str, **overrides: object) -> Config:
    values: dict[str, object] = {
        "instance_path": instance,
        "database_url": database_url,
        "secret_key": "test-secret-key",
        "broker_url": "memory://",
        "broker_folder": None,
        "redis_url": None,
        "smtp_host": "127.0.0.1",
        "smtp_port": 1025,
        "base_url": "http://lettrine.test",
        "secure_cookies": False,
        "outbox_enabled": True,
    }
    values.update(overrides)
    return load_config(**values)


@pytest.fixture
def app(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(make_config(tmp_path / "instance", database_url))
    app.config["TESTING"] = True
    yield app
    app.extensions["engine"].dispose()


@pytest.fixture
def db_session(app: Flask, engine: Engine) -> Iterator[OrmSession]:
    """The app's scoped Session, bound to one connection whose transaction is
    rolled back after the test; use cases' commits become savepoint releases.

    The scoped proxy itself is given (not one session): each request ends its
    session like in production, and the test goes on with a fresh one.
    """
    connection = engine.connect()
    transaction = connection.begin()
    Session.remove()
    Session.configure(bind=connection, join_transaction_mode="create_savepoint")
    yield Session  # type: ignore[misc]
    Session.remove()
    transaction.rollback()
    connection.close()


@pytest.fixture
def client(app: Flask, db_session: OrmSession) -> FlaskClient:
    return app.test_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Collect:
    """aiosmtpd handler keeping every message received (a real SMTP conversation)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, _server: object, _session: object, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def mail_sink(app: Flask) -> Iterator[_Collect]:
    """An SMTP server on a free port; the app's sender is pointed at it."""
    handler = _Collect()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    app.extensions["lettrine_config"] = replace(
        app.extensions["lettrine_config"], smtp_host="127.0.0.1", smtp_port=controller.port
    )
    yield handler
    controller.stop()


@pytest.fixture(scope="session", autouse=True)
def _clean_test_broker() -> None:
    """Tasks left in the test Redis database by an earlier run (a killed worker's
    unacknowledged ones) must not reach this run's workers."""
    # The SQLite pass may run without Redis; the worker tests say so themselves.
    with contextlib.suppress(redis.RedisError):
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2).flushdb()
