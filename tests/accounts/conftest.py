"""A real SMTP server (aiosmtpd) for the account emails, and helpers to read them."""

import email
import email.policy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from flask import Flask

from tests.conftest import free_port

BASE_URL = "http://lettrine.test"
LINK_RE = re.compile(re.escape(BASE_URL) + r"(/mot-de-passe/nouveau/[A-Za-z0-9_.\-]+)")


class Mailbox:
    """Every message the server accepted, parsed, with its envelope recipients."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd hook name
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        message = email.message_from_bytes(bytes(raw), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(([str(rcpt) for rcpt in envelope.rcpt_tos], message))
        return "250 Message accepted"

    @property
    def messages(self) -> list[EmailMessage]:
        return [message for _rcpt, message in self.received]

    def one(self) -> EmailMessage:
        assert len(self.received) == 1, f"{len(self.received)} messages received"
        return self.received[0][1]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def link_path(message: EmailMessage) -> str:
    """The password link of an account email (from its text part), as a local path."""
    match = LINK_RE.search(text_of(message))
    assert match, "no password link in the message"
    assert match.group(0) in html_of(message)
    return match.group(1)


def point_smtp_at(app: Flask, port: int) -> None:
    app.extensions["lettrine_config"] = replace(app.extensions["lettrine_config"], smtp_port=port)


@contextmanager
def running_mailbox(app: Flask) -> Iterator[Mailbox]:
    """Start an SMTP server and send the app's mail to it."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        point_smtp_at(app, controller.port)
        yield box
    finally:
        controller.stop()


@pytest.fixture
def mailbox(app: Flask) -> Iterator[Mailbox]:
    with running_mailbox(app) as box:
        yield box


@pytest.fixture
def smtp_down(app: Flask) -> None:
    """Nothing listens on the configured SMTP port: every send fails."""
    point_smtp_at(app, free_port())
