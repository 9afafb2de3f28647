"""The subscription confirmation email, built from ``emails.system`` templates.

Built inside the request (it needs ``url_for``), sent once the answer has gone
out: the time an SMTP exchange takes must not tell whether an email left.
"""

import logging
from email.headerregistry import Address
from email.message import EmailMessage

from emails.system import build_system_message, render_system_email
from service.accounts.notifications import absolute_url, french_duration, send, sender_address
from service.audience.subscriptions import (
    CONFIRM_MAX_AGE,
    PendingConfirmation,
    confirmation_token,
    preferences_token,
)
from service.config import Config
from service.db import utcnow
from service.delivery.sender import SendError
from service.public.branding import Brand

log = logging.getLogger(__name__)


def confirmation_message(
    config: Config, brand: Brand, pending: PendingConfirmation
) -> EmailMessage:
    token = confirmation_token(config.secret_key, pending.subscriber_id, pending.segment_ids)
    rendered = render_system_email(
        "subscription_confirm",
        name=pending.display_name,
        newsletter_name=brand.name,
        controller=brand.controller,
        segment_names=pending.segment_names,
        link=absolute_url(config, "public.confirm", token=token),
        preferences_link=absolute_url(
            config,
            "public.preferences",
            token=preferences_token(config.secret_key, pending.subscriber_id),
        ),
        subscribe_link=absolute_url(config, "public.subscribe"),
        valid_for=french_duration(CONFIRM_MAX_AGE),
        color=brand.color,
        on_color=brand.on_color,
        base_url=config.base_url,
    )
    # The newsletter's name, on our own no-reply address (aligned with the envelope).
    ours = sender_address(config)
    local, _, domain = pending.email.rpartition("@")
    return build_system_message(
        rendered,
        sender=Address(brand.name, ours.username, ours.domain),
        recipient=Address(pending.display_name, local, domain),
        now=utcnow(),
    )


def send_confirmation(
    config: Config, subscriber_id: int, recipient: str, message: EmailMessage
) -> None:
    try:
        send(config, recipient, message)
    except SendError as error:
        # Nobody is waiting on the page any more: the log is where this is seen.
        log.error("subscription confirmation for subscriber %s not sent: %s", subscriber_id, error)
