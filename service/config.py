"""Configuration from the environment (12-factor), with embedded defaults.

Without any variable set, Lettrine runs embedded: SQLite and a filesystem
broker in ``instance/``, mail to the dev outbox on 127.0.0.1:1025.
"""

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A setting is missing or wrong; the message says how to fix it."""


def instance_dir() -> Path:
    return Path(os.environ.get("LETTRINE_INSTANCE", ROOT / "instance")).resolve()


def _secret_key(folder: Path) -> str:
    """Read SECRET_KEY, or a key generated once into instance/ (never committed)."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = folder / "secret_key"
    if path.exists() and (existing := path.read_text().strip()):
        return existing
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # Created private from the start (no window where another user could read it);
    # exclusive, so two processes starting together keep the first key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if existing := path.read_text().strip():
            return existing
        path.unlink()  # an empty file left by a crash: replace it
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def _port(name: str, default: str) -> int:
    raw = os.environ.get(name, default)
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a port number (for example {default}).") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{name}={port} is not a TCP port (1 to 65535).")
    return port


def _rate(name: str) -> float:
    raw = os.environ.get(name, "0").strip() or "0"
    try:
        rate = float(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a rate (messages per second, 0: no limit)."
        ) from None
    if not 0 <= rate < 1e6:
        raise ConfigError(f"{name}={raw!r}: give messages per second, 0 for no limit.")
    return rate


def _smtp_timeout() -> float:
    raw = os.environ.get("SMTP_TIMEOUT", "").strip() or "30"
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(f"SMTP_TIMEOUT={raw!r} is not a number of seconds.") from None
    if not 0 < seconds <= 600:
        raise ConfigError(f"SMTP_TIMEOUT={raw!r}: give seconds, between 0 and 600.")
    return seconds


def _lease_seconds(smtp_timeout: float) -> int:
    """A lease must outlast any single SMTP exchange (a reply, a reconnect, a login)."""
    raw = os.environ.get("DELIVERY_LEASE_SECONDS", "").strip() or "300"
    try:
        seconds = int(raw)
    except ValueError:
        raise ConfigError(f"DELIVERY_LEASE_SECONDS={raw!r} is not a number of seconds.") from None
    if seconds < 4 * smtp_timeout:
        raise ConfigError(
            f"DELIVERY_LEASE_SECONDS={seconds}: use at least four times SMTP_TIMEOUT "
            f"({4 * smtp_timeout:g} s), or a slow relay could get a message sent twice."
        )
    return seconds


def _domain_rates(name: str) -> dict[str, float]:
    """``orange.fr=10,wanadoo.fr=10``: messages per second for these recipient domains."""
    rates: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in os.environ.get(name, "").split(","))):
        domain, _, value = item.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = -1
        if not domain.strip() or not 0 < rate < 1e6:
            raise ConfigError(f"{name}: {item!r} should read domain=messages per second.")
        rates[domain.strip().lower()] = rate
    return rates


IMAP_TLS_MODES = {"implicit": 993, "starttls": 143, "none": 143}


