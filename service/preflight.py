"""Checks run before starting anything, each failing with one line that says
what is wrong and how to fix it (no traceback wall)."""

import errno
import socket

import redis
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from service.config import Config, ConfigError
from service.db import make_engine


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<invalid URL>"


def check_database(config: Config) -> None:
    url = config.database_url
    try:
        engine = make_engine(
            url, **({} if config.is_sqlite else {"connect_args": {"connect_timeout": 3}})
        )
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as error:
        raise ConfigError(
            f"DATABASE_URL is not a database URL Lettrine can use ({_masked(url)}): {error}. "
            "Expected postgresql://user:password@host:5432/name, or unset it for SQLite."
        ) from None
    if config.is_sqlite:
        config.instance_path.mkdir(parents=True, exist_ok=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (DBAPIError, ValueError) as error:
        orig = getattr(error, "orig", None) or error
        reason = (str(orig).strip().splitlines() or ["?"])[0]
        raise ConfigError(
            f"cannot reach the database at {_masked(url)}: {reason}. "
            "Check DATABASE_URL and that the server runs, or unset DATABASE_URL to use SQLite."
        ) from None
    finally:
        engine.dispose()


def check_redis(config: Config) -> None:
    if not config.redis_url:
        return
    try:
        client = redis.Redis.from_url(config.redis_url, socket_connect_timeout=3)
        client.ping()
    except ValueError as error:
        raise ConfigError(f"REDIS_URL is not a Redis URL ({config.redis_url}): {error}.") from None
    except redis.RedisError as error:
        raise ConfigError(
            f"cannot reach Redis at {config.redis_url}: {error}. "
            "Start Redis, fix REDIS_URL, or unset it to use the embedded filesystem broker."
        ) from None


def check_port_free(host: str, port: int, what: str, variable: str) -> None:
    if not 0 < port < 65536:
        raise ConfigError(f"{variable}={port} is not a TCP port (1 to 65535).")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {host} is already in use ({what}). Stop what uses it, "
                    f"or choose another port: {variable}={port + 1} make run"
                ) from None
            raise ConfigError(f"cannot listen on {host}:{port} ({what}): {error}.") from None


def check_migrated(config: Config) -> None:
    """The schema exists (commands that read or write data need it)."""
    engine = make_engine(config.database_url)
    try:
        with engine.connect() as conn:
            migrated = inspect(conn).has_table("alembic_version")
    finally:
        engine.dispose()
    if not migrated:
        raise ConfigError("the database has no schema yet: run `lettrine db upgrade` first.")
