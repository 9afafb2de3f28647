from pathlib import Path

import pytest

from service.config import ConfigError, load_config


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "PORT",
        "BASE_URL",
        "SMTP_HOST",
        "SMTP_PORT",
        "OUTBOX_ENABLED",
        "SECURE_COOKIES",
    ):
        monkeypatch.delenv(name, raising=False)


def test_embedded_defaults(tmp_path: Path) -> None:
    config = load_config(instance_path=tmp_path)
    assert config.database_url == f"sqlite:///{tmp_path / 'lettrine.db'}"
    assert config.broker_url == "filesystem://"
    assert config.broker_folder == tmp_path / "broker"
    assert (config.smtp_host, config.smtp_port) == ("127.0.0.1", 1025)
    assert config.base_url == "http://127.0.0.1:5000"
    assert config.outbox_enabled is True
    assert config.secure_cookies is False


def test_secret_key_is_generated_once_and_private(tmp_path: Path) -> None:
    first = load_config(instance_path=tmp_path).secret_key
    second = load_config(instance_path=tmp_path).secret_key
    assert first == second
    assert len(first) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "from-env")
    monkeypatch.setenv("DATABASE_URL", "postgres://lettrine:pw@db:5432/lettrine")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("PORT", "8001")
    monkeypatch.setenv("OUTBOX_ENABLED", "false")
    config = load_config(instance_path=tmp_path)
    assert config.secret_key == "from-env"
    assert not (tmp_path / "secret_key").exists()
    # Old-style URLs are mapped to the psycopg 3 driver.
    assert config.database_url == "postgresql+psycopg://lettrine:pw@db:5432/lettrine"
    assert config.broker_url == "redis://cache:6379/0"
    assert config.broker_folder is None
    assert config.base_url == "http://127.0.0.1:8001"
    assert config.outbox_enabled is False


def test_empty_secret_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("")
    key = load_config(instance_path=tmp_path).secret_key
    assert len(key) >= 40
    assert (tmp_path / "secret_key").read_text() == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("value", "message"), [("abc", "not a port number"), ("0", "not a TCP port")]
)
def test_bad_port_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("PORT", value)
    with pytest.raises(ConfigError, match=message):
        load_config(instance_path=tmp_path)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DELIVERY_LEASE_SECONDS": "abc"}, "not a number of seconds"),
        ({"DELIVERY_LEASE_SECONDS": "0"}, "at least four times SMTP_TIMEOUT"),
        ({"DELIVERY_LEASE_SECONDS": "60"}, r"\(120 s\)"),
        ({"SMTP_TIMEOUT": "2", "DELIVERY_LEASE_SECONDS": "7"}, r"\(8 s\)"),
        ({"SMTP_TIMEOUT": "-1"}, "between 0 and 600"),
        ({"SEND_RATE": "vite"}, "not a rate"),
        ({"SEND_DOMAIN_RATES": "orange.fr"}, "domain=messages per second"),
        ({"SEND_DOMAIN_RATES": "orange.fr=0"}, "domain=messages per second"),
    ],
)
def test_sending_settings_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_config(instance_path=tmp_path)


def test_sending_settings_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_TIMEOUT", "0.5")
    monkeypatch.setenv("DELIVERY_LEASE_SECONDS", "2")
    monkeypatch.setenv("SEND_RATE", "40")
    monkeypatch.setenv("SEND_DOMAIN_RATES", "Orange.fr=10, free.fr=2.5")
    config = load_config(instance_path=tmp_path)
    assert (config.smtp_timeout, config.delivery_lease_seconds) == (0.5, 2)
    assert config.send_rate == 40
    assert config.domain_rates == {"orange.fr": 10, "free.fr": 2.5}
