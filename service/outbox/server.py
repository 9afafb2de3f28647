"""The dev outbox SMTP server: accepts every message and stores it in the database.

Embedded mode only (``make run``): it stands in for the relay so that nothing
leaves the machine, and the back office shows what would have been sent.
"""

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from sqlalchemy.orm import sessionmaker

from service.outbox.services import store_message

log = logging.getLogger(__name__)


class OutboxHandler:
    def __init__(self, session_factory: sessionmaker[Any]) -> None:
        self.session_factory = session_factory

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd hook name
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        recipients = [str(rcpt) for rcpt in envelope.rcpt_tos]
        # The write is short and the outbox is a dev tool: run it off the event loop anyway
        # so a slow SQLite lock does not stall other connections.
        message_id = await asyncio.to_thread(
            self._store, str(envelope.mail_from or ""), recipients, bytes(raw or b"")
        )
        log.info("outbox: stored message %s for %s", message_id, ", ".join(recipients))
        return "250 Message accepted for delivery"

    def _store(self, mail_from: str, recipients: list[str], raw: bytes) -> int:
        with self.session_factory() as session:
            return store_message(session, mail_from, recipients, raw)


def make_controller(session_factory: sessionmaker[Any], host: str, port: int) -> Controller:
    # SMTPUTF8 and 8BITMIME on; a generous size limit matches real relays.
    return Controller(
        OutboxHandler(session_factory),
        hostname=host,
        port=port,
        data_size_limit=50 * 1024 * 1024,
        enable_SMTPUTF8=True,
        decode_data=False,
    )
