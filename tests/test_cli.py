"""Bad settings get one clear line, not a traceback wall."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def _lettrine(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "PORT"}}
    clean.update(LETTRINE_INSTANCE=str(tmp_path / "instance"), **env)
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_clear_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]


def test_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/lettrine"
    result = _lettrine(tmp_path, "db", "upgrade", DATABASE_URL=url)
    _one_clear_line(result, "cannot reach the database")
    assert "secret" not in result.stderr  # passwords are masked


@pytest.mark.parametrize(
    "url",
    [
        "mysql://lettrine@127.0.0.1/lettrine",
        "postgresql+psycopg2://u@127.0.0.1/x",
        "postgresql://u:p@127.0.0.1:notaport/db",
        "mysql-but-not-really://x",
        "not a url at all",
    ],
)
def test_invalid_database_url(tmp_path: Path, url: str) -> None:
    result = _lettrine(tmp_path, "db", "upgrade", DATABASE_URL=url)
    _one_clear_line(result, "DATABASE_URL")


def test_unreachable_redis(tmp_path: Path) -> None:
    result = _lettrine(tmp_path, "dev", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    _one_clear_line(result, "cannot reach Redis")


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _lettrine(tmp_path, "dev", PORT=str(port))
    _one_clear_line(result, f"port {port} on 127.0.0.1 is already in use")
    assert f"PORT={port + 1} make run" in result.stderr


def test_db_upgrade_and_demo_on_a_fresh_instance(tmp_path: Path) -> None:
    assert _lettrine(tmp_path, "db", "upgrade").returncode == 0
    first = _lettrine(tmp_path, "demo")
    assert first.returncode == 0, first.stderr
    assert "demo loaded" in first.stdout
    second = _lettrine(tmp_path, "demo")
    assert "demo already present" in second.stdout
    created = _lettrine(
        tmp_path,
        "users",
        "create",
        "nouvelle@agence.example.org",
        "--role",
        "publisher",
        "--password",
        "un mot de passe solide",
    )
    assert created.returncode == 0, created.stderr
    duplicate = _lettrine(
        tmp_path, "users", "create", "Nouvelle@agence.example.org", "--password", "x" * 12
    )
    _one_clear_line(duplicate, "already exists")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [("PORT", "abc", "PORT='abc' is not a port number"), ("SMTP_PORT", "99999", "not a TCP port")],
)
def test_bad_ports(tmp_path: Path, variable: str, value: str, expected: str) -> None:
    _one_clear_line(_lettrine(tmp_path, "dev", **{variable: value}), expected)


def test_commands_on_a_database_without_schema(tmp_path: Path) -> None:
    _one_clear_line(_lettrine(tmp_path, "demo"), "run `lettrine db upgrade` first")


@pytest.mark.parametrize(
    ("email", "password", "expected"),
    [
        ("pas-une-adresse", "un mot de passe solide", "is not an e-mail address"),
        ("admin@agence.example.org", "court", "at least 12 characters"),
    ],
)
def test_users_create_refuses_bad_input(
    tmp_path: Path, email: str, password: str, expected: str
) -> None:
    _one_clear_line(_lettrine(tmp_path, "users", "create", email, "--password", password), expected)
