"""The ``lettrine`` command: database, demo, users, dev outbox, and ``dev`` (make run)."""

import os
import secrets
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from honcho.manager import Manager
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from service.accounts.models import Role
from service.accounts.services import create_user
from service.config import Config, ConfigError, load_config
from service.db import Session, bind_session, make_engine
from service.demo.content import DEMO_PASSWORD, DEMO_USERS
from service.demo.services import load_demo
from service.outbox.server import make_controller
from service.preflight import check_database, check_migrated, check_port_free, check_redis

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@contextmanager
def migration_connection(config: Config) -> Iterator[Connection]:
    """A connection in a transaction, ready for schema changes on either backend.

    SQLite cannot ALTER most things, so Alembic's batch mode copies a table and
    drops the old one: with foreign keys on, that drop would cascade and delete
    the rows pointing at it. They are switched off for the migration (outside the
    transaction, as SQLite requires), checked at the end, and switched back on.
    """
    engine = make_engine(config.database_url)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            with connection.begin():
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise ConfigError(f"migration left broken references: {broken[:5]}")
            if sqlite:
                connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
    finally:
        engine.dispose()


def upgrade_database(config: Config) -> None:
    alembic_cfg = AlembicConfig()
    alembic_cfg.set_main_option("script_location", str(MIGRATIONS))
    with migration_connection(config) as connection:
        alembic_cfg.attributes["connection"] = connection
        command.upgrade(alembic_cfg, "head")