@dataclass(frozen=True)
class ImapSettings:
    """The bounce mailbox, read over IMAP (BOUNCE_IMAP_*)."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    # "implicit" (TLS from the first byte, port 993), "starttls" (143), or "none":
    # plain text, for a server on the same machine (tests) only.
    tls: str = "implicit"
    folder: str = "INBOX"


def _bounce_imap() -> ImapSettings | None:
    """BOUNCE_IMAP_HOST unset: no mailbox to read (the webhook may still take reports)."""
    host = os.environ.get("BOUNCE_IMAP_HOST", "").strip()
    if not host:
        return None
    tls = os.environ.get("BOUNCE_IMAP_TLS", "implicit").strip().lower()
    if tls not in IMAP_TLS_MODES:
        raise ConfigError(f"BOUNCE_IMAP_TLS={tls!r}: choose implicit, starttls or none.")
    user = os.environ.get("BOUNCE_IMAP_USER", "")
    if not user:
        raise ConfigError("BOUNCE_IMAP_HOST is set: give BOUNCE_IMAP_USER and _PASSWORD too.")
    return ImapSettings(
        host=host,
        # Empty (as docker compose passes an unset variable): the mode's usual port.
        port=_port("BOUNCE_IMAP_PORT", "")
        if os.environ.get("BOUNCE_IMAP_PORT", "").strip()
        else IMAP_TLS_MODES[tls],
        user=user,
        password=os.environ.get("BOUNCE_IMAP_PASSWORD", ""),
        tls=tls,
        folder=os.environ.get("BOUNCE_IMAP_FOLDER", "").strip() or "INBOX",
    )


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Config:
    secret_key: str
    database_url: str
    broker_url: str
    broker_folder: Path | None
    redis_url: str | None
    smtp_host: str
    smtp_port: int
    smtp_username: str | None
    smtp_password: str | None
    smtp_starttls: bool
    # DKIM signing: all three set, or none (no signature).
    dkim_domain: str | None
    dkim_selector: str | None
    dkim_key_path: Path | None
    base_url: str
    instance_path: Path
    secure_cookies: bool
    outbox_enabled: bool
    web_port: int = 5000
    # Seconds an SMTP reply may take before the attempt is given up.
    smtp_timeout: float = 30
    # How long a worker owns a claimed batch before the sweeper gives it to another.
    delivery_lease_seconds: int = 300
    # Shared secret of the bounce webhook (unset: the webhook answers 404).
    bounce_webhook_token: str | None = None
    # The bounce mailbox read every minute over IMAP (None: not configured).
    bounce_imap: ImapSettings | None = None
    # Reverse proxies in front of the app whose X-Forwarded-* headers are trusted.
    proxy_count: int = 0
    # Messages per second through the SMTP relay, and per recipient domain (0: no limit);
    # shared by every worker through Redis. A 421/4.7.x answer slows that domain down.
    send_rate: float = 0
    domain_rate: float = 0
    domain_rates: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def flask_settings(self) -> dict[str, Any]:
        return {
            "SECRET_KEY": self.secret_key,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": self.secure_cookies,
            "REMEMBER_COOKIE_SECURE": self.secure_cookies,
            "REMEMBER_COOKIE_HTTPONLY": True,
            "PERMANENT_SESSION_LIFETIME": 8 * 3600,
            "WTF_CSRF_TIME_LIMIT": 8 * 3600,
            "BABEL_DEFAULT_LOCALE": "fr",
            "BABEL_DEFAULT_TIMEZONE": "Europe/Paris",
            "MAX_CONTENT_LENGTH": 32 * 1024 * 1024,
            **self.extra,
        }


def load_config(**overrides: Any) -> Config:
    """Read the environment; ``overrides`` (tests) win over it."""
    folder = Path(overrides.pop("instance_path", instance_dir()))
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{folder / 'lettrine.db'}"
    # Heroku-style URLs name the old driver; we use psycopg 3.
    if database_url.startswith(("postgres://", "postgresql://")):
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
    redis_url = os.environ.get("REDIS_URL") or None
    broker_folder: Path | None = None
    if redis_url:
        broker_url = redis_url
    else:
        broker_folder = folder / "broker"
        broker_url = "filesystem://"
    port = _port("PORT", "5000")
    values: dict[str, Any] = {
        "secret_key": _secret_key(folder),
        "database_url": database_url,
        "broker_url": broker_url,
        "broker_folder": broker_folder,
        "redis_url": redis_url,
        "smtp_host": os.environ.get("SMTP_HOST", "127.0.0.1"),
        "smtp_port": _port("SMTP_PORT", "1025"),
        "smtp_username": os.environ.get("SMTP_USERNAME") or None,
        "smtp_password": os.environ.get("SMTP_PASSWORD") or None,
        "smtp_starttls": _bool("SMTP_STARTTLS", default=False),
        "dkim_domain": os.environ.get("DKIM_DOMAIN") or None,
        "dkim_selector": os.environ.get("DKIM_SELECTOR") or None,
        "dkim_key_path": Path(os.environ["DKIM_PRIVATE_KEY_FILE"])
        if os.environ.get("DKIM_PRIVATE_KEY_FILE")
        else None,
        "base_url": os.environ.get("BASE_URL", f"http://127.0.0.1:{port}").rstrip("/"),
        "web_port": port,
        "smtp_timeout": (timeout := _smtp_timeout()),
        "delivery_lease_seconds": _lease_seconds(timeout),
        "bounce_webhook_token": os.environ.get("BOUNCE_WEBHOOK_TOKEN") or None,
        "bounce_imap": _bounce_imap(),
        "instance_path": folder,
        "secure_cookies": _bool("SECURE_COOKIES", default=False),
        "outbox_enabled": _bool("OUTBOX_ENABLED", default=True),
        "proxy_count": _port("PROXY_COUNT", "0") if os.environ.get("PROXY_COUNT") else 0,
        "send_rate": _rate("SEND_RATE"),
        "domain_rate": _rate("SEND_DOMAIN_RATE"),
        "domain_rates": _domain_rates("SEND_DOMAIN_RATES"),
    }
    values.update(overrides)
    return Config(**values)
