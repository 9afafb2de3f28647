"""The account emails: invitation and password reset, with their signed links.

Messages are built from ``emails.system`` templates and sent over SMTP through
the configured sender. Callers send only after their transaction has committed:
an email must never point at an account that a rollback took away.
"""

import datetime as dt
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from flask import url_for
from flask_babel import force_locale

from emails.system import SystemEmail, build_system_message, render_system_email
from service.accounts.forms import ROLE_LABELS
from service.accounts.models import User
from service.accounts.tokens import MAX_AGE, Purpose, make_token
from service.config import Config
from service.db import utcnow
from service.delivery.sender import make_sender


def sender_address(config: Config) -> Address:
    return Address("Lettrine", "no-reply", urlsplit(config.base_url).hostname or "localhost")


def absolute_url(config: Config, endpoint: str, **values: Any) -> str:
    """A link for an email: the configured public address, never the request's Host."""
    return config.base_url + url_for(endpoint, **values)


def password_link(config: Config, purpose: Purpose, user: User) -> str:
    token = make_token(config.secret_key, purpose, user.id, user.password_hash)
    return absolute_url(config, "accounts.set_password", token=token)


def french_duration(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} jour{'s' if days > 1 else ''}"
    hours = seconds // 3600
    return f"{hours} heure{'s' if hours > 1 else ''}"


def invitation_message(config: Config, user: User, inviter_name: str) -> EmailMessage:
    # The email is French whatever language the inviting administrator reads.
    with force_locale("fr"):
        role_label = str(ROLE_LABELS[user.role])
    rendered = render_system_email(
        "invitation",
        name=user.name,
        inviter_name=inviter_name,
        role_label=role_label,
        link=password_link(config, Purpose.INVITE, user),
        valid_for=french_duration(MAX_AGE[Purpose.INVITE]),
        base_url=config.base_url,
    )
    return _message(config, user, rendered)


def reset_message(config: Config, user: User) -> EmailMessage:
    rendered = render_system_email(
        "password_reset",
        name=user.name,
        email=user.email,
        link=password_link(config, Purpose.RESET, user),
        valid_for=french_duration(MAX_AGE[Purpose.RESET]),
        forgot_url=absolute_url(config, "accounts.forgot_password"),
        base_url=config.base_url,
    )
    return _message(config, user, rendered)


def _message(config: Config, user: User, rendered: SystemEmail) -> EmailMessage:
    local, _, domain = user.email.rpartition("@")
    return build_system_message(
        rendered,
        sender=sender_address(config),
        recipient=Address(user.name, local, domain),
        now=utcnow(),
    )


def send(config: Config, recipient: str, message: EmailMessage) -> None:
    """Hand ``message`` to the SMTP server. Raises ``SendError`` when it is not accepted."""
    with make_sender(config) as sender:
        sender.send(sender_address(config).addr_spec, [recipient], message.as_bytes())