@click.group()
def cli() -> None:
    """Lettrine: newsletters for public bodies."""


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (creates the SQLite file in instance/ if needed)."""
    config = load_config()
    check_database(config)
    upgrade_database(config)
    click.echo("database is up to date")


@cli.command("demo")
def demo() -> None:
    """Load the demo bulletin, segments, subscribers and users (idempotent)."""
    config = load_config()
    check_database(config)
    check_migrated(config)
    loaded = _load_demo(config)
    click.echo("demo loaded" if loaded else "demo already present, nothing changed")


def _load_demo(config: Config) -> bool:
    bind_session(make_engine(config.database_url))
    session = Session()
    try:
        loaded = load_demo(session)
        session.commit()
    finally:
        Session.remove()
    return loaded


@cli.group()
def users() -> None:
    """Back-office accounts."""


@users.command("create")
@click.argument("email")
@click.option("--name", default="", help="Display name (defaults to the address).")
@click.option(
    "--role",
    type=click.Choice(["admin", "publisher", "editor", "analyst"]),
    default="editor",
    show_default=True,
)
@click.option("--password", help="Leave out to be prompted (or to get a generated one).")
def users_create(email: str, name: str, role: str, password: str | None) -> None:
    """Create a back-office user."""
    config = load_config()
    if "@" not in email or email.strip() != email or len(email) > 254:
        raise ConfigError(f"{email!r} is not an e-mail address")
    if password is not None and len(password) < 12:
        raise ConfigError("the password must have at least 12 characters")
    if password is None:
        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            password = secrets.token_urlsafe(12)
            click.echo(f"generated password: {password}")
    check_database(config)
    check_migrated(config)
    bind_session(make_engine(config.database_url))
    try:
        user = create_user(
            Session(), email=email, name=name or email, role=Role(role), password=password
        )
    except IntegrityError:
        raise ConfigError(f"a user with the address {email} already exists") from None
    finally:
        Session.remove()
    click.echo(f"created {user.role.value} {user.email}")


@cli.group()
def outbox() -> None:
    """The dev outbox SMTP server."""


@outbox.command("serve")
@click.option("--host", default=None, help="Defaults to SMTP_HOST (127.0.0.1).")
@click.option("--port", type=int, default=None, help="Defaults to SMTP_PORT (1025).")
def outbox_serve(host: str | None, port: int | None) -> None:
    """Accept every SMTP message and keep it for the /outbox page."""
    config = load_config()
    host = host or config.smtp_host
    port = port or config.smtp_port
    check_port_free(host, port, "dev outbox SMTP server", "SMTP_PORT")
    factory = sessionmaker(make_engine(config.database_url), expire_on_commit=False)
    controller = make_controller(factory, host, port)
    controller.start()
    click.echo(f"dev outbox listening on smtp://{host}:{port}")
    stop = threading.Event()
    try:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


def _listening(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def _wait_then_announce(
    addresses: list[tuple[str, int]], config: Config, stop: threading.Event
) -> None:
    """Print the banner once the web app (and the outbox) accept connections."""
    deadline = time.monotonic() + 120
    while not all(_listening(address) for address in addresses):
        if stop.wait(0.3) or time.monotonic() > deadline:
            return
    logins = "\n".join(f"    {role:<10} {email}" for email, _name, role in DEMO_USERS)
    outbox = (
        f"  Dev outbox (SMTP): {config.smtp_host}:{config.smtp_port}, "
        f"messages at {config.base_url}/outbox/\n"
        if len(addresses) > 1
        else ""
    )
    click.secho(
        f"\n  Lettrine is ready: {config.base_url}/\n"
        f"  Demo logins (password: {DEMO_PASSWORD}):\n{logins}\n"
        f"{outbox}"
        "  Press Ctrl-C to stop everything.\n",
        fg="green",
        bold=True,
    )


@cli.command("dev")
@click.option("--no-demo", is_flag=True, help="Do not load the demo content.")
def dev(no_demo: bool) -> None:
    """Start web, worker, beat and the dev outbox together (what ``make run`` runs)."""
    config = load_config()
    port = config.web_port
    host = "127.0.0.1"
    check_database(config)
    check_redis(config)
    check_port_free(host, port, "web app", "PORT")
    run_outbox = config.outbox_enabled and config.smtp_host in {"127.0.0.1", "localhost"}
    if run_outbox:
        check_port_free(config.smtp_host, config.smtp_port, "dev outbox SMTP server", "SMTP_PORT")

    upgrade_database(config)
    if not no_demo:
        _load_demo(config)

    python = sys.executable
    env = {**os.environ, "LETTRINE_INSTANCE": str(config.instance_path), "PYTHONUNBUFFERED": "1"}
    workers = os.environ.get("WEB_CONCURRENCY", "2")
    processes = {
        "web": [
            python,
            "-m",
            "gunicorn",
            "--bind",
            f"{host}:{port}",
            "--workers",
            workers,
            "--access-logfile",
            "-",
            "--no-control-socket",  # gunicorn 27's default socket is per user, not per app
            "service.wsgi:app",
        ],
        "worker": [
            python,
            "-m",
            "celery",
            "--quiet",  # no ASCII-art banner: the ready message must stay on screen
            "-A",
            "workers.celery_app",
            "worker",
            "--loglevel=INFO",
            "--concurrency=2",
            "--hostname",
            "worker@%h",
        ],
        "beat": [
            python,
            "-m",
            "celery",
            "--quiet",
            "-A",
            "workers.celery_app",
            "beat",
            "--loglevel=INFO",
            "--schedule",
            str(config.instance_path / "celerybeat-schedule"),
        ],
    }
    if run_outbox:
        processes["outbox"] = [python, "-m", "service.cli", "outbox", "serve"]

    addresses = [(host, port)]
    if run_outbox:
        addresses.append((config.smtp_host, config.smtp_port))
    manager = Manager()
    for name, argv in processes.items():
        manager.add_process(name, shlex.join(argv), env=env)
    stop = threading.Event()
    threading.Thread(
        target=_wait_then_announce, args=(addresses, config, stop), daemon=True
    ).start()
    manager.loop()
    stop.set()
    sys.exit(manager.returncode or 0)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConfigError as error:
        click.secho(f"lettrine: {error}", fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
